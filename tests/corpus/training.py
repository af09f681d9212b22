"""Training-loop cases: eval mode left on, decoupled weight decay, a momentum encoder under
``no_grad``, gradient accumulation, and a parameter reassigned in ``execute()``."""

from __future__ import annotations

import sys
from pathlib import Path

if str(Path(__file__).resolve().parents[1]) not in sys.path:   # run as tests/corpus/<m>.py:<f>
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gradcheck
from corpus import case, features as _x, labels as _y
from gradcheck import runtime

jt = runtime.import_jittor()
nn = jt.nn


class MLP(nn.Module):
    def __init__(self, d=8, hidden=16, k=3):
        self.fc1 = nn.Linear(d, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, k)

    def execute(self, x):
        return self.fc2(nn.relu(self.bn(self.fc1(x))))


def _assert(ok):
    assert ok


def _ce(m, b):
    return nn.cross_entropy_loss(m(b[0]), b[1])


def _eval_at_import(train_mode: bool):
    model = MLP()
    model.eval()                          # at import, after loading weights; never undone
    opt = nn.SGD(model.parameters(), 0.01, momentum=0.9)
    return gradcheck.Workload(model, (_x(), _y()), _ce, optimizer=opt, train_mode=train_mode)


@case(expect={"*": {"status": "frozen", "cause": "eval_mode", "eval_module": "",
                    "in_optimizer": True, "updated": False, "requires_grad": False}},
      extra=lambda r: _assert(r.config["train_mode"] is False and "mode_changes" not in r.config))
def eval_at_import():
    """Source: Jittor/jittor issue #173 ("'model.31.bias' doesn't have gradient"; the
    maintainer's third cause: "model is in eval mode") -- a model put in ``eval()`` when it is
    loaded, then trained with ``optimizer.step(loss)`` without ever calling ``train()``.

    Jittor's ``eval()`` stop-grads every parameter (recording that it took gradients), so this
    training trains nothing.  The probe runs the model as handed over.  Truth: every parameter
    ``frozen`` with cause ``eval_mode`` (eval() on the root, ``eval_module`` ""), held by the
    optimizer, not updated.  (Before the fix, the probe called ``train()`` itself and reported
    everything covered.)
    """
    return _eval_at_import(train_mode=False)


@case(expect={"*": {"status": "covered", "cause": "train_mode", "mode_change": "unfrozen",
                    "updated": True}},
      extra=lambda r: _assert(set(r.config["mode_changes"].values()) == {"unfrozen"}
                              and len(r.config["mode_changes"]) == 6))
def eval_at_import_train_mode():
    """Source: Jittor/jittor issue #173, as :func:`eval_at_import`, probed with
    ``train_mode=True`` (``--train-mode``).

    The probe calls ``model.train()``, which restarts the gradient of every parameter the
    root's ``eval()`` recorded.  Truth: every parameter ``covered``, each named with cause
    ``train_mode`` and ``mode_change`` "unfrozen" (the report says the switch, not the user's
    code, made it trainable), and the config lists the six changes.
    """
    return _eval_at_import(train_mode=True)


# ----------------------------------------------------------------------- AdamW decay
class DistilledViTHead(nn.Module):
    """DeiT's two heads on the class and distillation tokens (toy: tokens from an MLP)."""

    def __init__(self, d=8, k=3):
        self.blocks = nn.Sequential(nn.Linear(d, 16), nn.GELU(), nn.LayerNorm(16))
        self.head = nn.Linear(16, k)
        self.head_dist = nn.Linear(16, k)

    def execute(self, x):
        t = self.blocks(x)
        x_cls, x_dist = self.head(t), self.head_dist(t)
        if self.is_training():
            return x_cls, x_dist
        return (x_cls + x_dist) / 2


@case(expect={"head_dist.*": {"status": "missing", "cause": "decay_only", "updated": True,
                              "moved_without_grad": True, "in_optimizer": True},
              "head.*": {"status": "covered", "cause": None},
              "blocks.*": {"status": "covered", "cause": None}},
      verdict="fail")
def deit_head_dist_adamw():
    """Source: facebookresearch/deit models.py (DistilledVisionTransformer: in training it
    returns ``(x, x_dist)``) trained with plain cross-entropy on ``output[0]``
    (``distillation_type='none'``) and AdamW (weight decay 0.05), as DeiT's main.py does.

    ``head_dist`` runs but its output is dropped, so it gets no gradient -- yet AdamW's
    decoupled decay (``p * (1 - lr * wd)``) changes its value every step.  Truth:
    ``head_dist`` ``missing`` with cause ``decay_only``, updated and moved without a gradient
    (updated is not trained); the rest covered; verdict ``fail``.
    """
    model = DistilledViTHead()
    opt = nn.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    return gradcheck.Workload(model, (_x(), _y()),
                              lambda m, b: nn.cross_entropy_loss(m(b[0])[0], b[1]),
                              optimizer=opt)


