"""``cnnstat report`` and ``cnnstat check --report``: the HTML page, read back.

The page is parsed with the standard library's HTML parser: its figures (``data-v``, the exact
values) must equal the analysis and, for AlexNet, a hand computation from the layer formulas;
one table row per layer; every user string shown as text; nothing fetched from anywhere. A real
browser (headless Chromium, Debian's ``chromium`` package, installed by .ci/run) opens it: no
console message, the plots drawn. Without chromium the browser tests skip, except under CI=true,
where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from cnnstat.analysis import analyze

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.parent = tag, dict(attrs), parent
        self.children, self.texts = [], []

    @property
    def text(self) -> str:
        return "".join(t if isinstance(t, str) else t.text for t in self.texts)

    def classes(self) -> set:
        return set((self.attrs.get("class") or "").split())

    def iter(self):
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag=None, cls=None, **attrs):
        return [
            n
            for n in self.iter()
            if (tag is None or n.tag == tag)
            and (cls is None or cls in n.classes())
            and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def find(self, tag=None, cls=None, **attrs):
        found = self.find_all(tag, cls, **attrs)
        assert found, f"no <{tag} class={cls} {attrs}>"
        return found[0]


class Tree(HTMLParser):
    """A minimal DOM: elements with attributes, children and text; start tags all recorded."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.root = self.node = Node("#document", {})
        self.tags = []  # (tag, attrs) of every start tag, in order
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))
        node = Node(tag, attrs, self.node)
        self.node.children.append(node)
        self.node.texts.append(node)
        if tag not in VOID:
            self.node = node

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, attrs))
        node = Node(tag, attrs, self.node)
        self.node.children.append(node)

    def handle_endtag(self, tag):
        node = self.node
        while node.parent is not None and node.tag != tag:
            node = node.parent
        if node.parent is not None:
            self.node = node.parent

    def handle_data(self, data):
        self.node.texts.append(data)


def value(cell: Node):
    text = cell.attrs["data-v"]
    return int(text) if re.fullmatch(r"-?\d+", text) else float(text)


def figures(row: Node) -> dict:
    """{data-k: exact value} of a table row's figure cells."""
    return {td.attrs["data-k"]: value(td) for td in row.find_all("td") if "data-v" in td.attrs}


def report(run, tmp_path, *args) -> tuple:
    out = tmp_path / "report.html"
    result = run("report", *args, "-o", out)
    assert result.exit_code == 0, result.output
    return out.read_text(encoding="utf-8"), result


# AlexNet (the zoo's, two groups as in the paper) by hand: (k*k*c_in/g*c_out + c_out, output
# positions x c_out x k*k*c_in/g MACs) per layer.
ALEXNET = [  # (weights, biases, macs)
    (11 * 11 * 3 * 96, 96, 55 * 55 * 96 * 11 * 11 * 3),
    (5 * 5 * 48 * 256, 256, 27 * 27 * 256 * 5 * 5 * 48),
    (3 * 3 * 256 * 384, 384, 13 * 13 * 384 * 3 * 3 * 256),
    (3 * 3 * 192 * 384, 384, 13 * 13 * 384 * 3 * 3 * 192),
    (3 * 3 * 192 * 256, 256, 13 * 13 * 256 * 3 * 3 * 192),
    (6 * 6 * 256 * 4096, 4096, 6 * 6 * 256 * 4096),
    (4096 * 4096, 4096, 4096 * 4096),
    (4096 * 1000, 1000, 4096 * 1000),
]


