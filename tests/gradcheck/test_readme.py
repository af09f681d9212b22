"""The README says what the code does: the mission's command, exit codes, regression kinds."""

from __future__ import annotations

import re

from gradcheck import errors
from gradcheck.compare import REGRESSION_KINDS
from gradcheck.resolve import check_spec


def _code_blocks(text: str) -> list:
    return re.findall(r"```[a-z]*\n(.*?)```", text, re.S)


def test_the_missions_command_is_shown_literally(repo_root):
    readme = (repo_root / "README.md").read_text()
    first = _code_blocks(readme)[0]
    commands = [ln.split("#")[0].strip() for ln in first.splitlines()]
    # the newcomer's first command ends in the mission's command, word for word
    assert any(c.endswith("&& gradcheck run --model gold_yolo_s") for c in commands)
    assert "python3 -m pytest" in commands  # and the tests, next to it
    assert "a plain `gradcheck run`" in readme  # the in-repo short form is named
    check_spec("gold_yolo_s")  # and it names a real model


def test_exit_codes_and_regression_kinds_are_documented(repo_root):
    readme = (repo_root / "README.md").read_text()
    for code in (
        errors.EXIT_PASS,
        errors.EXIT_FAIL,
        errors.EXIT_USAGE,
        errors.EXIT_INTERNAL,
        errors.EXIT_SIGINT,
        errors.EXIT_SIGTERM,
    ):
        assert re.search(rf"^\| (`\d+` / )?`{code}`", readme, re.M), code
    for kind in REGRESSION_KINDS:
        assert re.search(rf"\| `{kind}` \| yes \|", readme), kind
