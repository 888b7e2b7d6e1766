"""``cnnstat bench``: structure of its output, and every derived figure consistent with what was
timed and with quantities computed elsewhere (hand arithmetic, the ``flops`` command's bound,
the roofline's bytes, PyTorch's FlopCounterMode, a live-tensor count on the running module).

Timings themselves cannot be asserted: these tests check what is derived from them. CPU runs
use lenet5 or tiny modules, one thread (a busy machine's thread stalls aside) and few calls.
CUDA tests skip without CUDA; benchmarks/gpu_bench.py runs them and the GPU figures."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from cnnstat.analysis import analyze
from cnnstat.bench import calibrate as cal
from cnnstat.bench import measure
from cnnstat.bench.report import latency_stats, quantile
from cnnstat.hardware import device_file, get_device, roofline

CUDA = torch.cuda.is_available()
FAST = ("--threads", "1", "--runs", "5", "--warmup", "1")


def strict_json(text: str):
    """JSON as RFC 8259 has it: NaN and Infinity refused."""

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def bench_json(run, *args):
    res = run("bench", *args, *FAST, "--format", "json")
    assert res.exit_code == 0, res.output
    return strict_json(res.stdout)


def one_error(res, *words):
    """Exit 2 with one line on stderr, which says each of ``words``."""
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


# --- the report's arithmetic -------------------------------------------------------------


def test_quantile_is_linear_between_order_statistics():
    xs = list(range(1, 11))  # numpy.quantile(1..10, 0.9) = 9.1 (position 8.1 of 0..9)
    assert quantile(xs, 0.9) == pytest.approx(9.1)
    assert quantile(xs, 0.5) == pytest.approx(5.5)
    assert quantile([3.0], 0.9) == 3.0


def test_latency_stats_per_image_and_frame():
    s = latency_stats([0.4, 0.2, 0.3], batch=2, passes_per_frame=41.5)
    assert s["runs"] == 3
    assert s["per_call_s"]["median"] == 0.3
    assert s["per_image_s"]["median"] == pytest.approx(0.15)
    assert s["per_frame_s"]["median"] == pytest.approx(0.15 * 41.5)
    assert s["per_frame_s"]["max"] == pytest.approx(0.2 * 41.5)


def test_auto_run_count():
    # 10 ms calls: at least 1 s -> 100 calls; 5 s calls: 10 would be 50 s, past 20 s -> 4
    assert measure._auto_total([0.01]) == 100
    assert measure._auto_total([0.01] * 100) == 100
    assert measure._auto_total([5.0, 5.0, 5.0]) == 4
    assert measure._auto_total([5.0] * 4) == 4  # 20 s reached with at least 3 calls


# --- a CPU bench: structure and consistency ----------------------------------------------


@pytest.fixture(scope="module")
def lenet_doc():
    from click.testing import CliRunner

    from cnnstat.cli import cli

    args = ["bench", "lenet5", *FAST, "--device", "cpu-8core-avx2", "--format", "json"]
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return strict_json(res.stdout)


def test_json_structure(lenet_doc):
    d = lenet_doc
    assert d["model"] == "lenet5" and d["input"] == [1, 32, 32] and d["batch"] == 1 and d["dtype"] == "fp32"
    assert d["on"]["on"] == "cpu" and d["on"]["threads"] == 1
    assert d["timer"] == "time.perf_counter"
    assert d["layout"]["used"] in ("contiguous", "channels_last")
    assert set(d["layout"]["probe_s"]) == {"contiguous", "channels_last"}
    [r] = d["results"]
    assert r["variant"] == "eager" and r["runs"] == 5 and r["warmup"] == 1
    for key in ("per_call_s", "per_image_s", "per_frame_s"):
        assert set(r[key]) == {"median", "p90", "min", "max"}
        assert r[key]["min"] <= r[key]["median"] <= r[key]["p90"] <= r[key]["max"]
    assert r["memory"]["measure"] == "rss_growth"


def test_consistency_with_the_timings(lenet_doc):
    d = lenet_doc
    [r] = d["results"]
    # tiles: 1920 x 1080 / (32 x 32) = 2025, by hand
    assert d["tiles"] == 2025 and d["passes_per_frame"] == 2025 and d["tile"] == [32, 32]
    assert r["per_image_s"]["median"] == pytest.approx(r["per_call_s"]["median"])  # batch 1
    assert r["per_frame_s"]["median"] == pytest.approx(r["per_image_s"]["median"] * 2025)
    assert r["fps"] == pytest.approx(1 / r["per_frame_s"]["median"])
    assert r["fps_at_p90"] == pytest.approx(1 / r["per_frame_s"]["p90"])
    assert r["meets_fps"] == (r["fps"] >= 30)
    assert r["macs_per_second"] == pytest.approx(d["macs_per_image"] / r["per_image_s"]["median"])
    assert r["bytes_per_second"] == pytest.approx(d["bytes_moved_per_call"] / r["per_call_s"]["median"])


def test_macs_equal_the_analysis_and_pytorch(lenet_doc):
    from cnnstat.torch import build
    from cnnstat.torch.check import flop_counter_macs

    assert lenet_doc["macs_per_image"] == analyze("lenet5").totals()["macs"]
    assert lenet_doc["macs_per_image"] == flop_counter_macs(build("lenet5", device="meta"), (1, 32, 32))


def test_efficiency_is_achieved_over_the_bound(run, lenet_doc):
    d = lenet_doc
    [r] = d["results"]
    b = d["bound"]
    # cpu-8core-avx2: 8 cores x 3 GHz x 2 FMA units x 8 fp32 lanes = 384 G MAC/s; 2 x 25.6 GB/s
    assert b["peak_macs_per_second"] == 8 * 3e9 * 2 * 8 and b["bandwidth"] == 51.2e9
    assert r["efficiency"]["compute"] == pytest.approx(r["macs_per_second"] / 384e9)
    assert r["efficiency"]["bandwidth"] == pytest.approx(r["bytes_per_second"] / 51.2e9)
    assert r["efficiency"]["roofline"] == pytest.approx(b["latency_s"] / r["per_frame_s"]["median"])
    # the bound per frame is flops --device's, and per image a 2025th of it
    flops = strict_json(run("flops", "lenet5", "--device", "cpu-8core-avx2", "--format", "json").stdout)[0]
    assert b["latency_s"] == pytest.approx(flops["bound"]["latency_s"])
    assert b["max_fps"] == pytest.approx(flops["bound"]["max_fps"])
    assert b["latency_per_image_s"] == pytest.approx(b["latency_s"] / 2025)


def test_bytes_moved_are_the_roofline_bytes(lenet_doc):
    rows = roofline(analyze("lenet5").graph, get_device("cpu-8core-avx2"), "fp32")
    assert lenet_doc["bytes_moved_per_call"] == sum(r["bytes"] for r in rows)


def test_live_tensor_peak_equals_the_static_peak(lenet_doc):
    """Counted on the running module (a TorchDispatchMode) and by cnnstat.memory's walk."""
    s = lenet_doc["static_memory"]
    assert lenet_doc["results"][0]["memory"]["tensor_peak_bytes"] == s["peak_activation_bytes"]
    a = analyze("lenet5")
    assert s["peak_activation_bytes"] == a.memory()["peak_activation_bytes"]
    assert s["param_bytes"] == 4 * a.totals()["params"]
    assert s["total_bytes"] == s["param_bytes"] + s["buffer_bytes"] + s["peak_activation_bytes"]


