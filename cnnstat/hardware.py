"""Devices (peak MAC/s by dtype, memory bandwidth) and the roofline bound on a graph.

The bound per layer is max(MACs / peak MAC/s, bytes moved / bandwidth), bytes moved being the
layer's weights and biases, its inputs and its output at ``dtype`` (no cache reuse between
layers). It is a lower bound on latency, not a measurement: real kernels reach a fraction
of either peak.
"""

from __future__ import annotations

import os

from cnnstat.errors import CnnstatError, brief, did_you_mean
from cnnstat.units import DTYPE_BITS, parse_quantity, tensor_bytes


class Device:
    __slots__ = ("name", "description", "source", "macs", "bandwidth")

    def __init__(self, name, description, source, macs: dict, bandwidth: float):
        self.name, self.description, self.source = name, description, source
        self.macs = macs  # dtype -> peak dense MAC/s
        self.bandwidth = bandwidth  # bytes/s

    def peak(self, dtype: str) -> float:
        if dtype not in self.macs:
            raise CnnstatError(
                f"device '{self.name}' has no figure for {dtype} (it lists {', '.join(self.macs)})"
            )
        return self.macs[dtype]


def _tops(**ops):
    """Datasheets print TFLOPS/TOPS: 2 operations per multiply-accumulate."""
    return {dtype: value * 1e12 / 2 for dtype, value in ops.items()}


# Dense (no structured sparsity) peaks from vendor datasheets.
PRESETS = {
    d.name: d
    for d in (
        Device(
            "h100-sxm",
            "NVIDIA H100 SXM5 80GB (data-center GPU)",
            "NVIDIA H100 Tensor Core GPU datasheet: FP32 67 TFLOPS; FP16/BF16 Tensor 1,979 and "
            "INT8 Tensor 3,958 with sparsity (half dense); HBM3 3.35 TB/s. fp32 uses the "
            "CUDA-core FP32 rate (TF32 Tensor Cores would give 494.7 TFLOPS dense)",
            _tops(fp32=67, fp16=989.4, bf16=989.4, int8=1978.9),
            3.35e12,
        ),
        Device(
            "rtx4090",
            "NVIDIA GeForce RTX 4090 (desktop GPU)",
            "NVIDIA Ada GPU Architecture whitepaper, appendix A: FP32 82.6 TFLOPS; FP16/BF16 "
            "Tensor (FP32 accumulate) 165.2, INT8 Tensor 660.6, INT4 Tensor 1,321.2 TOPS dense; "
            "GDDR6X 1,008 GB/s",
            _tops(fp32=82.6, fp16=165.2, bf16=165.2, int8=660.6, int4=1321.2),
            1008e9,
        ),
        Device(
            "jetson-orin-nano",
            "NVIDIA Jetson Orin Nano 8GB module (edge, 15 W)",
            "NVIDIA Jetson Orin Nano Series data sheet: 40 INT8 TOPS sparse = 20 dense; 1024 CUDA "
            "cores at 625 MHz (fp32 1.28 TFLOPS); LPDDR5 68 GB/s. fp16 = half the INT8 tensor "
            "rate (Ampere tensor cores), derived, not printed in the data sheet",
            _tops(fp32=1.28, fp16=10, int8=20),
            68e9,
        ),
        Device(
            "jetson-orin-nano-super",
            "NVIDIA Jetson Orin Nano 8GB in 'Super' mode (JetPack 6.1, 25 W)",
            "NVIDIA Jetson Orin Nano Super Developer Kit data sheet: 67 INT8 TOPS sparse = 33.5 "
            "dense; GPU at 1,020 MHz (fp32 2.09 TFLOPS); LPDDR5 102 GB/s. fp16 derived as above",
            _tops(fp32=2.09, fp16=16.75, int8=33.5),
            102e9,
        ),
        Device(
            "cpu-8core-avx2",
            "Generic 8-core x86 CPU, AVX2 + FMA at 3 GHz, dual-channel DDR4-3200",
            "Assumed, not a datasheet: 8 cores x 3 GHz x 2 FMA units x 8 fp32 lanes = 384 G "
            "MAC/s; 2 x 25.6 GB/s DDR4-3200 = 51.2 GB/s",
            {"fp32": 384e9},
            51.2e9,
        ),
    )
}


