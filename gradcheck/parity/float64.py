"""The port rerun in float64: ``gradcheck align``'s answer to "noise or port bug?".

The float32 noise floor (the original's own float32 error against its float64 rerun) is one
sample of the noise.  Where a model amplifies noise -- an element near zero lands on the
other side of a ReLU, a near tie in a max or a top-k flips -- the port's float32 run is
another sample that can land 10-100x further from the reference than the floor, with no
bug at all.  The floor cannot tell that apart from a port bug.  Running the port itself in
float64 can: there the rounding noise is ~1e-16, nothing flips, and a port that computes
the original's function agrees with the original's float64 run to ~1e-10, while a port
bug keeps its difference at any precision.

:func:`rerun_port_float64` puts the port's float Vars (parameters and buffers) back to
their values at the start of step 1, as float64, runs step 1's forward, loss and backward
in float64 (Jittor's ``auto_convert_64_to_32`` off, Python float operands kept float64 --
Jittor would round them to float32 --, the batch's float leaves as float64, every module's
output and d loss / d output recorded), and then puts every Var back as it
was, value and dtype.  It needs a port whose code follows its input's dtype: a hard-coded
cast to float32 brings float32 noise back into the rerun, and a row it should explain then
stays unexplained (never the reverse).  Judging is in :mod:`gradcheck.parity.judge`.

What the rerun makes float64, besides the batch: every float Var the model holds
(:func:`model_vars`: parameters and buffers, and Vars in plain attributes, lists and dicts,
``_``-prefixed ones too), and Jittor's automatic-precision cast ``Var.float_auto()`` (float32
unless AMP asks for float16; Jittor's own ResNet casts its pooled features with it), which
follows the run's precision there as torch's default dtype does in the original's float64
run; and its means (:func:`float64_means`: the backward of Jittor's own scales by a float32
``1/N``).  Jittor's tuners are off while it runs: on CPU they hand a matmul whose first operand
is float32 to MKL's ``mkl_matmul``, which takes float32 only and fails on a float64 second
operand ("support float32 only now"); Jittor's own kernels take any dtype.  A float32 that
still gets in (a hard-coded ``float32()`` in the port, a float32 constant made in its
``execute``) is found by the recorder's dtype watch and named in :attr:`Float64Run.leaks`
(the first module it enters or leaves, see :func:`describe_leak`); should the rerun fail
all the same, :class:`Float64RerunError` carries those leaks, and ``align`` reports them
with the error instead of stopping.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from gradcheck.enums import FLOAT64_MODES
from gradcheck.parity.batches import batch_for_port, batch_to_double
from gradcheck.parity.hooks import JittorOutputs
from gradcheck.parity.records import Leak

MODES = FLOAT64_MODES  # auto: only when float32 leaves something unexplained; always; never


@dataclass
class Float64Run:
    """Step 1 of the port in float64 (:func:`rerun_port_float64`)."""

    loss: float
    terms: dict[str, float]
    grads: dict[int, np.ndarray]  # id(Var) -> float64 gradient
    out: dict[str, list] = field(default_factory=dict)  # module -> [[np outputs]] per call
    # (module, call) -> [np d loss / d output]
    out_grads: dict[tuple[str, int], list] = field(default_factory=dict)
    seconds: float = 0.0
    leaks: list[Leak] = field(default_factory=list)  # where float32 got into the run


class Float64RerunError(RuntimeError):
    """The rerun failed (Jittor raised); ``leaks`` says where a float32 had got in by then."""

    def __init__(self, message: str, leaks: list[Leak], seconds: float):
        super().__init__(message)
        self.leaks, self.seconds = leaks, seconds


# Jittor turns a Python float operand into a float32 constant whatever the other operand's
# dtype (pyjt's converter: ``x64 + 0.001`` adds float32(0.001), 4.7e-11 off), so every eps,
# momentum and loss weight would bring float32 rounding into the rerun.  While it runs,
# these operators pass a Python float next to a float64 Var as a float64 array instead.
_SCALAR_OPS = (
    "__add__",
    "__radd__",
    "__sub__",
    "__rsub__",
    "__mul__",
    "__rmul__",
    "__truediv__",
    "__rtruediv__",
    "__floordiv__",
    "__rfloordiv__",
    "__mod__",
    "__rmod__",
    "__pow__",
    "__rpow__",
    "__lt__",
    "__le__",
    "__gt__",
    "__ge__",
    "__iadd__",
    "__isub__",
    "__imul__",
    "__itruediv__",
    "maximum",
    "minimum",
)


@contextmanager
def float64_scalars(jt):
    """Python float operands of float64 Vars stay float64 (see ``_SCALAR_OPS``; and in
    ``jt.maximum``/``jt.minimum``)."""
    saved = {}
    for name in _SCALAR_OPS:
        orig = getattr(jt.Var, name, None)
        if orig is None:
            continue

        def op(self, other, _orig=orig):
            if type(other) is float and str(self.dtype) == "float64":
                other = jt.array(np.array([other], np.float64))
            return _orig(self, other)

        saved[name] = orig
        setattr(jt.Var, name, op)
    funcs = {}
    for name in ("maximum", "minimum"):  # jt.maximum(x, eps): module functions
        orig = getattr(jt, name, None)
        if orig is None:
            continue

        def fn(a, b, *args, _orig=orig, **kw):
            if type(b) is float and isinstance(a, jt.Var) and str(a.dtype) == "float64":
                b = jt.array(np.array([b], np.float64))
            if type(a) is float and isinstance(b, jt.Var) and str(b.dtype) == "float64":
                a = jt.array(np.array([a], np.float64))
            return _orig(a, b, *args, **kw)

        funcs[name] = orig
        setattr(jt, name, fn)
    try:
        yield
    finally:
        for name, orig in saved.items():
            setattr(jt.Var, name, orig)
        for name, orig in funcs.items():
            setattr(jt, name, orig)


@contextmanager
def float64_auto(jt):
    """``Var.float_auto()`` (Jittor's cast to its automatic float dtype: float32, or float16
    under AMP) casts to float64 while the rerun runs: the run's precision."""
    saved = {}
    for owner in (jt.Var, jt):
        if getattr(owner, "float_auto", None) is not None:
            saved[owner] = owner.float_auto
            owner.float_auto = lambda x: x.float64()
    try:
        yield
    finally:
        for owner, orig in saved.items():
            owner.float_auto = orig