@pytest.mark.parametrize("model", ["resnet18", "mobilenet_v2"])
def test_live_tensor_peak_of_larger_specs(model):
    """The spec built as a module holds what cnnstat.memory says it holds, no more."""
    a = analyze(model)
    module = measure.build_module(model, a.graph, torch.device("cpu"))
    runner = measure.Runner(module, a.graph.input, torch.device("cpu"), "fp32", 1)
    assert measure.live_tensor_peak(runner) == a.memory()["peak_activation_bytes"]


def test_batch_divides_the_call(run):
    d = bench_json(run, "lenet5", "--batch", "3")
    [r] = d["results"]
    assert d["batch"] == 3 and d["macs_per_image"] == analyze("lenet5").totals()["macs"]
    assert r["per_image_s"]["median"] == pytest.approx(r["per_call_s"]["median"] / 3)
    assert d["static_memory"]["input_bytes"] == 3 * 32 * 32 * 4
    assert r["memory"]["tensor_peak_bytes"] == analyze("lenet5", batch=3).memory()["peak_activation_bytes"]
    # weights once per call, activations for every image
    one = analyze("lenet5")
    moved = d["bytes_moved_per_call"]
    assert moved == 3 * (bench_moved(one) - one.totals()["param_bytes"]) + one.totals()["param_bytes"]


