"""Output formats through one registry: JUnit XML for CI, markdown for PR comments, the HTML
page as one of the formats, and the compare gate on real runs of real regressions."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from fixtures import FIXTURES
from fixtures.reports import make_report
from gradcheck import render
from gradcheck.cli import main

ZOO = str(FIXTURES / "zoo.py")
FAILURES = str(FIXTURES / "zoo_failures.py")


# ------------------------------------------------------------------ the compare gate
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Reports of real runs: the healthy baseline and three ways a layer stops training."""
    folder = tmp_path_factory.mktemp("runs")
    (folder / "none.cfg").write_text("[gradcheck]\n")
    out = {}
    for name, spec in (
        ("healthy", f"{ZOO}:healthy"),
        ("frozen", f"{FAILURES}:frozen_layer"),
        ("declared", f"{FAILURES}:frozen_layer_declared"),
        ("optimizer", f"{ZOO}:not_in_optimizer"),
        ("still", f"{FAILURES}:no_decay_updates"),
    ):
        out[name] = folder / f"{name}.json"
        res = CliRunner().invoke(
            main,
            [
                "run",
                "--model",
                spec,
                "--steps",
                "2",
                "--config",
                str(folder / "none.cfg"),
                "-o",
                str(out[name]),
                "-q",
            ],
        )
        assert out[name].exists(), res.output
    return out


@pytest.mark.parametrize(
    "after,code,kind",
    [
        ("frozen", 1, "frozen_undeclared"),
        ("optimizer", 1, "left_optimizer"),
        ("still", 1, "no_longer_updated"),
        ("declared", 0, "status"),
    ],
)
def test_compare_gate_on_real_runs(cli, runs, after, code, kind):
    res = cli("compare", str(runs["healthy"]), str(runs[after]), "--format", "json")
    assert res.exit_code == code, res.output
    data = json.loads(res.stdout)
    kinds = {(c["name"], c["kind"]) for c in data["regressions" if code else "changed"]}
    assert ("fc2.weight", kind) in kinds
    if code:
        assert (
            cli("compare", str(runs["healthy"]), str(runs[after]), "--allow", "fc2.*").exit_code
            == 0
        )


# ------------------------------------------------------------------ JUnit
def _junit(text: str) -> ET.Element:
    root = ET.fromstring(text)
    assert root.tag == "testsuites"
    return root


