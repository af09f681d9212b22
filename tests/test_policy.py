"""The [gradcheck] config section: parsing, errors naming the bad value, verdict rules."""

from __future__ import annotations

import pytest

from gradcheck.policy import ConfigError, Policy, load_policy
from gradcheck.summary import judge
from test_report_io import make_report


def write(tmp_path, body: str):
    path = tmp_path / "setup.cfg"
    path.write_text("[gradcheck]\n" + body)
    return path


def test_reads_settings(tmp_path):
    p = load_policy(write(tmp_path, "model = gold_yolo_s\nsteps = 4\nimg_size = 320\n"
                                    "fail_on = missing, nonfinite, zero\nstrict = yes\n"
                                    "expected_frozen =\n    *.proj_conv.weight: fixed DFL\n"
                                    "    detect.proj: fixed\n"))
    assert (p.model, p.steps, p.img_size, p.strict) == ("gold_yolo_s", 4, 320, True)
    assert p.fail_on == ("missing", "nonfinite", "zero")
    assert p.frozen_reason("detect.proj_conv.weight") == "fixed DFL"
    assert p.frozen_reason("detect.proj") == "fixed"
    assert p.frozen_reason("detect.other") is None


@pytest.mark.parametrize("body,message", [
    ("steps = many\n", "invalid steps = 'many'"),
    ("steps = -1\n", "invalid steps = '-1'"),
    ("colour = red\n", "unknown setting 'colour'"),
    ("fail_on = missing, sadness\n", "unknown finding 'sadness'"),
    ("expected_frozen =\n    no colon here\n", "is not 'glob: reason'"),
])
def test_bad_settings_name_the_value(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        load_policy(write(tmp_path, body))


def test_explicit_config_must_exist_and_have_section(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_policy(tmp_path / "nope.cfg")
    other = tmp_path / "other.cfg"
    other.write_text("[metadata]\nname = x\n")
    with pytest.raises(ConfigError, match=r"no \[gradcheck\] section"):
        load_policy(other)


def test_implicit_setup_cfg_is_optional(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_policy() == Policy()


def test_project_setup_cfg_declares_the_dfl_projection(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    p = load_policy()
    assert p.model == "gold_yolo_s" and p.steps >= 2
    assert p.frozen_reason("detect.proj") and p.frozen_reason("detect.proj_conv.weight")


def test_strict_turns_warnings_into_failures():
    rep = make_report(**{"a.w": "covered", "b.w": "zero"})
    assert judge(rep, Policy()).result == "pass"
    assert judge(rep, Policy(strict=True)).result == "fail"
    assert judge(rep, Policy(fail_on=("zero",))).result == "fail"
