"""What the model holds, and what Jittor's graph says about it.

:func:`inventory` splits a model's Vars into parameters and buffers; :func:`analyse` reads
Jittor's lazy graph after a forward pass: which Vars each root (the loss, each loss term) has a
differentiable path to (*reach*), and which Vars an op of this forward took as an input
(*read*).  A parameter that was read but not reached is ``cut``; one never read is
``not_called`` (see :mod:`gradcheck.explain`).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from gradcheck import runtime

BUFFER_ATTRS = ("running_mean", "running_var", "num_batches_tracked")
_VAR_INFO = re.compile(r"^Var\((\d+):[^,]*:g(\d),(\w+),")
_OP_INFO = re.compile(r"^Op\((\d+):[^,]*:g(\d),")


@dataclass
class Entry:
    """One Var of the model: a parameter (trainable or frozen) or a buffer."""

    name: str
    var: object
    module: str
    owner: object = None          # the module holding it, and the attribute key there
    key: object = None
    aliases: list = field(default_factory=list)
    buffer: bool = False
    kind: str = "param"           # param | buffer | non_float | derived

    def current(self):
        """The Var the owning module holds under this name now (a forward may replace it)."""
        jt = runtime.import_jittor()
        owner = self.owner
        attrs = owner.params if isinstance(owner, jt.nn.ParameterList) else owner.__dict__
        return attrs.get(self.key)


def is_float(var) -> bool:
    return str(var.dtype).startswith(("float", "bfloat"))


def inventory(model, buffer_globs=()) -> tuple[list, list]:
    """Split a model's Vars into parameters and buffers, in model order.

    Jittor's ``parameters()`` returns every public Var attribute, BatchNorm running stats
    included.  Buffers are: Vars registered with ``register_buffer``, the running stats of
    norm layers, names matching ``buffer_globs``, integer and bool Vars (``non_float``: no
    gradient can flow to them), and Vars computed from other Vars of the model (``derived``,
    e.g. weight norm's ``weight``, recomputed from ``weight_g``/``weight_v`` every forward).
    Everything else is a parameter, trainable unless ``stop_grad``.  A Var reachable under two
    names (shared) is listed once, under its first name, with the others as aliases.
    """
    jt = runtime.import_jittor()
    seen: dict[int, Entry] = {}
    entries = []
    for mod_name, module in model.named_modules():
        attrs = module.params if isinstance(module, jt.nn.ParameterList) else module.__dict__
        for key, var in list(attrs.items()):
            if not isinstance(var, jt.Var) or (isinstance(key, str) and key.startswith("_")):
                continue
            name = f"{mod_name}.{key}" if mod_name else str(key)
            if id(var) in seen:
                seen[id(var)].aliases.append(name)
                continue
            entry = Entry(name, var, mod_name, owner=module, key=key)
            if hasattr(var, "persistent") or key in BUFFER_ATTRS or any(
                    fnmatch.fnmatchcase(name, g) for g in buffer_globs):
                entry.kind = "buffer"
            elif not is_float(var):
                entry.kind = "non_float"
            if len(var.name()) < len(name):  # as Jittor's parameters() does: names in warnings
                var.name(name)
            seen[id(var)] = entry
            entries.append(entry)
    candidates = [e for e in entries if e.kind == "param" and not e.var.is_stop_grad()]
    if candidates:
        position = {id(e): i for i, e in enumerate(entries)}
        reach, _ = analyse({i: e.var for i, e in enumerate(candidates)},
                           [e.var for e in entries], fence=None)
        for i, e in enumerate(candidates):
            if reach[i] - {position[id(e)]}:
                e.kind = "derived"
    for e in entries:
        e.buffer = e.kind != "param"
    return [e for e in entries if not e.buffer], [e for e in entries if e.buffer]


def analyse(roots: dict, targets: list, fence=None) -> tuple[dict, set]:
    """Read Jittor's graph once.

    Returns ``(reach, read)``: for each named root Var, the set of indices of ``targets`` with
    a differentiable path to it (walked backwards through float Vars and ops that pass
    gradients); and the indices of ``targets`` that an op created after ``fence`` (a node id
    taken before the forward) takes as an input.
    """
    jt = runtime.import_jittor()
    graph = jt.dump_all_graphs()
    info, inputs = graph.nodes_info, graph.inputs
    index_of_id, passable, new_op = {}, [True] * len(info), [False] * len(info)
    for i, text in enumerate(info):
        m = _VAR_INFO.match(text)
        if m:
            index_of_id[int(m.group(1))] = i
            passable[i] = m.group(2) == "1" and m.group(3).startswith(("float", "bfloat"))
        else:  # an op: "g0" marks one that stops gradients (detach is a clone with g0)
            m = _OP_INFO.match(text)
            passable[i] = m is None or m.group(2) == "1"
            new_op[i] = m is not None and fence is not None and int(m.group(1)) > fence
    target_at = {}
    for t_index, var in enumerate(targets):
        node = index_of_id.get(var.id)
        if node is not None:
            target_at[node] = t_index
    read = set()
    if fence is not None:
        for i, parents in enumerate(inputs):
            if new_op[i]:
                read.update(target_at[p] for p in parents if p in target_at)
    reach = {}
    for root_name, root in roots.items():
        start = index_of_id.get(root.id)
        found: set = set()
        if start is not None:
            seen = {start}
            stack = [start]
            while stack:
                node = stack.pop()
                if node in target_at:
                    found.add(target_at[node])
                for parent in inputs[node]:
                    if parent not in seen and passable[parent]:
                        seen.add(parent)
                        stack.append(parent)
        reach[root_name] = found
    return reach, read


def fence() -> int:
    """A node id below every op the next forward creates (Jittor numbers nodes in order)."""
    jt = runtime.import_jittor()
    return int(jt.array([0]).id)


def eval_frozen(model) -> dict:
    """``{id(param): module path}`` for parameters that a ``Module.eval()`` stopped.

    Jittor's ``eval()`` records, in the module's ``backup_grad_state``, which parameters took
    gradients, then stop-grads all of them; ``train()`` on the same module starts them again.
    A parameter is frozen by eval mode when it does not take gradients now, an ``eval()``
    recorded it as trainable, and that module is still in eval mode.
    """
    out = {}
    for name, module in model.named_modules():
        backup = module.__dict__.get("backup_grad_state")
        if backup and not module.__dict__.get("is_train", True):
            for pid, was_trainable in backup.items():
                if was_trainable:
                    out.setdefault(pid, name)
    return out


class ReadRecorder:
    """Record which parameters the forward reads through their module attribute.

    Jittor frees a lazy op as soon as nothing refers to its output, so an op whose result is
    dropped (an auxiliary head whose logits are never used) is gone from the graph by the time
    it is dumped.  While active, this wraps ``Module.__getattribute__`` (restored after) and
    notes each read of a parameter's attribute (``ParameterList`` entries through the list).
    """

    def __init__(self, entries: list):
        jt = runtime.import_jittor()
        self.keys: dict = {}
        for i, e in enumerate(entries):
            if isinstance(e.owner, jt.nn.ParameterList):
                self.keys.setdefault((id(e.owner), "params"), []).append(i)
            else:
                self.keys.setdefault((id(e.owner), e.key), []).append(i)
        self.read: set = set()

    def __enter__(self):
        jt = runtime.import_jittor()
        module_cls, keys, read = jt.Module, self.keys, self.read
        self._saved = module_cls.__dict__.get("__getattribute__")
        base = self._saved or object.__getattribute__

        def getattribute(obj, name):
            hit = keys.get((id(obj), name))
            if hit:
                read.update(hit)
            return base(obj, name)

        module_cls.__getattribute__ = getattribute
        return self

    def __exit__(self, *exc):
        jt = runtime.import_jittor()
        if self._saved is None:
            del jt.Module.__getattribute__
        else:
            jt.Module.__getattribute__ = self._saved
        return False
