"""The self-contained HTML page (gradcheck.render.html): content, escaping, no external
assets, robustness to odd numbers, atomic writes, size at Gold-YOLO scale, and the CLI path."""

from __future__ import annotations

import os
import re

import pytest

from fixtures import ROOT
from fixtures.reports import EVIL, big_report, param, sample_report, tree_of
from gradcheck.policy import Policy
from gradcheck.render.html import render_html, write_html
from gradcheck.report import (
    LossTermRecord,
    Report,
    load_report,
    save_report,
)
from gradcheck.summary import finalize


@pytest.fixture(scope="module")
def report():
    return sample_report()


@pytest.fixture(scope="module")
def page(report):
    return render_html(report)


def test_page_shows_every_parameter_verdict_and_config(report, page):
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for p in report.params:
        if p.name != EVIL:
            assert p.name in page
    assert report.verdict.result == "fail"
    assert "FAIL" in page
    for reason in report.verdict.reasons:  # missing / nonfinite fail by default
        assert reason.split(":")[0] in page
    assert "loss term &#x27;dead_term&#x27; reaches no parameter" in page  # a verdict warning
    for chip in ("320", "seed</span> 7", "batch</span> 2", "device</span> cpu"):
        assert chip in page
    # counts by status (cards) and the module tree with covered/trainable per module
    for status in ("covered", "zero", "missing", "nonfinite", "frozen", "buffers"):
        assert f"<span>{status}</span>" in page
    tree = tree_of(page)  # the tree is data that report.js builds from
    assert tree["roots"] == [0] and tree["m"][0][0] == "" and tree["m"][0][9] == 1  # root open
    backbone = next(m for m in report.modules if m.module == "backbone")
    assert [backbone.covered, backbone.trainable] in [
        row[1:3] for row in tree["m"] if row[0] == "backbone"
    ]
    assert sorted(p[0] for p in tree["p"]) == sorted(p.name for p in report.params)


def test_causes_grouped_with_codes_details_and_counts(report, page):
    causes = page[page.index('<section id="causes">') : page.index('<section id="flow">')]
    for p in report.params:
        if p.cause:
            assert f'id="cause-{p.cause}"' in causes
            assert p.cause_detail.replace("'", "&#x27;") in causes
    assert '<span class="cnt">1</span>' in causes
    assert "other findings" in causes  # "scale" is vanishing without a cause
    assert "vanishing" in causes


def test_loss_terms_and_status_timeline(page):
    terms = page[page.index('<section id="terms">') :]
    assert "dead_term" in terms and "reaches nothing" in terms and "constant" in terms
    timeline = page[page.index('<section id="timeline">') : page.index('<section id="modules">')]
    # backbone.stem.bias goes zero -> nonzero; the nonfinite one goes nonzero -> nonfinite
    assert "backbone.stem" in timeline and "head.cls" in timeline
    assert 'class="sq t-zero"' in timeline and 'class="sq t-nonfinite"' in timeline


def test_gradient_flow_chart(report, page):
    flow = page[page.index('<section id="flow">') : page.index('<section id="terms">')]
    assert flow.count("<svg") >= 1 and "</svg>" in flow
    assert 'class="mk-missing"' in flow and 'class="mk-zero"' in flow
    assert 'class="mk-frozen"' in flow and 'class="bnan"' in flow
    assert flow.count('class="bar') >= 2
    assert 'class="rd"' in flow  # update/weight ratio dots
    assert "NaN" not in flow.replace("NaN/Inf", "")  # no NaN leaked into coordinates


def test_text_is_escaped(page):
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "zoo:&lt;b&gt;demo&lt;/b&gt;" in page
    assert page.count("<script>") == 1  # only the page's own little script


def test_tree_data_is_embedded_safely():
    """Names that would end a <script> block or open a comment stay inside the JSON."""
    r = sample_report()
    nasty = "x.</script><script>alert(2)</script><!--&amp;.weight"
    r.params.append(param(nasty))
    page = render_html(finalize(r, Policy()))
    assert "alert(2)" in page and "<script>alert(2)" not in page and "<!--" not in page
    assert page.count("</script>") == 2  # the tree's data and the page's script
    tree = tree_of(page)
    assert nasty in [p[0] for p in tree["p"]] and EVIL in [p[0] for p in tree["p"]]


def test_tree_rows_and_modules_in_the_data():
    from gradcheck.render.html_tree import tree_data

    r = sample_report()
    data = tree_data(r)
    names = [m[0] for m in data["m"]]
    for i, m in enumerate(data["m"]):  # pre-order: sub-modules after a module
        assert all(k > i and names[k].startswith(m[0]) for k in m[7])
    cls = next(p for p in data["p"] if p[0] == "head.cls.weight")
    assert cls[2] == "nonfinite" and cls[3] == "+!!" and cls[7][0][:2] == ["c", "nonfinite"]
    aux = next(p for p in data["p"] if p[0] == "backbone.aux.weight")
    assert aux[6] == [] and "cut" in aux[8]  # reached by nothing; the filter finds "cut"
    assert next(p for p in data["p"] if p[0] == "scale")[6] is None  # not probed


