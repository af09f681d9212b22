"""An MNIST classifier's training script, as Jittor's MNIST example trains it.

Source: Jittor's tutorial "MNIST classification" (jittor/python/jittor/test/test_mnist.py and
the jittor.org MNIST tutorial): a small MLP, ``nn.cross_entropy_loss``, SGD with momentum and
``optimizer.step(loss)`` once per batch.  Synthetic 28x28 data instead of the dataset.

Truth: every parameter trains except ``aux.weight``/``aux.bias``: ``--aux`` off (the default)
never calls that head, so they are missing (its module never ran) and the run fails; with
``--aux`` the head's output is added to the logits and every parameter is covered.
The ``factory()`` below is the same model as a Workload, for ``gradcheck compare``.
"""

import argparse

import jittor as jt
import numpy as np
from jittor import nn


class Net(nn.Module):
    def __init__(self, hidden=32, aux=False):
        self.fc1 = nn.Linear(28 * 28, hidden)
        self.fc2 = nn.Linear(hidden, 10)
        self.aux = nn.Linear(hidden, 10)
        self.use_aux = aux

    def execute(self, x):
        h = nn.relu(self.fc1(x.reshape(x.shape[0], -1)))
        out = self.fc2(h)
        if self.use_aux:
            out = out + self.aux(h)
        return out


def batches(n, batch_size, seed):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        x = rng.normal(size=(batch_size, 1, 28, 28)).astype("float32")
        y = rng.integers(0, 10, size=(batch_size,)).astype("int32")
        yield jt.array(x), jt.array(y)


def factory(aux=True):
    import gradcheck

    jt.set_global_seed(0)
    model = Net(aux=aux)
    x, y = next(batches(1, 8, 0))
    return gradcheck.Workload(model, (x, y), lambda m, b: nn.cross_entropy_loss(m(b[0]), b[1]),
                              optimizer=nn.SGD(model.parameters(), 0.01, momentum=0.9))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--aux", action="store_true")
    args = parser.parse_args()
    jt.set_global_seed(0)
    model = Net(aux=args.aux)
    optimizer = nn.SGD(model.parameters(), 0.01, momentum=0.9)
    for epoch in range(args.epochs):
        model.train()
        for i, (x, y) in enumerate(batches(args.iters, args.batch_size, epoch)):
            loss = nn.cross_entropy_loss(model(x), y)
            optimizer.step(loss)
            print(f"epoch {epoch} iter {i} loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
