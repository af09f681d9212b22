"""Random small Jittor training set-ups for the differential test (:mod:`test_oracle`).

A set-up is described by a :class:`Spec`: plain, printable data (so a failing example reads
as code and can be pasted into ``REGRESSIONS``).  :func:`build` turns a spec into a fresh model,
batch and phases; building the same spec twice gives two identical, independent copies (one
for gradcheck, one for the oracle), every value drawn from numpy with the spec's seed.

The model is a DAG of nodes over a ``(4, 8)`` input ``x`` and integer ``ids``: each node reads
an earlier node (or ``x``), optionally adds another one, and applies a layer (Linear, Conv2d
on a ``(2, 2, 2)`` view, BatchNorm, LayerNorm, a small self-attention, an Embedding lookup, a
per-feature scale) or an activation (relu, gelu, sigmoid, a dead relu, a zero multiplier, a
NaN-gradient ``sqrt(0)``, ``round``).  A node's layer lives where ``home`` says: a module
attribute, inside ``nn.Sequential`` / ``nn.ModuleList``, in a plain Python list or dict
attribute (invisible to ``Module.parameters()``), or created lazily on the first forward
(``lazy``) or on the first forward of step 2 (``late``).  Weight norm (``wnorm``) recomputes
its weight before every forward.
Shapes are fixed (width 8, batch 4) so that Jittor compiles few distinct kernels.

Each phase has its own loss (the mean square of the nodes it reads out) and optimizer; a
node's ``opt`` names the phase whose optimizer holds its Vars (``-1``: none) and ``lr`` that
group's learning rate (``normal``, ``zero`` or ``tiny``, below float32 precision).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from gradcheck import runtime

jt = runtime.import_jittor()
nn = jt.nn

W, B, VOCAB = 8, 4, 6
LAYERS = ("linear", "conv", "bn", "ln", "attn", "embed", "scale", "cancel", "route", "bare",
          "wnorm")
ACTS = ("relu", "gelu", "sigmoid", "dead", "mul0", "sqrt0", "round", "gate")
HOMES = ("attr", "seq", "mlist", "list", "dict", "lazy", "late")
LR = {"normal": None, "zero": 0.0, "tiny": 1e-30}      # None: the optimizer's own lr
OPT_LR = {"sgd": 0.05, "momentum": 0.05, "wd": 0.05, "adam": 0.01}


@dataclass(frozen=True)
class Node:
    kind: str                       # one of LAYERS or ACTS
    src: int = -1                   # input node (-1: x)
    add: int | None = None          # a second input, added (a residual)
    cut: str | None = None          # on the input: detach | no_grad (the layer runs in it)
    home: str = "attr"              # where the layer lives (HOMES); lazy/late: no optimizer
    share: int | None = None        # call node `share`'s layer (same kind) instead of its own
    tie: int | None = None          # own layer, but its weight Var is node `tie`'s
    stop_grad: bool = False         # its weight stop_grad()
    eval: bool = False              # layer.eval() (stop-grads its Vars; BN uses running stats)
    zero: bool = False              # weight initialised to zeros
    buffer: bool = False            # a register_buffer scale multiplies its output
    replace: bool = False           # weight replaced by a new Var after the optimizer is built
    skip: bool = False              # the layer exists but is never called
    opt: int = 0                    # the phase whose optimizer holds its Vars; -1 none
    lr: str = "normal"              # its optimizer group's lr (LR)

    @property
    def layer(self) -> bool:
        return self.kind in LAYERS


@dataclass(frozen=True)
class PhaseSpec:
    outputs: tuple                  # nodes whose mean square is the loss
    opt: str = "sgd"                # sgd | momentum | wd | adam
    accumulate: int = 1


@dataclass(frozen=True)
class Spec:
    seed: int
    nodes: tuple
    phases: tuple = (PhaseSpec((0,)),)
    steps: int = 2
    counter: bool = False           # an int32 Var on the model, incremented every forward

    def describe(self) -> str:
        return repr(self)


# --------------------------------------------------------------------- layers
class Scale(nn.Module):
    def __init__(self):
        self.weight = jt.ones(W)

    def execute(self, x):
        return x * self.weight


class Attn(nn.Module):
    """Single-head self-attention over a (4, 2, 4) view of the input."""

    def __init__(self):
        self.q, self.k, self.v = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4)

    def execute(self, x):
        t = x.reshape((B, 2, 4))
        att = nn.softmax(jt.bmm(self.q(t), self.k(t).transpose((0, 2, 1))) * 0.5, dim=-1)
        return jt.bmm(att, self.v(t)).reshape((B, W))


class Cancel(nn.Module):
    """``x + (fc(x) - fc(x))``: the two terms' gradients cancel exactly."""

    def __init__(self):
        self.fc = nn.Linear(W, W)

    def execute(self, x):
        return x + (self.fc(x) - self.fc(x))


