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
    owner: object = None          # the module (or plain list/dict) holding it, and its key there
    key: object = None
    aliases: list = field(default_factory=list)
    buffer: bool = False
    kind: str = "param"           # param | buffer | non_float | derived
    tracked: bool = True          # listed by the model's own parameters() when the run began
    held_only: bool = False       # found only in an optimizer, not on the model

    def current(self):
        """The Var the owner holds under this name now (a forward may replace it)."""
        jt = runtime.import_jittor()
        owner = self.owner
        if owner is None:
            return self.var
        if isinstance(owner, (list, tuple)):
            return owner[self.key] if isinstance(self.key, int) and self.key < len(owner) else None
        if isinstance(owner, dict):
            return owner.get(self.key)
        attrs = owner.params if isinstance(owner, jt.nn.ParameterList) else owner.__dict__
        return attrs.get(self.key)


def is_float(var) -> bool:
    return str(var.dtype).startswith(("float", "bfloat"))


_MAX_DEPTH = 4   # how deep into plain containers (lists of dicts of lists...) the walk looks


def walk(model) -> list:
    """Every Var the model holds, as ``(name, var, module path, owner, key)``, model order.

    First the Vars Jittor's own module tree shows (``named_modules``: what ``parameters()``
    lists, under Jittor's names); then what it misses: Modules and Vars kept in plain
    ``list``/``tuple``/``dict`` attributes, named by attribute path with their indices or keys
    (``blocks.0.weight``, ``heads.cls.bias``), and the module trees under them.  Each Var once
    per name; names starting with ``_`` are skipped, as ``parameters()`` skips them.
    """
    jt = runtime.import_jittor()
    out, seen_modules = [], set()
    queue = [("", model)]
    while queue:
        prefix, root = queue.pop(0)
        if id(root) in seen_modules:
            continue
        subtree = [(f"{prefix}.{n}" if prefix and n else prefix or n, m)
                   for n, m in root.named_modules() if id(m) not in seen_modules]
        seen_modules.update(id(m) for _, m in subtree)
        for mod_name, module in subtree:
            attrs = module.params if isinstance(module, jt.nn.ParameterList) else module.__dict__
            for key, value in list(attrs.items()):
                if isinstance(key, str) and key.startswith("_"):
                    continue
                name = f"{mod_name}.{key}" if mod_name else str(key)
                if isinstance(value, jt.Var):
                    out.append((name, value, mod_name, module, key))
                elif isinstance(value, (list, tuple, dict)) and not isinstance(module, jt.nn.Sequential):
                    _walk_container(value, name, mod_name, out, queue, seen_modules, 1)
    return out


def _walk_container(box, name, mod_name, out, queue, seen_modules, depth) -> None:
    jt = runtime.import_jittor()
    if depth > _MAX_DEPTH:
        return
    items = box.items() if isinstance(box, dict) else enumerate(box)
    for key, value in items:
        if isinstance(key, str) and key.startswith("_"):
            continue
        path = f"{name}.{key}"
        if isinstance(value, jt.Var):
            out.append((path, value, mod_name, box, key))
        elif isinstance(value, jt.nn.Module):
            if id(value) not in seen_modules:
                queue.append((path, value))
        elif isinstance(value, (list, tuple, dict)):
            _walk_container(value, path, mod_name, out, queue, seen_modules, depth + 1)


def classify_entry(entry: Entry, buffer_globs=()) -> None:
    """Set ``entry.kind`` from the Var and its name (``derived`` is decided by the graph)."""
    var, key = entry.var, entry.key
    if hasattr(var, "persistent") or key in BUFFER_ATTRS or any(
            fnmatch.fnmatchcase(entry.name, g) for g in buffer_globs):
        entry.kind = "buffer"
    elif not is_float(var):
        entry.kind = "non_float"


def new_entries(found, seen: dict, names: set, buffer_globs=(), tracked=None) -> list:
    """Entries for the Vars of ``found`` (from :func:`walk`) not yet in ``seen`` (id -> Entry):
    a Var seen before under another name becomes an alias; a name already known (its
    attribute now holds a new Var: recomputed each forward) is not a new entry."""
    entries = []
    for name, var, mod_name, owner, key in found:
        if id(var) in seen:
            if name not in names:
                seen[id(var)].aliases.append(name)
                names.add(name)
            continue
        if name in names:
            continue
        entry = Entry(name, var, mod_name, owner=owner, key=key,
                      tracked=tracked is None or id(var) in tracked)
        classify_entry(entry, buffer_globs)
        if len(var.name()) < len(name):  # as Jittor's parameters() does: names in warnings
            var.name(name)
        seen[id(var)] = entry
        names.add(name)
        entries.append(entry)
    return entries


def mark_derived(entries: list, among: list) -> None:
    """``derived``: a trainable float Var computed from other Vars of the model (weight norm's
    ``weight``, recomputed from ``weight_g``/``weight_v``), found in Jittor's graph."""
    candidates = [e for e in entries if e.kind == "param" and not e.var.is_stop_grad()]
    if candidates:
        position = {id(e): i for i, e in enumerate(among)}
        reach, _ = analyse({i: e.var for i, e in enumerate(candidates)},
                           [e.var for e in among], fence=None)
        for i, e in enumerate(candidates):
            if reach[i] - {position[id(e)]}:
                e.kind = "derived"
    for e in entries:
        e.buffer = e.kind != "param"


def inventory(model, buffer_globs=(), held=()) -> tuple[list, list]:
    """Split a model's Vars into parameters and buffers, in model order.

    The Vars are what :func:`walk` finds: Jittor's module tree, and the Modules and Vars kept
    in plain lists and dicts that Jittor's ``parameters()`` misses (those are ``tracked=False``).
    Buffers are: Vars registered with ``register_buffer``, the running stats of norm layers,
    names matching ``buffer_globs``, integer and bool Vars (``non_float``: no gradient can flow
    to them), and Vars computed from other Vars of the model (``derived``, e.g. weight norm's
    ``weight``, recomputed from ``weight_g``/``weight_v`` every forward), except a derived Var
    that an optimizer holds (``held``: Vars): the optimizer trains it, so it is a parameter.
    Everything else is a parameter, trainable unless ``stop_grad``.  A Var reachable under two
    names (shared) is listed once, under its first name, with the others as aliases.
    """
    tracked = {id(v) for v in model.parameters()}
    entries = new_entries(walk(model), {}, set(), buffer_globs, tracked)
    mark_derived(entries, entries)
    held_ids = {id(v) for v in held}
    for e in entries:
        if e.kind == "derived" and id(e.var) in held_ids:
            e.kind, e.buffer = "param", False
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
        self.keys: dict = {}
        self.read: set = set()
        for i, e in enumerate(entries):
            self.add(i, e)

    def add(self, index: int, entry: Entry) -> None:
        """Watch one more parameter (a layer created after the recorder was)."""
        jt = runtime.import_jittor()
        owner = entry.owner
        if isinstance(owner, jt.nn.ParameterList):
            self.keys.setdefault((id(owner), "params"), []).append(index)
        elif isinstance(owner, jt.nn.Module):
            self.keys.setdefault((id(owner), entry.key), []).append(index)

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
