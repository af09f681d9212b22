"""Vision cases: classifiers and detection parts from Jittor's model zoo and JDet."""

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


def images(n=2, c=3, hw=16, seed=0):
    return jt.array(np.random.default_rng(seed).normal(size=(n, c, hw, hw)).astype("float32"))


def labels(n=2, k=4, seed=0):
    return jt.array(np.random.default_rng(seed).integers(0, k, size=(n,)).astype("int32"))


class BasicConv(nn.Module):
    """conv (no bias) + BatchNorm + ReLU, as jittor.models.googlenet.BasicConv2d."""

    def __init__(self, cin, cout, k=3, stride=1):
        self.conv = nn.Conv(cin, cout, k, stride=stride, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm(cout, eps=0.001)

    def execute(self, x):
        return nn.relu(self.bn(self.conv(x)))


# ----------------------------------------------------------------------- GoogLeNet aux heads
class AuxHead(nn.Module):
    """InceptionAux: pool, 1x1 conv, two fully connected layers (toy widths)."""

    def __init__(self, cin, classes):
        self.conv = BasicConv(cin, 4, k=1)
        self.fc1 = nn.Linear(4 * 2 * 2, 8)
        self.fc2 = nn.Linear(8, classes)

    def execute(self, x):
        x = self.conv(nn.AdaptiveAvgPool2d(2)(x))               # [N, 4, 2, 2]
        return self.fc2(nn.relu(self.fc1(x.reshape(x.shape[0], -1))))


class TinyGoogLeNet(nn.Module):
    def __init__(self, classes=4):
        self.stem = BasicConv(3, 8, stride=2)                    # [N, 8, 8, 8]
        self.block4a = BasicConv(8, 8)
        self.aux1 = AuxHead(8, classes)
        self.block4d = BasicConv(8, 8)
        self.aux2 = AuxHead(8, classes)
        self.fc = nn.Linear(8, classes)

    def execute(self, x):
        x = self.block4a(self.stem(x))
        aux1 = self.aux1(x)                                      # computed on every forward
        x = self.block4d(x)
        aux2 = self.aux2(x)
        x = self.fc(x.mean(dims=(2, 3)))
        return self.eager_outputs(x, aux2, aux1)

    def eager_outputs(self, x, aux2, aux1):
        return x                                                 # the aux logits are dropped


@case(expect={"aux1.*": {"status": "missing", "cause": "cut", "in_optimizer": True,
                         "updated": False},
              "aux2.*": {"status": "missing", "cause": "cut"},
              "stem.*": {"status": "covered", "cause": None, "updated": True},
              "fc.*": {"status": "covered", "cause": None}},
      buffers={"aux1.conv.bn.running_mean": {"changed": True, "kind": "buffer"}},
      verdict="fail")
def googlenet_aux_unused():
    """Source: Jittor/jittor python/jittor/models/googlenet.py (GoogLeNet, aux_logits=True).

    Jittor's GoogLeNet computes ``aux1``/``aux2`` on every forward, but ``execute`` returns
    ``eager_outputs(x, aux2, aux1)``, which is ``x`` alone: a training loop that applies
    cross-entropy to ``model(x)`` never uses the auxiliary classifiers.  Truth: every aux
    parameter was read by an op (the heads ran) but has no path to the loss: ``missing`` with
    cause ``cut``; SGD (momentum, no decay) leaves them unchanged; the trunk and ``fc`` are
    covered.  The aux BatchNorm statistics still change (the heads ran in train mode).
    """
    model = TinyGoogLeNet()
    opt = nn.SGD(model.parameters(), 0.01, momentum=0.9)
    return gradcheck.Workload(model, (images(), labels()),
                              lambda m, b: nn.cross_entropy_loss(m(b[0]), b[1]), optimizer=opt)


# ----------------------------------------------------------------------- JDet ResNet backbone
class Block(nn.Module):
    """BasicBlock: two 3x3 conv+BN with an identity shortcut."""

    def __init__(self, c):
        self.conv1 = nn.Conv(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm(c)
        self.conv2 = nn.Conv(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm(c)

    def execute(self, x):
        return nn.relu(x + self.bn2(self.conv2(nn.relu(self.bn1(self.conv1(x))))))


class FrozenResNet(nn.Module):
    def __init__(self, frozen_stages=1, norm_eval=True, classes=4):
        self.frozen_stages, self.norm_eval = frozen_stages, norm_eval
        self.conv1 = nn.Conv(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm(8)
        self.layer1 = nn.Sequential(Block(8))
        self.layer2 = nn.Sequential(Block(8))
        self.fc = nn.Linear(8, classes)

    def _freeze_stages(self):
        if self.frozen_stages >= 0:
            self.bn1.eval()
            for m in (self.conv1, self.bn1):
                for p in m.parameters():
                    p.stop_grad()
        for i in range(1, self.frozen_stages + 1):
            m = getattr(self, f"layer{i}")
            m.eval()
            for p in m.parameters():
                p.stop_grad()

    def train(self):
        super().train()
        self._freeze_stages()
        if self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm):
                    m.eval()     # upstream: "eval have effect on BatchNorm only"
        return self

    def execute(self, x):
        x = self.layer2(self.layer1(nn.relu(self.bn1(self.conv1(x)))))
        return self.fc(x.mean(dims=(2, 3)))


@case(expect={"conv1.weight": {"status": "frozen", "cause": "frozen", "updated": False},
              "layer1.*": {"status": "frozen", "cause": "frozen"},
              "layer2.0.bn*": {"status": "frozen", "cause": "eval_mode", "in_optimizer": True,
                               "updated": False,
                               "eval_module": lambda v: v.startswith("layer2.0.bn")},
              "layer2.0.conv*": {"status": "covered", "cause": None, "updated": True},
              "fc.*": {"status": "covered", "cause": None}},
      buffers={"layer2.0.bn1.running_mean": {"changed": False}})
def resnet_frozen_stages_norm_eval():
    """Source: Jittor/JDet python/jdet/models/backbones/resnet.py (ResNet with
    ``frozen_stages`` and ``norm_eval``; the runner calls ``model.train()``).

    ``train()`` first restarts gradients (``super().train()``), then ``_freeze_stages`` puts
    the stem and ``layer1`` in eval mode and stop-grads them, and ``norm_eval`` calls
    ``eval()`` on every BatchNorm.  In Jittor ``eval()`` also stop-grads the BatchNorm's weight
    and bias (upstream's comment says it only affects BatchNorm, meaning the statistics), so
    ``layer2``'s BatchNorm affine parameters are frozen too, though the optimizer holds them.
    Truth: stem and ``layer1`` ``frozen`` (declared: cause ``frozen``); ``layer2`` BatchNorm
    weight/bias ``frozen`` with cause ``eval_mode`` (not declared: a real finding), not updated;
    ``layer2`` convolutions and ``fc`` covered; eval-mode running statistics do not change.
    """
    model = FrozenResNet()
    model.train()                                        # what JDet's runner does
    opt = nn.SGD(model.parameters(), 0.01, momentum=0.9, weight_decay=1e-4)
    frozen = {"conv1.*": "frozen_stages=1 (stem)", "bn1.*": "frozen_stages=1 (stem)",
              "layer1.*": "frozen_stages=1"}
    return gradcheck.Workload(model, (images(), labels()),
                              lambda m, b: nn.cross_entropy_loss(m(b[0]), b[1]),
                              optimizer=opt, frozen=frozen)


# ----------------------------------------------------------------------- a healthy CNN
class TinyVGG(nn.Module):
    def __init__(self, classes=4):
        self.features = nn.Sequential(nn.Conv(3, 8, 3, padding=1), nn.BatchNorm(8), nn.ReLU(),
                                      nn.Pool(2, op="maximum"),
                                      nn.Conv(8, 8, 3, padding=1), nn.BatchNorm(8), nn.ReLU(),
                                      nn.Pool(2, op="maximum"))   # [N, 8, 4, 4]
        self.classifier = nn.Sequential(nn.Linear(8 * 4 * 4, 16), nn.ReLU(), nn.Dropout(),
                                        nn.Linear(16, classes))

    def execute(self, x):
        x = self.features(x)
        return self.classifier(x.reshape(x.shape[0], -1))


def _no_warnings(report):
    assert report.warnings == [], [w.text for w in report.warnings]
    assert report.summary.findings == {}


@case(expect={"*": {"status": "covered", "cause": None, "in_optimizer": True, "updated": True}},
      extra=_no_warnings, verdict="pass")
def vgg_bn_fully_covered():
    """Source: Jittor/jittor python/jittor/models/vgg.py (VGG with batch norm: conv stacks,
    classifier with Dropout) trained with SGD, momentum and weight decay.

    Truth: a plain, correct training step: every parameter ``covered``, updated, no Jittor
    warning, no finding, verdict ``pass`` (the case that catches false alarms).
    """
    model = TinyVGG()
    opt = nn.SGD(model.parameters(), 0.01, momentum=0.9, weight_decay=5e-4)
    return gradcheck.Workload(model, (images(), labels()),
                              lambda m, b: nn.cross_entropy_loss(m(b[0]), b[1]), optimizer=opt)


# ----------------------------------------------------------------------- FCOS-style head
class Scale(nn.Module):
    def __init__(self, value=1.0):
        self.scale = jt.array([value]).float32()

    def execute(self, x):
        return x * self.scale


class TinyFCOSHead(nn.Module):
    def __init__(self, levels=2, classes=3):
        self.cls_convs = nn.Sequential(nn.Conv(8, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.ReLU())
        self.reg_convs = nn.Sequential(nn.Conv(8, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.ReLU())
        self.fcos_cls = nn.Conv(8, classes, 3, padding=1)
        self.fcos_reg = nn.Conv(8, 4, 3, padding=1)
        self.scales = nn.ModuleList([Scale(1.0) for _ in range(levels)])
        self.level_bias = nn.ParameterList([jt.zeros(4) for _ in range(levels)])
        self.strides = jt.array([8, 16]).int32()               # an int constant: a buffer

    def execute(self, feats):
        out = []
        for i, x in enumerate(feats):
            cls = self.fcos_cls(self.cls_convs(x))
            reg = self.scales[i](self.fcos_reg(self.reg_convs(x)))
            reg = reg + self.level_bias[i].reshape(1, 4, 1, 1)
            out.append((cls, jt.exp(reg) * self.strides[i].float32()))
        return out


@case(expect={"scales.*": {"status": "covered", "cause": None, "reached_by": ["reg"]},
              "level_bias.*": {"status": "covered", "cause": None, "reached_by": ["reg"]},
              "cls_convs.*": {"status": "covered", "reached_by": ["cls"]},
              "fcos_reg.*": {"status": "covered", "reached_by": ["reg"]}},
      buffers={"strides": {"kind": "non_float", "changed": False}}, verdict="pass")
def fcos_head_lists():
    """Source: Jittor/JDet python/jdet/models/roi_heads/fcos_head.py (FCOS head: conv towers
    in ``nn.Sequential``, one learnable ``Scale`` per level in a ``ModuleList``, strides).

    Per-level parameters live in a ``ModuleList`` (``scales.0.scale``) and a ``ParameterList``
    (``level_bias.0``); the strides are an int32 Var.  Truth: every list entry is found by its
    dotted name and ``covered``; ``strides`` is a buffer of kind ``non_float`` (no gradient can
    flow to an integer), not a frozen parameter, so no ``frozen_undeclared``; the ``cls``
    term reaches the classification tower only, ``reg`` the regression tower, scales and biases.
    """
    rng = np.random.default_rng(1)
    feats = [jt.array(rng.normal(size=(2, 8, s, s)).astype("float32")) for s in (4, 2)]

    def loss(m, b):
        outs = m(b)
        cls = sum(((c.sigmoid() - 0.5) ** 2).mean() for c, _ in outs)
        reg = sum((r.log() ** 2).mean() for _, r in outs)
        return cls + reg, {"cls": cls, "reg": reg}
    model = TinyFCOSHead()
    return gradcheck.Workload(model, feats, loss,
                              optimizer=nn.SGD(model.parameters(), 0.01, momentum=0.9))


# ----------------------------------------------------------------------- a constant-0 term
class TinyYOLOXHead(nn.Module):
    def __init__(self, classes=3):
        self.stem = nn.Conv(8, 8, 1)
        self.cls_pred = nn.Conv(8, classes, 1)
        self.reg_pred = nn.Conv(8, 4, 1)
        self.obj_pred = nn.Conv(8, 1, 1)

    def execute(self, x):
        x = nn.silu(self.stem(x))
        return self.cls_pred(x), self.reg_pred(x), self.obj_pred(x)


def _l1_term_is_dead(report):
    l1 = next(t for t in report.loss_terms if t.name == "l1")
    assert l1.reaches == 0 and l1.constant and l1.values == [0.0, 0.0]
    assert any("'l1'" in w for w in report.verdict.warnings)
    assert report.param("reg_pred.weight").reached_by == ["iou"]


@case(expect={"*": {"status": "covered", "cause": None}}, extra=_l1_term_is_dead,
      verdict="pass")
def yolox_l1_term_zero():
    """Source: Megvii-BaseDetection/YOLOX yolox/models/yolo_head.py (``use_l1`` is False until
    the last epochs, so ``loss_l1 = 0.0``), the head structure of YOLOX's decoupled head.

    The loss adds an L1 term that is a constant 0 while ``use_l1`` is off.  Truth: every
    parameter is ``covered`` through the other terms; the ``l1`` loss term reaches no parameter
    and is constant (0 on every step), which the verdict warns about; ``reg_pred`` is reached
    by the ``iou`` term only.
    """
    x = jt.array(np.random.default_rng(2).normal(size=(2, 8, 4, 4)).astype("float32"))

    def loss(m, b):
        cls, reg, obj = m(b)
        iou = ((reg - 1.0) ** 2).mean()
        conf = nn.binary_cross_entropy_with_logits(obj, jt.ones_like(obj))
        cls_l = nn.binary_cross_entropy_with_logits(cls, jt.zeros_like(cls))
        l1 = jt.zeros(1).sum()                                   # use_l1 is False
        return 5.0 * iou + conf + cls_l + l1, {"iou": iou, "obj": conf, "cls": cls_l, "l1": l1}
    model = TinyYOLOXHead()
    return gradcheck.Workload(model, x, loss, optimizer=nn.SGD(model.parameters(), 0.01,
                                                               momentum=0.9))


# ----------------------------------------------------------------------- the real GoogLeNet
@case(expect={"aux1.*": {"status": "missing", "cause": "cut", "in_optimizer": True},
              "aux2.*": {"status": "missing", "cause": "cut"},
              "inception5b.*": {"status": "covered", "cause": None},
              "fc.*": {"status": "covered", "cause": None}},
      steps=1, verdict="fail", slow=True)
def googlenet_real_model():
    """Source: Jittor/jittor python/jittor/models/googlenet.py, the model itself
    (``jittor.models.googlenet.GoogLeNet(aux_logits=True)``, 10 classes, 128x128 inputs), trained
    with cross-entropy on ``model(x)`` and SGD with momentum.

    The full-size counterpart of :func:`googlenet_aux_unused`.  Truth: every parameter of
    ``aux1``/``aux2`` ``missing`` with cause ``cut`` (they run, their logits are dropped); the
    trunk and ``fc`` covered.
    """
    from jittor.models.googlenet import GoogLeNet

    model = GoogLeNet(num_classes=10, aux_logits=True)
    opt = nn.SGD(model.parameters(), 0.01, momentum=0.9)
    x = images(n=2, hw=128)
    y = labels(n=2, k=10)
    return gradcheck.Workload(model, (x, y), lambda m, b: nn.cross_entropy_loss(m(b[0]), b[1]),
                              optimizer=opt)


@case(expect={"*": {"status": "covered", "cause": None, "in_optimizer": True, "updated": True}},
      extra=_no_warnings, steps=1, verdict="pass", slow=True)
def resnet18_real_model():
    """Source: Jittor/jittor python/jittor/models/resnet.py, the model itself
    (``jittor.models.resnet.Resnet18(num_classes=10)``, 64x64 inputs) trained with
    cross-entropy and SGD (momentum 0.9, weight decay 1e-4).

    Truth: a correct, full-size training step: every parameter covered and updated, no Jittor
    warning, no finding, verdict ``pass`` (no false alarm on a real model).
    """
    from jittor.models.resnet import Resnet18

    model = Resnet18(num_classes=10)
    opt = nn.SGD(model.parameters(), 0.01, momentum=0.9, weight_decay=1e-4)
    return gradcheck.Workload(model, (images(n=2, hw=64), labels(n=2, k=10)),
                              lambda m, b: nn.cross_entropy_loss(m(b[0]), b[1]), optimizer=opt)