class Route(nn.Module):
    """Two experts; each sample goes to one of them by a hard, data-dependent choice (an
    expert that receives no sample gets an exactly-zero gradient)."""

    def __init__(self):
        self.e0, self.e1 = nn.Linear(W, W), nn.Linear(W, W)

    def execute(self, x):
        pick = (x[:, 0:1] > 0.8).float32()
        return pick * self.e1(x) + (1 - pick) * self.e0(x)


class Conv(nn.Module):
    def __init__(self):
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def execute(self, x):
        return self.conv(x.reshape((B, 2, 2, 2))).reshape((B, W))


def _weight_holder(layer):
    """(module, key) of the Var a node's stop_grad / zero / tie / replace acts on."""
    if isinstance(layer, Attn):
        return layer.q, "weight"
    if isinstance(layer, (Conv, Cancel)):
        return (layer.conv if isinstance(layer, Conv) else layer.fc), "weight"
    if isinstance(layer, Route):
        return layer.e0, "weight"
    return layer, "weight"


def new_layer(kind: str, rng) -> nn.Module:
    layer = {"linear": lambda: nn.Linear(W, W), "conv": Conv, "bn": lambda: nn.BatchNorm1d(W),
             "ln": lambda: nn.LayerNorm(W), "attn": Attn,
             "embed": lambda: nn.Embedding(VOCAB, W), "scale": Scale, "bare": Scale,
             "cancel": Cancel, "route": Route, "wnorm": lambda: nn.Linear(W, W)}[kind]()
    # every float Var from the spec's numpy stream: two builds are identical
    for mod in [layer] + [m for m in layer.__dict__.values() if isinstance(m, nn.Module)]:
        for key, var in list(mod.__dict__.items()):
            if isinstance(var, jt.Var) and key not in ("running_mean", "running_var"):
                scale = 1.0 if key == "weight" and kind in ("bn", "ln", "scale") else 0.0
                values = scale + rng.normal(0, 0.5, var.shape)
                setattr(mod, key, jt.array(values.astype("float32")))
    if kind == "wnorm":
        # weight = g * v / |v|, recomputed before every forward; the Var computed here, which
        # an optimizer built from parameters() holds, is never used again (Jittor issue #635)
        from jittor.weightnorm import weight_norm
        weight_norm(layer, "weight", 1)
    return layer


def _act(kind: str, x):
    if kind == "relu":
        return nn.relu(x)
    if kind == "gelu":
        return nn.gelu(x)
    if kind == "sigmoid":
        return jt.sigmoid(x)
    if kind == "dead":
        return nn.relu(x - 100.0)          # a dead relu: exactly-zero gradient upstream
    if kind == "mul0":
        return x * 0.0
    if kind == "sqrt0":
        return jt.sqrt(x * 0.0)            # d sqrt(0) = inf, times 0: NaN upstream
    if kind == "round":
        return jt.round(x)
    if kind == "gate":                     # passes only rows whose sum is large: often none
        return x * (x.sum(-1, keepdims=True) > 2.0).float32()
    raise ValueError(kind)