def _user_devices(start: str | None = None) -> dict:
    """``[devices.NAME]`` in ./cnnstat.toml, else ``[tool.cnnstat.devices.NAME]`` in
    ./pyproject.toml: ``bandwidth`` and ``macs_per_second`` (or ``ops_per_second``, 2 per MAC)
    by dtype, with SI suffixes ("3.35 TB/s", {int8 = "20T"})."""
    here = start or os.getcwd()
    for fname, path in (("cnnstat.toml", ("devices",)), ("pyproject.toml", ("tool", "cnnstat", "devices"))):
        full = os.path.join(here, fname)
        if not os.path.exists(full):
            continue
        found = _file_devices(full, fname, path)
        if found:
            return found
    return {}


def _file_devices(full: str, fname: str, path: tuple = ("devices",)) -> dict:
    """The devices of one TOML file, under the table ``path`` ({} if it has none)."""
    import tomllib

    from cnnstat.files import read_text

    try:
        table = tomllib.loads(read_text(full, "device file", fname))
    except tomllib.TOMLDecodeError as exc:
        raise CnnstatError(f"{fname}: {exc}") from None
    for key in path:
        table = table.get(key, {}) if isinstance(table, dict) else {}
    if not isinstance(table, dict):
        raise CnnstatError(f"{fname}: {'.'.join(path)} must be a table of devices")
    return {name: _device_from(name, spec, fname) for name, spec in table.items()}


def device_file(path: str) -> Device:
    """``--device mydevice.toml``: the one ``[devices.NAME]`` of a device file (the format of
    ./cnnstat.toml; ``cnnstat bench --calibrate`` writes one)."""
    shown = brief(path)
    found = _file_devices(path, shown)  # missing, a directory, too large: one message
    if len(found) != 1:
        names = f" ({', '.join(found)})" if found else ""
        raise CnnstatError(f"device file {shown} must hold one [devices.NAME] table, not {len(found)}{names}")
    return next(iter(found.values()))


def _device_from(name: str, spec: dict, fname: str) -> Device:
    where = f"{fname}: device '{name}'"
    known = {"description", "source", "bandwidth", "macs_per_second", "ops_per_second"}
    if not isinstance(spec, dict):
        raise CnnstatError(f"{where} must be a table")
    for key in spec:
        if key not in known:
            raise CnnstatError(f"{where}: unknown key '{key}'" + did_you_mean(key, known))
    if "bandwidth" not in spec or not ({"macs_per_second", "ops_per_second"} & set(spec)):
        raise CnnstatError(f"{where} needs 'bandwidth' and 'macs_per_second' (or 'ops_per_second')")
    per_mac = 1 if "macs_per_second" in spec else 2
    rates = spec.get("macs_per_second") or spec.get("ops_per_second")
    if not isinstance(rates, dict):
        raise CnnstatError(f'{where}: rates must be a table by dtype, e.g. {{fp16 = "10T"}}')
    macs = {}
    for dtype, value in rates.items():
        if dtype not in DTYPE_BITS:
            raise CnnstatError(f"{where}: unknown dtype '{dtype}'" + did_you_mean(dtype, DTYPE_BITS))
        macs[dtype] = _rate(value, ("MAC/s", "OPS", "FLOPS", "TOPS"), f"{where}: {dtype}") / per_mac
    bandwidth = _rate(spec["bandwidth"], ("B/s",), f"{where}: bandwidth")
    for key in ("description", "source"):
        if not isinstance(spec.get(key, ""), str):
            raise CnnstatError(f"{where}: {key} must be a string")
    return Device(name, spec.get("description", ""), spec.get("source", fname), macs, bandwidth)


MAX_RATE = 10**30  # MAC/s or B/s: past any device


