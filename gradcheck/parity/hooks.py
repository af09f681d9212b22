"""Module outputs recorded in ``gradcheck align``: forward hooks on every module, both sides.

The home of :class:`TorchOutputs` and :class:`JittorOutputs`: each module's outputs in call
order and d loss / d each output, for the per-module (forward and backward) comparison.

A tensor that several modules return (a block's output is its last layer's, and its
parent's) is copied once and its one array shared by every record that names it, and its
gradient is asked for once: nested modules would otherwise hold the model's activations
several times over (on Gold-YOLO about twice).  The arrays are only read.
"""

from __future__ import annotations

import numpy as np

from gradcheck.parity.batches import tree_leaves
from gradcheck.parity.judge import max_rel_scale
from gradcheck.parity.records import Leak

RELEASE_BYTES = 256 << 20  # Jittor's freed blocks handed back after about this much is read


class TorchOutputs:
    """Forward hooks on every named module (root included, as ""): outputs in call order,
    cloned at once (an in-place op later must not change what was recorded).

    Given a ``reference`` (another recorder of the same model's run: the float64 one), the
    run is reduced as it goes to its distances from the reference (``out_floor`` and
    ``grad_floor``, per (module, call): the largest scale-relative difference over the
    outputs); ``out`` and ``grads`` then keep only each array's shape (a zero-size view), so
    such a run never holds a model's worth of activations."""

    def __init__(self, model, torch, reference: TorchOutputs | None = None):
        self.model, self.torch = model, torch
        self.reference = reference
        self.order: list = []  # [(name, call, type)]
        self.out: dict = {}  # name -> [[np leaves]]
        self.live: list = []  # per entry of order: [(output tensor, its version)]
        self.grads: dict = {}  # (name, call) -> [np d loss / d output]
        self.out_floor: dict = {}  # (name, call) -> distance from the reference's outputs
        self.grad_floor: dict = {}  # (name, call) -> distance from its d loss / d outputs
        self._handles: list = []
        self._copies: dict = {}  # id(tensor) -> (tensor, its version, its array), while recording

    def _copy(self, t) -> np.ndarray:
        """``t`` as a numpy array, copied once per tensor and version."""
        hit = self._copies.get(id(t))
        if hit is not None and hit[1] == t._version:
            return hit[2]
        a = t.detach().cpu().numpy().copy()
        self._copies[id(t)] = (t, t._version, a)  # t held: its id stays its own
        return a

    def _keep(self, key, arrays: list, floors: dict, ref: list | None) -> list:
        """What is kept of one record's ``arrays``: themselves, or (with a reference) their
        shapes, their distance from ``ref`` stored in ``floors``."""
        if self.reference is None:
            return arrays
        if ref is not None and any(tuple(a.shape) == tuple(r.shape) for a, r in zip(arrays, ref)):
            floors[key] = max_rel_scale(arrays, ref)
        return [shape_only(a.shape) for a in arrays]

    def output_grads(self, loss) -> None:
        """d loss / d every recorded output (before the backward that frees the graph), in
        the outputs' own dtype; one gradient per distinct tensor."""
        unique = {id(t): t for ts in self.live for t, _ in ts}
        if not unique or not loss.requires_grad:
            self.live = []
            return
        try:
            got_all = self.torch.autograd.grad(
                loss, list(unique.values()), retain_graph=True, allow_unused=True
            )
        except RuntimeError:  # e.g. an output changed in place later: no backward view
            self.live = []
            return
        gs = {k: (None if g is None else g.detach().cpu().numpy()) for k, g in zip(unique, got_all)}
        del got_all
        ref = self.reference.grads if self.reference is not None else {}
        for (name, call, _), ts in zip(self.order, self.live):
            got = [gs[id(t)] for t, _ in ts]
            # an output changed in place later (e.g. ReLU(inplace=True)) is no longer the
            # tensor the hook saw: its gradient would be the in-place result's
            inplace = any(t._version != v for t, v in ts)
            if got and not inplace and all(g is not None for g in got):
                key = (name, call)
                self.grads[key] = self._keep(key, got, self.grad_floor, ref.get(key))
        self.live = []

    def __enter__(self):
        torch = self.torch
        for name, m in self.model.named_modules():

            def hook(mod, inp, out, name=name):
                tensors = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
                calls = self.out.setdefault(name, [])
                key = (name, len(calls))
                self.order.append((name, len(calls), type(mod).__name__))
                if self.reference is None:
                    calls.append([self._copy(t) for t in tensors])
                else:  # measured now, against the reference's record of the same call
                    refs = self.reference.out.get(name, [])
                    ref = refs[key[1]] if key[1] < len(refs) else None
                    arrays = [t.detach().cpu().numpy() for t in tensors]
                    calls.append(self._keep(key, arrays, self.out_floor, ref))
                self.live.append([(t, t._version) for t in tensors if t.requires_grad])

            self._handles.append(m.register_forward_hook(hook))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._copies = {}
        return False


def shape_only(shape) -> np.ndarray:
    """A read-only array of ``shape`` that takes no memory (a zero-strided view of one zero):
    where only a record's shape is kept."""
    return np.broadcast_to(np.float32(0), tuple(shape))


