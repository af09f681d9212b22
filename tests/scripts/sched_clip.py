"""A training loop with an LR scheduler and gradient clipping.

Source: Jittor's ``jittor.lr_scheduler`` (``StepLR``, ``CosineAnnealingLR`` over an optimizer)
and ``Optimizer.clip_grad_norm`` as its docstring uses it: ``opt.zero_grad();
opt.backward(loss); opt.clip_grad_norm(max_norm); opt.step()``, then ``scheduler.step()``.

Truth: every parameter is covered (clipping scales gradients, never zeroes them); the
optimizer's own gradient is read after clipping, so its recorded norm is at most
``--max-norm`` over all parameters together.  With ``--dead-head`` the head's weight starts at
zero and the ReLU's input is pushed negative (bias -100): every parameter upstream of the ReLU
gets an exactly-zero gradient, a zero status, not missing.
"""

import argparse

import jittor as jt
import numpy as np
from jittor import nn
from jittor.lr_scheduler import StepLR


class Net(nn.Module):
    def __init__(self, dead=False):
        self.fc1 = nn.Linear(5, 16)
        self.fc2 = nn.Linear(16, 1)
        if dead:
            self.fc1.bias.assign(jt.full((16,), -100.0))

    def execute(self, x):
        return self.fc2(nn.relu(self.fc1(x)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iters", type=int, default=8)
    parser.add_argument("--max-norm", type=float, default=0.1)
    parser.add_argument("--dead-head", action="store_true")
    args = parser.parse_args()
    jt.set_global_seed(0)
    model = Net(dead=args.dead_head)
    optimizer = nn.Adam(model.parameters(), lr=1e-2)
    scheduler = StepLR(optimizer, step_size=2, gamma=0.5)
    rng = np.random.default_rng(0)
    for _ in range(args.iters):
        x = jt.array(rng.normal(size=(8, 5)).astype("float32"))
        y = jt.array(rng.normal(size=(8, 1)).astype("float32"))
        loss = ((model(x) - y) ** 2).mean() * 100
        optimizer.zero_grad()
        optimizer.backward(loss)
        optimizer.clip_grad_norm(args.max_norm)
        optimizer.step()
        scheduler.step()


if __name__ == "__main__":
    main()