def _rate(value, units: tuple, where: str):
    """A device rate: a number or an SI string read exactly, positive and finite."""
    number = parse_quantity(value, units)
    if not 0 < number <= MAX_RATE:
        raise CnnstatError(f"{where} must be positive and at most {MAX_RATE:.0e}, got {brief(value)}")
    return number


def devices(start: str | None = None) -> dict:
    return {**PRESETS, **_user_devices(start)}


def get_device(name: str) -> Device:
    if name.endswith(".toml"):
        return device_file(name)
    known = devices()
    if name not in known:
        raise CnnstatError(
            f"unknown device '{name}'" + did_you_mean(name, known) + f"; known: {', '.join(known)}"
        )
    return known[name]


def traffic(graph, dtype: str = "fp32", batch: int = 1):
    """Per layer, (layer, MACs, bytes moved): the activations it reads and writes
    (:func:`cnnstat.throughput.moved_elements`) for the batch, plus its weights and biases once,
    at ``dtype``; a layer that moves no activation (a view) moves nothing. The one count
    :func:`roofline` and :func:`bounds` share."""
    from cnnstat.throughput import moved_elements

    for layer, elems in moved_elements(graph):
        moved = 0
        if elems:
            moved = tensor_bytes(elems * batch, dtype) + tensor_bytes(layer.weights, dtype)
            moved += tensor_bytes(layer.biases, dtype)
        yield layer, layer.macs * batch, moved


def roofline(graph, device: Device, dtype: str = "fp32", batch: int = 1) -> list:
    """Per layer: MACs, bytes moved, arithmetic intensity, and the time bound in seconds."""
    peak, bw = device.peak(dtype), device.bandwidth
    rows = []
    for layer, macs, moved in traffic(graph, dtype, batch):
        compute_s, memory_s = macs / peak, moved / bw
        rows.append(
            {
                "name": layer.name,
                "op": layer.op,
                "macs": macs,
                "bytes": moved,
                "intensity": macs / moved if moved else None,
                "compute_s": compute_s,
                "memory_s": memory_s,
                "time_s": max(compute_s, memory_s),
                "bound": "compute" if compute_s >= memory_s and compute_s else "memory" if memory_s else "-",
            }
        )
    return rows


def verdict(max_fps: float, fps: float) -> str:
    ratio = max_fps / fps
    if ratio >= 1:
        return f"holds {fps:g} fps with {ratio:.1f}x headroom"
    return f"needs {1 / ratio:.1f}x the device"


def bound(graph, device: Device, dtype: str, fps, passes=1, batch: int = 1) -> dict:
    """Latency lower bound per frame (``passes`` runs of ``graph``), the fps it allows, and
    a verdict against ``fps``."""
    return bounds(graph, [device], dtype, fps, passes, batch)[0]


def bounds(graph, devices: list, dtype: str, fps, passes=1, batch: int = 1) -> list:
    """:func:`bound` on each of ``devices`` in one pass over the layers (each layer's bytes
    moved counted once), keeping no row per layer: a million layers on five devices cost five
    sums, not five million rows. Each device's time is :func:`roofline`'s, summed in layer
    order (the same float)."""
    rates = [(device.peak(dtype), device.bandwidth) for device in devices]
    time_s, compute, memory = [0] * len(devices), [0] * len(devices), [0] * len(devices)
    for _, macs, moved in traffic(graph, dtype, batch):
        for i, (peak, bw) in enumerate(rates):
            compute_s, memory_s = macs / peak, moved / bw
            time_s[i] += max(compute_s, memory_s)
            if compute_s >= memory_s and compute_s:
                compute[i] += 1
            elif memory_s:
                memory[i] += 1
    out = []
    for i, device in enumerate(devices):
        latency = float(time_s[i] * passes)
        max_fps = 1 / latency if latency else float("inf")
        out.append(
            {
                "device": device.name,
                "latency_s": latency,
                "max_fps": max_fps,
                "headroom": max_fps / fps,
                "verdict": verdict(max_fps, fps),
                "compute_bound_layers": compute[i],
                "memory_bound_layers": memory[i],
            }
        )
    return out