class JittorOutputs:
    """Forward hooks on every named module of a Jittor model (an existing hook is chained
    and put back on exit); leaves are kept as Vars and fetched once after the step."""

    def __init__(self, model, jt, expect_dtype=None):
        self.model, self.jt = model, jt
        self.out: dict = {}
        self.live: dict = {}  # (name, call) -> the output Vars, graph attached
        self.grads: dict = {}  # (name, call) -> [d loss / d output]
        self._saved: list = []
        self._held: dict = {}  # Var id -> (the Var, its detached handle), while recording
        # ``expect_dtype`` (the float64 rerun): where a float Var of another dtype first
        # enters or leaves a module (see :meth:`_watch`)
        self.expect = expect_dtype
        self.leaks: list[Leak] = []
        self._stray: dict = {}  # id -> the off-dtype Vars already seen (kept alive)
        self._last_clean = None  # the last module whose outputs were all expect_dtype

    def output_grads(self, loss) -> None:
        keys = [k for k, vs in self.live.items() if vs]
        # a Var output by nested modules is asked for once, and so is one Var under two
        # handles: Jittor's same-dtype cast (``x.to(x.dtype)``, which Dropout(p=0) returns)
        # hands back its input, and jt.grad gives zeros for a Var listed a second time
        unique: dict = {}
        for k in keys:
            for v in self.live[k]:
                unique.setdefault(v.id, v)
        if unique:
            with self.jt.log_capture_scope(log_v=0, log_silent=1):  # "no gradient" warnings
                gs = dict(zip(unique, self.jt.grad(loss, list(unique.values()), retain_graph=True)))
            for k in keys:
                self.grads[k] = [gs[v.id] for v in self.live[k]]
        self.live = {}

    def __enter__(self):
        jt = self.jt
        for name, m in self.model.named_modules():
            prev = m.__dict__.get("__fhook__")
            self._saved.append((m, prev))

            def hook(mod, args, out, *kw, name=name, prev=prev):
                vs = [v for v in tree_leaves(out) if isinstance(v, jt.Var)]
                if self.expect is not None:
                    self._watch(
                        name,
                        mod,
                        [v for v in tree_leaves([args, list(kw)]) if isinstance(v, jt.Var)],
                        vs,
                    )
                calls = self.out.setdefault(name, [])
                self.live[(name, len(calls))] = [v for v in vs if _float_var(v)]
                calls.append([self._detached(v) for v in vs])
                if prev is not None:
                    return prev(mod, args, out, *kw)
                return None

            m.register_forward_hook(hook)
        return self

    def _detached(self, v):
        """One detached handle per Var, however many modules return it (fetched once)."""
        hit = self._held.get(v.id)
        if hit is None:  # the Var is held: its id stays its own while recording
            hit = self._held[v.id] = (v, v.detach())
        return hit[1]

    def __exit__(self, *exc):
        self._held = {}
        for m, prev in self._saved:
            if prev is None:
                m.__dict__.pop("__fhook__", None)
            else:
                m.__dict__["__fhook__"] = prev
        return False

    def _watch(self, name, mod, inputs, outputs) -> None:
        """A leak of another float dtype into a run that should be ``expect_dtype`` only,
        recorded where it first shows (hooks fire as modules return: leaves in execution
        order, a container after its children): an off-dtype input no module gave out is
        cast in the calling code (or the loss, or the batch) before this module; an
        off-dtype output from inputs that were all clean is cast in this module's own code.
        An off-dtype Var already seen (the same Var passed on, or a module's output from
        off-dtype inputs) is the leak spreading, not a new one."""

        def stray(vs):
            return [v for v in vs if _is_float(v) and str(v.dtype) != self.expect]

        new_in = [v for v in stray(inputs) if id(v) not in self._stray]
        bad_out = stray(outputs)
        typ = type(mod).__name__
        if new_in:
            self.leaks.append(Leak(name, typ, "input", str(new_in[0].dtype), self._last_clean))
        elif bad_out and not stray(inputs) and any(id(v) not in self._stray for v in bad_out):
            self.leaks.append(Leak(name, typ, "output", str(bad_out[0].dtype), self._last_clean))
        for v in new_in + bad_out:
            self._stray[id(v)] = v
        if outputs and not bad_out:
            self._last_clean = name

    def fetch(self) -> None:
        """The records as numpy arrays: each Var fetched once (a Var under several records
        gives them one array) and let go as soon as it is (Jittor hands its memory back
        while the next are read, so the run's records are never held twice)."""
        index: dict = {}  # id(Var) -> its place in ``unique``
        unique: list = []

        def place(v) -> int:
            i = index.get(id(v))
            if i is None:  # every Var is held in ``unique``: its id stays its own
                i = index[id(v)] = len(unique)
                unique.append(v)
            return i

        out = {k: [[place(v) for v in c] for c in calls] for k, calls in self.out.items()}
        grads = {k: [place(g) for g in gs] for k, gs in self.grads.items()}
        self.out, self.grads = {}, {}  # the Vars are now held by ``unique`` alone
        self.jt.sync(unique)
        arrays, freed = [], 0
        for i in range(len(unique)):
            arrays.append(unique[i].numpy())
            unique[i] = None  # let go of the Var
            freed += arrays[-1].nbytes
            if freed > RELEASE_BYTES:  # Jittor keeps freed blocks for itself until told
                self.jt.gc()
                freed = 0
        self.out = {k: [[arrays[i] for i in c] for c in calls] for k, calls in out.items()}
        self.grads = {k: [arrays[i] for i in gs] for k, gs in grads.items()}


def _is_float(v) -> bool:
    return str(v.dtype).startswith(("float", "bfloat"))


def _float_var(v) -> bool:
    return _is_float(v) and not v.is_stop_grad()
