"""``cnnstat check [PATH]``: evaluate model budgets; exit 1 when a limit is exceeded."""

from __future__ import annotations

import sys

import click

from cnnstat.cli.common import FiniteFloat, wide_option

FORMATS = ("table", "json", "junit", "github")


@click.command("check", short_help="Check models against budgets (limits) in CI; exit 1 on a failure.")
@click.argument("path", required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="table; json; junit (JUnit XML for CI test reports); github (GitHub Actions annotations).",
)
@wide_option
@click.option("--baseline", metavar="FILE", help="Fail when a metric grew over this snapshot.")
@click.option(
    "--max-growth",
    type=FiniteFloat(-100, 1e6),
    default=0.0,
    show_default=True,
    metavar="PCT",
    help="Growth over the baseline allowed, in percent.",
)
@click.option(
    "--report",
    "report_path",
    metavar="FILE",
    help="Also write one self-contained HTML page of every budget and model (a CI artifact).",
)
def command(path, fmt, baseline, max_growth, report_path):
    """Check every model in the budget file against its limits.

    PATH defaults to ./cnnstat.toml ([[budget]]), else ./pyproject.toml
    ([[tool.cnnstat.budget]]). Exit 0: all pass; 1: a limit (or the baseline) is exceeded;
    2: the budget file, a spec or an option is wrong.

    \b
    Example:
      cnnstat check
      cnnstat check budgets.toml --format github --baseline cnnstat-baseline.json
      cnnstat check --report budgets.html
    """
    from cnnstat import budget as B

    budgets = B.load(path)
    base = B.load_baseline(baseline) if baseline else None
    if report_path:
        from cnnstat.files import check_writable

        if report_path == "-":  # stdout carries the check's own table, JSON or annotations
            from cnnstat.errors import CnnstatError

            raise CnnstatError("--report needs a file: standard output carries the check's results")
        check_writable(report_path, "report")  # a report that cannot be written: exit 2 before measuring
    report = []
    for i, b in enumerate(budgets):
        _progress(i, len(budgets), b)
        try:
            values = B.measure(b)
        except Exception as exc:  # a model that does not load: located at its model line
            from cnnstat.errors import CnnstatError

            if not isinstance(exc, CnnstatError):
                raise
            raise _model_error(b, exc) from None
        entry = {
            "name": b.name,
            "model": b.model,
            "line": b.line,
            "settings": b.settings(),
            "values": values,
            "checks": B.check(b, values),
        }
        if base is not None:  # [] when the model is not in the baseline (reported, not a failure)
            entry["baseline"] = B.compare_baseline(b.name, values, base, max_growth)
        report.append(entry)
    failed = [e for e in report if not all(c["ok"] for c in e["checks"] + e.get("baseline", []))]
    doc = {"file": budgets[0].file, "passed": not failed, "budgets": report}
    page = None
    if report_path:  # built before --format json turns infinite growths into null
        from cnnstat.cli.report import check_report

        page = check_report(doc, budgets)
    {"json": _json, "junit": _junit, "github": _github, "table": _table}[fmt](doc)
    if page is not None:
        from cnnstat.cli.report import write_report

        write_report(report_path, page)
        click.echo(f"cnnstat check: wrote {report_path}", err=True)
    if failed:
        sys.exit(1)


def _model_error(b, exc):
    """The error of a budget's model that does not load, located at its model line: one
    ``error:`` (a spec's own location follows, relative to the budget file's directory when
    inside it), and where an input has a batch in front, where the batch goes."""
    import os
    import re

    from cnnstat.errors import SpecError

    notes = getattr(exc, "notes", [])
    if isinstance(exc, SpecError) and exc.loc:
        path = exc.loc.file
        if os.path.isabs(path) and path.startswith(os.getcwd() + os.sep):
            path = os.path.relpath(path)
        text = f"{path}:{exc.loc.line}:{exc.loc.col}: {exc.message}"
    else:
        text = getattr(exc, "message", str(exc))
    m = re.search(r"has (\d+) dimensions; .* takes (\d+) ", text)
    if b.input and m and int(m.group(1)) == int(m.group(2)) + 1:
        sample = "x".join(map(str, b.input[1:]))
        text += f'. input is one sample; the batch is batch: input = "{sample}", batch = {b.input[0]}'
    from cnnstat.errors import brief

    return SpecError(f"budget model {brief(b.model)}: {text}", b.loc("model"), notes)


