"""flops, compare and check take PyTorch models too, with the figures of the matching spec."""

import json


def _rows(run, *args):
    res = run(*args, "--format", "json")
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def test_flops_torchvision_model_equals_the_spec(run):
    tv, spec = _rows(
        run, "flops", "torchvision:resnet50", "resnet50", "--device", "rtx4090", "--dtype", "fp16"
    )
    for key in (
        "tile",
        "tiles",
        "macs_per_image",
        "macs_per_frame",
        "macs_per_second",
        "activation_bytes_per_frame",
    ):
        assert tv[key] == spec[key], key
    assert tv["bound"]["latency_s"] == spec["bound"]["latency_s"]
    # frame mode: the module is traced at the frame's size, as PyTorch runs it
    tv, spec = _rows(run, "flops", "torchvision:resnet50", "resnet50", "--mode", "frame")
    assert tv["macs_per_frame"] == spec["macs_per_frame"] == 169_573_744_640


def test_compare_torchvision_model_equals_the_spec(run):
    tv, spec = _rows(run, "compare", "torchvision:mobilenet_v2", "mobilenet_v2")
    for key in ("params", "macs", "peak_activation_bytes", "rf_size", "macs_per_second"):
        assert tv[key] == spec[key], key


def test_budget_with_a_torchvision_model(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cnnstat.toml").write_text(
        '[[budget]]\nmodel = "torchvision:mobilenet_v2"\nmax_params = "4M"\nmax_macs_per_second = "10T"\n'
        '[[budget]]\nmodel = "torchvision:resnet50"\nmode = "frame"\nmax_macs_per_frame = "100G"\n'
    )
    res = run("check", "--format", "json")
    assert res.exit_code == 1
    mobile, resnet = json.loads(res.stdout)["budgets"]
    assert mobile["values"]["params"] == 3_504_872 and all(c["ok"] for c in mobile["checks"])
    assert resnet["values"]["macs_per_frame"] == 169_573_744_640 and not resnet["checks"][0]["ok"]
