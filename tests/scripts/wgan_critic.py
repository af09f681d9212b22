"""A WGAN training loop: the critic stepped ``--n-critic`` times per generator step.

Source: the WGAN of Jittor's GAN zoo (github.com/Jittor/gan-jittor, models/wgan/wgan.py):
``optimizer_D = nn.RMSprop(discriminator.parameters(), lr)``, the critic's loss
``-mean(D(real)) + mean(D(fake))`` stepped every batch with its weights clipped to
``[-clip_value, clip_value]`` after each step, and the generator stepped every
``n_critic`` batches with ``-mean(D(G(z)))``.  Synthetic data, tiny sizes.

Truth: two phases in step order (``optimizer_D`` first), each report step is one cycle:
``--n-critic`` critic steps and one generator step.  Every parameter of both networks is
covered but one: the critic's output bias ``discriminator.2.bias`` enters the critic's loss
once with ``+mean`` and once with ``-mean``, so its gradient is exactly ``1 - 1 = 0`` on every
step (a zero, not a missing: it reaches the loss); it still moves, by the weight clipping.
"""

import argparse

import jittor as jt
import numpy as np
from jittor import nn


def mlp(i, o):
    return nn.Sequential(nn.Linear(i, 16), nn.LeakyReLU(0.2), nn.Linear(16, o))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-critic", type=int, default=3)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--clip-value", type=float, default=0.01)
    opt = parser.parse_args()
    jt.set_global_seed(0)
    generator, discriminator = mlp(4, 8), mlp(8, 1)
    optimizer_G = nn.RMSprop(generator.parameters(), lr=5e-5)
    optimizer_D = nn.RMSprop(discriminator.parameters(), lr=5e-5)
    rng = np.random.default_rng(0)
    for i in range(opt.iters):
        real = jt.array(rng.normal(size=(6, 8)).astype("float32"))
        z = jt.array(rng.normal(size=(6, 4)).astype("float32"))
        fake = generator(z).detach()
        loss_D = -jt.mean(discriminator(real)) + jt.mean(discriminator(fake))
        optimizer_D.step(loss_D)
        for p in discriminator.parameters():
            p.assign(p.maximum(-opt.clip_value).minimum(opt.clip_value))
        if i % opt.n_critic == 0 and i > 0 or opt.n_critic == 1:
            loss_G = -jt.mean(discriminator(generator(z)))
            optimizer_G.step(loss_G)


if __name__ == "__main__":
    main()
