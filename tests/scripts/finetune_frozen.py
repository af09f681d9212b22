"""Fine-tuning with a frozen backbone, as Jittor's transfer-learning recipes do it.

Source: the Jittor fine-tuning pattern (jittor.org tutorials; ``Var.stop_grad`` /
``Var.start_grad``): a pretrained backbone is frozen with ``p.stop_grad()`` on each of its
parameters, a new classifier head is trained, and the optimizer is built on
``model.parameters()`` (Jittor's optimizers skip stop-grad parameters).

Truth: ``backbone.*`` is frozen (as the script left it), ``head.*`` is covered.  With
``--unfreeze-at 2`` the script calls ``start_grad()`` on the backbone after its first optimizer
step (a staged unfreeze): step 1 reads frozen, step 2 nonzero, so the backbone is covered in a
2-step run.  With ``--freeze-with-requires-grad`` it freezes with Jittor's
``Module.requires_grad_(False)`` instead, which does not stop-grad the parameters but runs the
module under ``jt.no_grad()``: the optimizer still holds them as trainable and they get no
gradient, so they are missing (not frozen): a real trap of Jittor's API.
"""

import argparse

import jittor as jt
import numpy as np
from jittor import nn


class Backbone(nn.Module):
    def __init__(self):
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)

    def execute(self, x):
        return nn.relu(self.bn(self.conv(x)))


class Classifier(nn.Module):
    def __init__(self, classes=5):
        self.backbone = Backbone()
        self.head = nn.Linear(8, classes)

    def execute(self, x):
        f = self.backbone(x).mean(dims=(2, 3))
        return self.head(f)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--unfreeze-at", type=int, default=None)
    parser.add_argument("--freeze-with-requires-grad", action="store_true")
    args = parser.parse_args()
    jt.set_global_seed(0)
    model = Classifier()
    if args.freeze_with_requires_grad:
        model.backbone.requires_grad_(False)
    else:
        for p in model.backbone.parameters():
            p.stop_grad()
    optimizer = nn.SGD(model.parameters(), 0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    for it in range(1, args.iters + 1):
        if args.unfreeze_at is not None and it == args.unfreeze_at:
            for p in model.backbone.parameters():
                if not p.name().endswith(("running_mean", "running_var")):
                    p.start_grad()
        x = jt.array(rng.normal(size=(4, 3, 8, 8)).astype("float32"))
        y = jt.array(rng.integers(0, 5, size=(4,)).astype("int32"))
        loss = nn.cross_entropy_loss(model(x), y)
        optimizer.step(loss)


if __name__ == "__main__":
    main()
