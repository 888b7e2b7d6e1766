"""Shared test helpers (tests/ is on sys.path under pytest's default import mode)."""

import textwrap

from cnnstat.analysis import Analysis
from cnnstat.spec.build import build
from cnnstat.spec.model import parse_spec
from cnnstat.spec.yamlload import load_yaml


def spec_from_text(text: str, filename: str = "test.yaml"):
    return parse_spec(load_yaml(textwrap.dedent(text), filename), filename)


def analyze_text(text: str, input=None, **kw) -> Analysis:
    return Analysis(build(spec_from_text(text), input), **kw)


def gmac_digits(macs: int, published: float) -> float:
    """MACs in G, rounded to as many decimals as the published figure prints."""
    return round(macs / 1e9, len(str(published).split(".")[1]))


def assert_published(name: str, params: int, gmacs: float) -> None:
    """A zoo model's parameters equal a published count and its GMAC the printed digits."""
    from cnnstat.analysis import analyze

    t = analyze(name).totals()
    assert t["params"] == params
    assert gmac_digits(t["macs"], gmacs) == gmacs


def onnx_saver(tmp_path, prefix: str = "m"):
    """``save(model, name=None) -> path``: writes an onnx ModelProto under ``tmp_path`` as
    ``name`` or ``{prefix}N.onnx`` (N counting up), the ``save`` fixture of the ONNX tests."""
    import itertools

    import onnx

    counter = itertools.count()

    def save(m, name=None):
        path = tmp_path / (name or f"{prefix}{next(counter)}.onnx")
        onnx.save(m, str(path))
        return str(path)

    return save


def graph_of(layers: str, input="[3, 16, 16]", frame_input=None):
    """The graph of a spec of ``layers`` (one per line) at ``input``, or over a frame."""
    from cnnstat.spec.build import build

    text = f"input: {input}\nlayers:\n" + "".join(f"  - {line}\n" for line in layers.strip().splitlines())
    spec = spec_from_text(text)
    return build(spec, frame_input, frame=frame_input is not None)


def last(layer: str, input="[3, 16, 16]"):
    """The last layer of :func:`graph_of`."""
    return graph_of(layer, input).layers[-1]


def error_of(layers: str, input="[3, 16, 16]") -> str:
    """The SpecError message the spec of ``layers`` raises (fails the test when none)."""
    import pytest

    from cnnstat.errors import SpecError

    with pytest.raises(SpecError) as exc:
        graph_of(layers, input)
    return str(exc.value)