def test_a_big_tree_opens_a_bounded_number_of_rows_at_load():
    """Modules with an uncovered parameter open at load, as before, but only up to a budget
    of rows: 4,000 missing parameters do not all become rows before anyone asks."""
    from gradcheck.render.html_tree import LOAD_ROWS, tree_data

    params = [
        param(f"blocks.{i // 4}.conv{i % 4}.weight", "missing" if i % 2 else "covered")
        for i in range(8000)
    ]
    data = tree_data(
        finalize(Report(config={"model": "big"}, environment={}, params=params), Policy())
    )
    opened = [m for m in data["m"] if m[9]]
    assert LOAD_ROWS <= sum(len(m[8]) for m in opened) <= LOAD_ROWS + 4
    assert sum(len(m[8]) for m in data["m"]) == 8000


def test_no_external_assets(page):
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"\bsrc\s*=", page)
    assert "<link" not in page and "@import" not in page and "url(" not in page


def test_odd_numbers_do_not_crash():
    r = sample_report()
    r.params[0].grad_norms = ["inf", "-inf", "nan"]
    r.params[0].grad_norm = "nan"
    r.params[0].weight_norm = None
    r.params[1].grad_norms, r.params[1].update_norms, r.params[1].steps = [], [], []
    r.params[2].grad_norms = [float("nan"), 0, None]
    r.params[3].weight_norm = float("inf")
    r.loss_terms.append(LossTermRecord(name="odd", values=[None, "inf", float("nan")]))
    r.loss_terms.append(LossTermRecord(name="empty"))
    page = render_html(r)
    assert "odd" in page and "empty" in page


def test_round_trip_through_json_and_minimal_reports(tmp_path, report):
    save_report(report, tmp_path / "r.json")
    loaded = load_report(tmp_path / "r.json")
    assert render_html(loaded) == render_html(report)
    bare = Report(config={"model": "m"}, environment={}, params=[])
    page = render_html(finalize(bare, Policy()))
    assert "<title>gradcheck: m PASS</title>" in page and "<h1>m</h1>" in page
    assert "no trainable parameters" in page and '<section id="flow">' not in page
    unfinalized = Report(config={}, environment={}, params=[param("a.b")])  # no modules/summary
    assert "a.b" in render_html(unfinalized)


def test_write_is_atomic(tmp_path, report, monkeypatch):
    target = tmp_path / "r.html"
    out = write_html(report, target)
    assert out == target and target.read_text(encoding="utf-8") == render_html(report)
    assert sorted(os.listdir(tmp_path)) == ["r.html"]  # no temp file left behind

    target.write_text("old page", encoding="utf-8")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        write_html(report, target)
    assert target.read_text(encoding="utf-8") == "old page"
    assert sorted(os.listdir(tmp_path)) == ["r.html"]


def test_gold_yolo_sized_report_stays_small():
    params = []
    for i in range(700):
        stage = ("backbone", "neck", "detect")[i % 3]
        status = "missing" if i % 97 == 0 else "zero" if i % 131 == 0 else "covered"
        params.append(
            param(
                f"{stage}.block{i // 30}.layer{i // 6}.conv{i % 6}.weight",
                status,
                cause="cut" if status == "missing" else None,
                cause_detail="no path" if status == "missing" else None,
                reached_by=["cls", "iou", "dfl"],
            )
        )
    r = Report(
        config={"model": "gold_yolo_l", "steps": 3},
        environment={},
        params=params,
        loss_terms=[
            LossTermRecord(name="cls", reaches=700, constant=False, values=[1.0, 0.9, 0.8])
        ],
    )
    page = render_html(finalize(r, Policy()))
    assert len(page.encode()) < 3_000_000
    assert all(p.name in page for p in params)
    assert page.count('<svg class="flow"') >= 3  # charts split by module


def test_real_gold_yolo_s_page_is_smaller_than_it_was():
    """The shipped Gold-YOLO-S report (458 tensors): 757 KB before the module tree became
    data; its gradient-flow section keeps a bar for every parameter."""
    r = load_report(ROOT / "reports" / "gold_yolo_s.json")
    page = render_html(r)
    assert len(page.encode()) < 450_000
    flow = page[page.index('<section id="flow">') : page.index('<section id="terms">')]
    assert "share a bar" not in flow and flow.count('class="bar') >= 400


@pytest.fixture(scope="module")
def big_page():
    return render_html(big_report())


def test_9000_tensor_page_stays_under_5_mb(big_page):
    size = len(big_page.encode())
    sections = {
        m.group(1): len(big_page[m.start() : big_page.index("</section>", m.start())])
        for m in re.finditer(r'<section id="(\w+)"', big_page)
    }
    print(f"9,004-tensor page: {size:,} bytes; sections {sections}")
    assert size < 5_000_000
    assert sections["flow"] < 300_000 and sections["modules"] < 1_500_000


