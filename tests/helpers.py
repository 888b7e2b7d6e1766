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
