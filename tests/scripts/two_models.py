"""One optimizer training two models: an encoder and a decoder, kept as two objects.

Source: Jittor's autoencoder / seq2seq style scripts (e.g. the VAE of Jittor's gan-jittor
repository trains an encoder and a decoder built as separate ``nn.Module`` objects with one
``nn.Adam(encoder.parameters() + decoder.parameters())``).

Truth: the report names every parameter with the script's own variable name as prefix
(``encoder.*``, ``decoder.*``); all are covered.  ``--unused-decoder-layer`` adds a layer
to the decoder that its forward never calls: ``decoder.extra.*`` is missing (not_called).
A second model that is never given to an optimizer (``ema``) is not reported.
"""

import argparse

import jittor as jt
import numpy as np
from jittor import nn


class Encoder(nn.Module):
    def __init__(self):
        self.fc = nn.Linear(12, 4)

    def execute(self, x):
        return jt.tanh(self.fc(x))


class Decoder(nn.Module):
    def __init__(self, extra=False):
        self.fc = nn.Linear(4, 12)
        if extra:
            self.extra = nn.Linear(12, 12)

    def execute(self, z):
        return self.fc(z)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iters", type=int, default=6)
    parser.add_argument("--unused-decoder-layer", action="store_true")
    args = parser.parse_args()
    jt.set_global_seed(0)
    encoder = Encoder()
    decoder = Decoder(extra=args.unused_decoder_layer)
    ema = Encoder()          # a copy the script keeps aside: no optimizer holds it
    optimizer = nn.Adam(encoder.parameters() + decoder.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    for _ in range(args.iters):
        x = jt.array(rng.normal(size=(6, 12)).astype("float32"))
        loss = ((decoder(encoder(x)) - x) ** 2).mean()
        optimizer.step(loss)
        ema.fc.weight.assign(ema.fc.weight * 0.9 + encoder.fc.weight.detach() * 0.1)


if __name__ == "__main__":
    main()