@pytest.fixture(scope="module")
def alexnet_page(tmp_path_factory):
    from click.testing import CliRunner

    from cnnstat.cli import cli

    out = tmp_path_factory.mktemp("report") / "alexnet.html"
    result = CliRunner().invoke(cli, ["report", "alexnet", "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out.read_text(encoding="utf-8"), result


def test_totals_equal_the_analysis_and_the_hand_computation(alexnet_page):
    text, _ = alexnet_page
    tree = Tree(text).root
    a = analyze("alexnet")
    total = figures(tree.find("table", cls="totals").find("tr", data_kind="total"))
    t = a.totals()
    for key in (
        "weights",
        "biases",
        "params",
        "buffers",
        "weight_bytes",
        "param_bytes",
        "macs",
        "activations",
    ):
        assert total[key] == t[key], key
    assert total["weights"] == sum(w for w, _, _ in ALEXNET)
    assert total["biases"] == sum(b for _, b, _ in ALEXNET)
    assert total["params"] == 60_965_224  # the sum above, as the lecture's table totals it
    assert total["macs"] == sum(m for _, _, m in ALEXNET) == 724_406_816
    assert total["weight_bytes"] == 4 * total["weights"]  # fp32
    by_kind = a.by_kind()
    for kind in ("conv", "fc", "other"):
        row = figures(tree.find("table", cls="totals").find("tr", data_kind=kind))
        assert row["params"] == by_kind[kind]["params"] and row["macs"] == by_kind[kind]["macs"]
    assert figures(tree.find("table", cls="totals").find("tr", data_kind="conv"))["params"] == sum(
        w + b for w, b, _ in ALEXNET[:5]
    )
    # the exact totals and the conventions are written out
    assert "Total params: 60,965,224; total MACs: 724,406,816." in text
    assert (
        "1 MAC = one multiply-accumulate" in text and "bias adds" in text and "10<sup>6</sup> bytes" in text
    )


def test_one_row_per_layer_with_its_figures(alexnet_page):
    tree = Tree(alexnet_page[0]).root
    a = analyze("alexnet")
    rows = tree.find("table", cls="layers").find_all("tr", cls="layer")
    assert len(rows) == len(a.layers) == 24
    for row, layer in zip(rows, a.layers):
        cells = row.find_all("td")
        assert cells[1].text == layer.name and cells[2].text == layer.op
        got = figures(row)
        c = a.counts(layer)
        assert {k: got[k] for k in ("params", "weights", "biases", "macs", "activations")} == {
            k: c[k] for k in ("params", "weights", "biases", "macs", "activations")
        }
    convs = [figures(r) for r in rows if r.find_all("td")[2].text in ("conv", "fc")]
    assert [(f["weights"], f["biases"], f["macs"]) for f in convs] == ALEXNET
    assert rows[0].find_all("td")[4].text == "96x55x55"  # (227 - 11) / 4 + 1 = 55
    assert rows[0].find_all("td")[-2].text == "11x11"  # conv1's receptive field


def test_memory_rf_and_throughput_sections(alexnet_page):
    from cnnstat.hardware import PRESETS

    tree = Tree(alexnet_page[0]).root
    a = analyze("alexnet")
    m = a.memory()
    mem = {
        td.attrs["data-k"]: value(td)
        for td in tree.find("table", cls="memory").find_all("td")
        if "data-v" in td.attrs
    }
    assert mem["peak_activation_bytes"] == m["peak_activation_bytes"]
    assert (
        mem["total"]
        == m["training"]["total"]
        == 4 * (2 * 60_965_224 + 2 * 60_965_224) + m["stored_activation_bytes"]
    )
    dtypes = {
        r.attrs["data-dtype"]: figures(r)
        for r in tree.find("table", cls="dtypes").find_all("tr")
        if "data-dtype" in r.attrs
    }
    weights = sum(w for w, _, _ in ALEXNET)
    assert [dtypes[d]["weight_bytes"] for d in ("fp32", "fp16", "bf16", "int8")] == [
        4 * weights,
        2 * weights,
        2 * weights,
        weights,
    ]
    assert tree.find("p", cls="rf").attrs["data-size"] == "195x195"
    # 1080p30 in 227x227 tiles: frame area / tile area x MACs per image x 30
    need = figures(tree.find("table", cls="need").find("tbody").find("tr"))
    assert need["macs_per_second"] == pytest.approx(724_406_816 * 1920 * 1080 / 227**2 * 30)
    shown = [
        r.attrs["data-device"]
        for r in tree.find("table", cls="devices").find_all("tr")
        if "data-device" in r.attrs
    ]
    assert shown == list(PRESETS)


def test_user_strings_are_text(run, tmp_path):
    """A spec is untrusted: names that are markup render as text, never as elements."""
    spec = tmp_path / "evil.yaml"
    spec.write_text(
        "cnnstat: 1\n"
        'name: "<script>alert(1)</script>"\n'
        'description: "</title><img src=x onerror=alert(2)> & \\"q\\""\n'
        "input: [1, 32, 32]\n"
        "layers:\n"
        "  - conv: {name: \"<script>alert('x')</script>\", out: 6, k: 5}\n"
        '  - conv: {name: "a\\u202eb\\x1b[31m", out: 4, k: 3}\n'
        "  - flatten\n"
        '  - fc: {name: "</td><td onclick=x>", out: 10}\n',
        encoding="utf-8",
    )
    text, result = report(run, tmp_path, spec, "--no-plots")
    tree = Tree(text)
    tags = {tag for tag, _ in tree.tags}
    assert not tags & {"script", "img", "iframe", "object", "embed", "link"}
    assert not any(k.startswith("on") for _, attrs in tree.tags for k, _ in attrs)
    root = tree.root
    assert root.find("h1").text == "<script>alert(1)</script>"
    assert root.find("title").text == "cnnstat report: <script>alert(1)</script>"
    names = [r.find_all("td")[1].text for r in root.find_all("tr", cls="layer")]
    assert names == ["<script>alert('x')</script>", "a\\u202eb\\x1b[31m", "flatten1", "</td><td onclick=x>"]
    assert "\u202e" not in text and "\x1b" not in text  # shown as escapes, never obeyed
    assert "\x1b" not in result.output


def test_nothing_is_fetched(alexnet_page):
    text, _ = alexnet_page
    tree = Tree(text)
    assert "http" not in text  # no address at all: the SVG namespaces are dropped too
    for tag, attrs in tree.tags:
        assert tag not in ("script", "link", "img", "iframe", "object", "embed", "base")
        for key, val in attrs:
            if key in ("src", "href", "xlink:href", "action", "data", "poster"):
                assert val.startswith("#"), (tag, key, val)
    assert not re.search(r"url\((?!#)", text)  # CSS and SVG reference nothing but their own ids
    assert "@import" not in text and "@font-face" not in text


def test_incomplete_model_says_so(run, tmp_path, monkeypatch):
    """A PyTorch model with a call cnnstat has no op for: the page says so before any figure
    and marks the MACs and activation figures as lower bounds."""
    pytest.importorskip("torch")
    (tmp_path / "rollnet.py").write_text(
        "import torch\nfrom torch import nn\n\n\nclass RollNet(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.conv = nn.Conv2d(3, 16, 3, padding=1)\n        self.head = nn.Linear(16, 10)\n\n"
        "    def forward(self, x):\n        x = torch.roll(self.conv(x), 1, dims=2)\n"
        "        return self.head(x.mean((2, 3)))\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    text, _ = report(run, tmp_path, "rollnet:RollNet", "--input", "3x32x32", "--no-plots")
    root = Tree(text).root
    warning = root.find("div", cls="incomplete")
    assert "torch.roll" in warning.text and "lower bounds" in warning.text
    assert text.index("incomplete") < text.index('id="totals"')
    total = root.find("table", cls="totals").find("tr", data_kind="total")
    macs = [td for td in total.find_all("td") if td.attrs.get("data-k") == "macs"][0]
    assert macs.attrs.get("data-bound") == "lower" and macs.text.startswith("≥")
    # the known part: conv 3x3x3x16 over 32x32 + fc 16x10 (torch.roll's cost unknown)
    assert value(macs) == 32 * 32 * 16 * 27 + 160
    assert value([td for td in total.find_all("td") if td.attrs.get("data-k") == "params"][0]) == 448 + 170
    roll = [r for r in root.find_all("tr", cls="layer") if r.find_all("td")[1].text == "roll"][0]
    assert "unknown" in [td for td in roll.find_all("td") if td.attrs.get("data-k") == "macs"][0].classes()
    assert "Unknown" in root.find("section", id="rf").text
    for row in root.find("table", cls="devices").find_all("tr"):
        if "data-device" in row.attrs:
            assert row.find_all("td")[4].text.startswith("≤")  # fps an upper bound


def test_written_atomically_and_bad_targets(run, tmp_path, monkeypatch):
    out = tmp_path / "r.html"
    out.write_text("old page", encoding="utf-8")
    result = run("report", "lenet5", "-o", out, "--no-plots")
    assert result.exit_code == 0 and out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(os.listdir(tmp_path)) == ["r.html"]  # no temporary file left
    # a write that fails leaves the old page whole, and no temporary file
    out.write_text("old page", encoding="utf-8")

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    result = run("report", "lenet5", "-o", out, "--no-plots")
    assert result.exit_code == 2 and "No space left on device" in result.output
    assert out.read_text(encoding="utf-8") == "old page" and sorted(os.listdir(tmp_path)) == ["r.html"]
    monkeypatch.undo()
    for target, message in (
        (tmp_path / "missing" / "r.html", "no such directory"),
        (tmp_path, "a directory"),
    ):
        result = run("report", "lenet5", "-o", target)
        assert result.exit_code == 2 and message in result.output
        assert result.output.count("error:") == 1


def test_plots_inline_svg(alexnet_page):
    """Four plots (MACs and parameters per layer, receptive field, the roofline on the first
    device), each an inline <svg> with its ids prefixed apart."""
    text, result = alexnet_page
    root = Tree(text).root
    figs = root.find("section", id="plots").find_all("figure")
    assert len(figs) == 4 and all(len(f.find_all("svg")) == 1 for f in figs)
    assert len(root.find_all("svg")) == 4
    assert "4 plots" in result.output
    ids = [n.attrs["id"] for n in root.iter() if "id" in n.attrs]
    assert len(ids) == len(set(ids))


def test_without_matplotlib_the_page_says_how(run, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    text, result = report(run, tmp_path, "lenet5")
    root = Tree(text).root
    assert "pip install 'cnnstat[plot]'" in root.find("section", id="plots").text
    assert not root.find_all("svg") and "plots missing" in result.output
    assert len(root.find_all("tr", cls="layer")) == len(analyze("lenet5").layers)


# --- cnnstat check --report --------------------------------------------------------------------

BUDGETS = """
[[budget]]
model = "mobilenet_v2"
dtype = "int8"
max_params = "4M"
max_macs_per_second = "10T"
min_receptive_field = 200

[[budget]]
model = "vgg16"
name = "vgg16 <b>1080p</b>"
max_macs_per_second = "10T"
"""


def test_check_report_fails_and_passes(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cnnstat.toml").write_text(BUDGETS, encoding="utf-8")
    result = run("check", "--report", "out.html")
    assert result.exit_code == 1  # vgg16 is over: the exit status is check's own
    root = Tree((tmp_path / "out.html").read_text(encoding="utf-8")).root
    assert root.find("h1").find("span", cls="badge").text == "FAIL"
    checks = root.find("table", cls="checks").find_all("tr", cls="check")
    assert [r.attrs["data-status"] for r in checks] == ["pass", "pass", "pass", "fail"]
    assert checks[-1].find_all("td")[0].text == "vgg16 <b>1080p</b>"  # a name is text
    assert "cnnstat check: 3 passed, 1 failed" in root.find("p", cls="summary").text
    sections = root.find_all("section", cls="model")
    assert [s.find("h2").text for s in sections] == ["mobilenet_v2", "vgg16 <b>1080p</b>"]
    mobile = figures(sections[0].find("table", cls="totals").find("tr", data_kind="total"))
    assert mobile["params"] == 3_504_872  # torchvision's MobileNet_V2_Weights num_params
    assert mobile["weight_bytes"] == mobile["weights"]  # int8: one byte a weight
    vgg = figures(sections[1].find("table", cls="need").find("tbody").find("tr"))
    assert vgg["macs_per_second"] == pytest.approx(15_470_264_320 * 1920 * 1080 / 224**2 * 30)
    layers = sections[1].find("table", cls="layers").find_all("tr", cls="layer")
    assert len(layers) == len(analyze("vgg16").layers)
    for link in root.find("table", cls="checks").find_all("a"):
        assert root.find_all(id=link.attrs["href"][1:])  # every link lands in the page

    (tmp_path / "cnnstat.toml").write_text(BUDGETS.split('[[budget]]\nmodel = "vgg16"')[0], encoding="utf-8")
    result = run("check", "--report", "out.html", "--format", "json")
    assert result.exit_code == 0
    root = Tree((tmp_path / "out.html").read_text(encoding="utf-8")).root
    assert root.find("h1").find("span", cls="badge").text == "PASS"


def test_check_report_bad_input_is_exit_2_and_no_page(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cnnstat.toml").write_text(
        '[[budget]]\nmodel = "nosuchnet"\nmax_params = 1\n', encoding="utf-8"
    )
    result = run("check", "--report", "out.html")
    assert result.exit_code == 2 and not (tmp_path / "out.html").exists()
    (tmp_path / "cnnstat.toml").write_text(BUDGETS, encoding="utf-8")
    result = run("check", "--report", tmp_path / "missing" / "out.html")
    assert result.exit_code == 2 and "no such directory" in result.output
    assert "[1/2]" not in result.output  # refused before any model is measured


# --- in a real browser --------------------------------------------------------------------------


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is not installed: CI must run the browser tests (.ci/run installs it)")
    pytest.skip("chromium is not installed (apt-get install chromium); CI runs these tests")


def browse(page, tmp_path, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def console(stderr: str) -> list:
    return [line for line in stderr.splitlines() if re.search(r"CONSOLE[(:]", line)]


def test_browser_renders_without_console_messages(alexnet_page, tmp_path):
    control = tmp_path / "control.html"
    control.write_text(
        '<!DOCTYPE html><title>t</title><script>console.error("seen")</script>', encoding="utf-8"
    )
    assert any('"seen"' in line for line in console(browse(control, tmp_path, "--dump-dom").stderr))

    page = tmp_path / "alexnet.html"
    page.write_text(alexnet_page[0], encoding="utf-8")
    done = browse(page, tmp_path, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    assert console(done.stderr) == []
    dom = Tree(done.stdout).root  # the document as the browser built it
    assert len(dom.find_all("svg")) == 4
    assert len(dom.find_all("tr", cls="layer")) == 24


def _ink(png) -> int:
    """Pixels that are not (nearly) white in a screenshot."""
    from PIL import Image

    image = Image.open(png).convert("L")
    return sum(count for level, count in enumerate(image.histogram()) if level < 235)


def test_browser_draws_the_plots(run, tmp_path):
    chromium()
    with_plots, _ = report(run, tmp_path, "lenet5")
    (tmp_path / "plots.html").write_text(with_plots, encoding="utf-8")
    without, _ = report(run, tmp_path, "lenet5", "--no-plots")
    (tmp_path / "tables.html").write_text(without, encoding="utf-8")
    ink = {}
    for name in ("plots", "tables"):
        shot = tmp_path / f"{name}.png"
        done = browse(tmp_path / f"{name}.html", tmp_path, f"--screenshot={shot}", "--window-size=1280,9000")
        assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
        ink[name] = _ink(shot)
    assert ink["tables"] > 50_000  # the page is not blank
    assert ink["plots"] > ink["tables"] + 4 * 20_000  # four drawn plots, not empty boxes


def test_a_model_without_image_input(run, tmp_path):
    """An MLP: no receptive field (and no plot of one), no frame to tile; to stdout with -o -."""
    spec = tmp_path / "mlp.yaml"
    spec.write_text(
        "cnnstat: 1\nname: mlp\ninput: [10]\nlayers:\n  - fc: {out: 8}\n  - relu\n  - fc: {out: 4}\n",
        encoding="utf-8",
    )
    result = run("report", spec, "-o", "-")
    assert result.exit_code == 0
    root = Tree(result.stdout).root
    assert "no spatial receptive field" in root.find("section", id="rf").text
    assert "no [C, H, W] input" in root.find("section", id="throughput").text
    assert [f.attrs["id"] for f in root.find_all("figure")] == ["plot-macs", "plot-params", "plot-roofline-1"]
    total = figures(root.find("table", cls="totals").find("tr", data_kind="total"))
    assert (total["params"], total["macs"]) == (10 * 8 + 8 + 8 * 4 + 4, 10 * 8 + 8 * 4)


def test_check_report_frame_mode_and_baseline_rows(run, tmp_path, monkeypatch):
    """A frame-mode budget's section shows the check's per-second figure; the baseline's rows
    (a model not in it) are on the page."""
    import json

    monkeypatch.chdir(tmp_path)
    (tmp_path / "cnnstat.toml").write_text(
        '[[budget]]\nmodel = "lenet5"\nmode = "frame"\nresolution = "64x48"\nmax_macs_per_second = "1T"\n',
        encoding="utf-8",
    )
    assert run("snapshot").exit_code == 0
    (tmp_path / "cnnstat.toml").write_text(
        (tmp_path / "cnnstat.toml").read_text(encoding="utf-8")
        + '\n[[budget]]\nmodel = "alexnet"\nmax_params = "100M"\n',
        encoding="utf-8",
    )
    result = run("check", "--baseline", "cnnstat-baseline.json", "--report", "out.html", "--format", "json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    root = Tree((tmp_path / "out.html").read_text(encoding="utf-8")).root
    lenet = root.find("section", cls="model")
    need = figures(lenet.find("table", cls="need").find("tbody").find("tr"))
    assert need["macs_per_second"] == doc["budgets"][0]["values"]["macs_per_second"]
    # by hand: over the 64x48 frame, c1 44x60x6 units of 5x5, c3 18x26x16 of 6x5x5, c5 5x9x120
    # of 16x5x5, f6 and the output as 1x1 convolutions at the 5x9 positions; 30 frames a second
    per_frame = 44 * 60 * 6 * 25 + 18 * 26 * 16 * 150 + 5 * 9 * 120 * 400 + 45 * 120 * 84 + 45 * 84 * 10
    assert need["macs_per_second"] == 30 * per_frame == 125_118_000
    assert "frame mode" in lenet.find("section", id="b1-throughput").text
    statuses = [r.attrs["data-status"] for r in root.find("table", cls="checks").find_all("tr", cls="check")]
    assert statuses == ["pass", "pass", "new"]
