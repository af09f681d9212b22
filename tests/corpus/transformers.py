"""Transformer cases: LoRA fine-tuning of a frozen CLIP, and attention with shared q/k."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

if str(Path(__file__).resolve().parents[1]) not in sys.path:   # run as tests/corpus/<m>.py:<f>
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gradcheck
from corpus import case
from gradcheck import runtime

jt = runtime.import_jittor()
nn = jt.nn
D = 8


class LoRALinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update ``B @ A`` (B starts at zero)."""

    def __init__(self, din, dout, r=2, alpha=4):
        self.base = nn.Linear(din, dout)
        self.lora_A = jt.array(np.random.default_rng(0).normal(0, 0.1, (r, din)).astype("float32"))
        self.lora_B = jt.zeros((dout, r))
        self.scaling = alpha / r

    def execute(self, x):
        lora = nn.matmul(nn.matmul(x, self.lora_A.t()), self.lora_B.t())
        return self.base(x) + lora * self.scaling


class Encoder(nn.Module):
    """One attention-free transformer block: LoRA on the q/v-like projections, an MLP."""

    def __init__(self, din):
        self.embed = nn.Linear(din, D)
        self.q_proj = LoRALinear(D, D)
        self.v_proj = LoRALinear(D, D)
        self.mlp = nn.Sequential(nn.Linear(D, D), nn.GELU())
        self.ln = nn.LayerNorm(D)

    def execute(self, x):
        h = self.embed(x)
        h = h + self.v_proj(h) * self.q_proj(h).sigmoid()
        return self.ln(h + self.mlp(h))


class TinyCLIP(nn.Module):
    def __init__(self):
        self.visual = Encoder(12)
        self.transformer = Encoder(6)
        self.logit_scale = jt.ones([1]) * np.log(1 / 0.07)

    def encode_image(self, image):
        return self.visual(image)

    def encode_text(self, text):
        return self.transformer(text)

    def execute(self, image, text):
        img = self.encode_image(image)
        txt = self.encode_text(text)
        img = img / img.norm(dim=1, keepdim=True)
        txt = txt / txt.norm(dim=1, keepdim=True)
        logits = self.logit_scale.exp() * nn.matmul(img, txt.t())
        return logits, logits.t()


def _lora_frozen_backbone(report):
    a = report.param("visual.q_proj.lora_A")
    assert a.steps == ["zero", "nonzero"], a.steps       # B = 0 blocks A on step 1
    assert report.summary.findings == {"missing": 1}, report.summary.findings


@case(expect={"*.lora_A": {"status": "covered", "in_optimizer": True, "updated": True},
              "*.lora_B": {"status": "covered", "cause": None, "updated": True},
              "*.embed.*": {"status": "frozen", "cause": "frozen", "in_optimizer": False},
              "*.ln.*": {"status": "frozen", "cause": "frozen"},
              "*.base.*": {"status": "frozen", "cause": "frozen", "updated": False},
              "logit_scale": {"status": "missing", "cause": "not_called", "in_optimizer": True,
                              "updated": False}},
      extra=_lora_frozen_backbone, verdict="fail")
def clip_lora_few_shot():
    """Source: uyzhang/JCLIP jclip/model.py (CLIP: ``encode_image``, ``encode_text``,
    ``logit_scale`` used only in ``execute()``) with LoRA few-shot fine-tuning as in
    shixuanw/jittor_clip_few_shot (frozen CLIP, fixed-scale ``100 * img @ txt.T`` logits,
    AdamW over the trainable parameters).

    The backbone is stop-grad (declared frozen); LoRA ``A``/``B`` are trainable, with ``B``
    starting at zero so ``A``'s gradient is exactly zero on step 1 and appears on step 2.  The
    training loop calls ``encode_image``/``encode_text`` and never ``execute()``, so
    ``logit_scale`` -- trainable, in the optimizer -- is never read.  Truth: with two steps, every
    LoRA parameter covered and updated (A: steps zero, nonzero); backbone ``frozen`` (cause
    ``frozen``); ``logit_scale`` ``missing`` with cause ``not_called`` (not ``cut``: no op read
    it, and the root module never ran); verdict ``fail``.
    """
    model = TinyCLIP()
    for name, p in model.named_parameters():
        if "lora_" not in name and name != "logit_scale":
            p.stop_grad()
    trainable = [p for p in model.parameters() if not p.is_stop_grad()]
    opt = nn.AdamW(trainable, lr=1e-3, weight_decay=0.0)
    rng = np.random.default_rng(4)
    batch = (jt.array(rng.normal(size=(3, 12)).astype("float32")),
             jt.array(rng.normal(size=(3, 6)).astype("float32")),
             jt.array(np.arange(3).astype("int32")))

    def loss(m, b):
        img = m.encode_image(b[0])
        txt = m.encode_text(b[1])
        img = img / img.norm(dim=1, keepdim=True)
        txt = txt / txt.norm(dim=1, keepdim=True)
        return nn.cross_entropy_loss(100.0 * nn.matmul(img, txt.t()), b[2])
    return gradcheck.Workload(model, batch, loss, optimizer=opt,
                              frozen={f"*.{part}.*": "pretrained CLIP backbone"
                                      for part in ("embed", "mlp", "ln", "base")})


# ----------------------------------------------------------------------- shared q/k
class SharedQKAttention(nn.Module):
    def __init__(self, dim=D, heads=2):
        self.heads = heads
        self.to_qk = nn.Linear(dim, dim, bias=False)
        self.to_k = self.to_qk                              # the same module: shared weights
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def execute(self, x):                                    # x: [N, T, D]
        q = self.to_qk(x)
        k = self.to_k(x)
        k = k / (k.norm(dim=-1, keepdim=True) + 1e-6)        # Reformer normalises the keys
        v = self.to_v(x)
        att = nn.softmax(nn.bmm(q, k.transpose(0, 2, 1)) / np.sqrt(x.shape[-1]), dim=-1)
        return self.to_out(nn.bmm(att, v))


def _shared_once(report):
    names = [p.name for p in report.params]
    assert names.count("to_qk.weight") == 1 and "to_k.weight" not in names
    assert report.param("to_qk.weight").aliases == ["to_k.weight"]
    assert report.summary.findings == {}


@case(expect={"*": {"status": "covered", "cause": None, "updated": True}},
      extra=_shared_once, verdict="pass")
def reformer_shared_qk():
    """Source: lucidrains/reformer-pytorch reformer_pytorch/reformer_pytorch.py (LSH attention
    with shared query/key: one ``toqk`` projection, keys normalised), here with the key
    projection bound to the same module (``to_k = to_qk``).

    Truth: the shared weight is one parameter listed once as ``to_qk.weight`` with alias
    ``to_k.weight``, covered (gradients from both uses add up); everything covered and
    updated; no finding; verdict ``pass``.
    """
    x = jt.array(np.random.default_rng(5).normal(size=(2, 3, D)).astype("float32"))
    model = SharedQKAttention()
    return gradcheck.Workload(model, x, lambda m, b: ((m(b) - 0.5) ** 2).mean(),
                              optimizer=nn.Adam(model.parameters(), lr=1e-3))
