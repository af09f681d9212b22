"""JSON output: the report (or alignment) exactly as saved with ``--output``; comparisons as
one object."""

from __future__ import annotations

import json


class JsonRenderer:
    def report(self, report, out, depth: int = 2) -> None:
        out.write(report.to_json())

    def comparison(self, cmp, out) -> None:
        out.write(json.dumps(cmp.to_dict(), indent=1) + "\n")

    def across(self, cmp, out) -> None:
        out.write(json.dumps(cmp.to_dict(), indent=1) + "\n")

    def align(self, res, out) -> None:
        out.write(res.to_json())
