"""The library entry points under the CLI: load a workload by name, probe it, judge it."""

from __future__ import annotations

import sys
from typing import Optional

from gradcheck.policy import Policy
from gradcheck.report import Report
from gradcheck.resolve import check_spec, load_workload
from gradcheck.settings import DEFAULT_STEPS, Settings
from gradcheck.workload import Workload


def check(workload: Workload, steps: Optional[int] = None, seed: Optional[int] = 0,
          policy: Optional[Policy] = None, on_step=None) -> Report:
    """Probe ``workload`` for ``steps`` real training steps (default
    :data:`~gradcheck.settings.DEFAULT_STEPS`); the verdict follows ``policy``."""
    from gradcheck.probe import check as probe_check

    steps = DEFAULT_STEPS if steps is None else steps
    return probe_check(workload, steps=steps, seed=seed, policy=policy or Policy(),
                       on_step=on_step)


def run(settings: Settings, policy: Optional[Policy] = None, quiet: bool = True) -> Report:
    """What ``gradcheck run`` does: set up Jittor, build the workload, probe it.

    ``settings`` says what to run (see :func:`gradcheck.settings.resolve_settings`), ``policy``
    what fails; the report records where each setting came from (``config.settings_source``).
    """
    from gradcheck import runtime
    from gradcheck.progress import compile_progress

    check_spec(settings.model)           # a typo fails at once, before Jittor starts
    runtime.setup(device=settings.device)

    live = not quiet and sys.stderr.isatty()   # progress is for people watching a terminal

    def on_step(step, total, phase):
        if live:
            print(f"gradcheck: step {step}/{total}: {phase}", file=sys.stderr, flush=True)

    with compile_progress(quiet=quiet, status="gradcheck: running (a first run also compiles Jittor: minutes)"):
        runtime.seed_everything(settings.seed)
        workload = load_workload(settings.model, img_size=settings.img_size,
                                 batch_size=settings.batch_size, seed=settings.seed,
                                 data=settings.data)
        report = check(workload, steps=settings.steps, seed=settings.seed, policy=policy,
                       on_step=on_step)
    report.config["settings_source"] = settings.record()
    return report
