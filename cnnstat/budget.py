"""Model budgets: limits on a model's figures, checked in CI.

A budget file is TOML: ``[[budget]]`` tables in ``cnnstat.toml``, or ``[[tool.cnnstat.budget]]``
in ``pyproject.toml``. Each names a ``model`` and the settings it is measured at, then limits
(``max_*`` / ``min_*``). Values are numbers or strings with SI suffixes ("25M", "4.1G",
"30 MB"; "MiB"/"GiB" are binary). Every mistake is an error with the file and line.
"""

from __future__ import annotations

import math
import os
import re

from cnnstat.errors import CnnstatError, Location, SpecError, brief, did_you_mean
from cnnstat.units import DTYPE_BITS, parse_input, parse_quantity, parse_resolution

# limit key -> (metric, "max"/"min", units allowed after the number)
LIMITS = {
    "max_params": ("params", "max", ()),
    "max_weights": ("weights", "max", ()),
    "max_macs": ("macs", "max", ("MAC", "MACs")),
    "max_macs_per_frame": ("macs_per_frame", "max", ("MAC", "MACs")),
    "max_macs_per_second": ("macs_per_second", "max", ("MAC/s",)),
    "max_weight_bytes": ("weight_bytes", "max", ("B",)),
    "max_param_bytes": ("param_bytes", "max", ("B",)),
    "max_activations": ("activations", "max", ()),
    "max_peak_activation_bytes": ("peak_activation_bytes", "max", ("B",)),
    "min_receptive_field": ("receptive_field", "min", ("px",)),
    "max_receptive_field": ("receptive_field", "max", ("px",)),
}
METRICS = (
    "params",
    "weights",
    "macs",
    "macs_per_frame",
    "macs_per_second",
    "weight_bytes",
    "param_bytes",
    "activations",
    "peak_activation_bytes",
    "receptive_field",
)
# Figures that are only lower bounds when a PyTorch model has calls cnnstat has no op for
# (their MACs, and what happens inside them, are unknown).
LOWER_BOUNDS = ("macs", "macs_per_frame", "macs_per_second", "activations", "peak_activation_bytes")
SETTINGS = ("model", "name", "input", "resolution", "fps", "dtype", "batch", "mode", "allow_lower_bounds")
DEFAULT_FILES = ("cnnstat.toml", "pyproject.toml")
MAX_LIMIT = 10**30  # the largest limit or baseline figure (past any model's count)
MAX_FPS = 1_000_000
MAX_BATCH = 2**31


def positive_quantity(value, units: tuple = (), high=MAX_LIMIT):
    """A limit: a number or an SI string read exactly (parse_quantity), > 0 and at most
    ``high``; a CnnstatError that says which otherwise."""
    number = parse_quantity(value, units)
    if not number > 0:
        raise CnnstatError(f"must be a positive number, got {brief(value)}")
    if number > high:
        raise CnnstatError(f"must be at most {high:.0e}, got {brief(value)}")
    return number


class Budget:
    __slots__ = (
        "file",
        "line",
        "key_lines",
        "model",
        "name",
        "input",
        "resolution",
        "fps",
        "dtype",
        "batch",
        "mode",
        "allow_lower_bounds",
        "limits",
        "base_dir",
    )

    def loc(self, key: str | None = None) -> Location:
        return Location(self.file, self.key_lines.get(key, self.line) if key else self.line, 1)

    def settings(self) -> dict:
        return {
            "input": list(self.input) if self.input else None,
            "resolution": list(self.resolution),
            "fps": self.fps,
            "dtype": self.dtype,
            "batch": self.batch,
            "mode": self.mode,
            "allow_lower_bounds": self.allow_lower_bounds,
        }


def find_file(path: str | None = None) -> tuple:
    """(path, tables' dotted location) of the budget file to read."""
    if path:
        if not os.path.exists(path):  # a device or FIFO is refused by the read, by its kind
            raise CnnstatError(f"no such budget file: {path}")
        prefix = ("tool", "cnnstat") if os.path.basename(path) == "pyproject.toml" else ()
        return path, prefix
    if os.path.isfile("cnnstat.toml"):
        return "cnnstat.toml", ()
    if os.path.isfile("pyproject.toml"):
        return "pyproject.toml", ("tool", "cnnstat")
    raise CnnstatError(
        "no budget file: write [[budget]] tables in cnnstat.toml, "
        "[[tool.cnnstat.budget]] in pyproject.toml, or give a PATH"
    )


