"""What the model holds, and what Jittor's graph says about it.

:func:`inventory` splits a model's Vars into parameters and buffers; :func:`analyse` reads
Jittor's lazy graph after a forward pass: which Vars each root (the loss, each loss term) has a
differentiable path to (*reach*), and which Vars an op of this forward took as an input
(*read*).  A parameter that was read but not reached is ``cut``; one never read is
``not_called`` (see :mod:`gradcheck.explain`).
"""

from __future__ import annotations

import fnmatch
import functools
import re
from dataclasses import dataclass, field
from typing import Any

from gradcheck import runtime

BUFFER_ATTRS = ("running_mean", "running_var", "num_batches_tracked")
_EMPTY = re.compile(r"\)\[(?:\d+,)*0,")  # a Var's shape with a 0 in it: "...)[0,3,]"


@dataclass
class Entry:
    """One Var of the model: a parameter (trainable or frozen) or a buffer."""

    name: str
    var: object
    module: str
    owner: object = None  # the module (or plain list/dict) holding it, and its key there
    key: Any = None  # an index, a dict key or an attribute name
    aliases: list = field(default_factory=list)
    buffer: bool = False
    kind: str = "param"  # param | buffer | non_float | derived
    tracked: bool = True  # listed by the model's own parameters() when the run began
    held_only: bool = False  # found only in an optimizer, not on the model

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


_MAX_DEPTH = 4  # how deep into plain containers (lists of dicts of lists...) the walk looks


def walk(model) -> list:
    """Every Var the model holds, as ``(name, var, module path, owner, key)``, model order.

    First the Vars Jittor's own module tree shows (``named_modules``: what ``parameters()``
    lists, under Jittor's names); then what it misses: Modules and Vars kept in plain
    ``list``/``tuple``/``dict`` attributes, named by attribute path with their indices or keys
    (``blocks.0.weight``, ``heads.cls.bias``), and the module trees under them.  Each Var once
    per name; names starting with ``_`` are skipped, as ``parameters()`` skips them.
    """
    jt = runtime.import_jittor()
    out: list = []
    seen_modules: set[int] = set()
    queue = [("", model)]
    while queue:
        prefix, root = queue.pop(0)
        if id(root) in seen_modules:
            continue
        subtree = [
            (f"{prefix}.{n}" if prefix and n else prefix or n, m)
            for n, m in root.named_modules()
            if id(m) not in seen_modules
        ]
        seen_modules.update(id(m) for _, m in subtree)
        for mod_name, module in subtree:
            attrs = module.params if isinstance(module, jt.nn.ParameterList) else module.__dict__
            for key, value in list(attrs.items()):
                if isinstance(key, str) and key.startswith("_"):
                    continue
                name = f"{mod_name}.{key}" if mod_name else str(key)
                if isinstance(value, jt.Var):
                    out.append((name, value, mod_name, module, key))
                elif isinstance(value, (list, tuple, dict)) and not isinstance(
                    module, jt.nn.Sequential
                ):
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
    if (
        hasattr(var, "persistent")
        or key in BUFFER_ATTRS
        or any(fnmatch.fnmatchcase(entry.name, g) for g in buffer_globs)
    ):
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
        entry = Entry(
            name, var, mod_name, owner=owner, key=key, tracked=tracked is None or id(var) in tracked
        )
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
        reach, _ = analyse(
            {i: e.var for i, e in enumerate(candidates)}, [e.var for e in among], fence=None
        )
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


class GraphView:
    """What :func:`analyse` parsed of one dumped graph, kept for :func:`zero_proofs`.  The
    parts only a zero proof reads (op names, Vars' dimensions, empty Vars) are read from the
    dump when first asked for: most steps never need them."""

    def __init__(
        self, nodes: list, inputs: list, passable: list, node_ids: list, target_at: dict, seen: dict
    ):
        self._nodes = nodes  # node -> (kind "V"/"O", id, gradient flag, the rest)
        self.inputs = inputs  # node -> its input nodes
        self.passable = passable  # node -> does a gradient pass through it
        self.node_ids = node_ids  # node -> Jittor's id (creation order)
        self.target_at = target_at  # node -> target index
        self.seen = seen  # root name -> nodes with a differentiable path to it

    @functools.cached_property
    def ops(self) -> list:
        """node -> its op's name ("binary.multiply"), None for a Var."""
        return [None if kind == "V" else _op_name(rest) for kind, _, _, rest in self._nodes]

    @functools.cached_property
    def ndim(self) -> dict:
        """Var node -> number of dimensions."""
        return {
            i: rest[rest.rfind(")[") + 2 :].count(",")
            for i, (kind, _, _, rest) in enumerate(self._nodes)
            if kind == "V"
        }

    @functools.cached_property
    def empty(self) -> set:
        """Var nodes holding no element (an empty selection), placeholders left out."""
        ops, inputs = self.ops, self.inputs
        return {
            i
            for i, (kind, _, _, rest) in enumerate(self._nodes)
            if kind == "V"
            and _EMPTY.search(rest)
            and (not inputs[i] or ops[inputs[i][0]] not in _PLACEHOLDER_OPS)
        }


