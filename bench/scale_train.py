"""A training script for ``bench/bench_scale.py``: a residual MLP of ``--blocks`` blocks
(6 parameter tensors each: two Linear layers and a LayerNorm, 4 more at the ends), or with
``--wide N`` one N x N Linear layer (N = 10,000: 1e8 values) between two small ones.

    python bench/scale_train.py --blocks 1500 --steps 3     # 9,004 parameter tensors
    python bench/scale_train.py --wide 10000 --steps 3      # 1e8 values in one tensor
"""

from __future__ import annotations

import argparse

import jittor as jt
from jittor import nn


class Block(nn.Module):
    def __init__(self, width: int):
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)

    def execute(self, x):  # (B, width) -> (B, width)
        return x + self.fc2(nn.relu(self.fc1(self.norm(x))))


class Deep(nn.Module):
    def __init__(self, blocks: int, width: int, wide: int = 0):
        width = wide or width
        self.inp = nn.Linear(8, width)
        # nn.Sequential names its layers 0, 1, ...: a real model's deep stack
        self.body = nn.Sequential(*[Block(width) for _ in range(blocks)]) if blocks else None
        self.big = nn.Linear(width, width) if wide else None
        self.out = nn.Linear(width, 1)

    def execute(self, x):  # (B, 8) -> (B, 1)
        h = self.inp(x)
        if self.body is not None:
            h = self.body(h)
        if self.big is not None:
            h = nn.relu(self.big(h))
        return self.out(h)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=100)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--wide", type=int, default=0, help="one WIDE x WIDE Linear layer")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)
    jt.set_global_seed(0)
    model = Deep(0 if args.wide else args.blocks, args.width, args.wide)
    optimizer = nn.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x, y = jt.randn((4, 8)), jt.randn((4, 1))
    for step in range(args.steps):
        loss = ((model(x) - y) ** 2).mean()
        optimizer.step(loss)
        print(f"step {step} loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