def test_big_flow_charts_share_bars_and_keep_the_worst_visible(big_page):
    from gradcheck.render.html_svg import CHART_BARS

    r = big_report()
    flow = big_page[big_page.index('<section id="flow">') : big_page.index('<section id="terms">')]
    assert "9,004 parameters: past 1,200 a chart draws at most 240 bars" in flow
    assert flow.count('<svg class="flow"') == 3  # inp, body, out
    assert flow.count('class="band') < CHART_BARS
    for p in r.params:  # every missing, zero and non-finite one is named
        if p.status in ("missing", "zero", "nonfinite"):
            assert f"{p.name}  [{p.status}" in flow, p.name
    assert flow.count('class="bnan"') == 1 and flow.count('class="bmin"') > 100


def test_long_cause_groups_and_the_reach_matrix_are_bounded(big_page):
    from gradcheck.render.html_sections import MAX_CAUSE_ROWS, MAX_REACH_ROWS

    causes = big_page[
        big_page.index('<section id="causes">') : big_page.index('<section id="flow">')
    ]
    assert "more: the module tree below lists every one" in causes  # 1,200+ other findings
    assert causes.count("<tr><td") <= 4 * MAX_CAUSE_ROWS
    terms = big_page[
        big_page.index('<section id="terms">') : big_page.index('<section id="timeline">')
    ]
    assert terms.count("<tr") <= MAX_REACH_ROWS + 10 and '<td class="pn">body</td>' in terms
    params = [param(f"m{i}.w", "missing", cause="cut", cause_detail="no path") for i in range(300)]
    page = render_html(finalize(Report(config={}, environment={}, params=params), Policy()))
    cut = page[page.index('id="cause-cut"') : page.index('<section id="flow">')]
    assert cut.count('<td class="pn">') == MAX_CAUSE_ROWS
    assert (
        '… 100 more: <a href="#modules" data-filter="cut">filter the module tree by cut</a>'
        " for all 300" in cut
    )


def test_shared_bars_keep_order_and_every_parameter():
    from gradcheck.render.html_svg import _bars

    params = [param(f"m.{i}.w", "missing" if i % 50 == 0 else "covered") for i in range(1000)]
    bars = _bars(params, 100)
    assert [p for bar in bars for p in bar] == params
    assert len(bars) <= 100
    assert all(len(bar) == 1 for bar in bars if bar[0].status == "missing")
    assert _bars(params[:80], 100) == [[p] for p in params[:80]]


def test_band_keys_widen_only_for_shared_bars():
    from gradcheck.render.html_svg import _band_keys

    one_each = [[param(f"body.{i}.fc.w")] for i in range(40)]
    assert _band_keys(one_each, 2) == [f"body.{i}" for i in range(40)]
    shared = [[param(f"body.{i}.fc.w"), param(f"body.{i}.fc.b")] for i in range(40)]
    assert _band_keys(shared, 2) == ["body"] * 40  # 40 bands for 40 bars: too many
    few = [[param(f"body.{i // 10}.fc.w"), param(f"body.{i // 10}.fc.b")] for i in range(40)]
    assert _band_keys(few, 2) == [f"body.{i // 10}" for i in range(40)]  # 4 bands: kept


def test_cli_writes_html(tmp_path, monkeypatch):
    pytest.importorskip("jittor")
    from click.testing import CliRunner

    from gradcheck.cli import main

    monkeypatch.chdir(ROOT)
    target = tmp_path / "r.html"
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--model",
            "tests/fixtures/zoo.py:detached",
            "--steps",
            "2",
            "--html",
            str(target),
            "--quiet",
        ],
    )
    assert result.exit_code == 1, result.output  # side.* has no gradient: fail
    page = target.read_text(encoding="utf-8")
    assert sorted(os.listdir(tmp_path)) == ["r.html"]
    assert "tests/fixtures/zoo.py:detached" in page and ">FAIL<" in page
    assert "https://" not in page and "http://" not in page
    rows = {p[0]: p[2] for p in tree_of(page)["p"]}
    assert rows == {
        "main.weight": "covered",
        "main.bias": "covered",
        "side.weight": "missing",
        "side.bias": "missing",
    }
    causes = page[page.index('<section id="causes">') : page.index('<section id="flow">')]
    assert 'id="cause-cut"' in causes and "side.weight" in causes and "main.weight" not in causes
    assert page.count('<svg class="flow"') == 1 and 'class="mk-missing"' in page


def test_css_and_js_ship_as_package_data_and_are_inlined(page):
    import configparser
    import fnmatch

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    patterns = [p.strip() for p in cfg["options.package_data"]["gradcheck.render"].split(",")]
    assets = sorted((ROOT / "gradcheck" / "render" / "assets").iterdir())
    assert {a.name for a in assets} == {"report.css", "report.js"}
    for asset in assets:  # an installed wheel carries every asset ...
        assert any(fnmatch.fnmatch(f"assets/{asset.name}", p) for p in patterns), asset
        assert asset.read_text(encoding="utf-8") in page  # ... and the page inlines it