# --------------------------------------------------------------------- the model
class Net(nn.Module):
    def __init__(self, spec: Spec):
        self._spec = spec
        self.plain = []                     # layers in a plain list: invisible to parameters()
        self.heads = {}                     # ... and in a plain dict
        self._slot = {}                     # node index -> (home, key): no Var in it
        self._forwards = 0                  # forwards so far: a "late" layer waits a step
        self._per_step = sum(p.accumulate for p in spec.phases)
        if spec.counter:
            self.seen = jt.zeros((1,), "int32")
        for i, n in enumerate(spec.nodes):
            if not n.layer or n.share is not None:
                continue
            rng = np.random.default_rng([spec.seed, i])
            if n.kind == "bare":              # a Var right on the model, no layer
                setattr(self, f"b{i}", self._bare(i, rng))
                self._slot[i] = ("attr", f"b{i}")
                continue
            if n.home in ("lazy", "late"):
                setattr(self, f"lazy{i}", None)
                self._slot[i] = ("lazy", f"lazy{i}")
                continue
            layer = self._prepare(i, new_layer(n.kind, rng), rng)
            if n.home == "attr":
                setattr(self, f"m{i}", layer)
                self._slot[i] = ("attr", f"m{i}")
            elif n.home == "seq":
                setattr(self, f"seq{i}", nn.Sequential(layer))
                self._slot[i] = ("seq", f"seq{i}")
            elif n.home == "mlist":
                setattr(self, f"mlist{i}", nn.ModuleList([layer]))
                self._slot[i] = ("seq", f"mlist{i}")
            elif n.home == "list":
                self.plain.append(layer)
                self._slot[i] = ("list", len(self.plain) - 1)
            elif n.home == "dict":
                self.heads[f"n{i}"] = layer
                self._slot[i] = ("dict", f"n{i}")

    def built(self, i: int):
        """Node ``i``'s own layer, or None (lazy and not created yet)."""
        home, key = self._slot[i]
        if home in ("attr", "lazy"):
            return self.__dict__.get(key)
        if home == "seq":
            return self.__dict__[key][0]
        return self.plain[key] if home == "list" else self.heads[key]

    def layers(self) -> dict:
        return {i: self.built(i) for i in self._slot}

    def _bare(self, i: int, rng):
        n = self._spec.nodes[i]
        if n.tie is not None and n.tie in self._slot:
            return self.built(n.tie)
        var = jt.zeros(W) if n.zero else jt.array((1 + rng.normal(0, 0.5, W)).astype("float32"))
        return var.stop_grad() if n.stop_grad else var

    def _prepare(self, i: int, layer, rng):
        n = self._spec.nodes[i]
        mod, key = _weight_holder(layer)
        if n.tie is not None and n.tie in self._slot and self.built(n.tie) is not None:
            tmod, tkey = _weight_holder(self.built(n.tie))
            setattr(mod, key, getattr(tmod, tkey))
        elif n.zero:
            setattr(mod, key, jt.zeros(getattr(mod, key).shape))
        if n.stop_grad:
            getattr(mod, key).stop_grad()
        if n.buffer:
            layer.register_buffer("mask", jt.array((0.5 + rng.random(W)).astype("float32")))
        if n.eval:
            layer.eval()
        return layer

    def layer_of(self, i: int):
        n = self._spec.nodes[i]
        j = n.share if n.share is not None else i
        if self.built(j) is None:
            if self._spec.nodes[j].home == "late" and self._forwards <= self._per_step:
                return None                 # created on step 2's first forward
            # created on the first forward, after the optimizer was built
            rng = np.random.default_rng([self._spec.seed, j])
            setattr(self, f"lazy{j}", self._prepare(j, new_layer(self._spec.nodes[j].kind, rng),
                                                    rng))
        return self.built(j)

    def execute(self, x, ids):
        self._forwards += 1
        if self._spec.counter:
            self.seen.update(self.seen + 1)
        vals = {-1: x}
        for i, n in enumerate(self._spec.nodes):
            h = vals[n.src]
            if n.add is not None:
                h = h + vals[n.add]
            if n.cut == "detach":
                h = h.detach()
            if not n.layer:
                vals[i] = _act(n.kind, h)
                continue
            layer = self.layer_of(i) if not n.skip else None
            if layer is None:
                vals[i] = h
                continue
            if n.cut == "no_grad":
                with jt.no_grad():
                    out = self._apply(n, layer, h, ids)
            else:
                out = self._apply(n, layer, h, ids)
            if n.buffer and isinstance(layer, nn.Module) and "mask" in layer.__dict__:
                out = out * layer.mask
            vals[i] = out
        return vals

    @staticmethod
    def _apply(n: Node, layer, h, ids):
        if n.kind == "embed":
            return h + layer(ids)
        if n.kind == "bare":
            return h * layer
        return layer(h)


# --------------------------------------------------------------------- the set-up
@dataclass
class Setup:
    model: Net
    batch: object                   # step -> (x, ids)
    phases: list                    # [(name, loss, optimizer, accumulate)]
    steps: int
    spec: Spec = field(repr=False, default=None)


def batch_fn(seed: int):
    def batch(step: int):
        rng = np.random.default_rng([seed, 7919, step])
        x = jt.array(rng.normal(0, 1, (B, W)).astype("float32"))
        ids = jt.array(rng.integers(0, VOCAB, B).astype("int32"))
        return x, ids
    return batch


def phase_loss(outputs: tuple):
    def loss(model, batch):
        vals = model(*batch)
        total = None
        for o in outputs:
            term = ((vals[o] - 0.5) ** 2).mean()
            total = term if total is None else total + term
        return total
    return loss


