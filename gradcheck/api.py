"""The library entry points under the CLI: load a workload by name, probe it, judge it."""

from __future__ import annotations

import sys

from gradcheck.enums import COVERED_FINDINGS
from gradcheck.policy import Policy
from gradcheck.report import Report
from gradcheck.resolve import check_spec, load_workload
from gradcheck.settings import DEFAULT_STEPS, Settings
from gradcheck.workload import Workload, WorkloadError


def check(
    workload: Workload,
    steps: int | None = None,
    seed: int | None = 0,
    policy: Policy | None = None,
    on_step=None,
) -> Report:
    """Probe ``workload`` for ``steps`` real training steps (default
    :data:`~gradcheck.settings.DEFAULT_STEPS`); the verdict follows ``policy``.  A
    ``torch.nn.Module`` model (a PyTorch original) goes through the torch backend: same
    semantics, same report."""
    from gradcheck import backend

    steps = DEFAULT_STEPS if steps is None else steps
    return backend.for_model(workload.model).check(
        workload, steps=steps, seed=seed, policy=policy or Policy(), on_step=on_step
    )


def run(
    settings: Settings, policy: Policy | None = None, quiet: bool = True, train_mode: bool = False
) -> Report:
    """What ``gradcheck run`` does: set up Jittor, build the workload, probe it.

    ``settings`` says what to run (see :func:`gradcheck.settings.resolve_settings`), ``policy``
    what fails; the report records where each setting came from (``config.settings_source``).
    A failure inside Jittor raises :class:`gradcheck.errors.JittorFailure` saying in which
    step and phase it happened; one inside Jittor's operator compiler is retried once, from
    a fresh model, and the retry is recorded in the verdict's warnings."""
    from gradcheck import errors, runtime
    from gradcheck.progress import compile_progress

    model = settings.model
    if model is None:  # resolve_settings always names one; a Settings() made by hand may not
        raise WorkloadError("no model to run: set Settings.model (gradcheck run --model)")
    check_spec(model)  # a typo fails at once, before Jittor starts
    runtime.setup(device=settings.device)

    live = not quiet and sys.stderr.isatty()  # progress is for people watching a terminal

    def attempt(where: errors.Where) -> Report:
        def on_step(step, total, phase):
            where.set(step, total, phase)
            errors.reclaim_signals()  # Jittor may have put its own handlers back
            if live:
                print(f"gradcheck: step {step}/{total}: {phase}", file=sys.stderr, flush=True)

        where.set(0, settings.steps, "loading the model")
        with compile_progress(
            quiet=quiet, status="gradcheck: running (a first run also compiles Jittor: minutes)"
        ):
            runtime.seed_everything(settings.seed)
            errors.reclaim_signals()  # importing Jittor installed its quick-exit handlers
            workload = load_workload(
                model,
                img_size=settings.img_size,
                batch_size=settings.batch_size,
                seed=settings.seed,
                data=settings.data,
            )
            workload.train_mode = workload.train_mode or train_mode  # --train-mode
            report = check(
                workload, steps=settings.steps, seed=settings.seed, policy=policy, on_step=on_step
            )
        report.config["settings_source"] = settings.record()
        return report

    return errors.retrying(attempt, errors.Where(what=model), on_retry=_record_retry)


def run_script(
    words,
    settings: Settings,
    policy: Policy | None = None,
    quiet: bool = True,
    keep_going: bool = False,
):
    """What ``gradcheck run -- python train.py ARGS`` does: run the user's script unmodified
    and record its first ``settings.steps`` optimizer steps (:mod:`gradcheck.script`).
    Returns a :class:`gradcheck.script.ScriptRun`; the script's failures are
    :class:`gradcheck.script.ScriptError` (exit 2)."""
    from gradcheck import errors, runtime
    from gradcheck.script import parse_command, run_script as run_command

    command = parse_command(words)  # not found: fails before Jittor starts
    runtime.setup(device=settings.device)
    live = not quiet and sys.stderr.isatty()
    where = errors.Where(what=command.label)

    def on_step(step, total, phase):
        where.set(step, total, phase)
        if live:
            print(f"gradcheck: step {step}/{total}: {phase}", file=sys.stderr, flush=True)

    try:
        result = run_command(
            command, settings.steps, policy=policy, keep_going=keep_going, on_step=on_step
        )
    except errors.JittorFailure as exc:
        exc.where = exc.where or str(where)
        raise
    result.report.config["settings_source"] = {
        k: v for k, v in settings.record().items() if k in ("steps", "device")
    }
    return result


def _record_retry(report: Report, first) -> None:
    # in the verdict's warnings (every format shows them), not in report.warnings: that list
    # is Jittor's own warnings, which the formats count as such
    report.verdict.warnings.append(
        f"retried: Jittor's operator compiler failed {first.where} ({first.reason}); the run "
        "was repeated once from a fresh model and this report is from the repeat"
    )


# what a test asserts by default: every trainable parameter gets a non-zero, finite gradient
# that its optimizer applies, and every frozen one is frozen on purpose
COVERED = COVERED_FINDINGS


def assert_covered(
    workload: Workload,
    steps: int = 3,
    expected_frozen: dict | None = None,
    seed: int | None = 0,
    fail_on: tuple = COVERED,
) -> Report:
    """Probe ``workload`` and raise :class:`AssertionError` listing each parameter that is not
    covered, with its cause; return the report when all are.  For a user's own test suite
    (see :mod:`gradcheck.pytest_plugin`)::

        def test_every_parameter_trains():
            gradcheck.assert_covered(make_workload(), steps=3,
                                     expected_frozen={"backbone.embed.*": "pretrained"})

    ``expected_frozen``: glob -> reason for parameters frozen on purpose.  ``fail_on``: the
    findings (see :mod:`gradcheck.policy`) that fail; by default all but gradient health."""
    from gradcheck.summary import findings

    policy = Policy(expected_frozen=dict(expected_frozen or {}), fail_on=tuple(fail_on), warn_on=())
    report = check(workload, steps=steps, seed=seed, policy=policy)
    bad = [(p, [f for f in findings(p) if f in policy.fail_on]) for p in report.params]
    bad = [(p, found) for p, found in bad if found]
    if bad:
        lines = [
            f"{len(bad)} of {len(report.params)} parameter(s) of {workload.name} not "
            f"covered after {steps} step(s):"
        ]
        for p, found in bad:
            why = (
                f" ({p.cause}: {p.cause_detail})"
                if p.cause_detail
                else (f" ({p.cause})" if p.cause else "")
            )
            lines.append(f"  {p.name}: {', '.join(found)}{why}")
        raise AssertionError("\n".join(lines))
    return report