def load(path: str | None = None) -> list:
    """The budgets of a file, each checked: known keys, readable values, at least one limit."""
    import tomllib

    path, prefix = find_file(path)
    from cnnstat.files import read_bytes

    text = read_bytes(path, "budget file").decode("utf-8", errors="replace")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+), column (\d+)", str(exc))
        if m:
            loc = Location(path, int(m.group(1)), int(m.group(2)))
        else:  # "at end of document"
            lines = text.splitlines() or [""]
            loc = Location(path, len(lines), len(lines[-1]) + 1)
        raise SpecError(f"TOML: {exc}", loc) from None
    table = doc
    for key in prefix:
        table = table.get(key, {}) if isinstance(table, dict) else {}
    entries = table.get("budget", []) if isinstance(table, dict) else []
    header = r"\[\[\s*" + r"\s*\.\s*".join((*prefix, "budget")) + r"\s*\]\]"
    starts = [i + 1 for i, line in enumerate(text.splitlines()) if re.match(r"\s*" + header, line)]
    if not isinstance(entries, list) or not entries:
        where = "[[" + ".".join((*prefix, "budget")) + "]]"
        if isinstance(entries, dict):  # [budget]: one table, not an array of tables
            single = r"\[\s*" + r"\s*\.\s*".join((*prefix, "budget")) + r"\s*\]"
            line = next((i + 1 for i, t in enumerate(text.splitlines()) if re.match(r"\s*" + single, t)), 1)
            raise SpecError(
                f"{where[1:-1]} is a single table: write each budget as {where} (double brackets, "
                "an array of tables)",
                Location(path, line, 1),
            )
        raise SpecError(f"no {where} tables in {path}", Location(path, 1, 1))
    lines = text.splitlines()
    budgets = []
    for i, entry in enumerate(entries):
        start = starts[i] if i < len(starts) else 1
        end = starts[i + 1] - 1 if i + 1 < len(starts) else len(lines)
        budgets.append(_budget(entry, path, start, lines[start - 1 : end]))
    seen = {}
    for b in budgets:  # a baseline is keyed by name: two budgets of one name would overwrite
        if b.name in seen:
            first = seen[b.name]
            how = "set name" if "name" in b.key_lines or "name" in first.key_lines else "their default name"
            raise SpecError(
                f"two budgets named {brief(b.name)} (lines {first.line} and {b.line}, {how}): "
                'give each a distinct name = "..."',
                b.loc("name"),
            )
        seen[b.name] = b
    return budgets


def _budget(entry: dict, path: str, line: int, body: list) -> Budget:
    b = Budget()
    b.file, b.line, b.base_dir = path, line, os.path.dirname(os.path.abspath(path))
    b.key_lines = {}
    for key in entry:
        for j, text in enumerate(body):
            if re.match(rf'\s*"?{re.escape(key)}"?\s*=', text):
                b.key_lines[key] = line + j
                break

    def fail(message, key=None):
        raise SpecError(message, b.loc(key))

    for key in entry:
        if key not in SETTINGS and key not in LIMITS:
            fail(f"unknown key '{key}' in a budget" + did_you_mean(key, (*SETTINGS, *LIMITS)), key)
    if not isinstance(entry.get("model"), str) or not entry["model"]:
        fail('a budget needs model = "NAME" (a zoo name, a spec path or module:attr)', "model")
    b.model = entry["model"]
    b.name = entry.get("name", b.model)
    if not isinstance(b.name, str) or not b.name:
        fail(f"name must be a non-empty string, got {brief(b.name)}", "name")
    try:
        b.input = parse_input(str(entry["input"])) if "input" in entry else None
    except CnnstatError as exc:
        fail(str(exc), "input")
    try:
        b.resolution = parse_resolution(str(entry.get("resolution", "1920x1080")))
    except CnnstatError as exc:
        fail(str(exc), "resolution")
    b.fps = entry.get("fps", 30)
    if (
        isinstance(b.fps, bool)
        or not isinstance(b.fps, (int, float))
        or not math.isfinite(b.fps)
        or not 0 < b.fps <= MAX_FPS
    ):
        fail(f"fps must be a positive number at most {MAX_FPS:,}, got {brief(b.fps)}", "fps")
    b.dtype = entry.get("dtype", "fp32")
    if b.dtype not in DTYPE_BITS:
        fail(f"unknown dtype '{b.dtype}'" + did_you_mean(b.dtype, DTYPE_BITS), "dtype")
    b.batch = entry.get("batch", 1)
    if isinstance(b.batch, bool) or not isinstance(b.batch, int) or not 1 <= b.batch <= MAX_BATCH:
        fail(f"batch must be a positive integer at most {MAX_BATCH:,}, got {brief(b.batch)}", "batch")
    b.mode = entry.get("mode", "tile")
    if b.mode not in ("tile", "frame"):
        fail(f"mode must be 'tile' or 'frame', got {brief(b.mode)}", "mode")
    b.allow_lower_bounds = entry.get("allow_lower_bounds", False)
    if not isinstance(b.allow_lower_bounds, bool):
        fail(
            f"allow_lower_bounds must be true or false, got {brief(b.allow_lower_bounds)}",
            "allow_lower_bounds",
        )
    b.limits = {}
    for key, value in entry.items():
        if key in LIMITS:
            try:
                b.limits[key] = positive_quantity(value, LIMITS[key][2])
            except CnnstatError as exc:
                fail(f"{key}: {exc}", key)
    if not b.limits:
        fail(f"budget for '{b.model}' sets no limit (one of {', '.join(LIMITS)})")
    return b