def bench_moved(a) -> int:
    return sum(r["bytes"] for r in roofline(a.graph, get_device("cpu-8core-avx2"), a.dtype))


def test_frame_mode_runs_on_the_frame(run):
    d = bench_json(run, "lenet5", "--mode", "frame", "--resolution", "64x48")
    [r] = d["results"]
    assert d["mode"] == "frame" and d["input"] == [1, 48, 64] and d["passes_per_frame"] == 1
    assert r["per_frame_s"]["median"] == pytest.approx(r["per_image_s"]["median"])
    flops = strict_json(
        run("flops", "lenet5", "--mode", "frame", "--resolution", "64x48", "--format", "json").stdout
    )[0]
    assert d["macs_per_frame"] == d["macs_per_image"] == flops["macs_per_frame"]
    assert r["memory"]["tensor_peak_bytes"] == d["static_memory"]["peak_activation_bytes"]


def test_a_video_clip_covers_several_frames(run):
    d = bench_json(run, "r3d_18", "--input", "3x4x16x16")
    [r] = d["results"]
    # 1920 x 1080 / (16 x 16) = 8100 tiles per clip, one clip per 4 frames: 2025 passes a frame
    assert d["clip_frames"] == 4 and d["tiles"] == 8100 and d["passes_per_frame"] == 2025
    assert r["per_frame_s"]["median"] == pytest.approx(r["per_image_s"]["median"] * 2025)
    assert r["memory"]["tensor_peak_bytes"] == d["static_memory"]["peak_activation_bytes"]


@pytest.mark.parametrize(
    "model, frame",
    [("lenet5", (64, 48)), ("vgg16", (320, 240)), ("resnet18", (320, 240)), ("r3d_18", (160, 120))],
)
def test_frame_mode_module_is_the_frame_graph(model, frame):
    """The module bench runs in frame mode (fc over spatial features as the convolution over its
    window, flatten kept) has the frame graph's parameters and PyTorch counts its MACs."""
    from cnnstat.analysis import Analysis
    from cnnstat.throughput import frame_graph
    from cnnstat.torch.check import flop_counter_macs

    graph, _ = frame_graph(model, "frame", frame)
    module = measure.build_module(model, graph, torch.device("meta"))
    t = Analysis(graph).totals()
    assert sum(p.numel() for p in module.parameters()) == t["params"] == analyze(model).totals()["params"]
    assert flop_counter_macs(module, graph.input) == t["macs"]


def test_bf16_on_the_cpu(run):
    d = bench_json(run, "lenet5", "--dtype", "bf16")
    assert d["dtype"] == "bf16"
    s = d["static_memory"]
    assert s["param_bytes"] == 2 * analyze("lenet5").totals()["params"]
    assert d["results"][0]["memory"]["tensor_peak_bytes"] == s["peak_activation_bytes"]


def test_table(run):
    res = run("bench", "lenet5", *FAST, "--device", "cpu-8core-avx2")
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert out.startswith("lenet5 on cpu (")
    for row in (
        "latency / image, median",
        "latency / frame, p90",
        "fps",
        "MAC/s / peak",
        "bound / measured latency",
        "peak tensor memory",
        "peak RSS growth",
    ):
        assert row in out
    assert "Timed: 5 calls after 1 warm-up calls" in out
    assert "2025.00 tiles of 32x32" in out and "1 MAC = one multiply-accumulate" in out
    assert "Layout: " in out and "Bound: roofline lower bound on cpu-8core-avx2" in out
    assert res.stderr == ""  # not a terminal: no progress display


def test_table_without_a_device_says_no_bound(run):
    res = run("bench", "lenet5", *FAST)
    assert res.exit_code == 0, res.output
    assert "No bound: --device NAME" in res.stdout and "MAC/s / peak" not in res.stdout


def test_json_mode_is_quiet(run):
    res = run("bench", "lenet5", *FAST, "--format", "json")
    assert res.exit_code == 0 and res.stderr == ""


def test_threads_for_the_command_only(run):
    before = torch.get_num_threads()
    d = bench_json(run, "lenet5")  # --threads 1
    assert d["on"]["threads"] == 1 and torch.get_num_threads() == before


