"""The [gradcheck] config section, where each setting comes from, and the verdict rules."""

from __future__ import annotations

import pytest

from fixtures.reports import make_report
from gradcheck import registry
from gradcheck.policy import ConfigError, ConfigFile, Policy, declared_reason, load_config
from gradcheck.report import ParamRecord, StepRecord
from gradcheck.settings import DEFAULT_STEPS, resolve_settings
from gradcheck.summary import finalize, judge, next_command


def write(tmp_path, body: str):
    path = tmp_path / "setup.cfg"
    path.write_text("[gradcheck]\n" + body)
    return path


def test_reads_settings_and_policy_apart(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            "model = gold_yolo_s\nsteps = 4\nimg_size = 320\n"
            "fail_on = missing, nonfinite, zero\nstrict = yes\n"
            "expected_frozen =\n    *.proj_conv.weight: fixed DFL\n"
            "    detect.proj: fixed\n"
            "allow_uncovered =\n    aux.*: second stage only\n",
        )
    )
    assert cfg.settings == {"model": "gold_yolo_s", "steps": 4, "img_size": 320}
    p = cfg.policy
    assert p.strict and p.fail_on == ("missing", "nonfinite", "zero")
    assert p.frozen_reason("detect.proj_conv.weight") == "fixed DFL"
    assert p.frozen_reason("detect.proj") == "fixed"
    assert p.frozen_reason("detect.other") is None
    assert p.allowed_reason("aux.fc.weight") == "second stage only"


def test_align_float64_settings_reach_the_tolerances(tmp_path):
    from gradcheck.parity.alignment import Tolerances

    policy = load_config(
        write(
            tmp_path, "align_float64 = always\nalign_float64_tol = 1e-8\nalign_noise_samples = 0\n"
        )
    ).policy
    tol = Tolerances.from_policy(policy)
    assert (tol.float64_mode, tol.float64, tol.noise_samples) == ("always", 1e-8, 0)
    never = policy.with_overrides(align_float64="never")
    assert Tolerances.from_policy(never).float64_mode == "never"
    assert Tolerances.from_policy(Policy()).float64_mode == "auto"


def test_declared_reason_first_table_wins():
    assert (
        declared_reason("a.w", {"b.*": "no"}, {"a.*": "workload"}, {"a.w": "config"}) == "workload"
    )
    assert declared_reason("a.w", None, {}) is None


@pytest.mark.parametrize(
    "body,message",
    [
        ("steps = many\n", "invalid steps = 'many'"),
        ("steps = -1\n", "invalid steps = '-1'"),
        ("colour = red\n", "unknown setting 'colour'"),
        ("fail_on = missing, sadness\n", "unknown finding 'sadness'"),
        ("expected_frozen =\n    no colon here\n", "is not 'glob: reason'"),
        ("align_float64 = sometimes\n", "invalid align_float64 = 'sometimes'"),
        ("align_noise_samples = -1\n", "invalid align_noise_samples = '-1'"),
        ("align_float64_tol = tiny\n", "invalid align_float64_tol = 'tiny'"),
    ],
)
def test_bad_settings_name_the_value(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, body))