@contextmanager
def float64_means(jt):
    """A mean of a float64 Var is its sum divided by N in float64 while the rerun runs.

    Jittor's own mean is exact going forward, but its backward scales by ``1/N`` made in
    float32 (``make_number(1.0f * out->num / v->num)`` in ``reduce_op.cc``): unless N is a
    power of two, every gradient through a mean (each BatchNorm's two, average pooling,
    ``AdaptiveAvgPool2d``) is off by up to 6e-8 -- float32 rounding that no dtype shows.
    Covers ``jt.mean``, ``Var.mean`` and ``Var.reduce("mean", ...)``."""
    saved = {}

    def by_n(total, x):
        n = x.numel() // max(total.numel(), 1)
        return total / jt.array(np.array([n], np.float64))

    def is64(x):
        return isinstance(x, jt.Var) and str(x.dtype) == "float64"

    orig_mean, orig_vmean, orig_reduce = jt.mean, jt.Var.mean, jt.Var.reduce
    orig_sum = jt.Var.sum

    def mean(x, *args, _orig=orig_mean, **kw):
        return by_n(orig_sum(x, *args, **kw), x) if is64(x) else _orig(x, *args, **kw)

    def vmean(x, *args, **kw):
        return by_n(orig_sum(x, *args, **kw), x) if is64(x) else orig_vmean(x, *args, **kw)

    def reduce(x, op, *args, **kw):
        if op == "mean" and is64(x):
            return by_n(orig_reduce(x, "add", *args, **kw), x)
        return orig_reduce(x, op, *args, **kw)

    for owner, name, fn in (
        (jt, "mean", mean),
        (jt.Var, "mean", vmean),
        (jt.Var, "reduce", reduce),
    ):
        saved[(owner, name)] = getattr(owner, name)
        setattr(owner, name, fn)
    try:
        yield
    finally:
        for (owner, name), orig in saved.items():
            setattr(owner, name, orig)


_MAX_DEPTH = 4


def model_vars(model, jt) -> list:
    """Every float Var reachable from ``model``, once each: in the attributes of every module
    of its tree (``_``-prefixed ones too: a constant kept there is used in ``execute`` as
    much as a parameter) and in the lists, tuples and dicts they hold (a Module in one
    counts with its own tree)."""
    found: dict = {}
    seen: set = set()
    todo = [model]

    def visit(value, depth):
        if isinstance(value, jt.Var):
            if _is_float(value):
                found.setdefault(id(value), value)
        elif isinstance(value, jt.nn.Module):
            todo.append(value)
        elif isinstance(value, (list, tuple)) and depth < _MAX_DEPTH:
            for x in value:
                visit(x, depth + 1)
        elif isinstance(value, dict) and depth < _MAX_DEPTH:
            for x in value.values():
                visit(x, depth + 1)

    while todo:
        m = todo.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        for value in list(vars(m).values()):
            visit(value, 0)
    return list(found.values())


