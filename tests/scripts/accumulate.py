"""A training loop with gradient accumulation: ``optimizer.backward`` per micro-batch, one
``optimizer.step()`` per ``--accum`` micro-batches, as ``jittor.optim.Optimizer.backward``'s
own docstring shows it (Jittor's optim.py, "Accumulation version").

Truth: one optimizer step every ``--accum`` backward calls, so the report's phase records
``--accum`` micro-batches; every parameter of the MLP is covered.  ``--skip-branch K`` leaves
``branch`` out of every micro-batch except the K-th of each step, and ``branch.*`` stays
covered: the step's gradient is the sum over its micro-batches, one non-zero call is enough.
"""

import argparse

import jittor as jt
import numpy as np
from jittor import nn


class Net(nn.Module):
    def __init__(self):
        self.body = nn.Linear(6, 16)
        self.branch = nn.Linear(16, 16)
        self.head = nn.Linear(16, 1)

    def execute(self, x, use_branch=True):
        h = nn.relu(self.body(x))
        if use_branch:
            h = h + self.branch(h)
        return self.head(h)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--accum", type=int, default=4)
    parser.add_argument("--iters", type=int, default=24)
    parser.add_argument("--skip-branch", type=int, default=None,
                        help="use the branch only in micro-batch K of each step")
    args = parser.parse_args()
    jt.set_global_seed(0)
    model = Net()
    optimizer = nn.SGD(model.parameters(), 0.01)
    rng = np.random.default_rng(0)
    for i in range(args.iters):
        x = jt.array(rng.normal(size=(4, 6)).astype("float32"))
        y = jt.array(rng.normal(size=(4, 1)).astype("float32"))
        use = args.skip_branch is None or i % args.accum == args.skip_branch
        loss = ((model(x, use) - y) ** 2).mean()
        optimizer.backward(loss / args.accum)
        if (i + 1) % args.accum == 0:
            optimizer.step()


if __name__ == "__main__":
    main()