# ops whose output is exactly zero when every input is (they move or sum values, nothing else)
_ZERO_KEEPING = (
    "broadcast_to",
    "reshape",
    "reindex",
    "reindex_reduce.add",
    "transpose",
    "getitem",
    "tape",
    "reduce.add",
    "unary.cast",
    "unary.negative",
    "clone",
    "copy",
)
# ops that pass back no gradient to one input when another is exactly zero: products and
# Jittor's matmul/conv kernels; an add does not
_BLOCKING = ("binary.multiply", "mkl_conv", "mkl_matmul", "cublas_matmul", "cudnn_conv")
# custom kernels and custom-gradient Functions (jt.code, "tapes"): opaque, so only a zero
# input of at least two dimensions (a convolution's or a linear layer's weight, never a
# bias) is taken to block the gradient to the others
_CUSTOM = ("code", "tapes")
# an empty Var made by these is a placeholder (a Function's gradient tape), not missing data
_PLACEHOLDER_OPS = ("tapes", "tape", "code")


# the element-wise ops Jittor differentiates (src/ops/unary_op.cc and binary_op.cc, ``grad``):
# any other (round, floor, ceil, floor_divide, bitwise and logical ops) passes no gradient,
# and jt.grad warns for a Var whose every path runs through one
_UNARY_GRAD = {
    "abs",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "cast",
    "cos",
    "cosh",
    "erf",
    "erfinv",
    "exp",
    "log",
    "negative",
    "sigmoid",
    "sin",
    "sinh",
    "sqrt",
    "tan",
    "tanh",
}
_BINARY_GRAD = {"add", "divide", "maximum", "minimum", "mod", "multiply", "pow", "subtract"}


def _has_grad(op: str) -> bool:
    kind, _, name = op.partition(".")
    if kind == "unary":
        return name in _UNARY_GRAD
    if kind == "binary":
        return name in _BINARY_GRAD
    return True


def analyse(roots: dict, targets: list, fence=None, keep: bool = False):
    """Read Jittor's graph once.

    Returns ``(reach, read)``: for each named root Var, the set of indices of ``targets`` with
    a differentiable path to it (walked backwards through float Vars and ops that pass
    gradients); and the indices of ``targets`` that an op created after ``fence`` (a node id
    taken before the forward) takes as an input.  ``keep``: also return the parsed
    :class:`GraphView`, for :func:`zero_proofs`.
    """
    jt = runtime.import_jittor()
    graph = jt.dump_all_graphs()
    inputs = graph.inputs
    nodes = _nodes(graph.nodes_info)
    node_ids = [int(nid) for _, nid, _, _ in nodes]
    index_of_id = {node_ids[i]: i for i, node in enumerate(nodes) if node[0] == "V"}
    has_grad: dict = {}

    def op_passes(rest: str) -> bool:
        op = _op_name(rest)
        ok = has_grad.get(op)
        if ok is None:
            ok = has_grad[op] = _has_grad(op)
        return ok

    # g0 marks a Var or an op that stops gradients (detach is a clone with g0)
    passable = [
        g == "1" and (rest.startswith(("float", "bfloat")) if kind == "V" else op_passes(rest))
        for kind, _, g, rest in nodes
    ]
    target_at = {}
    for t_index, var in enumerate(targets):
        node = index_of_id.get(var.id)
        if node is not None:
            target_at[node] = t_index
    read: set[int] = set()
    if fence is not None:
        for i, node in enumerate(nodes):
            if node[0] != "V" and node_ids[i] > fence:
                read.update(target_at[p] for p in inputs[i] if p in target_at)
    reach, seen_by = {}, {}
    for root_name, root in roots.items():
        start = index_of_id.get(root.id)
        found: set = set()
        seen = {start} if start is not None else set()
        stack = list(seen)
        while stack:
            node = stack.pop()
            if node in target_at:
                found.add(target_at[node])
            for parent in inputs[node]:
                if parent not in seen and passable[parent]:
                    seen.add(parent)
                    stack.append(parent)
        reach[root_name] = found
        seen_by[root_name] = seen
    if keep:
        return reach, read, GraphView(nodes, inputs, passable, node_ids, target_at, seen_by)
    return reach, read


# one dumped node per line: "Var(18:1:2:1:i0:o1:s1:n0:g1,float32,name,addr)[16,3,3,3,]" or
# "Op(53347:1:1:0:i2:o1:s1:g1,tape->53348)" -> (kind, id, gradient flag, what follows)
_NODE = re.compile(r"^([VO])[a-z]*\((\d+)[^,\n]*?:g(\d),([^\n]*)$", re.M)


def _nodes(info: list) -> list:
    """``(kind "V"/"O", id, gradient flag, rest)`` per dumped node: one regex pass over the
    whole dump (a 9,000-parameter model's step has 177k nodes: a Python parse per line took
    0.5 s of it).  A line in another shape counts as an op of id 0 that passes gradients if
    its name does."""
    found = _NODE.findall("\n".join(info))
    if len(found) == len(info):
        return found
    out = []
    for text in info:  # some line is not in the expected shape: line by line
        m = _NODE.match(text)
        out.append(m.groups() if m and "\n" not in text else ("O", "0", "1", text))
    return out