def test_junit_report_one_case_per_parameter(cli):
    res = cli("run", "--model", f"{ZOO}:unused", "--format", "junit")
    assert res.exit_code == 1
    root = _junit(res.stdout)
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "used.weight",
        "used.bias",
        "unused.weight",
        "unused.bias",
    ]
    failed = [c for c in cases if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["unused.weight", "unused.bias"]
    assert failed[0].get("classname") == "unused"
    assert failed[0].find("failure").get("type") == "missing"
    assert "not_called" in failed[0].find("failure").get("message")
    assert suite.get("failures") == root.get("failures") == "2"
    assert suite.get("tests") == "4" and suite.get("errors") == "0"


def test_junit_skips_frozen_and_warns_in_system_out():
    rep = make_report(**{"a.w": "covered", "b.w": "covered", "c.w": "frozen", "d.w": "zero"})
    rep.param("c.w").frozen_reason = "pretrained"
    rep.param("b.w").in_optimizer = False  # a warning under the default policy
    from gradcheck.policy import Policy
    from gradcheck.summary import finalize

    finalize(rep, Policy())
    root = _junit(render.render_text("junit", "report", rep))
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert root.get("failures") == "1" and root.get("skipped") == "1"  # zero fails by default
    assert cases["d.w"].find("failure") is not None
    assert "pretrained" in cases["c.w"].find("skipped").get("message")
    assert cases["b.w"].find("failure") is None
    assert "not_in_optimizer" in cases["b.w"].find("system-out").text


def test_junit_comparison_failures_match_regressions():
    before = make_report(**{"a.w": "covered", "b.w": "covered", "c.w": "covered"})
    after = make_report(**{"a.w": "missing", "b.w": "frozen", "c.w": "covered", "n.w": "zero"})
    from gradcheck.compare import compare

    cmp = compare(before, after, allow=("b.*",))
    root = _junit(render.render_text("junit", "comparison", cmp))
    failed = sorted(c.get("name") for c in root.iter("testcase") if c.find("failure") is not None)
    assert failed == sorted(c.name for c in cmp.regressions) == ["a.w", "n.w"]
    assert root.get("failures") == "2"


# ------------------------------------------------------------------ markdown for a PR
def test_markdown_fits_a_pull_request_comment():
    rep = make_report(**{f"layer{i}.w": "missing" for i in range(3000)})
    text = render.render_text("markdown", "report", rep)
    lines = text.splitlines()
    assert lines[0] == "<!-- gradcheck -->"  # a CI job finds and updates its comment
    assert lines[1].startswith("## gradcheck: ❌")
    assert lines[3].startswith("- **FAIL** missing: 3000 parameters")  # the why comes first
    assert "<details><summary>Coverage by module</summary>" in text
    assert "… and 2900 more" in text and len(text) < 65536  # GitHub's comment limit


def test_markdown_comparison_puts_regressions_first():
    from gradcheck.compare import compare

    before = make_report(**{"a.w": "covered", "b.w": "zero"})
    after = make_report(**{"a.w": "frozen", "b.w": "covered"})
    text = render.render_text("markdown", "comparison", compare(before, after))
    reg, other = text.index("### Regressions"), text.index("<details><summary>Other changes (1)")
    assert reg < other
    assert "| `a.w` | frozen_undeclared | covered | frozen |" in text[reg:other]
    assert "`b.w`" in text[other:]


# ------------------------------------------------------------------ the registry
def test_registry_drives_the_formats():
    assert set(render.FORMATS) >= {"table", "json", "markdown", "junit", "html"}
    assert render.FORMATS == render.formats()

    @render.register("upper")
    class Upper:
        def report(self, report, out, depth=2):
            out.write(str(report.config["model"]).upper())

    try:
        assert render.render_text("upper", "report", make_report(a="covered")) == "TOY"
        assert not render.can_compare("upper") and render.can_compare("junit")
    finally:
        render._REGISTRY.pop("upper")
    with pytest.raises(ValueError, match="unknown format 'nope'"):
        render.get_renderer("nope")


def test_html_is_a_format_and_the_html_file_goes_through_it(cli, tmp_path):
    page = tmp_path / "r.html"
    res = cli("run", "--model", f"{ZOO}:healthy", "--format", "html", "--html", str(page))
    assert res.exit_code == 0
    assert "<html" in res.stdout[:200] and res.stdout.rstrip().endswith("</html>")
    assert page.read_text() == res.stdout  # one renderer, two destinations
    a = tmp_path / "a.json"
    cli("run", "--model", f"{ZOO}:healthy", "-o", str(a), "-q")
    bad = cli("compare", str(a), str(a), "--format", "html")
    assert bad.exit_code == 2 and "--format html cannot show a comparison" in bad.stderr


def test_every_format_is_a_renderer_and_says_what_else_it_shows():
    """One registry, one interface: each format renders a report, and the other outputs it
    has are the Protocols of render.interface it satisfies."""
    from gradcheck.render import interface

    for fmt in render.formats():
        r = render.get_renderer(fmt)
        assert isinstance(r, interface.Renderer), fmt
        for what, proto in interface.OUTPUTS.items():
            assert render.can_render(fmt, what) == isinstance(r, proto), (fmt, what)
    assert render.renderers_for("comparison") == ("table", "json", "markdown", "junit")
    assert "junit" not in render.renderers_for("align")
    with pytest.raises(ValueError, match="unknown output"):
        render.can_render("table", "nope")


def test_a_format_that_cannot_show_an_alignment_is_refused_before_any_work(cli, tmp_path):
    bad = cli("align", "--port", "nowhere:port", "--original", "nowhere:orig", "--format", "junit")
    assert bad.exit_code == 2
    assert bad.stderr.strip().endswith(
        "--format junit cannot show an alignment; choose one of table, json, markdown, html"
    )
    assert len(bad.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------ informational findings
def _exploding_report(n: int = 200):
    """``n`` covered parameters, every other one with an exploding gradient: a finding the
    default policy neither fails nor warns on."""
    from gradcheck.policy import Policy
    from gradcheck.report import ParamRecord, Report
    from gradcheck.summary import finalize

    params = []
    for i in range(n):
        p = ParamRecord(
            name=f"blocks.{i}.fc.weight",
            shape=[4, 4],
            numel=16,
            status="covered",
            steps=["nonzero"],
            grad_norms=[1e6 * (i + 1) if i % 2 else 1.0],
            requires_grad=True,
            in_optimizer=True,
            module=f"blocks.{i}.fc",
        )
        p.flags = ["exploding"] if i % 2 else []
        params.append(p)
    rep = Report(
        config={"model": "deep", "steps": 1, "seed": 0},
        environment={},
        params=params,
        created="2026-01-01T00:00:00+00:00",
    )
    return finalize(rep, Policy())


def test_page_and_screen_agree_on_findings_that_do_not_fail():
    """A page that said "Nothing to report" above 100 unfolded ``exploding`` rows contradicted
    itself and the screen (which said nothing): now both sum them up in the same words (count,
    worst, where) before any list, and no list repeats them row by row."""
    rep = _exploding_report()
    assert rep.verdict.passed and not rep.verdict.warnings
    note = (
        "100 parameter(s) exploding (not a failure under this policy): worst "
        "blocks.199.fc.weight (gradient norm 2e+08); in blocks (100)"
    )
    out = {}
    for fmt in ("table", "markdown", "html"):
        buf = io.StringIO()
        render.get_renderer(fmt).report(rep, buf)
        out[fmt] = buf.getvalue()
    assert f"note  {note}" in out["table"]
    assert f"- note: {note}" in out["markdown"] and "Needs attention" not in out["markdown"]
    page = out["html"]
    assert f"<li>{note}</li>" in page and "Nothing to report" not in page
    assert page.index(note) < page.index("blocks.1.fc.weight</td>")  # the sum before the rows
    assert '<details class="cause" id="cause-other">' in page  # the rows start folded
