"""Timing a model with torch: device, module, warm-up, layout probe, timed runs, peak memory.

Conventions:

- Every call runs under ``torch.inference_mode()`` on one input of ``batch`` images drawn
  from a normal distribution (seed 0), weights and input at the dtype.
- On a GPU each call is timed by CUDA events recorded around it, the host waiting for the
  end event (so a call's latency starts from an idle GPU, launch overhead included); on the
  CPU by ``time.perf_counter`` around it. ``torch.backends.cudnn.benchmark`` is on (shapes
  are fixed: cuDNN picks its fastest algorithms during the warm-up).
- Layout (4-D and 5-D inputs): a probe times a few calls channels-first (contiguous) and
  channels-last (weights and input), and keeps the faster (fastest call of each, reported).
- Peak memory, two measures. Tensors: the peak of live tensor bytes in one more call, seen
  through a ``TorchDispatchMode`` (:func:`live_tensor_peak`), what cnnstat's static peak
  counts. Process: on a GPU ``torch.cuda.max_memory_allocated`` over the timed runs (the peak of
  bytes allocated to tensors: weights, input, activations, workspaces; the caching
  allocator's reserve is not counted). CPU: the growth of the process' peak resident set
  (Linux VmHWM, reset through /proc/self/clear_refs) from just before the first call to the
  end of the timed runs, over the resident set then (weights and input already resident).
"""

from __future__ import annotations

import math
import os
import re
import time

from cnnstat.errors import CnnstatError, brief

TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
INSTALL = "pip install 'cnnstat[torch]'"
MIN_RUNS, MIN_TIME_S, MAX_TIME_S, MAX_RUNS = 10, 1.0, 20.0, 10_000  # --runs auto
PROBE_RUNS = 3  # timed calls per layout in the probe (1 when a call takes over a second)

_ON = re.compile(r"(cpu|cuda)(?::([0-9]{1,6}))?")


class OutOfMemory(CnnstatError):
    """The model did not fit: the message says the size cnnstat's static estimate needs."""


def require_torch():
    """torch, or one message saying how to install it."""
    try:
        import torch
    except ImportError:
        raise CnnstatError(f"cnnstat bench needs torch: {INSTALL}") from None
    return torch


def torch_device(on: str):
    """``cpu``, ``cuda`` or ``cuda:N`` as a ``torch.device``, after checking that it exists."""
    torch = require_torch()
    m = _ON.fullmatch(on)
    if not m or (m.group(1) == "cpu" and m.group(2) is not None):
        raise CnnstatError(f"--on {brief(on)}: expected cpu, cuda or cuda:N")
    if m.group(1) == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        built = torch.version.cuda
        why = f"built with CUDA {built}, it finds no CUDA device" if built else "it is built without CUDA"
        raise CnnstatError(f"--on {on}: no CUDA here (torch {torch.__version__}: {why})")
    count = torch.cuda.device_count()
    index = int(m.group(2)) if m.group(2) is not None else torch.cuda.current_device()
    if index >= count:
        have = ", ".join(f"cuda:{i}" for i in range(count))
        raise CnnstatError(f"--on {on}: no CUDA device {index}; this machine has {count} ({have})")
    return torch.device("cuda", index)


def check_dtype(device, dtype: str) -> None:
    """Refuse a dtype the device cannot run (bf16 on a GPU without it, before Ampere)."""
    torch = require_torch()
    if dtype not in TORCH_DTYPES:
        raise CnnstatError(f"--dtype {dtype}: bench runs {', '.join(TORCH_DTYPES)}")
    if device.type == "cuda" and dtype == "bf16":
        with torch.cuda.device(device):
            try:
                native = torch.cuda.is_bf16_supported(including_emulation=False)
            except TypeError:  # older torch: no emulation argument
                native = torch.cuda.is_bf16_supported()
        if not native:
            name = torch.cuda.get_device_name(device)
            raise CnnstatError(f"--dtype bf16: {device} ({name}) does not support bfloat16")


def describe(device) -> dict:
    """What the figures were measured on: name, memory, threads, torch and CUDA versions."""
    torch = require_torch()
    info = {"on": str(device), "torch": torch.__version__}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            name=props.name,
            memory_bytes=props.total_memory,
            capability=f"{props.major}.{props.minor}",
            cuda=torch.version.cuda,
            # fp32 convolutions and matmuls may run as TF32 on tensor cores (Ampere and later)
            tf32={"cudnn": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32},
        )
    else:
        info.update(name=_cpu_name(), memory_bytes=_meminfo("MemTotal"), threads=torch.get_num_threads())
        if hasattr(os, "getloadavg"):
            info["load_average"] = os.getloadavg()[0]  # other processes on the cores skew timings
    return info


