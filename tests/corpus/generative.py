"""Generative cases: a conditional GAN's alternating steps, and a weight-normed SDF network."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

if str(Path(__file__).resolve().parents[1]) not in sys.path:   # run as tests/corpus/<m>.py:<f>
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gradcheck
from corpus import case
from gradcheck import runtime
from gradcheck.workload import Phase

jt = runtime.import_jittor()   # the runtime set up before Jittor's own modules
from jittor.weightnorm import weight_norm  # noqa: E402

nn = jt.nn
LATENT, CLASSES, PIXELS = 4, 3, 16


class Generator(nn.Module):
    """CGAN generator: label embedding concatenated with the noise, an MLP to an image."""

    def __init__(self):
        self.label_emb = nn.Embedding(CLASSES, CLASSES)
        self.model = nn.Sequential(nn.Linear(LATENT + CLASSES, 16), nn.LeakyReLU(0.2),
                                   nn.Linear(16, PIXELS), nn.Tanh())

    def execute(self, noise, labels):
        return self.model(jt.concat((self.label_emb(labels), noise), dim=1))


class Discriminator(nn.Module):
    def __init__(self):
        self.label_embedding = nn.Embedding(CLASSES, CLASSES)
        self.model = nn.Sequential(nn.Linear(PIXELS + CLASSES, 16), nn.LeakyReLU(0.2),
                                   nn.Dropout(0.4), nn.Linear(16, 1))

    def execute(self, img, labels):
        return self.model(jt.concat((img.reshape(img.shape[0], -1),
                                     self.label_embedding(labels)), dim=1))


class CGAN(nn.Module):
    def __init__(self):
        self.generator = Generator()
        self.discriminator = Discriminator()


def _batch(step):
    rng = np.random.default_rng(step)
    n = 4
    return (jt.array(rng.normal(size=(n, PIXELS)).astype("float32")),
            jt.array(rng.integers(0, CLASSES, n).astype("int32")),
            jt.array(rng.normal(size=(n, LATENT)).astype("float32")),
            jt.array(rng.integers(0, CLASSES, n).astype("int32")))


def _d_loss(m, b):
    real, labels, z, gen_labels = b
    fake = m.generator(z, gen_labels)
    valid, zero = jt.ones((real.shape[0], 1)), jt.zeros((real.shape[0], 1))
    d_real = nn.mse_loss(m.discriminator(real, labels), valid)
    d_fake = nn.mse_loss(m.discriminator(fake.stop_grad(), gen_labels), zero)
    return (d_real + d_fake) / 2, {"real": d_real, "fake": d_fake}


def _g_loss(m, b):
    _, _, z, gen_labels = b
    validity = m.discriminator(m.generator(z, gen_labels), gen_labels)
    return nn.mse_loss(validity, jt.ones((z.shape[0], 1)))


@case(expect={"generator.*": {"status": "covered", "cause": None, "in_optimizer": True,
                              "optimizers": ["G"], "updated": True},
              "discriminator.*": {"status": "covered", "cause": None, "optimizers": ["D"],
                                  "updated": True}},
      verdict="pass", extra=lambda r: _phase_config(r, ["G", "D"]))
def cgan_alternating():
    """Source: RX300/jittor-2503-cgan train.py and CGAN.py (Jittor's conditional GAN tutorial:
    ``optimizer_G.step(g_loss)``, then ``optimizer_D.step(d_loss)`` with
    ``discriminator(gen_imgs.stop_grad(), ...)``; two Adam optimizers, lr 2e-4, b1 0.5).

    Two phases per step, each with its own loss and optimizer: G's loss reads D (D is outside
    G's optimizer: its gradient there is discarded, not a finding), D's loss reads G's output
    through ``stop_grad``.  Truth: every generator parameter ``covered`` by phase G, every
    discriminator parameter ``covered`` by phase D, all held by an optimizer and updated,
    verdict ``pass``.
    """
    m = CGAN()
    opt_g = nn.Adam(m.generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = nn.Adam(m.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    return gradcheck.Workload(m, _batch, phases=[Phase("G", _g_loss, opt_g),
                                                 Phase("D", _d_loss, opt_d)])


def _phase_config(report, names):
    assert [p["name"] for p in report.config["phases"]] == names
    assert set(report.steps[0].phases) == set(names)


def _warnings_name_the_generator(report):
    named = [w for w in report.warnings if w.param]
    # Jittor warns once per name per process: when it does warn here, the warning comes from
    # the probe's own jt.grad over the generator, and names a generator parameter
    assert all(w.call == "probe" and w.param.startswith("generator.") and w.agrees
               for w in named), [(w.call, w.param, w.agrees) for w in named]


@case(expect={"discriminator.*": {"status": "covered", "cause": None, "in_optimizer": True,
                                  "reached_by": ["real", "fake"]},
              "generator.*": {"status": "missing", "cause": "cut", "in_optimizer": False,
                              "updated": False, "reached_by": []}},
      steps=1, extra=_warnings_name_the_generator, verdict="fail")
def cgan_discriminator_step():
    """Source: RX300/jittor-2503-cgan train.py (the discriminator half of the loop alone:
    ``d_loss`` on ``generator(z).stop_grad()``, ``optimizer_D`` over the discriminator).

    The model holds both networks, but only D's optimizer and D's loss are given, so the
    generator's parameters are trainable and outside every optimizer: the probe asks
    ``jt.grad`` for them and Jittor warns (``grads[N]`` indexing *that* list).  Before the fix
    those indices were read as indices into D's optimizer, and D's parameters (gradient norm
    ~0.7) were reported missing.

    Truth: with one step, every discriminator parameter
    ``covered``; every generator parameter read (G ran) but cut by ``stop_grad``: ``missing``
    with cause ``cut``, not in the optimizer, not updated, reached by no loss term (D by both
    ``real`` and ``fake``); every warning names a generator
    parameter, comes from the probe's call, and agrees with the graph.
    """
    m = CGAN()
    opt_d = nn.Adam(m.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    return gradcheck.Workload(m, _batch, _d_loss, optimizer=opt_d)


# ----------------------------------------------------------------------- weight norm
class SDFNetwork(nn.Module):
    """IDR/NeuS SDF MLP: geometric init, a skip connection, Softplus(beta=100), weight norm."""

    def __init__(self, d_in=3, hidden=16, layers=4, skip=(2,)):
        dims = [d_in] + [hidden] * layers + [1 + 4]
        self.num_layers, self.skip_in = len(dims), skip
        for i in range(self.num_layers - 1):
            out_dim = dims[i + 1] - d_in if i + 1 in skip else dims[i + 1]
            lin = nn.Linear(dims[i], out_dim)
            if i == self.num_layers - 2:
                nn.init.gauss_(lin.weight, np.sqrt(np.pi) / np.sqrt(dims[i]), 1e-4)
                nn.init.constant_(lin.bias, -0.5)
            else:
                nn.init.gauss_(lin.weight, 0.0, np.sqrt(2) / np.sqrt(out_dim))
                nn.init.constant_(lin.bias, 0.0)
            weight_norm(lin, "weight", 0)
            setattr(self, f"lin{i}", lin)
        self.activation = nn.Softplus(beta=100)

    def execute(self, inputs):
        x = inputs
        for i in range(self.num_layers - 1):
            if i in self.skip_in:
                x = jt.concat([x, inputs], 1) / np.sqrt(2)
            x = getattr(self, f"lin{i}")(x)
            if i < self.num_layers - 2:
                x = self.activation(x)
        return x


def _weight_is_stale(report):
    stale = {p.name for p in report.params if p.name.endswith(".weight")}
    assert len(stale) == 5 and not any(b.name in stale for b in report.buffers)
    warned = {w.param for w in report.warnings if w.param}
    assert warned == stale, warned
    for w in report.warnings:
        if w.param:
            assert w.call == "optimizer" and w.agrees, w


@case(expect={"*.weight_g": {"status": "covered", "cause": None, "updated": True},
              "*.weight_v": {"status": "covered", "cause": None, "updated": True},
              "*.bias": {"status": "covered", "cause": None},
              "lin*.weight": {"status": "missing", "cause": "stale_var", "in_optimizer": True,
                              "updated": False, "reassigned": True}},
      extra=_weight_is_stale, verdict="fail")
def neus_sdf_weight_norm():
    """Source: Jittor/JNeRF python/jnerf/models/networks/neus_network.py (SDFNetwork, from
    IDR: geometric init, skip at layer 4, Softplus(beta=100), ``weightnorm.weight_norm``) with
    an eikonal-style loss and Adam over ``model.parameters()``.

    Jittor's ``weight_norm`` replaces ``weight`` by ``weight_g`` and ``weight_v`` and sets
    ``weight`` to a Var computed from them, recomputed by a pre-forward hook every forward.
    ``model.parameters()`` still lists that computed ``weight``, so the optimizer holds a Var
    no forward reads (Jittor issue #635: one "doesn't have gradient" warning per layer).
    Truth: ``weight_g``/``weight_v``/``bias`` train and are ``covered``; each of the five
    ``lin*.weight`` Vars the optimizer holds is ``missing`` (no loss reaches it; the forward
    uses the recomputed Var) with cause ``stale_var``, never updated; Jittor warns about
    exactly those five, from the optimizer's call, agreeing with the graph; verdict ``fail``
    (the optimizer trains five dead Vars).
    """
    pts = jt.array(np.random.default_rng(3).uniform(-1, 1, size=(8, 3)).astype("float32"))
    model = SDFNetwork()
    opt = nn.Adam(model.parameters(), lr=5e-4)

    def loss(m, b):
        out = m(b)
        sdf = out[:, :1]
        surface = (sdf ** 2).mean()
        feat = (out[:, 1:] ** 2).mean() * 0.1
        return surface + feat, {"sdf": surface, "feature": feat}
    return gradcheck.Workload(model, pts, loss, optimizer=opt)
