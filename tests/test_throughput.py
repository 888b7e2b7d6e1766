"""Throughput modes and hardware bounds, against hand calculations."""

import json
from fractions import Fraction

import pytest

from cnnstat.analysis import Analysis
from cnnstat.errors import CnnstatError
from cnnstat.hardware import Device, bound, roofline
from cnnstat.spec.build import build
from cnnstat.throughput import tile_count
from cnnstat.zoo import get
from helpers import analyze_text, spec_from_text


def test_tile_counts():
    assert tile_count((1920, 1080), (224, 224)) == Fraction(1920 * 1080, 224 * 224)
    assert tile_count((1920, 1080), (224, 224), "whole") == 9 * 5
    # 32 px overlap: crops advance by 192; (1920-32)/192 = 9.83 -> 10, (1080-32)/192 = 5.46 -> 6
    assert tile_count((1920, 1080), (224, 224), "whole", overlap=32) == 10 * 6
    assert tile_count((1920, 1080), (224, 224), "exact", overlap=32) == Fraction(1888, 192) * Fraction(
        1048, 192
    )
    assert tile_count((224, 224), (224, 224), "whole", overlap=32) == 1
    with pytest.raises(CnnstatError, match="overlap 224"):
        tile_count((1920, 1080), (224, 224), overlap=224)


def _conv_stage_macs(cin, cout, n, h, w):
    return h * w * 9 * (cin * cout + (n - 1) * cout * cout)


def test_vgg16_frame_mode_at_full_hd():
    """Dense evaluation: the conv trunk at 1080x1920, fc6 as a 7x7 conv over pool5's 33x60 map
    (27x54 positions), fc7 and fc8 as 1x1 convs over those positions."""
    graph = build(get("vgg16"), (3, 1080, 1920), frame=True)
    a = Analysis(graph)
    trunk = (
        _conv_stage_macs(3, 64, 2, 1080, 1920)
        + _conv_stage_macs(64, 128, 2, 540, 960)
        + _conv_stage_macs(128, 256, 3, 270, 480)
        + _conv_stage_macs(256, 512, 3, 135, 240)
        + _conv_stage_macs(512, 512, 3, 67, 120)
    )
    positions = (33 - 7 + 1) * (60 - 7 + 1)
    fcs = positions * (7 * 7 * 512 * 4096 + 4096 * 4096 + 4096 * 1000)
    assert a.by_kind()["conv"]["macs"] == trunk
    assert a.by_kind()["fc"]["macs"] == fcs
    assert a.totals()["params"] == 138_357_544  # the same weights, slid over the frame
    assert graph.layers[-1].output == (1000, 27, 54)


def test_frame_mode_cli(run):
    (row,) = json.loads(run("flops", "vgg16", "--mode", "frame", "--format", "json").stdout)
    assert row["mode"] == "frame" and row["positions"] == 27 * 54 and row["output"] == [1000, 27, 54]
    assert row["macs_per_second"] == 30 * row["macs_per_frame"]
    # global pooling adapts: resnet50 gives one output position at any size
    (row,) = json.loads(run("flops", "resnet50", "--mode", "frame", "--format", "json").stdout)
    assert row["positions"] == 1
    res = run("flops", "vgg16", "--mode", "frame", "--tiles", "whole")
    assert res.exit_code == 2 and "apply to --mode tile" in res.stderr


def test_locally_connected_cannot_slide():
    spec = spec_from_text("input: [1, 8, 8]\nlayers:\n  - local: {out: 2, k: 3}\n")
    with pytest.raises(Exception, match="local in frame mode: its weights differ at every position"):
        build(spec, (1, 16, 16), frame=True)


def test_activation_traffic_by_hand(run):
    text = "input: [2, 4, 4]\nlayers:\n  - conv: {out: 3, k: 1}\n  - relu\n  - flatten\n"
    from cnnstat.throughput import activation_traffic

    graph = analyze_text(text).graph
    # conv reads 32 and writes 48, relu reads and writes 48, flatten is a view: 176 elements
    assert activation_traffic(graph, "fp32") == 176 * 4
    assert activation_traffic(graph, "int8") == 176


DEVICE = Device("toy", "a toy device", "test", {"fp16": 1e12}, 100e9)


