"""JUnit XML, the test-report format every CI system reads (GitLab, Jenkins, GitHub actions).

A report is one ``<testsuite>`` with one ``<testcase>`` per parameter: ``classname`` is the
owning module (CI pages group by it), ``name`` the parameter.  A parameter with a finding the
run's policy fails on is a ``<failure>`` (type: the finding, text: its cause); a frozen one is
``<skipped>`` (with its declared reason); warnings go to the case's ``<system-out>``.  So the
failure count is the number of parameters that fail the verdict.

A comparison is one ``<testsuite>`` with one ``<testcase>`` per changed parameter (a
``<failure>`` when it has a regression that ``--allow`` does not accept) and one passing case
for the unchanged rest.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from gradcheck.enums import Status
from gradcheck.summary import findings


def _failing(report) -> set:
    pol = report.config.get("policy") if isinstance(report.config, dict) else None
    if isinstance(pol, dict) and isinstance(pol.get("fail_on"), list):
        words = pol["fail_on"] + (
            pol.get("warn_on")
            if pol.get("strict") is True and isinstance(pol.get("warn_on"), list)
            else []
        )
        return {w for w in words if isinstance(w, str)}
    from gradcheck.policy import Policy

    return set(Policy().failing())


def _write(out, suites: list) -> None:
    root = ET.Element(
        "testsuites",
        name="gradcheck",
        tests=str(sum(int(s.get("tests")) for s in suites)),
        failures=str(sum(int(s.get("failures")) for s in suites)),
        errors="0",
        skipped=str(sum(int(s.get("skipped")) for s in suites)),
    )
    root.extend(suites)
    if hasattr(ET, "indent"):  # Python 3.9+
        ET.indent(root, space=" ")
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(ET.tostring(root, encoding="unicode") + "\n")


def _suite(
    name: str, cases: list, timestamp: str = "", props: dict | None = None, out_text: str = ""
) -> ET.Element:
    suite = ET.Element(
        "testsuite",
        name=name,
        tests=str(len(cases)),
        failures=str(sum(c.find("failure") is not None for c in cases)),
        errors="0",
        skipped=str(sum(c.find("skipped") is not None for c in cases)),
    )
    if timestamp:
        suite.set("timestamp", timestamp)
    if props:
        p = ET.SubElement(suite, "properties")
        for k, v in props.items():
            ET.SubElement(p, "property", name=str(k), value=str(v))
    suite.extend(cases)
    if out_text:
        ET.SubElement(suite, "system-out").text = out_text
    return suite


class JunitRenderer:
    def report(self, report, out, depth: int = 2) -> None:
        failing = _failing(report)
        cases = []
        for p in report.params:
            case = ET.Element("testcase", classname=p.module or "(model)", name=p.name)
            found = findings(p)
            bad = [f for f in found if f in failing]
            detail = f"{p.cause}: {p.cause_detail}" if p.cause_detail else (p.cause or "")
            steps = f"per-step statuses: {', '.join(p.steps)}"
            if bad:
                failure = ET.SubElement(
                    case,
                    "failure",
                    type=bad[0],
                    message=f"{p.name}: {', '.join(bad)}" + (f" ({p.cause})" if p.cause else ""),
                )
                failure.text = "\n".join(x for x in (detail, steps) if x)
            elif p.status == Status.FROZEN:
                ET.SubElement(
                    case,
                    "skipped",
                    message=(
                        f"frozen on purpose: {p.frozen_reason}"
                        if p.frozen_reason
                        else "frozen (no declared reason)"
                    ),
                )
            warn = [f for f in found if f not in failing]
            if warn:
                ET.SubElement(case, "system-out").text = f"warning: {', '.join(warn)}" + (
                    f"\n{detail}" if detail else ""
                )
            cases.append(case)
        cfg = report.config
        props = {
            k: cfg[k]
            for k in ("model", "steps", "img_size", "batch_size", "seed")
            if k in cfg and cfg[k] is not None
        }
        props["verdict"] = report.verdict.result
        text = "\n".join(
            [f"FAIL {r}" for r in report.verdict.reasons]
            + [f"WARN {w}" for w in report.verdict.warnings]
        )
        _write(out, [_suite(f"gradcheck: {cfg.get('model')}", cases, report.created, props, text)])

    def comparison(self, cmp, out) -> None:
        by_name: dict = {}
        for c in cmp.added + cmp.changed + cmp.removed:
            by_name.setdefault(c.name, []).append(c)
        cases = []
        for name, changes in by_name.items():
            case = ET.Element("testcase", classname="gradcheck.compare", name=name)
            lines = [
                f"{c.kind}: {c.before or '(new)'} -> {c.after or '(removed)'}"
                + (f" ({c.cause})" if c.cause else "")
                + (" [allowed]" if c.allowed else "")
                for c in changes
            ]
            bad = [c for c in changes if c.regression and not c.allowed]
            if bad:
                kinds = ", ".join(c.kind for c in bad)
                failure = ET.SubElement(
                    case, "failure", type=bad[0].kind, message=f"{name}: regression ({kinds})"
                )
                failure.text = "\n".join(lines)
            else:
                ET.SubElement(case, "system-out").text = "\n".join(lines)
            cases.append(case)
        if cmp.unchanged:
            case = ET.Element(
                "testcase",
                classname="gradcheck.compare",
                name=f"{cmp.unchanged} unchanged parameter(s)",
            )
            cases.append(case)
        props = {
            "before_model": cmp.before_model,
            "after_model": cmp.after_model,
            "ok": cmp.ok,
            "regressions": len(cmp.regressions),
        }
        warns = "\n".join(f"WARN {w}" for w in cmp.warnings)
        _write(
            out,
            [
                _suite(
                    f"gradcheck compare: {cmp.before_model} -> {cmp.after_model}",
                    cases,
                    props=props,
                    out_text=warns,
                )
            ],
        )
