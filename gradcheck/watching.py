"""``gradcheck.watch``: sample the probe every K optimizer steps over a whole training run.

A few lines in an existing loop::

    with gradcheck.watch(model, optimizer, every=100, output="coverage.json") as w:
        for step, (x, y) in enumerate(loader):
            optimizer.step(loss_fn(model(x), y))
    report = w.report()            # also at any point during the run

or ``w = gradcheck.watch(...).attach()`` ... ``w.detach()``.  Steps ``first``, ``first +
every``, ``first + 2*every``... are recorded as a ``gradcheck run`` step is (graph reach from
the loss, the optimizer's own gradient, values before and after: a
:class:`gradcheck.observe.StepRecorder` attached for that one step); the report's steps are
those samples, numbered by training step.  A parameter covered on an earlier sample and
zero/missing on every later one gets the finding ``stopped_training`` with the step it stopped
(``ParamRecord.stopped_step``): a ReLU unit that died, a Mixture-of-Experts expert that
collapsed, a branch that a schedule turned off.

Between samples the only cost is the step counter: the first optimizer's ``post_step`` is
wrapped on the instance by a function that counts and, before a sampled step, attaches the
recorder (which detaches itself after it).
"""

from __future__ import annotations

from gradcheck.workload import WorkloadError


class Watch:
    """See the module doc.  ``model``: a Module, or ``{prefix: Module}`` for several;
    ``optimizer``: one, or a list (phases, in the order the loop steps them)."""

    def __init__(
        self,
        model,
        optimizer,
        every: int = 100,
        first: int = 1,
        output: str | None = None,
        policy=None,
        name: str | None = None,
    ):
        from gradcheck import runtime
        from gradcheck.observe import StepRecorder

        jt = runtime.import_jittor()
        if not isinstance(every, int) or every < 1:
            raise WorkloadError(f"every must be a positive integer, got {every!r}")
        if not isinstance(first, int) or first < 1:
            raise WorkloadError(f"first must be a positive integer, got {first!r}")
        models = list(model.items()) if isinstance(model, dict) else [("", model)]
        for _, m in models:
            if not isinstance(m, jt.nn.Module):
                raise WorkloadError(f"the model is a {type(m).__name__}, not a jittor Module")
        optimizers = list(optimizer) if isinstance(optimizer, (list, tuple)) else [optimizer]
        for o in optimizers:
            if not isinstance(o, jt.optim.Optimizer):
                raise WorkloadError(
                    f"the optimizer is a {type(o).__name__}, not a jittor.optim.Optimizer"
                )
        self.every, self.first, self.output, self.policy = every, first, output, policy
        self.name = name or type(models[0][1]).__name__
        self.optimizers = optimizers
        self.recorder = StepRecorder(
            0, name=self.name, keep_going=True, models=models, optimizers=optimizers
        )
        self.step = 0  # optimizer steps of the first optimizer seen so far
        self._attached = False

    # ------------------------------------------------------------------ attach / detach
    def attach(self) -> Watch:
        if self._attached:
            return self
        opt, rec, watch = self.optimizers[0], self.recorder, self

        def post_step(*args, **kw):
            out = type(opt).post_step(opt, *args, **kw)  # the recorder's, while it is armed
            watch.step += 1
            nxt = watch.step + 1
            if nxt >= watch.first and (nxt - watch.first) % watch.every == 0 and rec._saved is None:
                rec.arm(nxt)
            return out

        opt.post_step = post_step  # on the instance: nothing else is wrapped
        self._attached = True
        if self.step + 1 >= self.first and (self.step + 1 - self.first) % self.every == 0:
            rec.arm(self.step + 1)
        return self

    def detach(self) -> None:
        if not self._attached:
            return
        self.optimizers[0].__dict__.pop("post_step", None)
        self.recorder.detach()
        self.recorder.end()  # a sampled step the loop did not finish is dropped
        self._attached = False

    def __enter__(self) -> Watch:
        return self.attach()

    def __exit__(self, exc_type, exc, tb) -> None:  # an exception goes on
        self.detach()
        if self.output and self.recorder.steps_made:
            from gradcheck.report import save_report

            save_report(self.report(), self.output)

    # ------------------------------------------------------------------ the report
    @property
    def samples(self) -> int:
        return self.recorder.steps_made

    def report(self):
        """The report of the samples so far (at least one)."""
        if not self.recorder.steps_made:
            raise WorkloadError(f"no sampled step yet (the first is step {self.first})")
        config = {
            "mode": "watch",
            "every": self.every,
            "first": self.first,
            "steps_seen": self.step,
            "samples": self.recorder.steps_made,
            "steps": self.recorder.steps_made,
        }
        return self.recorder.report(self.policy, config, short_note=False)


def watch(
    model,
    optimizer,
    every: int = 100,
    first: int = 1,
    output: str | None = None,
    policy=None,
    name: str | None = None,
) -> Watch:
    """Sample gradient coverage every ``every`` optimizer steps of a running training loop;
    see :mod:`gradcheck.watching`."""
    return Watch(
        model, optimizer, every=every, first=first, output=output, policy=policy, name=name
    )
