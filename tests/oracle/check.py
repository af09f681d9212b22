"""One differential check: build a spec twice, run the oracle on one copy and gradcheck on the
other, and return the differences (:func:`differences`); :func:`survey` runs many generated
specs without stopping at the first difference and counts them by class.

``python3 tests/oracle/check.py [examples per profile] [profile ...]`` prints a survey
(``ORACLE_SURVEY_LOG=file`` also writes there every difference outside the new semantics).
"""

from __future__ import annotations

import os
import sys
from collections import Counter, defaultdict
from pathlib import Path

if __name__ == "__main__":                  # run as a script: the repo and tests/ first
    _root = Path(__file__).resolve().parents[2]
    sys.path[:0] = [str(_root), str(_root / "tests")]

import gradcheck
from oracle import generate, oracle
from oracle.compare import compare


def differences(spec: generate.Spec) -> list:
    truth = oracle.run(generate.build(spec))
    report = gradcheck.check(generate.workload(generate.build(spec)), steps=spec.steps)
    return compare(truth, report)


def explain(spec: generate.Spec, diffs: list) -> str:
    lines = [f"gradcheck and the oracle disagree on {len(diffs)} Var field(s) of", "  " +
             spec.describe(), "(paste the spec into tests/test_oracle.py REGRESSIONS to replay):"]
    lines += [f"  {d}" for d in diffs]
    return "\n".join(lines)


# the tags of the semantics issue 21 adds: expected to differ before the lead's change
NEW = ("untracked", "lazy", "never_updated", "trained_buffer", "optimizer_only")


def survey(profile: str, examples: int, log=None) -> tuple:
    """(models, agreed, {tag: count}, {tag: first (spec, diff)}) over ``examples`` specs;
    every difference outside :data:`NEW` is also written to ``log`` (a file) when given."""
    from hypothesis import HealthCheck, Phase, given, settings

    tally: Counter = Counter()
    first: dict = {}
    count = defaultdict(int)

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(generate.specs(profile))
    def one(spec):
        diffs = differences(spec)
        count["models"] += 1
        count["agreed"] += not diffs
        for tag in {d.tag for d in diffs}:
            tally[tag] += 1
            first.setdefault(tag, (spec, next(d for d in diffs if d.tag == tag)))
        if log is not None:
            for d in diffs:
                if d.tag not in NEW:
                    print(f"{d}\n    {spec.describe()}", file=log, flush=True)

    one()
    return count["models"], count["agreed"], tally, first


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    profiles = sys.argv[2:] or list(generate.PROFILES)
    # ORACLE_SURVEY_LOG=path: every difference outside NEW, with its spec, appended there
    path = os.environ.get("ORACLE_SURVEY_LOG")
    log = open(path, "a") if path else None   # noqa: SIM115 (a script: closed at exit)
    for prof in profiles:
        models, agreed, tally, first = survey(prof, n, log)
        print(f"== {prof}: {models} models, {agreed} agreed; disagreements by class: "
              f"{dict(tally)}", flush=True)
        for spec, d in first.values():
            print(f"   e.g. {d}\n      {spec.describe()}", flush=True)
