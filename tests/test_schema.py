"""The JSON contract as JSON Schema: every command's JSON output validates against the schema
shipped in the package (cnnstat/schema/*.schema.json, draft 2020-12).

The schemas are strict (``additionalProperties: false``): a key the program starts printing
fails here until the schema (and docs/json.md) say what it is. The validator below covers the
subset of JSON Schema the schemas use, and refuses any other keyword, so that no rule is
silently skipped. ``integer`` means a Python int (counts are exact integers, never 3.0).
"""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = files("cnnstat") / "schema"
DRAFT = "https://json-schema.org/draft/2020-12/schema"


# --- a validator for the subset of JSON Schema the schemas use -----------------------------------

ANNOTATIONS = {"$schema", "title", "description", "$defs"}
KEYWORDS = ANNOTATIONS | {
    "$ref",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "propertyNames",
    "items",
    "minItems",
    "maxItems",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "minimum",
    "exclusiveMinimum",
    "pattern",
}
TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def load_schema(name: str) -> dict:
    return json.loads((SCHEMAS / name).read_text(encoding="utf-8"))


def resolve(ref: str, document: str) -> tuple:
    """(schema, its document's file name) for ``file.schema.json#/$defs/x`` or ``#/$defs/x``."""
    name, _, pointer = ref.partition("#")
    name = name or document
    node = load_schema(name)
    for part in pointer.strip("/").split("/") if pointer.strip("/") else []:
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node, name