def _cpu_name() -> str:
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def _meminfo(key: str) -> int | None:
    """A /proc/meminfo figure in bytes (None where there is none: not Linux)."""
    return _proc_kib("/proc/meminfo", key)


def _status_bytes(key: str) -> int | None:
    """A /proc/self/status figure (VmRSS, VmHWM) in bytes (None where there is none)."""
    return _proc_kib("/proc/self/status", key)


def _proc_kib(path: str, key: str) -> int | None:
    """The ``key: N kB`` line of a /proc file, in bytes (None: no such file or line)."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_memory(device) -> int | None:
    """Bytes free for the model: the GPU's free memory, or the system's MemAvailable."""
    if device.type == "cuda":
        torch = require_torch()
        return torch.cuda.mem_get_info(device)[0]
    return _meminfo("MemAvailable")


def is_oom(exc: BaseException) -> bool:
    """An allocation failure: CUDA's OutOfMemoryError, or torch's CPU allocator giving up."""
    torch = require_torch()
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        s in text for s in ("out of memory", "not enough memory", "can't allocate memory")
    )


def build_module(model, graph, device, kwargs=None):
    """The ``nn.Module`` to time: a spec's graph built layer by layer with random weights
    (:func:`cnnstat.torch.builder.build_graph`: the same layers the analysis counted), or the
    PyTorch reference instantiated (untrained: no weights are downloaded)."""
    require_torch()
    from cnnstat.torch import is_reference

    if isinstance(model, str) and is_reference(model):
        from cnnstat.torch.load import instantiate

        return instantiate(model, kwargs, device=str(device)).to(device).eval()
    from cnnstat.torch.builder import build_graph

    return build_graph(graph, device=str(device))


class _Memory:
    """Peak memory over a run: see the module's docstring for what each device measures."""

    def __init__(self, device):
        self.device = device
        self.torch = require_torch()
        self.baseline, self.reason = None, None

    def start(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)
            self.baseline = self.torch.cuda.memory_allocated(self.device)
            self.torch.cuda.reset_peak_memory_stats(self.device)
            return
        self.baseline = _status_bytes("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
                f.write("5")  # resets VmHWM to the current resident set (Linux 4.0+)
        except OSError as exc:
            self.reason = f"the peak resident set cannot be reset ({exc.strerror or exc})"
        if self.baseline is None:
            self.reason = "no /proc/self/status (not Linux)"

    def restart_peak(self) -> None:
        """GPU: the peak from here on (after the warm-up, whose cuDNN autotuning tries large
        workspaces). The CPU's resident set keeps what was touched, so it is not restarted."""
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)
            self.torch.cuda.reset_peak_memory_stats(self.device)

    def stop(self) -> dict:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)
            peak = self.torch.cuda.max_memory_allocated(self.device)
            return {
                "measure": "torch.cuda.max_memory_allocated",
                "peak_bytes": peak,
                "baseline_bytes": self.baseline,
                "what": "peak bytes allocated to tensors during the timed runs (weights and input included)",
            }
        hwm = _status_bytes("VmHWM")
        if self.reason or hwm is None:
            return {"measure": "rss_growth", "peak_bytes": None, "reason": self.reason or "no VmHWM"}
        return {
            "measure": "rss_growth",
            "peak_bytes": max(hwm - self.baseline, 0),
            "baseline_bytes": self.baseline,
            "what": "growth of the peak resident set from the first call to the end of the timed runs "
            "(weights and input were resident before)",
        }


def live_tensor_peak(runner) -> int:
    """Peak bytes of tensors alive during one call: the input, plus every storage an operator
    creates (counted when an op returns it, uncounted when its last tensor dies; views and
    in-place results create none), seen through a ``TorchDispatchMode``. This counts what
    cnnstat's static peak counts (tensors, not the allocator's caches or kernels' workspaces),
    measured on the module as it runs: an independent check of :mod:`cnnstat.memory`."""
    import weakref

    torch = runner.torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class Live(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.current = self.peak = 0
            self.seen = set()

        def _free(self, key, n):
            self.seen.discard(key)
            self.current -= n

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor) and t._base is None:
                    storage = t.untyped_storage()
                    key, n = storage.data_ptr(), storage.nbytes()
                    if n and key not in self.seen:
                        self.seen.add(key)
                        self.current += n
                        self.peak = max(self.peak, self.current)
                        weakref.finalize(t, self._free, key, n)
            return out

    live = Live()
    with torch.inference_mode(), live:
        out = runner.call()
    del out
    return live.peak + runner.x.untyped_storage().nbytes()


