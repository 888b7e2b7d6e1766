"""Activation memory against hand calculations."""

import json

import pytest

from cnnstat.errors import CnnstatError
from cnnstat.memory import training_memory
from helpers import analyze_text

BRANCHY = """
input: [4, 8, 8]
layers:
  - conv: {out: 8, k: 3, p: 1}
  - relu
  - add:
      main: [conv: {out: 8, k: 3, p: 1}, bn]
      skip: identity
  - concat:
      x: identity
      y: [conv: {out: 4, k: 1}]
"""


def test_peak_of_a_residual_and_concat_graph_by_hand():
    # fp32 bytes: input 1024 (held by the caller throughout); conv1 2048; relu1 in place;
    # main conv 2048 -> 5120 live; main bn 2048 -> 7168 live (the peak; then the main conv is
    # freed); add writes over the bn output in place and frees relu1 -> 3072; the 1x1 conv
    # 1024 -> 4096; concat 3072 -> 7168 (equal, not above); then 4096.
    m = analyze_text(BRANCHY).memory()
    assert m["peak_activation_bytes"] == 7168
    assert m["peak_at"] == "add1.main.bn1"
    # every output, nothing shared: 1024 + 2048 x 5 + 1024 + 3072
    assert m["activation_bytes_sum"] == 15360
    # allocated storages (in-place outputs share): 1024 + 2048 x 3 + 1024 + 3072
    assert m["stored_activation_bytes"] == 11264


def test_batch_and_dtype_scale_memory():
    one = analyze_text(BRANCHY).memory()
    eight = analyze_text(BRANCHY, batch=8, dtype="fp16").memory()
    assert eight["peak_activation_bytes"] == 8 * one["peak_activation_bytes"] // 2
    assert eight["peak_at"] == one["peak_at"]


def test_views_never_allocate():
    m = analyze_text("input: [2, 4, 4]\nlayers:\n  - flatten\n  - dropout\n  - identity\n").memory()
    assert m["peak_activation_bytes"] == 2 * 16 * 4
    assert m["stored_activation_bytes"] == 2 * 16 * 4


def test_in_place_needs_the_last_reader():
    # relu cannot overwrite conv1's output while the add still needs it
    text = """
    input: [1, 4, 4]
    layers:
      - conv: {out: 2, k: 1, name: c}
      - add: {a: [relu], b: identity}
    """
    m = analyze_text(text).memory()
    assert m["stored_activation_bytes"] == (16 + 32 + 32) * 4  # input, conv, relu (not in place)


def test_training_memory_terms():
    t = training_memory(1000, 5000, "fp32", "adam")
    assert t == {
        "optimizer": "adam",
        "weights": 4000,
        "gradients": 4000,
        "optimizer_state": 8000,
        "activations": 5000,
        "total": 21000,
    }
    assert training_memory(1000, 0, "fp16", "momentum")["optimizer_state"] == 2000
    assert training_memory(1000, 0, "fp16", "sgd")["optimizer_state"] == 0
    with pytest.raises(CnnstatError, match="unknown optimizer"):
        training_memory(1, 1, "fp32", "lion")


def test_memory_cli_and_json_contract(run):
    doc = json.loads(run("memory", "vgg16", "--format", "json").stdout)
    m = doc["memory"]
    # input + two 64x224x224 maps alive at the second conv (the ReLUs run in place)
    assert m["peak_activation_bytes"] == (3 + 64 + 64) * 224 * 224 * 4
    assert m["peak_at"] == "stage1.unit2.conv1"
    assert m["training"]["total"] == 4 * m["param_bytes"] + m["stored_activation_bytes"]
    doc = json.loads(run("params", "vgg16", "--format", "json").stdout)
    assert doc["memory"]["peak_activation_bytes"] == m["peak_activation_bytes"]  # additive key
    assert "activation_bytes" in doc["layers"][0]
    out = run("memory", "resnet50", "--optimizer", "sgd").stdout
    assert "peak activations (inference)" in out and "training: sgd state" in out


def test_compare_cli(run):
    rows = json.loads(
        run(
            "compare",
            "resnet50",
            "mobilenet_v2",
            "--device",
            "jetson-orin-nano",
            "--dtype",
            "fp16",
            "--format",
            "json",
        ).stdout
    )
    assert [r["model"] for r in rows] == ["resnet50", "mobilenet_v2"]
    assert rows[0]["params"] == 25_557_032 and rows[0]["rf_size"] == [427, 427]
    assert rows[1]["max_fps"] > rows[0]["max_fps"]
    # the device is named in the note under the table (the header says "max fps")
    assert (
        "max fps: roofline bound on jetson-orin-nano"
        in run(
            "compare", "resnet50", "mobilenet_v2", "--device", "jetson-orin-nano", "--dtype", "fp16"
        ).stdout
    )
