"""Golden files for the JSON report, the markdown summary and the HTML gradient-flow section,
made from a hand-built report (no Jittor run: the same bytes on every machine).

The run's time, host, platform, step timings and the tool version are masked before the
comparison, so a golden file changes only when the output format does.  After an intended
change: ``python3 -m pytest tests/gradcheck/render/test_golden.py --update-golden``, then
review the diff.
(The table screens have their own golden files.)
"""

from __future__ import annotations

import io
import json
import re

from fixtures.reports import sample_report
from gradcheck.render import get_renderer
from gradcheck.render.html import render_html

MASKED = {
    "created": "<created>",
    "host": "<host>",
    "platform": "<platform>",
    "seconds": "<seconds>",
}


def _report(created="2026-11-26T13:00:00+00:00", host="build-17"):
    report = sample_report()
    report.created = created
    report.environment.update(host=host, platform="Linux-6.8-x86_64-with-glibc2.39")
    return report


def mask_json(text: str) -> str:
    """The JSON report with the values that differ between two identical runs masked."""
    data = json.loads(text)
    data["tool"]["version"] = "<version>"

    def walk(obj):
        if isinstance(obj, dict):
            return {
                k: MASKED[k] if k in MASKED and v is not None else walk(v) for k, v in obj.items()
            }
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    return json.dumps(walk(data), indent=1) + "\n"


def _render(fmt: str, report) -> str:
    out = io.StringIO()
    get_renderer(fmt).report(report, out)
    return out.getvalue()


def test_json_golden(golden):
    text = mask_json(_render("json", _report()))
    assert "build-17" not in text and "2026-11-26" not in text
    golden("json", text)


def test_json_mask_hides_only_run_specific_values():
    a = mask_json(_render("json", _report()))
    b = mask_json(_render("json", _report(created="2030-01-01T00:00:00+00:00", host="other")))
    assert a == b
    changed = _report()
    changed.params[0].grad_norm = 0.25  # a real difference still shows
    assert mask_json(_render("json", changed)) != a


def test_markdown_golden(golden):
    golden("md", _render("markdown", _report()))


def test_html_flow_section_golden(golden):
    page = render_html(_report())
    section = page[page.index('<section id="flow">') : page.index('<section id="terms">')]
    assert section.endswith("</section>")
    # one tag a line: readable diffs
    golden("html", re.sub(r"><", ">\n<", section) + "\n")


def test_markdown_shows_html_in_names_as_text():
    """A PR comment must never render HTML that comes from a model's own names."""
    import io
    import re

    from gradcheck.render import get_renderer

    out = io.StringIO()
    get_renderer("markdown").report(_report(), out)
    text = re.sub(r"`[^`\n]*`", "", out.getvalue())  # code spans show literally on GitHub
    assert "<b>" not in text and "<script>" not in text
    assert "&lt;b&gt;demo&lt;/b&gt;" in text