def describe_leak(leak: Leak) -> str:
    """One sentence for a :attr:`Float64Run.leaks` entry."""
    name = leak.module or "<root>"
    if leak.at == "output":
        return (
            f"{name} [{leak.type}] turned its float64 input into a {leak.dtype} "
            f"output (a cast in its own code)"
        )
    parent = leak.module.rpartition(".")[0] if leak.module else None
    where = (
        "the code that calls the model (the loss or the batch)"
        if parent is None
        else f"the code of {parent or '<root>'}, which calls it"
    )
    return (
        f"{name} [{leak.type}] got a {leak.dtype} input"
        + (f" after {leak.after or '<root>'} gave out float64" if leak.after is not None else "")
        + f": a cast to {leak.dtype} in {where}"
    )


def _is_float(var) -> bool:
    return str(var.dtype).startswith(("float", "bfloat"))


def snapshot(variables, jt) -> dict:
    """{id: np value} of the float Vars (taken before step 1: the rerun's starting point)."""
    jt.sync(list(variables))
    return {id(v): v.numpy().copy() for v in variables if _is_float(v)}


def rerun_port_float64(
    port, variables, start: dict, trainable, batch_np, template, jt
) -> Float64Run:
    """Step 1 of ``port`` again in float64 from ``start`` (see the module doc); ``variables``
    are the port's parameters and buffers, ``trainable`` the Vars whose gradients are
    wanted.  Every Var is restored (value and dtype) before it returns or raises."""
    from gradcheck.workload import call_loss

    t0 = time.time()
    now = [(v, v.numpy().copy()) for v in variables if _is_float(v)]
    rec = JittorOutputs(port.model, jt, expect_dtype="float64")
    try:
        # enable_tuner=0: no relay to MKL's float32-only matmul (see the module doc)
        with (
            jt.flag_scope(auto_convert_64_to_32=0, enable_tuner=0),
            float64_scalars(jt),
            float64_auto(jt),
            float64_means(jt),
        ):
            for v, value in now:
                v.assign(jt.array(start.get(id(v), value).astype(np.float64)))
            batch = batch_for_port(batch_to_double(batch_np), template, jt)
            with rec:
                loss, terms, _ = call_loss(port.loss, port.model, batch, port.name)
                rec.output_grads(loss)
            with jt.log_capture_scope(log_v=0, log_silent=1):  # "no gradient" warnings
                grads = jt.grad(loss, list(trainable)) if trainable else []
            jt.sync([loss, *terms.values(), *grads])
            rec.fetch()
            return Float64Run(
                loss=float(loss.item()),
                terms={k: float(v.item()) for k, v in terms.items()},
                grads={id(v): g.numpy().astype(np.float64) for v, g in zip(trainable, grads)},
                out=rec.out,
                out_grads=rec.grads,
                seconds=time.time() - t0,
                leaks=rec.leaks,
            )
    except Exception as exc:  # Jittor's error (a compile or kernel failure): with the leaks
        raise Float64RerunError(
            f"{type(exc).__name__}: {_brief(str(exc))}", rec.leaks, time.time() - t0
        ) from exc
    finally:
        for v, value in now:
            v.assign(jt.array(value))
        jt.sync([v for v, _ in now])


def _brief(message: str) -> str:
    """Jittor's error in one line: what failed, where in Jittor, on which op and inputs
    (without its colour codes, log prefixes, cache paths and advice)."""
    import re

    flat = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", message).split())
    prefix = r"\[[iwef] \d+ [\d:.]+ \d+ ([\w./-]+:\d+)\]\s*"
    reason = re.search(r"\[Reason\]:\s*(?:" + prefix + r")?(.*?)\s*(?:\*{5}|Async error|$)", flat)
    op = re.search(r"\[OP TYPE\]:\s*(.*?)\s*\[Input\]:\s*(.*?),?\s*\[Output\]", flat)
    if not reason:
        return re.sub(prefix, "", flat)[:300]
    text = reason.group(2).replace("Something wrong... Could you please report this issue?", "")
    text = " ".join(text.split())
    return (
        text
        + (f" ({reason.group(1)})" if reason.group(1) else "")
        + (f"; op {op.group(1)} on {op.group(2)}" if op else "")
    )[:500]