def _node_of_var(model: Net) -> dict:
    """id(Var) -> indices of the nodes whose layer holds it (a tied Var: several)."""
    out: dict = {}
    for i, layer in model.layers().items():
        if layer is None:
            continue
        sharers = [i] + [j for j, n in enumerate(model._spec.nodes) if n.share == i]
        for v in ([layer] if isinstance(layer, jt.Var) else layer.parameters()):
            out.setdefault(id(v), set()).update(sharers)
    return out


def new_optimizer(kind: str, groups: list):
    lr = OPT_LR[kind]
    if kind == "adam":
        return nn.Adam(groups, lr)
    return nn.SGD(groups, lr, momentum=0.9 if kind == "momentum" else 0.0,
                  weight_decay=1e-3 if kind == "wd" else 0.0)


def build(spec: Spec) -> Setup:
    """A fresh model, batch and phases for ``spec``; the same spec builds the same values."""
    model = Net(spec)
    owners = _node_of_var(model)
    visible = model.parameters()            # what a user passes to the optimizer
    explicit = []                           # plain list/dict layers added by hand
    for i, layer in model.layers().items():
        if isinstance(layer, nn.Module) and spec.nodes[i].home in ("list", "dict"):
            explicit += [v for v in layer.parameters() if all(v is not u for u in visible)]
    phases = []
    for p, ph in enumerate(spec.phases):
        groups: dict = {}
        for v in visible + explicit:
            nodes = owners.get(id(v), set())
            hit = [spec.nodes[i] for i in sorted(nodes) if spec.nodes[i].opt == p]
            if hit:
                groups.setdefault(hit[0].lr, []).append(v)
        if not groups:                      # Jittor refuses an empty optimizer: all of
            # parameters(), or (a model with none) a Var only this optimizer holds
            groups["normal"] = list(visible) or [jt.zeros(W)]
        param_groups = []
        for lr_name, params in groups.items():
            g = {"params": params}
            if LR[lr_name] is not None:
                g["lr"] = LR[lr_name]
            param_groups.append(g)
        opt = new_optimizer(ph.opt, param_groups)
        phases.append((f"p{p}", phase_loss(ph.outputs), opt, ph.accumulate))
    for i, layer in model.layers().items():
        if layer is not None and spec.nodes[i].replace:
            mod, key = (model, f"b{i}") if isinstance(layer, jt.Var) else _weight_holder(layer)
            old = getattr(mod, key)
            new = jt.array(old.numpy())
            if old.is_stop_grad():
                new.stop_grad()
            setattr(mod, key, new)          # the optimizer keeps the old Var
    return Setup(model, batch_fn(spec.seed), phases, spec.steps, spec)


def workload(setup: Setup):
    """The gradcheck Workload of a built set-up."""
    import gradcheck
    from gradcheck.workload import Phase

    if len(setup.phases) == 1:
        _, loss, opt, acc = setup.phases[0]
        return gradcheck.Workload(setup.model, setup.batch, loss, optimizer=opt, accumulate=acc,
                                  name="oracle")
    return gradcheck.Workload(setup.model, setup.batch, name="oracle",
                              phases=[Phase(n, loss, opt, acc)
                                      for n, loss, opt, acc in setup.phases])


# --------------------------------------------------------------------- hypothesis
PROFILES = {
    # what the current probe already claims to handle: Module attributes, Sequential,
    # ModuleList, parameters outside the optimizer, frozen / eval / detached / shared / tied
    "baseline": dict(),
    "untracked": dict(homes=("list", "dict")),
    "lazy": dict(homes=("lazy", "late")),
    "never_updated": dict(lrs=("zero",)),
    "trained_buffer": dict(buffer=True),
    "optimizer_only": dict(replace=True),
    "weight_norm": dict(wnorm=True),
    "everything": dict(homes=("list", "dict", "lazy", "late"), lrs=("zero",), buffer=True,
                       replace=True, wnorm=True),
}
BASE_HOMES = ("attr", "seq", "mlist")


