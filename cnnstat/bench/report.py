"""Measured timings beside cnnstat's figures: the arithmetic of a bench report (no torch).

A *call* is one forward pass of a batch of ``batch`` images; its latency is what is timed.

- latency per image = latency per call / batch;
- latency per frame = latency per image x passes per frame (tile mode: the tiles covering the
  frame, :func:`cnnstat.throughput.tile_count`, fractional; frame mode: 1; a video model's clip
  covers several frames: 1 / clip frames);
- achieved fps = 1 / median latency per frame (meets the requested fps when at least it);
- achieved MAC/s = MACs per image (the analysis) / median latency per image;
- achieved bytes/s = bytes moved per call / median latency per call, the bytes being
  cnnstat's count (every layer's inputs, output, weights and biases at the dtype, no cache
  reuse, as in :func:`cnnstat.hardware.roofline`), not a measured traffic;
- with a device: efficiency = achieved / peak (MAC/s, bandwidth), and the roofline bound per
  frame (:func:`cnnstat.hardware.bound`) over the measured latency per frame.
"""

from __future__ import annotations

import math
import statistics

from cnnstat.ops.base import prod
from cnnstat.throughput import activation_traffic


def quantile(samples: list, q: float) -> float:
    """The ``q`` quantile (0..1) of ``samples``, linear between order statistics (numpy's default)."""
    xs = sorted(samples)
    if not xs:
        raise ValueError("no samples")
    pos = (len(xs) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(xs) - 1)
    return xs[low] + (xs[high] - xs[low]) * (pos - low)


def latency_stats(call_seconds: list, batch: int, passes_per_frame) -> dict:
    """Median, p90, min and max of the call latencies, per call, per image and per frame."""
    call = {
        "median": statistics.median(call_seconds),
        "p90": quantile(call_seconds, 0.9),
        "min": min(call_seconds),
        "max": max(call_seconds),
    }
    image = {k: v / batch for k, v in call.items()}
    frame = {k: v * float(passes_per_frame) for k, v in image.items()}
    return {"runs": len(call_seconds), "per_call_s": call, "per_image_s": image, "per_frame_s": frame}


def bytes_moved_per_call(analysis) -> int:
    """cnnstat's bytes moved by one call: activations read and written by every layer for the
    whole batch, plus the weights and biases once (the sum of the roofline's ``bytes``)."""
    return (
        activation_traffic(analysis.graph, analysis.dtype) * analysis.batch + analysis.totals()["param_bytes"]
    )


def static_memory(analysis) -> dict:
    """cnnstat's static estimate of inference memory at the analysis' batch and dtype: weights,
    biases and buffers, plus the peak of live activations (input included)."""
    from cnnstat.units import tensor_bytes

    m = analysis.memory()
    buffers = tensor_bytes(analysis.totals()["buffers"], analysis.dtype)
    weights = m["param_bytes"] + buffers
    return {
        "param_bytes": m["param_bytes"],
        "buffer_bytes": buffers,
        "peak_activation_bytes": m["peak_activation_bytes"],
        "peak_at": m["peak_at"],
        "total_bytes": weights + m["peak_activation_bytes"],
        "input_bytes": tensor_bytes(analysis.batch * prod(analysis.graph.input), analysis.dtype),
    }


def device_bound(analysis, row: dict, device, fps) -> dict:
    """The roofline bound of ``device`` (a :class:`cnnstat.hardware.Device`) for one frame, per
    image and its peaks: :func:`cnnstat.hardware.bound` on the batch graph, scaled from calls
    to frames (passes per frame / batch)."""
    from cnnstat.hardware import bound

    dtype, batch = analysis.dtype, analysis.batch
    calls_per_frame = float(row["passes_per_frame"]) / batch
    b = bound(analysis.graph, device, dtype, fps, calls_per_frame, batch)
    return {
        **b,
        "description": device.description,
        "peak_macs_per_second": device.peak(dtype),
        "bandwidth": device.bandwidth,
        "latency_per_image_s": b["latency_s"] / float(row["passes_per_frame"]),
    }


def variant_result(timing: dict, analysis, row: dict, fps, bound: dict | None) -> dict:
    """One variant's figures (eager, or compiled): latencies, fps against ``fps``, MAC/s and
    bytes/s, and against ``bound`` (from :func:`device_bound`) the efficiencies."""
    stats = latency_stats(timing["call_seconds"], analysis.batch, row["passes_per_frame"])
    image_s, frame_s = stats["per_image_s"]["median"], stats["per_frame_s"]["median"]
    macs_per_image = analysis.totals()["macs"] // analysis.batch  # as throughput_row counts it
    moved = bytes_moved_per_call(analysis)
    achieved_fps = 1 / frame_s
    out = {
        "variant": timing["variant"],
        "warmup": timing["warmup"],
        **stats,
        "fps": achieved_fps,
        "fps_at_p90": 1 / stats["per_frame_s"]["p90"],
        "meets_fps": achieved_fps >= float(fps),
        "macs_per_second": macs_per_image / image_s,
        "bytes_per_second": moved / stats["per_call_s"]["median"],
        "memory": timing.get("memory"),
    }
    if bound is not None:
        out["efficiency"] = {
            "compute": out["macs_per_second"] / bound["peak_macs_per_second"],
            "bandwidth": out["bytes_per_second"] / bound["bandwidth"],
            "roofline": bound["latency_s"] / frame_s,
        }
    return out