def errors(instance, schema: dict, document: str, where: str = "$") -> list:
    """Where ``instance`` breaks ``schema`` (empty: it validates)."""
    unknown = set(schema) - KEYWORDS
    assert not unknown, f"{document}: keywords the test's validator does not know: {unknown}"
    out = []
    if "$ref" in schema:
        target, doc = resolve(schema["$ref"], document)
        out += errors(instance, target, doc, where)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(TYPES[t](instance) for t in types):
            return out + [f"{where}: {instance!r:.60} is not of type {'/'.join(types)}"]
    if "enum" in schema and instance not in schema["enum"]:
        out.append(f"{where}: {instance!r:.60} is not one of {schema['enum']}")
    if "const" in schema and (instance != schema["const"] or type(instance) is not type(schema["const"])):
        out.append(f"{where}: {instance!r:.60} is not {schema['const']!r}")
    if TYPES["number"](instance):
        if "minimum" in schema and instance < schema["minimum"]:
            out.append(f"{where}: {instance} < {schema['minimum']}")
        if "exclusiveMinimum" in schema and instance <= schema["exclusiveMinimum"]:
            out.append(f"{where}: {instance} <= {schema['exclusiveMinimum']}")
    if isinstance(instance, str) and "pattern" in schema and not re.search(schema["pattern"], instance):
        out.append(f"{where}: {instance!r} does not match {schema['pattern']}")
    if isinstance(instance, list):
        if len(instance) < schema.get("minItems", 0):
            out.append(f"{where}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(instance) > schema["maxItems"]:
            out.append(f"{where}: more than {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(instance):
                out += errors(item, schema["items"], document, f"{where}[{i}]")
    if isinstance(instance, dict):
        props = schema.get("properties", {})
        out += [f"{where}: no key {k!r}" for k in schema.get("required", []) if k not in instance]
        for key, value in instance.items():
            if "propertyNames" in schema:
                out += errors(key, schema["propertyNames"], document, f"{where} key {key!r}")
            if key in props:
                out += errors(value, props[key], document, f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{where}: key {key!r} is not in the schema")
            elif isinstance(schema.get("additionalProperties"), dict):
                out += errors(value, schema["additionalProperties"], document, f"{where}.{key}")
    for keyword in ("anyOf", "oneOf"):
        if keyword in schema:
            results = [errors(instance, s, document, where) for s in schema[keyword]]
            passing = sum(not r for r in results)
            if passing == 0:
                best = min(results, key=len)
                out.append(f"{where}: matches none of {keyword} (closest: {'; '.join(best[:3])})")
            elif keyword == "oneOf" and passing > 1:
                out.append(f"{where}: matches {passing} of oneOf")
    return out


def validate(instance, name: str):
    problems = errors(instance, load_schema(name), name)
    assert not problems, f"{name}:\n" + "\n".join(problems[:20])


# --- the schema files ----------------------------------------------------------------------------

NAMES = [
    "analysis.schema.json",
    "memory.schema.json",
    "flops.schema.json",
    "compare.schema.json",
    "check.schema.json",
    "baseline.schema.json",
    "list.schema.json",
    "devices.schema.json",
    "verify.schema.json",
]


def test_the_schemas_are_shipped():
    shipped = sorted(p.name for p in SCHEMAS.iterdir() if p.name.endswith(".schema.json"))
    assert shipped == sorted(NAMES)
    for name in NAMES:
        schema = load_schema(name)
        assert schema["$schema"] == DRAFT and schema["title"].startswith("cnnstat")

        def walk(node, where, name=name):  # every $ref resolves; every keyword the validator knows
            if isinstance(node, dict):
                assert not (set(node) - KEYWORDS) or where.endswith(("properties", "$defs")), where
                if "$ref" in node:
                    resolve(node["$ref"], name)
                for key, value in node.items():
                    walk(value, f"{where}/{key}", name)
            elif isinstance(node, list):
                for i, value in enumerate(node):
                    walk(value, f"{where}/{i}", name)

        walk(schema, name)


def test_the_wheel_ships_the_schemas(tmp_path):
    import subprocess
    import sys
    import zipfile

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            tmp_path,
            REPO,
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("cnnstat-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"cnnstat/schema/{n}" for n in NAMES} <= names


def test_the_validator_is_not_vacuous(run):
    doc = json.loads(run("params", "lenet5", "--format", "json").stdout)
    validate(doc, "analysis.schema.json")
    bad = [
        {**doc, "extra": 1},  # a key the contract does not have
        {k: v for k, v in doc.items() if k != "memory"},  # a key missing
        {**doc, "totals": {**doc["totals"], "macs": 416520.0}},  # a count as a float
        {**doc, "totals": {**doc["totals"], "params": True}},
        {**doc, "dtype": "fp64"},
        {**doc, "layers": [{**doc["layers"][0], "rf": {"size": [5, 5], "jump": [0, 1], "start": [0, 0]}}]},
        {
            **doc,
            "receptive_field": {"size": None, "jump": [4, 4], "start": None, "layer": "c5", "unknown": ""},
        },
    ]
    for instance in bad:
        assert errors(instance, load_schema("analysis.schema.json"), "analysis.schema.json")


# --- every command's JSON output -----------------------------------------------------------------

MODELS = ["lenet5", "vgg16", "resnet50", "lraspp_mobilenet_v3_large", "r3d_18", "vit_b_16", "unet"]
TCN = (
    "name: tcn\ninput: [8, 256]\nlayers:\n  - conv: {out: 16, k: 3}\n  - gap\n  - flatten\n  - fc: {out: 4}\n"
)
MLP = "name: mlp\ninput: [784]\nlayers:\n  - fc: {out: 128}\n  - relu\n  - fc: {out: 10}\n"
ROLLNET = """\
import torch
from torch import nn


class RollNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = torch.roll(self.conv(x), 1, dims=2)
        return self.head(x.mean((2, 3)))
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "tcn.yaml").write_text(TCN, encoding="utf-8")
    (tmp_path / "mlp.yaml").write_text(MLP, encoding="utf-8")
    (tmp_path / "rollnet.py").write_text(ROLLNET, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def output(run, *args, status=0):
    res = run(*args, "--format", "json")
    assert res.exit_code == status, res.output
    return json.loads(res.stdout)


@pytest.mark.parametrize("model", MODELS + ["tcn.yaml", "mlp.yaml"])
def test_analysis(run, workdir, model):
    doc = output(run, "params", model)
    validate(doc, "analysis.schema.json")
    validate(output(run, "memory", model, "--batch", "2", "--dtype", "fp16"), "memory.schema.json")
    if model == "lraspp_mobilenet_v3_large":  # fractional jumps after upsampling
        assert doc["receptive_field"]["jump_exact"] == ["66/65", "66/65"]
    if model == "mlp.yaml":
        assert doc["receptive_field"] is None


def test_summary_and_rf_print_the_analysis(run):
    for command in ("summary", "rf"):
        validate(output(run, command, "resnet50", "--input", "3x160x160"), "analysis.schema.json")


def test_flops(run, workdir):
    validate(output(run, "flops", *MODELS), "flops.schema.json")
    validate(output(run, "flops", "vgg16", "r3d_18", "--mode", "frame"), "flops.schema.json")
    validate(
        output(run, "flops", "resnet50", "--tiles", "whole", "--overlap", "32", "--flops-per-mac", "2"),
        "flops.schema.json",
    )
    rows = output(
        run, "flops", "lenet5", "r3d_18", "--device", "jetson-orin-nano", "--dtype", "fp16", "--per-layer"
    )
    validate(rows, "flops.schema.json")
    assert rows[1]["clip_frames"] == 16 and rows[0]["roofline"]


def test_flops_over_the_whole_zoo(run):
    validate(output(run, "flops"), "flops.schema.json")


def test_compare(run, workdir):
    validate(output(run, "compare", *MODELS), "compare.schema.json")
    rows = output(run, "compare", "tcn.yaml", "mlp.yaml", "lenet5", "--device", "cpu-8core-avx2")
    validate(rows, "compare.schema.json")
    assert rows[1]["no_throughput"] and rows[1]["max_fps"] is None


def test_list_and_devices(run):
    validate(output(run, "list"), "list.schema.json")
    validate(output(run, "devices"), "devices.schema.json")


BUDGETS = """\
[[budget]]
model = "mobilenet_v2"
dtype = "int8"
max_params = "4M"
max_macs_per_second = "10T"
min_receptive_field = 200

[[budget]]
model = "r3d_18"
mode = "frame"
max_macs_per_frame = "1T"
max_receptive_field = 100

[[budget]]
model = "lenet5"
max_macs = "1M"
"""


def test_check_and_snapshot(run, workdir):
    (workdir / "cnnstat.toml").write_text(BUDGETS, encoding="utf-8")
    doc = output(run, "check", status=1)  # r3d_18's field is wider than 100
    validate(doc, "check.schema.json")
    assert doc["passed"] is False
    assert run("snapshot").exit_code == 0
    base = json.loads((workdir / "cnnstat-baseline.json").read_text())
    validate(base, "baseline.schema.json")
    base["models"]["mobilenet_v2"]["params"] -= 1
    (workdir / "cnnstat-baseline.json").write_text(json.dumps(base))
    doc = output(run, "check", "--baseline", "cnnstat-baseline.json", status=1)
    validate(doc, "check.schema.json")
    assert any(g["metric"] == "params" and not g["ok"] for g in doc["budgets"][0]["baseline"])
    base["models"]["mobilenet_v2"]["weights"] = 0  # grown from nothing: infinitely, null in JSON
    (workdir / "cnnstat-baseline.json").write_text(json.dumps(base))
    res = run("check", "--baseline", "cnnstat-baseline.json", "--format", "json")
    assert "Infinity" not in res.stdout
    doc = json.loads(res.stdout)
    validate(doc, "check.schema.json")
    (weights,) = [g for g in doc["budgets"][0]["baseline"] if g["metric"] == "weights"]
    assert weights["growth_pct"] is None and weights["ok"] is False


# --- a PyTorch import: incomplete (torch.roll) -----------------------------------------------------


def test_an_incomplete_pytorch_import(run, workdir):
    pytest.importorskip("torch")
    args = ("rollnet.py:RollNet", "--input", "3x32x32")
    doc = output(run, "params", *args)
    validate(doc, "analysis.schema.json")
    assert doc["complete"] is False and doc["torch"]["unsupported"][0]["call"] == "torch.roll"
    assert doc["receptive_field"]["size"] is None and doc["layers"][1]["unknown"]
    validate(output(run, "memory", *args), "memory.schema.json")
    validate(output(run, "flops", *args, "--device", "jetson-orin-nano", "--per-layer"), "flops.schema.json")
    validate(
        output(run, "compare", "rollnet.py:RollNet", "resnet18", "--input", "3x32x32"), "compare.schema.json"
    )
    budget = '[[budget]]\nmodel = "rollnet:RollNet"\ninput = "3x32x32"\nmax_macs = "1M"\n'
    (workdir / "cnnstat.toml").write_text(budget + "min_receptive_field = 3\n", encoding="utf-8")
    doc = output(run, "check", status=1)  # a lower bound and an unknown field fail their limits
    validate(doc, "check.schema.json")
    assert [c["ok"] for c in doc["budgets"][0]["checks"]] == [False, False]


def test_verify(run):
    pytest.importorskip("torch")
    pytest.importorskip("fvcore")
    validate(output(run, "verify", "lenet5"), "verify.schema.json")
