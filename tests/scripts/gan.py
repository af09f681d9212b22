"""A GAN's training script: two optimizers, the discriminator stepped before the generator.

Source: Jittor's GAN examples (github.com/Jittor/gan-jittor, models/gan/gan.py): a generator
and a discriminator, ``nn.BCELoss``, one Adam per network, each stepped with
``optimizer.step(loss)``: the generator first, then the discriminator on the generated images
``stop_grad``-ed (Jittor's ``stop_grad()`` marks the Var itself, so it must come after the
generator's step).  Synthetic "real" data, tiny sizes.

Truth: two phases, in the order the script steps them (``optimizer_G`` then ``optimizer_D``);
every parameter of both networks is covered (G through D's output in G's loss, D in D's loss).
With ``--detach-g`` the generator's loss is computed on ``gen.detach()``: every generator
parameter is then missing (no path to the only loss its optimizer steps on).
"""

import argparse

import jittor as jt
import numpy as np
from jittor import nn


class Generator(nn.Module):
    def __init__(self, latent=8, out=16):
        self.fc1 = nn.Linear(latent, 32)
        self.fc2 = nn.Linear(32, out)

    def execute(self, z):
        return jt.tanh(self.fc2(nn.leaky_relu(self.fc1(z), 0.2)))


class Discriminator(nn.Module):
    def __init__(self, inp=16):
        self.fc1 = nn.Linear(inp, 32)
        self.fc2 = nn.Linear(32, 1)

    def execute(self, x):
        return jt.sigmoid(self.fc2(nn.leaky_relu(self.fc1(x), 0.2)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--detach-g", action="store_true")
    opt = parser.parse_args()
    jt.set_global_seed(0)
    generator, discriminator = Generator(), Discriminator()
    adversarial_loss = nn.BCELoss()
    optimizer_G = nn.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizer_D = nn.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    rng = np.random.default_rng(0)
    for epoch in range(opt.n_epochs):
        real = jt.array(rng.normal(size=(opt.batch_size, 16)).astype("float32"))
        valid = jt.ones((opt.batch_size, 1)).stop_grad()
        fake = jt.zeros((opt.batch_size, 1)).stop_grad()
        z = jt.array(rng.normal(size=(opt.batch_size, 8)).astype("float32"))
        gen = generator(z)
        g_loss = adversarial_loss(discriminator(gen.detach() if opt.detach_g else gen), valid)
        optimizer_G.step(g_loss)
        d_loss = (adversarial_loss(discriminator(real), valid)
                  + adversarial_loss(discriminator(gen.stop_grad()), fake)) / 2
        optimizer_D.step(d_loss)
        print(f"[epoch {epoch}] D {d_loss.item():.4f} G {g_loss.item():.4f}")


if __name__ == "__main__":
    main()
