"""The report loader, fuzzed: a mutated or truncated report file gives exit 2 with one line,
or loads and renders; never a traceback, never exit 3 (an internal error)."""

from __future__ import annotations

import json

from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings, strategies as st

from fixtures.reports import make_report
from gradcheck.cli import main
from gradcheck.render import FORMATS
from gradcheck.report import LossTermRecord, StepRecord

_REP = make_report(
    **{"a.w": "covered", "a.b": "zero", "b.w": "missing", "c.w": "nonfinite", "d.w": "frozen"}
)
_REP.loss_terms = [LossTermRecord(name="cls", reaches=2, constant=False, values=[1.0])]
_REP.steps = [StepRecord(step=1, loss=1.0, terms={"cls": 1.0}, stats={}, seconds=0.1)]
VALID = _REP.to_dict()

# no subnormal floats: a loaded Jittor operator library (built with -Ofast) flushes them to
# zero process-wide, and hypothesis refuses to draw floats then
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 10**12)
    | st.floats(allow_nan=False, allow_subnormal=False)
    | st.text(max_size=8)
    | st.sampled_from(["covered", "nan", "frozen", "nonzero", ""]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


PATHS = [p for p in _paths(VALID) if p]


def _mutate(doc, path, value, delete):
    doc = json.loads(json.dumps(doc))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


@st.composite
def report_texts(draw):
    doc = VALID
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        doc = _mutate(doc, draw(st.sampled_from(paths)), draw(json_values), draw(st.booleans()))
    text = json.dumps(doc, indent=1)
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    return text


def _check(result):
    assert "Traceback" not in result.output, result.output
    assert result.exit_code in (0, 1, 2), result.output
    if result.exit_code == 2:
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("gradcheck: error: "), result.stderr


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=report_texts(), fmt=st.sampled_from(FORMATS))
@example(text=json.dumps(_mutate(VALID, ("summary", "by_status"), None, False)), fmt="table")
@example(text=json.dumps(_mutate(VALID, ("params", 0, "reached_by"), [None], False)), fmt="table")
@example(text=json.dumps(_mutate(VALID, ("params", 1, "shape"), ["2"], False)), fmt="markdown")
def test_show_and_compare_never_crash(tmp_path, text, fmt):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(VALID))
    bad.write_text(text)
    runner = CliRunner()
    _check(runner.invoke(main, ["show", str(bad), "--format", fmt]))
    cmp_fmt = fmt if fmt != "html" else "json"
    _check(runner.invoke(main, ["compare", str(good), str(bad), "--format", cmp_fmt]))
    _check(runner.invoke(main, ["compare", str(bad), str(good), "--format", cmp_fmt]))