def graphs(b: Budget) -> tuple:
    """(graph, tile, per-frame graph or None) of a budget's model at its settings: a relative
    spec path read from the budget file's folder, a PyTorch model traced on the meta device;
    the per-frame graph in frame mode only."""
    from cnnstat.throughput import frame_graph
    from cnnstat.torch import is_reference
    from cnnstat.zoo import is_path

    model = b.model
    if not is_reference(model) and is_path(model) and not os.path.isabs(model):
        model = os.path.join(b.base_dir, model)

    def trace(m, input, resolution):  # module:attr, on the meta device (imports torch)
        from cnnstat.torch.analysis import analyze

        return analyze(m, input=input, resolution=resolution, dtype=b.dtype, batch=b.batch)

    graph, tile = frame_graph(model, "tile", b.resolution, b.input, trace)
    per_frame = frame_graph(model, "frame", b.resolution, None, trace)[0] if b.mode == "frame" else None
    return graph, tile, per_frame


def measure(b: Budget) -> dict:
    """Every metric of a budget's model at its settings, and whether they are ``complete``:
    for a PyTorch model with calls cnnstat has no op for, ``incomplete`` lists them (MACs and
    activation figures are then lower bounds) and ``receptive_field_unknown`` says why the
    field is unknown when it is (``receptive_field`` is then None)."""
    from cnnstat.analysis import Analysis
    from cnnstat.throughput import throughput_row

    graph, tile, per_frame = graphs(b)
    a = Analysis(graph, dtype=b.dtype, batch=b.batch)
    incomplete = a.incomplete()
    if b.mode == "frame":
        frame = Analysis(per_frame, dtype=b.dtype)
        incomplete += [i for i in frame.incomplete() if i not in incomplete]
        need = throughput_row(frame, b.resolution, b.fps, 1, mode="frame")
    else:
        need = throughput_row(Analysis(graph, dtype=b.dtype), b.resolution, b.fps, 1, tile=tile)
    t, mem, rf = a.totals(), a.memory(), a.receptive_field()
    extra = {"complete": not incomplete, "incomplete": incomplete}
    if rf is not None and rf.rf is None:
        extra["receptive_field_unknown"] = f"at {rf.name}: {rf.rf_unknown}"
    return {
        "params": t["params"],
        "weights": t["weights"],
        "macs": t["macs"] // b.batch,
        "macs_per_frame": need["macs_per_frame"],
        "macs_per_second": need["macs_per_second"],
        "weight_bytes": t["weight_bytes"],
        "param_bytes": t["param_bytes"],
        "activations": t["activations"],
        "peak_activation_bytes": mem["peak_activation_bytes"],
        "receptive_field": list(rf.rf.size) if rf is not None and rf.rf is not None else None,
        **extra,
    }