def test_roofline_of_one_conv_by_hand():
    a = analyze_text("input: [16, 32, 32]\nlayers:\n  - conv: {out: 32, k: 3, p: 1}\n")
    (row,) = roofline(a.graph, DEVICE, "fp16")
    macs = 32 * 32 * 32 * 16 * 9  # 4,718,592
    moved = (16 * 32 * 32 + 32 * 32 * 32) * 2 + 32 * 16 * 9 * 2 + 32 * 2  # 107,584 bytes
    assert (row["macs"], row["bytes"]) == (macs, moved)
    assert row["intensity"] == pytest.approx(macs / moved)
    assert row["compute_s"] == pytest.approx(macs / 1e12)
    assert row["memory_s"] == pytest.approx(moved / 100e9)
    assert row["time_s"] == row["compute_s"] and row["bound"] == "compute"
    b = bound(a.graph, DEVICE, "fp16", fps=30)
    assert b["max_fps"] == pytest.approx(1e12 / macs)
    assert b["verdict"] == f"holds 30 fps with {1e12 / macs / 30:.1f}x headroom"
    slow = Device("slow", "", "", {"fp16": 1e6}, 1e9)
    assert bound(a.graph, slow, "fp16", fps=30)["verdict"].startswith("needs ")
    with pytest.raises(CnnstatError, match="no figure for int8"):
        roofline(a.graph, DEVICE, "int8")


def test_user_devices_from_cnnstat_toml(tmp_path, monkeypatch, run):
    (tmp_path / "cnnstat.toml").write_text(
        '[devices.my-npu]\ndescription = "an NPU"\nbandwidth = "25.6 GB/s"\n'
        'ops_per_second = {int8 = "4T", fp16 = "2T"}\n'
    )
    monkeypatch.chdir(tmp_path)
    rows = json.loads(run("devices", "--format", "json").stdout)
    npu = next(r for r in rows if r["name"] == "my-npu")
    assert npu["macs_per_second"] == {"int8": 2e12, "fp16": 1e12}
    assert npu["bandwidth"] == 25.6e9
    assert {"h100-sxm", "rtx4090", "jetson-orin-nano"} <= {r["name"] for r in rows}
    (row,) = json.loads(
        run("flops", "mobilenet_v2", "--device", "my-npu", "--dtype", "int8", "--format", "json").stdout
    )
    assert row["bound"]["device"] == "my-npu" and row["bound"]["max_fps"] > 0
    res = run("flops", "vgg16", "--device", "my-nup")
    assert res.exit_code == 2 and "did you mean 'my-npu'" in res.stderr
    (tmp_path / "cnnstat.toml").write_text('[devices.bad]\nbandwith = "1 GB/s"\n')
    res = run("devices")
    assert res.exit_code == 2 and "unknown key 'bandwith'" in res.stderr


def test_pyproject_devices(tmp_path, monkeypatch):
    from cnnstat.hardware import devices

    (tmp_path / "pyproject.toml").write_text(
        '[tool.cnnstat.devices.edge]\nbandwidth = "8 GiB/s"\nmacs_per_second = {fp32 = "500G"}\n'
    )
    monkeypatch.chdir(tmp_path)
    edge = devices()["edge"]
    assert edge.bandwidth == 8 * 2**30 and edge.macs == {"fp32": 500e9}


def test_per_layer_roofline_cli(run):
    (row,) = json.loads(
        run("flops", "lenet5", "--device", "jetson-orin-nano", "--per-layer", "--format", "json").stdout
    )
    layers = {r["name"]: r for r in row["roofline"]}
    assert layers["c3"]["macs"] == 240_000 and layers["c3"]["bound"] == "compute"
    assert layers["c5"]["bound"] == "memory"  # 48,000 MACs over 194,560 bytes of weights and maps
    assert layers["flatten1"]["bound"] == "-" and layers["flatten1"]["bytes"] == 0
    assert sum(r["time_s"] for r in row["roofline"]) == pytest.approx(
        row["bound"]["latency_s"] / row["tiles"]
    )
    assert (
        "memory-bound on jetson-orin-nano"
        in run("flops", "lenet5", "--device", "jetson-orin-nano", "--per-layer").stdout
    )
    assert run("flops", "lenet5", "--per-layer").exit_code == 2


def test_video_models_run_one_clip_per_clip_frames(run):
    """A [C, D, H, W] model sees clips of D frames: tiles cover H x W, one clip per D frames."""
    from cnnstat.analysis import analyze

    clip_macs = analyze("r3d_18").totals()["macs"]  # 16 frames of 112x112
    (row,) = json.loads(run("flops", "r3d_18", "--format", "json").stdout)
    tiles = Fraction(1920 * 1080, 112 * 112)
    assert row["clip_frames"] == 16
    assert row["tile"] == [112, 112]
    assert row["macs_per_frame"] == float(clip_macs * tiles / 16)
    assert row["passes_per_frame"] == float(tiles / 16)
    (frame,) = json.loads(run("flops", "r3d_18", "--mode", "frame", "--format", "json").stdout)
    whole = analyze("r3d_18", input=(3, 16, 1080, 1920)).totals()["macs"]
    assert frame["macs_per_frame"] == whole // 16 and whole % 16 == 0
    assert "clips of 16 frames" in run("flops", "r3d_18").stdout