def specs(profile: str = "everything", max_nodes: int = 6):
    """A hypothesis strategy of :class:`Spec` for one feature profile (:data:`PROFILES`): the
    baseline's features plus the profile's, each forced to appear at least once."""
    from hypothesis import strategies as st

    feat = PROFILES[profile]
    homes = BASE_HOMES + feat.get("homes", ())
    lrs = ("normal", "tiny") + feat.get("lrs", ())
    layers = tuple(k for k in LAYERS if k != "wnorm" or feat.get("wnorm"))

    @st.composite
    def strategy(draw):
        n_phases = draw(st.integers(1, 2))
        n_nodes = draw(st.integers(1, max_nodes))
        nodes = []
        for i in range(n_nodes):
            # layers twice as likely; the first node a layer, so that parameters() holds Vars
            kind = draw(st.sampled_from(layers + layers + ACTS if i else layers))
            src = draw(st.integers(-1, i - 1))
            add = draw(st.one_of(st.none(), st.integers(-1, i - 1))) if i else None
            cut = draw(st.sampled_from((None, None, None, None, "detach", "no_grad")))
            n = Node(kind, src=src, add=add, cut=cut)
            if kind in LAYERS:
                same = [j for j, m in enumerate(nodes) if m.kind == kind and m.share is None]
                link = draw(st.sampled_from((None,) * 4 + ("share", "tie"))) if same else None
                n = replace(
                    n, home=draw(st.sampled_from(homes if i else BASE_HOMES)),
                    share=draw(st.sampled_from(same)) if link == "share" else None,
                    tie=(draw(st.sampled_from(same)) if link == "tie" and kind != "embed"
                         and all(nodes[j].home not in ("lazy", "late") for j in same)
                         else None),
                    stop_grad=draw(st.integers(0, 9)) == 0, eval=draw(st.integers(0, 9)) == 0,
                    zero=draw(st.integers(0, 7)) == 0,
                    buffer=feat.get("buffer", False) and draw(st.booleans()),
                    replace=feat.get("replace", False) and draw(st.integers(0, 3)) == 0,
                    skip=draw(st.integers(0, 11)) == 0,
                    opt=draw(st.sampled_from(list(range(n_phases)) * 3 + [-1])),
                    lr=draw(st.sampled_from(lrs)))
                if n.home in ("lazy", "late"):
                    n = replace(n, tie=None, opt=-1, replace=False)
                if kind == "bare":
                    n = replace(n, home="attr", eval=False, buffer=False)
                if kind == "wnorm":     # its weight is computed: nothing acts on it directly
                    n = replace(n, tie=None, share=None, stop_grad=False, eval=False,
                                zero=False, replace=False, home="attr")
            nodes.append(n)
        nodes = _force(draw, nodes, feat, st)
        phases = []
        for _ in range(n_phases):
            outs = draw(st.lists(st.integers(0, n_nodes - 1), min_size=1, max_size=3,
                                 unique=True))
            phases.append(PhaseSpec(tuple(sorted(outs)),
                                    draw(st.sampled_from(("sgd", "sgd", "momentum", "wd",
                                                          "adam"))),
                                    draw(st.sampled_from((1, 1, 2)))))
        return Spec(seed=draw(st.integers(0, 2**31 - 1)), nodes=tuple(nodes),
                    phases=tuple(phases), steps=draw(st.sampled_from((1, 2, 2))),
                    counter=draw(st.integers(0, 7)) == 0)

    return strategy()


def _force(draw, nodes: list, feat: dict, st) -> list:
    """Make the profile's features appear: one layer node takes each of them."""
    want = [("home", h) for h in feat.get("homes", ())] + [("lr", r) for r in feat.get("lrs", ())]
    if feat.get("buffer"):
        want.append(("buffer", True))
    if feat.get("replace"):
        want.append(("replace", True))
    if feat.get("wnorm"):
        want.append(("kind", "wnorm"))
    if not want:
        return nodes
    what = draw(st.sampled_from(want))
    own = [i for i, n in enumerate(nodes) if n.layer and n.share is None
           and (n.kind != "bare" or what[0] in ("lr", "replace"))
           and (i > 0 or what[0] != "home")]   # node 0 keeps parameters() from being empty
    if not own:
        nodes.append(Node("linear", src=len(nodes) - 1))
        own = [len(nodes) - 1]
    i = draw(st.sampled_from(own))
    n = replace(nodes[i], **{what[0]: what[1]})
    if what == ("kind", "wnorm"):
        n = replace(n, tie=None, share=None, stop_grad=False, eval=False, zero=False,
                    replace=False, home="attr")
        nodes = [replace(m, tie=None, share=None) if i in (m.tie, m.share) else m
                 for m in nodes]
    if what == ("lr", "zero") and n.opt < 0:
        n = replace(n, opt=0)
    if n.home in ("lazy", "late"):
        n = replace(n, opt=-1, replace=False, tie=None)
        nodes = [replace(m, tie=None) if m.tie == i else m for m in nodes]
    nodes[i] = n
    return nodes