def time_call(device, fn) -> float:
    """Seconds one call of ``fn`` takes on ``device``: between CUDA events recorded around it on
    a GPU (the current device's stream: the caller sets the device), by the host's clock on the
    CPU."""
    if device.type == "cuda":
        torch = require_torch()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class Runner:
    """Calls ``module`` on a fixed input and times each call."""

    def __init__(self, module, input_shape: tuple, device, dtype: str, batch: int, progress=None):
        torch = self.torch = require_torch()
        self.device, self.dtype, self.batch = device, dtype, batch
        if device.type == "cuda":
            torch.cuda.set_device(device)  # events record on the current device's stream
        self.progress = progress or (lambda stage, done, total: None)
        tdtype = getattr(torch, TORCH_DTYPES[dtype])
        gen = torch.Generator(device="cpu").manual_seed(0)
        self.module = module.to(dtype=tdtype).eval()
        self.x = torch.randn((batch, *input_shape), generator=gen, dtype=torch.float32).to(device, tdtype)
        self.layout = "contiguous"

    def call(self):
        return self.module(self.x)

    def timed(self, fn) -> float:
        """Seconds one call of ``fn`` takes."""
        return time_call(self.device, fn)

    def series(self, fn, stage: str, runs: int | None) -> list:
        """Timed calls: ``runs`` of them, or (None) at least MIN_RUNS and MIN_TIME_S, at most
        MAX_RUNS, and no more than MAX_TIME_S once 3 are done."""
        times = []
        while True:
            times.append(self.timed(fn))
            total = runs or _auto_total(times)
            self.progress(stage, len(times), total)
            if len(times) >= total:
                return times

    def set_layout(self, layout: str) -> None:
        torch = self.torch
        if layout == self.layout:
            return
        fmt = torch.contiguous_format
        if layout == "channels_last":
            fmt = torch.channels_last if self.x.dim() == 4 else torch.channels_last_3d
        self.module = self.module.to(memory_format=fmt)
        self.x = self.x.contiguous(memory_format=fmt)
        self.layout = layout


def _auto_total(times: list) -> int:
    """How many calls the automatic count wants, given those so far."""
    elapsed, n = sum(times), len(times)
    if n >= MAX_RUNS or (n >= 3 and elapsed >= MAX_TIME_S) or (n >= MIN_RUNS and elapsed >= MIN_TIME_S):
        return n
    per_call = elapsed / n
    wanted = max(MIN_RUNS, math.ceil(MIN_TIME_S / per_call) if per_call else MIN_RUNS)
    if per_call * wanted > MAX_TIME_S:
        wanted = max(3, math.ceil(MAX_TIME_S / per_call))
    return min(max(wanted, n + 1), MAX_RUNS)


def first_call(runner: Runner, name: str, shape: tuple, needed: str):
    """One untimed call; what torch raises becomes one message (out of memory: with the size
    cnnstat's static estimate needs; a kernel missing for the dtype: the dtype refused)."""
    try:
        t0 = time.perf_counter()
        runner.call()
        if runner.device.type == "cuda":
            runner.torch.cuda.synchronize(runner.device)
        return time.perf_counter() - t0
    except Exception as exc:
        raise _failure(exc, runner, name, shape, needed) from None


def _failure(exc, runner, name, shape, needed) -> CnnstatError:
    first = (str(exc).strip().splitlines() or [""])[0]
    where = f"{runner.device} ({runner.dtype}, batch {runner.batch}, input {'x'.join(map(str, shape))})"
    if is_oom(exc):
        release(runner.device)
        return OutOfMemory(f"{name} does not fit in memory on {where}: it needs {needed}")
    if "not implemented for" in first:
        return CnnstatError(f"--dtype {runner.dtype} is not supported on {runner.device} by {name}: {first}")
    return CnnstatError(f"{name} fails on {where}: {type(exc).__name__}: {_cut(first)}")