def test_progress_is_reported_through_the_callback():
    a = analyze("lenet5")
    module = measure.build_module("lenet5", a.graph, torch.device("cpu"))
    seen = []
    out = measure.measure(
        module,
        a.graph.input,
        torch.device("cpu"),
        "fp32",
        1,
        name="lenet5",
        needed="-",
        warmup=2,
        runs=4,
        progress=lambda stage, done, total: seen.append((stage, done, total)),
    )
    stages = [s for s, _, _ in seen]
    assert "layout probe: contiguous" in stages and "layout probe: channels_last" in stages
    warm = [("eager: warm-up", 1, 2), ("eager: warm-up", 2, 2)]
    assert [x for x in seen if x[0] == "eager: warm-up"] == warm
    assert [x for x in seen if x[0] == "eager: timed runs"][-1] == ("eager: timed runs", 4, 4)
    assert len(out["variants"][0]["call_seconds"]) == 4


def test_progress_display_on_a_terminal(monkeypatch):
    """A rich progress bar on stderr when it is a terminal and the output a table; none else."""
    import io

    from cnnstat.cli import bench as command

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    update, display = command._progress("table")
    with display:
        update("eager: timed runs", 3, 10)
    assert "eager: timed runs" in err.getvalue()
    assert command._progress("json")[0] is None


def test_forced_layout(run):
    d = bench_json(run, "lenet5", "--layout", "channels-last")
    assert d["layout"] == {"used": "channels_last", "probe_s": None, "why": "--layout"}


MODEL_FILE = """
import torch
from torch import nn

class Tiny(nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.fc = nn.Linear(width, 10)

    def forward(self, x):
        x = torch.relu(self.conv(x)).mean((2, 3))
        return self.fc(x)

class NoHalf(Tiny):
    def forward(self, x):
        if x.dtype == torch.float16:
            raise RuntimeError('"addmm_impl_cpu_" not implemented for \\'Half\\'')
        return super().forward(x)

class Sleepy(Tiny):
    def forward(self, x):
        if x.device.type != "meta":
            import time
            time.sleep(0.02)
        return super().forward(x)

class Huge(Tiny):
    def forward(self, x):
        if x.device.type == "meta":  # cnnstat's trace allocates nothing
            return super().forward(x)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
"""


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "tiny.py"
    path.write_text(textwrap.dedent(MODEL_FILE))
    return path


def test_a_pytorch_model(run, model_file):
    from cnnstat.torch.check import flop_counter_macs
    from cnnstat.torch.load import instantiate

    d = bench_json(run, f"{model_file}:Tiny", "--input", "3x16x16", "--kwargs", "width=4")
    # conv 3x3x3 -> 4 at 16x16: 27 x 4 x 256 = 27648; fc 4 -> 10: 40
    assert d["macs_per_image"] == 27 * 4 * 256 + 40
    meta = instantiate(f"{model_file}:Tiny", {"width": 4})
    assert d["macs_per_image"] == flop_counter_macs(meta, (3, 16, 16))
    assert d["tiles"] == pytest.approx(1920 * 1080 / 256)


def test_the_timer_times_the_call(run, model_file):
    """A forward that sleeps 20 ms: every timed call lasts at least that (and, on a machine
    that is not frozen, not a second more)."""
    d = bench_json(run, f"{model_file}:Sleepy", "--input", "3x8x8", "--batch", "2")
    r = d["results"][0]["per_call_s"]
    assert 0.02 <= r["min"] <= r["median"] < 1.0
    assert d["results"][0]["per_image_s"]["median"] == pytest.approx(r["median"] / 2)


def test_compile_is_wired(run, monkeypatch):
    """torch.compile itself takes minutes on this 2-core machine (lenet5: 170 s), so it is
    replaced by the identity: the compiled variant is measured and reported beside eager."""
    monkeypatch.setattr(torch, "compile", lambda module: module)
    monkeypatch.setattr(torch._dynamo, "reset", lambda: None)
    d = bench_json(run, "lenet5", "--compile")
    eager, compiled = d["results"]
    assert (eager["variant"], compiled["variant"]) == ("eager", "compiled")
    assert compiled["runs"] == 5 and compiled["compile_s"] >= 0
    assert compiled["fps"] == pytest.approx(1 / compiled["per_frame_s"]["median"])
    assert compiled["memory"]["peak_bytes"] is None and "compiler" in compiled["memory"]["reason"]
    table = run("bench", "lenet5", *FAST, "--compile").stdout
    assert "compiled" in table.splitlines()[2] and "torch.compile (default mode)" in table


# --- calibration -------------------------------------------------------------------------


