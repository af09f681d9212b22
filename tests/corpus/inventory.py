"""What trains besides ``model.parameters()``: sub-modules in plain lists and dicts, layers made
after the optimizer, optimizers holding Vars the model no longer uses or buffers it should not
train, learning-rate-0 groups; and exactly-zero gradients whose cause must not be guessed.

Jittor's ``Module.parameters()`` walks only Module attributes (``Module.dfs`` over
``__dict__``), so it behaves as PyTorch's does for plain lists and dicts; the sources below
are the public programs and bug reports the patterns come from.  Each truth is argued in the
docstring from Jittor's own semantics, not from gradcheck's output.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

if str(Path(__file__).resolve().parents[1]) not in sys.path:   # run as tests/corpus/<m>.py:<f>
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gradcheck
from corpus import case, features as _x, labels as _y
from gradcheck import runtime

jt = runtime.import_jittor()
nn = jt.nn


def _ce(m, b):
    return nn.cross_entropy_loss(m(b[0]), b[1])


def _assert(ok, *why):
    assert ok, why


# ----------------------------------------------------------------------- plain containers
class DDGM(nn.Module):
    """A diffusion model's reverse networks kept in a plain list, as intro_dgm's DDGM keeps
    ``self.p_dnns = p_dnns``."""

    def __init__(self, d=8, hidden=16, T=3):
        self.p_dnns = [nn.Sequential(nn.Linear(d, hidden), nn.LeakyReLU(), nn.Linear(hidden, d))
                       for _ in range(T)]
        self.decoder = nn.Linear(d, d)

    def execute(self, x):
        for p in self.p_dnns:
            x = p(x)
        return self.decoder(x)


@case(expect={"p_dnns.*": {"status": "covered", "in_optimizer": False, "tracked": False,
                           "cause": "untracked", "updated": False},
              "decoder.*": {"status": "covered", "in_optimizer": True, "updated": True,
                            "tracked": True}},
      extra=lambda r: _assert(r.summary.findings.get("untracked") == 12, r.summary.findings),
      verdict="fail")
def ddgm_plain_list():
    """Source: jmtomczak/intro_dgm, ``ddgms`` example (issue #6: "shouldn't ``self.p_dnns =
    p_dnns`` be ``nn.ModuleList(p_dnns)``? ... left unoptimized"); pytorch/pytorch#59925.

    The three reverse networks live in a plain list, so ``model.parameters()`` lists only the
    decoder and Adam over it never trains them.  Truth: the 12 Vars of ``p_dnns.{0,1,2}.{0,2}.
    {weight,bias}`` are reached by the loss with a gradient, held by no optimizer and not in
    ``parameters()``: ``untracked``, never updated; the decoder trains; verdict ``fail``.
    """
    model = DDGM()
    opt = nn.Adam(model.parameters(), lr=1e-3)
    x = _x()
    return gradcheck.Workload(model, x, lambda m, b: ((m(b) - b) ** 2).mean(), optimizer=opt)


class RelationNet(nn.Module):
    """One linear map per relation, kept in a dict (pytorch/pytorch#632)."""

    def __init__(self, d=8, k=3, relations=(0, 1)):
        self.list_relations = {r: nn.Linear(d, k) for r in relations}
        self.shared = nn.Linear(d, d)

    def execute(self, x):
        h = nn.relu(self.shared(x))
        return sum(lin(h) for lin in self.list_relations.values())


@case(expect={"list_relations.*": {"status": "covered", "cause": "untracked",
                                   "in_optimizer": False},
              "shared.*": {"status": "covered", "cause": None, "updated": True}},
      verdict="fail")
def relation_dict():
    """Source: pytorch/pytorch#632 ("parameters not registered in module": ``self.
    list_relations[rel] = nn.Linear(numfeatures, numrel)`` in a plain dict).

    Truth: ``list_relations.0.*`` and ``list_relations.1.*`` (named by their dict keys) get
    gradients, but SGD over ``model.parameters()`` does not hold them: ``untracked``;
    ``shared`` trains; verdict ``fail``.
    """
    model = RelationNet()
    opt = nn.SGD(model.parameters(), 0.1)
    return gradcheck.Workload(model, (_x(), _y()), _ce, optimizer=opt)


# ----------------------------------------------------------------------- lazy layers
class LazyHead(nn.Module):
    """A classifier head sized on the first forward, after the optimizer exists."""

    def __init__(self, d=8, k=3):
        self.body = nn.Linear(d, d)
        self.k = k
        self.head = None

    def execute(self, x):
        h = nn.relu(self.body(x))
        if self.head is None:
            self.head = nn.Linear(h.shape[-1], self.k)
        return self.head(h)


@case(expect={"head.*": {"status": "covered", "cause": "untracked", "in_optimizer": False,
                         "tracked": False, "updated": False},
              "body.*": {"status": "covered", "cause": None, "updated": True}},
      verdict="fail")
def lazy_head():
    """Source: the lazy-initialisation pattern of PyTorch's ``LazyLinear`` and its documented
    pitfall ("the optimizer must be created after the first forward"), written by hand as
    Jittor has no lazy modules.

    The optimizer is built from ``model.parameters()`` before the first forward, when
    ``head`` is still ``None``.  Truth: ``head.weight``/``head.bias`` appear on step 1, get
    gradients and are never trained (``untracked``: not in ``parameters()`` when the run
    began, held by no optimizer); ``body`` trains; verdict ``fail``.
    """
    model = LazyHead()
    opt = nn.SGD(model.parameters(), 0.1)
    return gradcheck.Workload(model, (_x(), _y()), _ce, optimizer=opt)


# ----------------------------------------------------------------------- optimizer contents
class Detector(nn.Module):
    def __init__(self, d=8, k=3):
        self.backbone = nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Linear(16, 16))
        self.head = nn.Linear(16, k)

    def execute(self, x):
        return self.head(self.backbone(x))


def _lr0_optimizer(model):
    return nn.SGD([{"params": model.backbone.parameters(), "lr": 0.0},
                   {"params": model.head.parameters()}], lr=0.05, momentum=0.9)


@case(expect={"backbone.*": {"status": "covered", "cause": "never_updated", "updated": False,
                             "in_optimizer": True},
              "head.*": {"status": "covered", "cause": None, "updated": True}},
      extra=lambda r: _assert(all(p.lrs == [0.0, 0.0] for p in r.params
                                  if p.name.startswith("backbone")), r.params[0].lrs),
      verdict="fail")
def backbone_lr_zero():
    """Source: mmdetection configs that freeze a backbone through the optimizer
    (``paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.)})``), as a Jittor SGD
    parameter group with ``lr=0``.

    Truth: the backbone's four Vars get full gradients on both steps, sit in a group whose
    learning rate is 0, and never change (momentum of a zero step is zero, no weight decay):
    ``never_updated`` with the learning-rate reason, which fails by default; the head trains.
    """
    model = Detector()
    return gradcheck.Workload(model, (_x(), _y()), _ce, optimizer=_lr0_optimizer(model))


@case(expect={"backbone.*": {"status": "covered", "cause": "frozen", "updated": False},
              "head.*": {"status": "covered", "cause": None}},
      extra=lambda r: _assert("frozen_but_trained" not in r.summary.findings,
                              r.summary.findings),
      verdict="pass")
def backbone_lr_zero_declared():
    """Source: as ``backbone_lr_zero``, with the freeze declared on purpose
    (``expected_frozen``), as such configs mean it.  Truth: the
    backbone is frozen on purpose (cause ``frozen``, not ``frozen_but_trained``: it does not
    train), nothing fails; verdict ``pass``."""
    w = backbone_lr_zero()
    w.frozen = {"backbone.*": "pretrained, frozen with lr 0"}
    return w


class CausalSelfAttention(nn.Module):
    """minGPT's attention with its causal mask registered as a buffer."""

    def __init__(self, d=8, heads=2, block=4):
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.n_head = heads
        self.register_buffer("bias", jt.array(np.tril(np.ones((block, block), "float32")))
                             .reshape(1, 1, block, block))

    def execute(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).chunk(3, dim=2)
        q, k, v = (t.reshape(B, T, self.n_head, C // self.n_head).transpose(0, 2, 1, 3)
                   for t in (q, k, v))
        att = (q @ k.transpose(0, 1, 3, 2)) * (1.0 / np.sqrt(k.shape[-1]))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        y = nn.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(0, 2, 1, 3).reshape(B, T, C))


@case(expect={"c_attn.*": {"status": "covered"}, "c_proj.*": {"status": "covered"}},
      buffers={"bias": {"kind": "buffer", "in_optimizer": True, "trainable": True,
                        "changed": True}},
      extra=lambda r: _assert(r.summary.findings.get("trained_buffer") == 1
                              and any("trained_buffer" in w for w in r.verdict.warnings),
                              r.summary.findings, r.verdict.warnings),
      verdict="pass")
def gpt_mask_buffer():
    """Source: karpathy/minGPT ``mingpt/model.py`` (``CausalSelfAttention``:
    ``self.register_buffer("bias", torch.tril(...))``) ported to Jittor, trained with AdamW
    over ``model.parameters()``.

    Jittor's ``register_buffer`` only sets ``persistent`` and does not stop-grad, and
    ``parameters()`` lists every public Var, so AdamW holds the mask and its decoupled
    weight decay rewrites it every step.  Truth: ``bias`` is a buffer, held by the optimizer,
    takes gradients, and changes: ``trained_buffer`` (a warning by default); the attention's
    weights train; verdict ``pass`` (one warning).
    """
    model = CausalSelfAttention()
    opt = nn.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    x = jt.array(np.random.default_rng(1).normal(size=(2, 4, 8)).astype("float32"))
    return gradcheck.Workload(model, x, lambda m, b: (m(b) ** 2).mean(), optimizer=opt)


class Classifier(nn.Module):
    def __init__(self, d=8, k=3):
        self.fc1 = nn.Linear(d, 16)
        self.fc = nn.Linear(16, k)

    def execute(self, x):
        return self.fc(nn.relu(self.fc1(x)))


# [[]: a "[" (the names are globs)
@case(expect={"optimizer[[]0].params[[]2]": {"status": "missing", "cause": "stale_var",
                                              "held_only": True, "in_optimizer": True},
              "fc.weight": {"status": "covered", "cause": "not_in_optimizer",
                            "in_optimizer": False, "updated": False},
              "fc1.*": {"status": "covered", "cause": None, "updated": True}},
      verdict="fail")
def weights_replaced_after_optimizer():
    """Source: the "load pretrained weights by assignment after building the optimizer"
    mistake (``model.fc.weight = jt.array(pretrained)``): Jittor's ``load_parameters`` updates
    Vars in place, a plain assignment replaces the Var (Jittor's optimizer docs: parameters
    are Vars held by reference).

    Truth: the optimizer's third Var (the old ``fc.weight``) is held by the optimizer only,
    reached by no loss: ``missing`` with cause ``stale_var``; the new ``fc.weight`` gets a
    gradient but no optimizer holds it (``not_in_optimizer``), never updated; verdict
    ``fail``.
    """
    model = Classifier()
    opt = nn.SGD(model.parameters(), 0.1)
    pretrained = np.random.default_rng(7).normal(0, 0.3, (3, 16)).astype("float32")
    model.fc.weight = jt.array(pretrained)      # replaces the Var the optimizer holds
    return gradcheck.Workload(model, (_x(), _y()), _ce, optimizer=opt)


# ----------------------------------------------------------------------- zero-gradient causes
class TopOneMoE(nn.Module):
    """Switch-style top-1 routing over two experts; the router picks expert 0 for every
    token of this batch, so expert 1 receives no tokens."""

    def __init__(self, d=8):
        self.router = nn.Linear(d, 2)
        self.experts = nn.ModuleList([nn.Linear(d, d), nn.Linear(d, d)])
        self.router.weight.assign(jt.zeros((2, d)))
        self.router.bias.assign(jt.array(np.array([1.0, -1.0], "float32")))

    def execute(self, x):
        gate = nn.softmax(self.router(x), dim=-1)
        choice = np.argmax(gate.numpy(), axis=-1)              # top-1, on the host
        out = jt.zeros_like(x)
        for e, expert in enumerate(self.experts):
            rows = jt.array(np.nonzero(choice == e)[0].astype("int32"))
            y = expert(x[rows]) * gate[rows, e:e + 1]
            out = out + _place(y, rows, x.shape)
        return out


def _place(y, rows, shape):
    """Rows ``rows`` of a zero ``shape`` array set to ``y`` (differentiable in ``y``)."""
    onehot = np.zeros((shape[0], int(rows.shape[0])), "float32")
    onehot[rows.numpy(), np.arange(int(rows.shape[0]))] = 1.0
    return jt.array(onehot) @ y


@case(expect={"experts.1.*": {"status": "zero", "cause": "zero_gradient", "zero_why": "empty",
                              "zero_blockers": []},
              "experts.0.*": {"status": "covered"}},
      extra=lambda r: _assert(all("no data was routed" in p.cause_detail for p in r.params
                                  if p.name.startswith("experts.1")),
                              [p.cause_detail for p in r.params]),
      steps=1, verdict="fail")
def moe_idle_expert():
    """Source: the Switch Transformer's top-1 routing (Fedus et al.; e.g. fastmoe's
    ``NaiveGate``): an expert that receives no tokens gets an exactly-zero gradient that
    step.

    The router starts at zero weight and a bias preferring expert 0, so every token goes to
    expert 0; expert 1 runs on an empty selection of rows.  Truth: ``experts.1.*`` are
    reached by the loss (their op is in the graph) with an exactly-zero gradient, and the
    only path from them to the loss runs through the empty selection: the cause says no data
    was routed, naming no layer; expert 0 is covered.
    """
    return gradcheck.Workload(TopOneMoE(), _x(n=6), lambda m, b: (m(b) ** 2).mean())


class TwoBranches(nn.Module):
    """A feature used by two loss terms that cancel exactly, beside an unrelated branch whose
    output layer starts at zero."""

    def __init__(self, d=8):
        self.feat = nn.Linear(d, d)
        self.other = nn.Linear(d, d)
        self.other_out = nn.Linear(d, 1)
        self.other_out.weight.assign(jt.zeros((1, d)))

    def execute(self, x):
        return self.feat(x), self.other_out(nn.relu(self.other(x)))


def _cancel_loss(m, b):
    f, o = m(b)
    pull, push = f.sum(), -f.sum()          # two terms whose gradients cancel exactly
    aux = (o ** 2).mean()
    return pull + push + aux, {"pull": pull, "push": push, "aux": aux}


@case(expect={"feat.*": {"status": "zero", "zero_blockers": [], "zero_why": None},
              "other.*": {"status": "zero", "zero_blockers": ["other_out.weight"]}},
      extra=lambda r: _assert(all("other_out" not in p.cause_detail and "pull" in p.cause_detail
                                  for p in r.params if p.name.startswith("feat.")),
                              [p.cause_detail for p in r.params]),
      steps=1, verdict="fail")
def cancelling_terms():
    """Source: the issue's report of a wrong hint; the pattern is a pull/push pair of loss
    terms over the same feature (contrastive-style objectives) that cancel exactly.

    Truth: ``feat`` reaches the loss through ``pull`` and ``push`` only, whose gradients are
    +1 and -1 per element: its gradient is exactly zero, and no zero-valued weight lies on
    its path (``other_out.weight`` is on another branch), so its cause names no layer and
    mentions the terms; ``other``'s gradient is zero because ``other_out.weight`` starts at
    zero on its only path: that one is named.
    """
    return gradcheck.Workload(TwoBranches(), _x(), _cancel_loss)


class CachesInputs(nn.Module):
    """Keeps what each forward saw in a plain list (for a later loss or for logging)."""

    def __init__(self, d=8, k=3):
        self.fc = nn.Linear(d, k)
        self.seen = []

    def execute(self, x):
        self.seen = [x]
        return self.fc(x)


@case(expect={"fc.*": {"status": "covered", "cause": None}},
      extra=lambda r: _assert({p.name for p in r.params} == {"fc.weight", "fc.bias"},
                              [p.name for p in r.params]),
      verdict="pass")
def cached_inputs():
    """Source: the common pattern of a module keeping its last inputs or activations in a
    plain list attribute (feature maps for a perceptual loss, inputs for logging).

    The input batch is a float Var the loss reaches, left by the forward in ``self.seen``:
    it is data, not a layer.  Truth: only ``fc.weight`` and ``fc.bias`` are parameters, both
    covered; nothing is ``untracked``; verdict ``pass``.
    """
    return gradcheck.Workload(CachesInputs(), (_x(), _y()), _ce)