def _cut(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def release(device) -> None:
    """Give a failed run's memory back (the GPU's cache)."""
    import gc

    gc.collect()
    if device.type == "cuda":
        require_torch().cuda.empty_cache()


def probe_layout(runner: Runner, first_s: float, layout: str) -> dict:
    """Channels-first or channels-last: ``layout`` 'auto' times both and keeps the faster."""
    if runner.x.dim() not in (4, 5):
        return {"used": "contiguous", "probe_s": None, "why": "input is not 4-D or 5-D"}
    if layout != "auto":
        runner.set_layout(layout)
        return {"used": layout, "probe_s": None, "why": "--layout"}
    n = 1 if first_s > 1 else PROBE_RUNS
    probe = {}
    for candidate in ("contiguous", "channels_last"):
        runner.set_layout(candidate)
        runner.call()  # the first call in a layout pays for its kernels' set-up
        times = runner.series(runner.call, f"layout probe: {candidate}", n)
        probe[candidate] = min(times)  # the fastest: a busy machine's stalls are not the layout's
    best = min(probe, key=probe.get)
    runner.set_layout(best)
    return {"used": best, "probe_s": probe, "why": "faster in the probe"}


def measure(
    module,
    input_shape: tuple,
    device,
    dtype: str,
    batch: int,
    *,
    name: str,
    needed: str,
    warmup: int = 3,
    runs: int | None = None,
    layout: str = "auto",
    compile: bool = False,
    progress=None,
) -> dict:
    """Time ``module`` on ``device``: eager (and with ``compile``, ``torch.compile``'d too).

    Returns ``{"layout": {...}, "variants": [{"variant", "warmup", "call_seconds", "memory"},
    ...]}``. ``needed`` is the static estimate's text, said if memory runs out. ``progress(stage,
    done, total)`` is called after every call."""
    torch = require_torch()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        runner = Runner(module, input_shape, device, dtype, batch, progress)
    except Exception as exc:
        if is_oom(exc):
            release(device)
            raise OutOfMemory(f"{name} does not fit in memory on {device}: it needs {needed}") from None
        raise
    with torch.inference_mode():
        meter = _Memory(device)
        meter.start()
        first_s = first_call(runner, name, input_shape, needed)
        try:
            shown = probe_layout(runner, first_s, layout)
            variants = [_variant(runner, runner.call, "eager", warmup, runs, meter)]
            runner.progress("live tensor memory", 0, 1)
            variants[0]["memory"]["tensor_peak_bytes"] = live_tensor_peak(runner)
            runner.progress("live tensor memory", 1, 1)
        except Exception as exc:
            raise _failure(exc, runner, name, input_shape, needed) from None
    if compile:
        variants.append(_compiled(runner, name, input_shape, needed, warmup, runs))
    return {"layout": shown, "first_call_s": first_s, "variants": variants}


def _variant(runner: Runner, fn, variant: str, warmup: int, runs, meter) -> dict:
    for i in range(warmup):
        fn()
        runner.progress(f"{variant}: warm-up", i + 1, warmup)
    if meter is not None:
        meter.restart_peak()
    times = runner.series(fn, f"{variant}: timed runs", runs)
    memory = meter.stop() if meter is not None else None
    return {"variant": variant, "warmup": warmup, "call_seconds": times, "memory": memory}


def _compiled(runner: Runner, name, shape, needed, warmup, runs) -> dict:
    """The same module through ``torch.compile`` (default mode), in the layout the probe kept;
    the first call compiles (its time is reported apart). CPU memory is not measured for it:
    the compiler's own memory would count."""
    torch = runner.torch
    torch._dynamo.reset()
    compiled = torch.compile(runner.module)
    with torch.inference_mode():
        runner.progress("compiling (first call)", 0, 1)
        t0 = time.perf_counter()
        try:
            compiled(runner.x)
            if runner.device.type == "cuda":
                torch.cuda.synchronize(runner.device)
        except Exception as exc:
            if is_oom(exc):
                raise _failure(exc, runner, name, shape, needed) from None
            first = (str(exc).strip().splitlines() or [""])[0]
            return {
                "variant": "compiled",
                "error": f"torch.compile failed: {type(exc).__name__}: {_cut(first)}",
            }
        compile_s = time.perf_counter() - t0
        runner.progress("compiling (first call)", 1, 1)
        meter = None
        if runner.device.type == "cuda":
            meter = _Memory(runner.device)
            meter.start()
        try:
            out = _variant(runner, lambda: compiled(runner.x), "compiled", warmup, runs, meter)
        except Exception as exc:
            raise _failure(exc, runner, name, shape, needed) from None
    out["compile_s"] = compile_s
    if meter is None:
        out["memory"] = {
            "measure": "rss_growth",
            "peak_bytes": None,
            "reason": "not measured for the compiled model on the CPU: the compiler's own memory would count",
        }
    return out