def check(b: Budget, values: dict) -> list:
    """One result per limit: value, limit, pass, and headroom (+) or overshoot (-) in %.

    A figure that is only a lower bound (``lower_bound``: MACs or activations of a model with
    calls cnnstat has no op for) fails a ``max_*`` limit: over the limit it is over for sure,
    under it nothing shows that the model is within (``unknown`` says why), unless the budget
    sets ``allow_lower_bounds`` (the known part is compared). An unknown receptive field
    fails its limits."""
    from cnnstat.analysis import incomplete_text

    results = []
    for key, limit in b.limits.items():
        metric, sense, _ = LIMITS[key]
        value = values[metric]
        lower = metric in LOWER_BOUNDS and not values.get("complete", True)
        result = {"limit_key": key, "metric": metric, "limit": limit, "line": b.loc(key).line}
        if metric == "receptive_field":
            if value is None and values.get("receptive_field_unknown"):
                result.update(value=None, ok=False, headroom_pct=None, lower_bound=False)
                result["unknown"] = f"receptive field unknown {values['receptive_field_unknown']}"
                results.append(result)
                continue
            if value is None:
                raise SpecError(f"{b.name} has no spatial receptive field to limit", b.loc(key))
            value = min(value) if sense == "min" else max(value)
        ok = value <= limit if sense == "max" else value >= limit
        margin = (limit - value) / limit * 100 if sense == "max" else (value - limit) / limit * 100
        result.update(value=value, ok=ok, headroom_pct=margin if limit else None, lower_bound=lower)
        if lower:
            result["unknown"] = f"MACs unknown for {incomplete_text(values['incomplete'])}"
            result["ok"] = ok and b.allow_lower_bounds
        results.append(result)
    return results


def compare_baseline(name: str, values: dict, baseline: dict, max_growth: float) -> list:
    """Metrics that grew more than ``max_growth`` % over the baseline fail; shrinkage is noted."""
    base = baseline.get(name)
    if base is None:
        return []
    out = []
    for metric in METRICS:
        old, new = base.get(metric), values.get(metric)
        if old is None or new is None:
            continue
        # the receptive field: its largest side (a baseline may hold a number or a list)
        old, new = (max(v) if isinstance(v, list) else v for v in (old, new))
        growth = (new - old) / old * 100 if old else (0.0 if new == old else float("inf"))
        out.append(
            {
                "metric": metric,
                "baseline": old,
                "value": new,
                "growth_pct": growth,
                "ok": growth <= max_growth,
            }
        )
    return out


def load_baseline(path: str) -> dict:
    """The models of a baseline file, each entry checked: a table of metrics, each a
    non-negative finite number (``receptive_field`` a list of them) or null."""
    import json

    from cnnstat.files import read_text

    text = read_text(path, "baseline file")

    def constant(name):
        raise ValueError(f"{name} is not JSON")

    try:
        doc = json.loads(text, parse_constant=constant)
    except RecursionError:
        raise CnnstatError(f"cannot read baseline {path}: nested too deeply") from None
    except ValueError as exc:
        raise CnnstatError(f"cannot read baseline {path}: {exc}") from None
    if (
        not isinstance(doc, dict)
        or doc.get("cnnstat_baseline") != 1
        or not isinstance(doc.get("models"), dict)
    ):
        raise CnnstatError(f"{path} is not a cnnstat baseline (write one with 'cnnstat snapshot')")
    for name, entry in doc["models"].items():
        where = f"baseline {path}: model {brief(name)}"
        if not isinstance(entry, dict):
            raise CnnstatError(f"{where} must be an object of metrics, got {brief(entry)}")
        for metric in METRICS:
            value = entry.get(metric)
            items = value if metric == "receptive_field" and isinstance(value, list) else [value]
            if metric == "receptive_field" and isinstance(value, list) and not value:
                items = ["an empty list"]
            for v in items:
                if v is None and not isinstance(value, list):
                    continue
                if (
                    isinstance(v, bool)
                    or not isinstance(v, (int, float))
                    or (isinstance(v, float) and not math.isfinite(v))
                ):
                    raise CnnstatError(f"{where}: {metric} must be a number, got {brief(value)}")
                if v < 0:
                    raise CnnstatError(f"{where}: {metric} must not be negative, got {brief(value)}")
                if v > MAX_LIMIT:
                    raise CnnstatError(
                        f"{where}: {metric} must be at most {MAX_LIMIT:.0e}, got {brief(value)}"
                    )
    return doc["models"]
