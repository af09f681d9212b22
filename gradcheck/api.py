"""The library entry points under the CLI: load a workload by name, probe it, judge it."""

from __future__ import annotations

import sys
from typing import Optional

from gradcheck.policy import Policy
from gradcheck.report import Report
from gradcheck.workload import Workload, check_spec, load_workload


def check(workload: Workload, steps: int = 1, seed: Optional[int] = 0,
          policy: Optional[Policy] = None, on_step=None) -> Report:
    """Probe ``workload`` for ``steps`` real training steps; the verdict follows ``policy``."""
    from gradcheck.probe import check as probe_check

    policy = policy or Policy(steps=steps, seed=seed if seed is not None else 0)
    return probe_check(workload, steps=steps, seed=seed, policy=policy, on_step=on_step)


def run(policy: Policy, data: Optional[str] = None, quiet: bool = True,
        train_mode: bool = False) -> Report:
    """What ``gradcheck run`` does: set up Jittor, build the workload, probe it."""
    from gradcheck import runtime
    from gradcheck.progress import compile_progress

    check_spec(policy.model)           # a typo fails at once, before Jittor starts
    runtime.setup(device=policy.device)

    live = not quiet and sys.stderr.isatty()   # progress is for people watching a terminal

    def on_step(step, total, phase):
        if live:
            print(f"gradcheck: step {step}/{total}: {phase}", file=sys.stderr, flush=True)

    with compile_progress(quiet=quiet, status="gradcheck: running (a first run also compiles Jittor: minutes)"):
        runtime.seed_everything(policy.seed)
        workload = load_workload(policy.model, img_size=policy.img_size,
                                 batch_size=policy.batch_size, seed=policy.seed, data=data)
        workload.train_mode = workload.train_mode or train_mode
        return check(workload, steps=policy.steps, seed=policy.seed, policy=policy,
                     on_step=on_step)