@pytest.fixture
def quick_calibration(monkeypatch):
    monkeypatch.setattr(cal, "MAX_N", {"cpu": 512, "cuda": 4096})
    monkeypatch.setattr(cal, "COPY_BYTES", {"cpu": 16 * 10**6, "cuda": 10**8})
    monkeypatch.setattr(cal, "MIN_REPEATS", 2)
    monkeypatch.setattr(cal, "MIN_SECONDS", 0.01)


def test_calibrate_writes_a_device_file_flops_reads(run, tmp_path, quick_calibration):
    out = tmp_path / "mydevice.toml"
    res = run("bench", "--calibrate", "-o", out, "--threads", "1", "--format", "json")
    assert res.exit_code == 0, res.output
    doc = strict_json(res.stdout)
    dev = device_file(str(out))
    assert dev.name == "mydevice" == doc["name"]
    assert set(dev.macs) == set(doc["matmul"]) and {"fp32", "bf16"} <= set(dev.macs)
    for dtype, m in doc["matmul"].items():  # n^3 MACs / time, written to 4 digits
        assert m["macs_per_second"] == pytest.approx(m["n"] ** 3 / m["seconds"])
        assert dev.macs[dtype] == pytest.approx(m["macs_per_second"], rel=1e-3)
    c = doc["copy"]
    assert c["bandwidth"] == pytest.approx(2 * c["bytes"] / c["seconds"])
    assert dev.bandwidth == pytest.approx(c["bandwidth"], rel=1e-3)
    assert os.listdir(tmp_path) == ["mydevice.toml"]  # no temporary file left
    flops = run("flops", "lenet5", "--device", out, "--format", "json")
    assert flops.exit_code == 0, flops.output
    bound = strict_json(flops.stdout)[0]["bound"]
    assert bound["device"] == "mydevice"
    expected = sum(r["time_s"] for r in roofline(analyze("lenet5").graph, dev, "fp32")) * 2025
    assert bound["latency_s"] == pytest.approx(expected)
    bench = bench_json(run, "lenet5", "--device", out)
    assert bench["bound"]["device"] == "mydevice"


def test_calibrate_table(run, tmp_path, quick_calibration):
    res = run("bench", "--calibrate", "-o", tmp_path / "box.toml", "--name", "my box", "--threads", "1")
    assert res.exit_code == 0, res.output
    assert "matmul fp32" in res.stdout and "copy" in res.stdout and "box.toml" in res.stdout
    assert device_file(str(tmp_path / "box.toml")).name == "my box"


def test_calibrate_bad_output(run, tmp_path):
    one_error(run("bench", "--calibrate"), "-o FILE.toml")
    one_error(run("bench", "--calibrate", "-o", tmp_path / "x.json"), ".toml")
    one_error(run("bench", "--calibrate", "-o", tmp_path / "nowhere" / "x.toml"), "no such directory")
    one_error(run("bench", "lenet5", "--calibrate", "-o", tmp_path / "x.toml"), "not a MODEL")
    one_error(run("bench", "lenet5", "-o", tmp_path / "x.toml"), "--calibrate")


def test_device_file_with_two_devices(run, tmp_path):
    path = tmp_path / "two.toml"
    path.write_text(
        '[devices.a]\nbandwidth = "1 GB/s"\nmacs_per_second = {fp32 = "1G"}\n'
        '[devices.b]\nbandwidth = "1 GB/s"\nmacs_per_second = {fp32 = "1G"}\n'
    )
    one_error(run("flops", "lenet5", "--device", path), "one [devices.NAME] table, not 2 (a, b)")


# --- bad input: exit 2, one message -------------------------------------------------------


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
def test_no_cuda(run):
    one_error(run("bench", "lenet5", "--on", "cuda"), "--on cuda: no CUDA here")
    one_error(run("bench", "lenet5", "--on", "cuda:1"), "no CUDA here")