# ----------------------------------------------------------------------- MoCo
class MoCo(nn.Module):
    def __init__(self, d=8, dim=4, m=0.99, t=0.2):
        self.m, self.t = m, t
        self.encoder_q = nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Linear(16, dim))
        self.encoder_k = nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Linear(16, dim))
        for pq, pk in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
            pk.assign(pq.detach())
            pk.stop_grad()                                    # not updated by gradient

    def _momentum_update_key_encoder(self):
        with jt.no_grad():
            for pq, pk in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
                pk.update(pk * self.m + pq.detach() * (1.0 - self.m))

    def execute(self, im_q, im_k):
        q = nn.matmul(self.encoder_q(im_q), jt.ones((4, 1))).squeeze(1)  # [N]
        with jt.no_grad():
            self._momentum_update_key_encoder()
            k = nn.matmul(self.encoder_k(im_k), jt.ones((4, 1))).squeeze(1)
        return q, k


@case(expect={"encoder_q.*": {"status": "covered", "cause": None},
              "encoder_k.*": {"status": "frozen", "cause": "frozen", "updated": True,
                              "moved_without_grad": True, "in_optimizer": False}},
      verdict="pass")
def moco_momentum_encoder():
    """Source: facebookresearch/moco moco/builder.py (MoCo: ``encoder_k`` initialised from
    ``encoder_q`` and not updated by gradient; ``_momentum_update_key_encoder`` and the keys
    computed under ``no_grad``), with SGD over ``encoder_q`` only, as main_moco.py builds it.

    Truth: ``encoder_q`` covered; ``encoder_k`` ``frozen`` (declared: cause ``frozen``), not in
    the optimizer, yet updated every step by the momentum (EMA) update: updated without a
    gradient, which is right here; verdict ``pass``.
    """
    model = MoCo()
    opt = nn.SGD(model.encoder_q.parameters(), 0.03, momentum=0.9, weight_decay=1e-4)

    def loss(m, b):
        q, k = m(b[0], b[1])
        return ((q - k) ** 2).mean() / m.t
    return gradcheck.Workload(model, (_x(), _x(seed=1)), loss, optimizer=opt,
                              frozen={"encoder_k.*": "MoCo key encoder: momentum copy of "
                                                     "encoder_q, not trained by gradient"})


# ----------------------------------------------------------------------- accumulation
@case(expect={"*": {"status": "covered", "cause": None, "updated": True}},
      extra=lambda r: _assert(r.config["phases"][0]["accumulate"] == 4), verdict="pass")
def accumulation_steps():
    """Source: Jittor/jittor python/jittor/optim.py (``Optimizer.backward`` docstring: with
    ``accumulation_steps = 10``, ``optimizer.backward(loss / accumulation_steps)`` on every
    batch and ``optimizer.step()`` on every tenth).

    Four backward passes, then one step (``accumulate=4``).  Truth: every parameter covered
    and updated once per probe step; the config records the accumulation.
    """
    model = MLP()
    opt = nn.SGD(model.parameters(), 0.01, momentum=0.9)
    return gradcheck.Workload(model, (_x(), _y()), lambda m, b: _ce(m, b) / 4,
                              optimizer=opt, accumulate=4)


# ----------------------------------------------------------------------- reassigned
class TempScaled(nn.Module):
    def __init__(self, d=8, k=3):
        self.fc = nn.Linear(d, k)
        self.temperature = jt.array([1.0]).float32()

    def execute(self, x):
        self.temperature = self.temperature.clamp(0.05, 10.0)    # "keep it in range"
        return self.fc(x) / self.temperature


@case(expect={"temperature": {"status": "covered", "reassigned": True, "in_optimizer": True},
              "fc.*": {"status": "covered", "cause": None}}, steps=1)
def temperature_reassigned():
    """Source: uyzhang/JCLIP jclip/model.py (CLIP keeps its temperature ``logit_scale`` as a
    plain Var); OpenAI's CLIP training clamps it to at most 100 -- here the clamp is written as
    a reassignment inside ``execute()``, the way user code often does it.

    ``execute()`` replaces the attribute by a clamped copy.  On the first step the forward
    reads the Var the optimizer holds, so it is covered; from then on the module holds a
    different Var than the optimizer, which the report flags as ``reassigned``.

    Truth: with one step, ``temperature`` covered, ``reassigned`` true, in the optimizer.
    """
    model = TempScaled()
    opt = nn.SGD(model.parameters(), 0.01)
    return gradcheck.Workload(model, (_x(), _y()), _ce, optimizer=opt)