def summary(doc) -> str:
    """The verdict line the table and the github format end with: checks passed and failed,
    a check being a limit or, with --baseline, a metric compared with the baseline (as the
    JUnit test cases). Failed > 0 exactly when the exit status is 1."""
    limits = [c["ok"] for e in doc["budgets"] for c in e["checks"]]
    base = [g["ok"] for e in doc["budgets"] for g in e.get("baseline", [])]
    failed, grew = limits.count(False) + base.count(False), base.count(False)
    text = f"cnnstat check: {len(limits) + len(base) - failed} passed, {failed} failed"
    missing = len(not_in_baseline(doc))
    new = f"; {missing} model(s) not in the baseline, not compared" if missing else ""
    if not failed:
        return text + ": all budgets pass" + new
    return text + (f" ({grew} grew over the baseline)" if grew else "") + new


def not_in_baseline(doc) -> list:
    """The budgets that --baseline has no entry for (a new model: 'cnnstat snapshot' records it)."""
    return [e for e in doc["budgets"] if "baseline" in e and not e["baseline"]]


def _progress(i, n, b):
    if n > 1 or ":" in b.model:
        from cnnstat.render import MAX_SHOWN, visible

        click.echo(f"cnnstat check: [{i + 1}/{n}] {visible(b.name, MAX_SHOWN)}", err=True)


def _fmt(metric: str, value) -> str:
    from cnnstat.units import human_bytes, si

    if value is None:
        return "unknown"
    if metric.endswith("bytes"):
        return human_bytes(value)
    if metric == "receptive_field":
        return f"{value:g} px"
    return si(value)


def _describe(c) -> str:
    value, limit = _fmt(c["metric"], c["value"]), _fmt(c["metric"], c["limit"])
    sense = "limit" if c["limit_key"].startswith("max_") else "minimum"
    pct = c["headroom_pct"]
    if c["value"] is None:  # a receptive field cnnstat cannot follow
        return f"{c['metric']} {c['unknown']}: cannot check the {sense} {limit}"
    if c.get("lower_bound"):
        if c["value"] > c["limit"]:
            return (
                f"{c['metric']} ≥ {value} exceeds the limit {limit} by at least {abs(pct):.1f}% "
                f"(a lower bound: {c['unknown']})"
            )
        if c["ok"]:
            return f"{c['metric']} ≥ {value}: its known part is within the limit {limit} ({c['unknown']})"
        return (
            f"{c['metric']} ≥ {value} is a lower bound ({c['unknown']}): nothing shows it is within "
            f"the limit {limit} (allow_lower_bounds = true compares the known part)"
        )
    if c["ok"]:
        margin = f" ({pct:.1f}% headroom)" if pct is not None else ""
        return f"{c['metric']} {value} within the {sense} {limit}{margin}"
    margin = f" by {abs(pct):.1f}%" if pct is not None else ""
    verb = "exceeds" if sense == "limit" else "falls short of"
    return f"{c['metric']} {value} {verb} the {sense} {limit}{margin}"


def _json(doc):
    """The report as JSON; a growth from a baseline of 0 (infinite) is null, JSON having no
    infinity."""
    import math

    from cnnstat.render import print_json

    for e in doc["budgets"]:
        for g in e.get("baseline", []):
            if not math.isfinite(g["growth_pct"]):
                g["growth_pct"] = None
    print_json(doc)


def _github(doc):
    """GitHub Actions workflow commands: one annotation per failed limit, at its line."""
    for e in doc["budgets"]:
        for c in e["checks"]:
            if not c["ok"]:
                _annotate("error", doc["file"], c["line"], f"{_name(e)}: {_describe(c)}")
        for g in e.get("baseline", []):
            if not g["ok"]:
                _annotate(
                    "error",
                    doc["file"],
                    e["line"],
                    f"{_name(e)}: {g['metric']} grew {_pct(g)} over the baseline "
                    f"({g['baseline']} -> {g['value']})",
                )
    for e in not_in_baseline(doc):
        _annotate(
            "warning",
            doc["file"],
            e["line"],
            f"{_name(e)}: not in the baseline, not compared (cnnstat snapshot records it)",
        )
    click.echo(summary(doc))


def _name(e) -> str:
    """A budget's name for a message: abbreviated (a name may be megabytes long)."""
    from cnnstat.render import MAX_SHOWN

    name = e["name"]
    return name if len(name) <= MAX_SHOWN else name[: MAX_SHOWN - 1] + "\u2026"


def _pct(g, sign: bool = False) -> str:
    """A growth over the baseline; from a baseline of 0 it has no percentage ('(from 0)')."""
    if g["growth_pct"] is None or g["growth_pct"] == float("inf"):
        return "(from 0)"
    return f"{g['growth_pct']:+.2f}%" if sign else f"{g['growth_pct']:.2f}%"


def _annotate(level: str, file: str, line: int, message: str) -> None:
    """One workflow command, escaped as GitHub documents: %, CR, LF in the message; also
    ':' and ',' in properties. A name cannot end the command and forge another."""
    from cnnstat.render import github_data, github_property

    click.echo(f"::{level} file={github_property(file)},line={line}::{github_data(message)}")