def test_explicit_config_must_exist_and_have_section(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.cfg")
    other = tmp_path / "other.cfg"
    other.write_text("[metadata]\nname = x\n")
    with pytest.raises(ConfigError, match=r"no \[gradcheck\] section"):
        load_config(other)


def test_implicit_setup_cfg_is_optional(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config() == ConfigFile()


def test_settings_origin_flag_config_model_tool():
    rec = registry.recommended("gold_yolo_s")
    s = resolve_settings({"model": "gold_yolo_s", "steps": 1}, {"batch_size": 4})
    assert (s.model, s.steps, s.img_size, s.batch_size, s.seed) == (
        "gold_yolo_s",
        1,
        rec.img_size,
        4,
        0,
    )
    assert s.source == {
        "model": "flag",
        "steps": "flag",
        "img_size": "model default",
        "batch_size": "config",
        "seed": "tool default",
        "device": "tool default",
    }
    # a user factory has no recommended settings: the tool's defaults, no image size
    u = resolve_settings({}, {"model": "pkg.mod:make"})
    assert (u.steps, u.img_size, u.source["model"], u.source["steps"]) == (
        DEFAULT_STEPS,
        None,
        "config",
        "tool default",
    )


def test_same_settings_from_any_folder(repo_root, tmp_path, monkeypatch):
    """The project's setup.cfg names the model; everything else is the model's own."""
    monkeypatch.chdir(repo_root)
    here = resolve_settings({}, load_config().settings)
    monkeypatch.chdir(tmp_path)
    there = resolve_settings({"model": "gold_yolo_s"}, load_config().settings)
    keys = ("model", "steps", "img_size", "batch_size", "seed")
    assert [getattr(here, k) for k in keys] == [getattr(there, k) for k in keys]
    assert here.steps >= 2 and here.img_size == 640


def test_bundled_models_declare_the_dfl_projection():
    for name in registry.names():
        frozen = registry.recommended(name).expected_frozen
        assert declared_reason("detect.proj", frozen)
        assert declared_reason("detect.proj_conv.weight", frozen)


def test_bundled_names_are_gold_yolos_config_names():
    import gold_yolo

    assert registry.names() == list(gold_yolo.CONFIG_NAMES)


def test_strict_turns_warnings_into_failures():
    rep = make_report(**{"a.w": "covered", "b.w": "covered"})
    rep.param("b.w").in_optimizer = False
    assert judge(rep, Policy()).result == "pass"
    assert judge(rep, Policy(strict=True)).result == "fail"
    assert judge(rep, Policy(fail_on=("not_in_optimizer",))).result == "fail"


def test_zero_fails_by_default_unless_allowed():
    rep = make_report(**{"a.w": "covered", "b.w": "zero"})
    assert judge(rep, Policy()).result == "fail"
    allowed = judge(rep, Policy(allow_uncovered={"b.*": "trained later"}))
    assert allowed.result == "pass" and not allowed.warnings
    assert [(g.severity, g.why, g.names) for g in allowed.groups] == [
        ("allowed", "trained later", ["b.w"])
    ]
    assert judge(rep, Policy(allow_uncovered={"c.*": "x"})).warnings == [
        "allow_uncovered 'c.*' matches no parameter"
    ]


def _zero_init_report(steps: int, model: str = "toy", source=None):
    """A head that starts at zero: on every step one more layer behind it is covered."""
    params = []
    for i in range(5):
        first = i + 1 if i < steps else None
        st = ["zero"] * (first - 1 if first else steps) + (
            ["nonzero"] * (steps - first + 1) if first else []
        )
        params.append(
            ParamRecord(
                name=f"l{i}.weight",
                shape=[2],
                numel=2,
                steps=st,
                status="covered" if first else "zero",
                first_nonzero_step=first,
                weight_norm=0.0 if i == 0 else 1.0,
                module=f"l{i}",
                cause=None if first else "zero_gradient",
                cause_detail=None
                if first
                else "reaches the loss, but its gradient is exactly zero: "
                "likely weights that start at exactly zero (l0.weight) "
                "block the gradient until they move",
            )
        )
    from gradcheck.report import Report

    rep = Report(
        config={"model": model, "steps": steps, "seed": 0, "settings_source": source or {}},
        environment={},
        params=params,
        steps=[StepRecord(step=k + 1) for k in range(steps)],
    )
    return finalize(rep, Policy())


def test_zero_gradients_behind_zero_weights_group_with_the_fix():
    rep = _zero_init_report(1, "gold_yolo_s", {"model": "flag", "steps": "flag"})
    (g,) = rep.verdict.groups
    assert (g.severity, g.cause, g.count, g.rerun) == (
        "fail",
        "zero_gradient",
        4,
        {"steps": registry.recommended("gold_yolo_s").steps},
    )
    assert rep.verdict.reasons == [
        "zero: 4 parameters: zero_gradient, downstream weights start at zero; coverage spreads "
        "one layer per step: run with --steps 3 (l1.weight, l2.weight, l3.weight, ... (+1))"
    ]
    assert next_command(rep) == "gradcheck run --model gold_yolo_s --steps 3"
    # a user model still spreading after the default: twice the steps
    assert _zero_init_report(3).verdict.groups[0].fix == "run with --steps 6"