def _op_name(rest: str) -> str:
    """The op's name from what follows an op's gradient flag: "tape->53348)" -> "tape"."""
    return rest[: rest.find("->")]


def zero_proofs(view: GraphView, root: str, zero: set, zero_valued: set) -> dict:
    """What the graph proves about the exactly-zero gradients of the targets ``zero``.

    ``zero_valued`` are the targets whose value is exactly zero now.  Zero-ness is followed
    forward through ops that only move or sum values, and through a product with a zero
    factor.  An op in ``_BLOCKING`` with a zero input passes no gradient to its other inputs;
    so does a custom kernel (``_CUSTOM``) with a zero input of two or more dimensions.
    Returns ``{target: ("blocked", [zero-valued targets])}`` when every path from the target
    to ``root`` crosses such an op (naming the zero-valued targets behind those ops), else
    ``{target: ("empty", None)}`` when every path runs through a Var with no element (no data
    was routed through it: an expert that received no tokens).  Targets with neither proof
    are left out: nothing is known.  Linear in the graph's size (one topological order), with
    one bit per zero-valued target.
    """
    on_path = view.seen.get(root, set())
    node_of = {t: n for n, t in view.target_at.items()}
    bits = [t for t in sorted(zero_valued) if node_of.get(t) in on_path]
    zbits = {node_of[t]: 1 << b for b, t in enumerate(bits)}  # node -> the zeros behind it
    order = _topological(view, on_path)
    for node in order:  # forward: which Vars are exactly zero
        ins = view.inputs[node]
        op = view.ops[node]
        if op is None:  # a Var: zero when its op's output is
            if ins and ins[0] in zbits and node not in zbits:
                zbits[node] = zbits[ins[0]]
            continue
        zero_in = [zbits[i] for i in ins if i in zbits]
        if zero_in and (
            op == "binary.multiply" or (op in _ZERO_KEEPING and len(zero_in) == len(ins))
        ):
            zbits[node] = _union(zero_in)
    blocked: dict = {}  # (op, input) edges that pass no gradient -> bits
    for node in order:
        op = view.ops[node]
        if op in _BLOCKING or op in _CUSTOM:
            zero_in = [
                zbits[i]
                for i in view.inputs[node]
                if i in zbits and (op in _BLOCKING or view.ndim.get(i, 0) >= 2)
            ]
            for i in view.inputs[node]:
                if zero_in and i not in zbits:
                    blocked[(node, i)] = _union(zero_in)
    start = _root_node(view, root, on_path)
    free = _walk_back(view, start, on_path, lambda node, parent: (node, parent) not in blocked)
    filled = _walk_back(view, start, on_path, lambda node, parent: parent not in view.empty)
    mask: dict = {}
    for (_node, parent), b in blocked.items():
        mask[parent] = mask.get(parent, 0) | b
    for node in reversed(order):  # backward: which zeros stand on each path
        m = mask.get(node, 0)
        if m:
            for parent in view.inputs[node]:
                if parent in on_path and view.passable[parent]:
                    mask[parent] = mask.get(parent, 0) | m
    out: dict[int, tuple[str, list | None]] = {}
    for t in zero:
        node = node_of.get(t)
        if node is None or node not in on_path:
            continue
        names = [w for b, w in enumerate(bits) if mask.get(node, 0) >> b & 1 and w != t]
        if node not in free and names:
            out[t] = ("blocked", names)
        elif node not in filled:
            out[t] = ("empty", None)
    return out


def _topological(view: GraphView, nodes: set) -> list:
    """``nodes`` with every node after its inputs (Jittor's ids are not: a Function's ``tape``
    op is created before the ``tapes`` op whose output it takes)."""
    out, done = [], set()
    for first in nodes:
        if first in done:
            continue
        stack = [(first, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                out.append(node)
                continue
            if node in done:
                continue
            done.add(node)
            stack.append((node, True))
            stack.extend((p, False) for p in view.inputs[node] if p in nodes and p not in done)
    return out


def _union(values) -> int:
    out = 0
    for v in values:
        out |= v
    return out


def _root_node(view: GraphView, root: str, on_path: set):
    """The root's own node: the one on its path that no other node of the path takes."""
    taken = {p for n in on_path for p in view.inputs[n]}
    heads = [n for n in on_path if n not in taken]
    return max(heads, key=view.node_ids.__getitem__) if heads else None


def _walk_back(view: GraphView, start, on_path: set, keep) -> set:
    """Nodes reached backwards from ``start`` along the path, over edges ``keep`` allows."""
    if start is None:
        return set()
    seen, stack = {start}, [start]
    while stack:
        node = stack.pop()
        for parent in view.inputs[node]:
            if parent in on_path and parent not in seen and keep(node, parent):
                seen.add(parent)
                stack.append(parent)
    return seen


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
    out: dict = {}
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