def _junit(doc):
    """JUnit XML: a test suite per budget file, a test case per model and limit."""
    from xml.etree import ElementTree as ET

    from cnnstat.render import xml_text

    cases = []
    for e in doc["budgets"]:
        for c in e["checks"]:
            cases.append((_name(e), c["limit_key"], c["ok"], _describe(c)))
        for g in e.get("baseline", []):
            cases.append(
                (
                    _name(e),
                    f"baseline.{g['metric']}",
                    g["ok"],
                    f"{g['metric']} grew {_pct(g)} ({g['baseline']} -> {g['value']})",
                )
            )
    skipped = [
        (_name(e), "baseline", None, "not in the baseline, not compared") for e in not_in_baseline(doc)
    ]
    failures = sum(not ok for *_, ok, _ in cases)
    root = ET.Element("testsuites", tests=str(len(cases)), failures=str(failures))
    suite = ET.SubElement(
        root,
        "testsuite",
        name=xml_text(f"cnnstat budgets ({doc['file']})"),
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
    )
    if skipped:
        suite.set("skipped", str(len(skipped)))
        suite.set("tests", str(len(cases) + len(skipped)))
        root.set("tests", str(len(cases) + len(skipped)))
    for model, limit, ok, text in cases + skipped:
        model, text = xml_text(model), xml_text(text)
        case = ET.SubElement(suite, "testcase", classname=model, name=limit)
        if ok is None:
            ET.SubElement(case, "skipped", message=text)
        elif not ok:
            ET.SubElement(case, "failure", message=text).text = text
        else:
            ET.SubElement(case, "system-out").text = text
    click.echo(ET.tostring(root, encoding="unicode"))


def table_rows(doc) -> tuple:
    """(rows, notes) of the check table: one row per limit, per baseline metric that grew or
    shrank, and per model not in the baseline (also the HTML report's rows: ``name`` and
    ``message`` are for it)."""
    rows, notes = [], []
    for e in doc["budgets"]:
        for c in e["checks"]:
            pct = c["headroom_pct"]
            past = "over" if c["limit_key"].startswith("max_") else "under"
            margin = "" if pct is None else (f"{pct:.1f}% headroom" if c["ok"] else f"{-pct:.1f}% {past}")
            value = _fmt(c["metric"], c["value"])
            if c.get("lower_bound"):
                value = f"≥ {value}"
                over = c["value"] > c["limit"]
                margin = f"≥ {-pct:.1f}% over" if over else "lower bound: known part within"
            elif c["value"] is None:
                margin = "unknown"
            if c.get("unknown") and c["unknown"] not in notes:
                notes.append(c["unknown"])
            rows.append(
                {
                    "model": _name(e),
                    "metric": c["limit_key"],
                    "limit": _fmt(c["metric"], c["limit"]),
                    "value": value,
                    "margin": margin,
                    "status": "pass" if c["ok"] else "FAIL",
                    "name": e["name"],
                    "message": _describe(c),
                }
            )
        for g in e.get("baseline", []):
            if not g["ok"] or g["growth_pct"] < 0:
                old, new = _fmt(g["metric"], g["baseline"]), _fmt(g["metric"], g["value"])
                if old == new:  # rounded alike: the exact figures show the change
                    old, new = f"{g['baseline']:,}", f"{g['value']:,}"
                rows.append(
                    {
                        "model": _name(e),
                        "metric": f"baseline {g['metric']}",
                        "limit": old,
                        "value": new,
                        "margin": _pct(g, sign=True),
                        "status": "FAIL" if not g["ok"] else "shrank",
                        "name": e["name"],
                        "message": f"{g['metric']}: {g['baseline']:,} in the baseline, {g['value']:,} now",
                    }
                )
        if "baseline" in e and not e["baseline"]:
            rows.append(
                {
                    "model": _name(e),
                    "metric": "baseline",
                    "limit": "",
                    "value": "",
                    "margin": "not in the baseline",
                    "status": "new",
                    "name": e["name"],
                    "message": "not in the baseline, not compared (cnnstat snapshot records it)",
                }
            )
    return rows, notes


def _table(doc):
    from cnnstat.render import Column, Table, render

    rows, notes = table_rows(doc)
    table = Table(
        title=f"cnnstat check: {doc['file']}",
        columns=[
            Column("model", "model", numeric=False, wrap=True),
            Column("limit", "metric", numeric=False, wrap=True),
            Column("limit value", "limit"),
            Column("value", "value"),
            Column("margin", "margin", numeric=False, wrap=True),
            Column("", "status", numeric=False),
        ],
        rows=rows,
    )
    if notes:
        table.notes.append(
            "≥: a lower bound, which fails a max_ limit unless the budget sets allow_lower_bounds; "
            "unknown: cannot be checked. " + "; ".join(notes)
        )
    table.notes.append(summary(doc))
    render(table, "table")