def test_cuda_index_out_of_range(run, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    res = run("bench", "lenet5", "--on", "cuda:2")
    one_error(res, "no CUDA device 2; this machine has 2 (cuda:0, cuda:1)")


@pytest.mark.parametrize("on", ["gpu", "cuda:x", "cpu:0", "cuda:-1", ""])
def test_malformed_on(run, on):
    one_error(run("bench", "lenet5", "--on", on), "expected cpu, cuda or cuda:N")


def test_bf16_refused_on_a_gpu_without_it(monkeypatch):
    import contextlib

    monkeypatch.setattr(torch.cuda, "device", lambda d: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "Tesla T4")
    with pytest.raises(measure.CnnstatError, match=r"--dtype bf16: cuda:0 \(Tesla T4\) does not support"):
        measure.check_dtype(torch.device("cuda", 0), "bf16")


def test_dtype_without_kernels(run, model_file):
    one_error(
        run("bench", f"{model_file}:NoHalf", "--input", "3x8x8", "--dtype", "fp16", *FAST),
        "--dtype fp16 is not supported on cpu",
        "not implemented for 'Half'",
    )


def test_out_of_memory_says_what_it_needs(run, model_file):
    line = one_error(run("bench", f"{model_file}:Huge", "--input", "3x8x8", *FAST), "does not fit in memory")
    assert "by cnnstat's static estimate (weights" in line and "peak activations" in line


def test_too_large_for_this_machine_before_running(run):
    # 64 x 20000 x 20000 fp32 maps after the first convolution: 133 GB by the static estimate
    res = run("bench", "vgg11", "--mode", "frame", "--resolution", "20000x20000", *FAST)
    line = one_error(res, "does not fit in memory")
    assert "is free" in line and "static estimate" in line


def test_other_bad_input(run, tmp_path):
    one_error(run("bench"), "give a MODEL")
    one_error(run("bench", "lenet5", "--mode", "frame", "--input", "1x32x32"), "--input sets the tile")
    one_error(run("bench", "lenet5", "--device", "nope"), "unknown device 'nope'")
    one_error(run("bench", "lenet5", "--device", "cpu-8core-avx2", "--dtype", "bf16"), "no figure for bf16")
    one_error(run("bench", tmp_path / "m.onnx"), "ONNX")
    one_error(run("bench", "nosuchmodel"))


def test_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None; sys.argv = ['cnnstat', 'bench', 'lenet5'];"
        "from cnnstat.cli import main; main()"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    expected = "error: cnnstat bench needs torch: pip install 'cnnstat[torch]'"
    assert res.stderr.strip().splitlines() == [expected]


# --- CUDA (skipped without it; benchmarks/gpu_bench.py runs these) --------------------------

cuda_only = pytest.mark.skipif(not CUDA, reason="needs CUDA")


@cuda_only
def test_cuda_bench(run):
    d = bench_json(run, "resnet18", "--on", "cuda", "--device", "h100-sxm")
    [r] = d["results"]
    assert d["timer"] == "torch.cuda.Event" and d["on"]["on"].startswith("cuda:")
    m = r["memory"]
    assert m["measure"] == "torch.cuda.max_memory_allocated"
    s = d["static_memory"]
    assert m["peak_bytes"] >= s["param_bytes"]  # the weights are allocated throughout
    # cuDNN's batch norm may return small side tensors (per-channel statistics) as well
    assert m["tensor_peak_bytes"] == pytest.approx(s["peak_activation_bytes"], rel=0.01)
    peak = d["bound"]["peak_macs_per_second"]
    assert r["efficiency"]["compute"] == pytest.approx(r["macs_per_second"] / peak)


@cuda_only
@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_cuda_half_types(run, dtype):
    if dtype == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("no bf16 on this GPU")
    d = bench_json(run, "resnet18", "--on", "cuda", "--dtype", dtype)
    assert d["static_memory"]["param_bytes"] == 2 * analyze("resnet18").totals()["params"]
    peak = d["results"][0]["memory"]["tensor_peak_bytes"]
    assert peak == pytest.approx(d["static_memory"]["peak_activation_bytes"], rel=0.01)


@cuda_only
def test_cuda_out_of_memory(run):
    free, total = torch.cuda.mem_get_info()
    side = int(math.sqrt(total / 4 / 64)) + 1000  # vgg11's first map alone is past the GPU
    one_error(
        run("bench", "vgg11", "--on", "cuda", "--mode", "frame", "--resolution", f"{side}x{side}", *FAST),
        "does not fit in memory on cuda:",
    )


@cuda_only
def test_cuda_index_past_the_last(run):
    n = torch.cuda.device_count()
    one_error(run("bench", "lenet5", "--on", f"cuda:{n}"), f"no CUDA device {n}")


@cuda_only
def test_cuda_calibrate(run, tmp_path, quick_calibration):
    out = tmp_path / "gpu.toml"
    res = run("bench", "--calibrate", "-o", out, "--on", "cuda", "--format", "json")
    assert res.exit_code == 0, res.output
    dev = device_file(str(out))
    assert {"fp32", "fp16"} <= set(dev.macs) and dev.bandwidth > 0
