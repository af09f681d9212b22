"""Samples of the original's float32 noise, for ``gradcheck align``'s noise floor.

The floor of a number (a module output, the loss, a gradient) is how far the original's own
float32 run lands from its float64 rerun.  One run is one sample of that noise, and where a
model amplifies noise (a ReLU input near zero, a near tie) one sample can sit far below
what float32 does there: measured on the official Gold-YOLO-N, moving every input element
by 2e-7 moves its float32 gradients by a median 2.9e-3, while its one-run floor was 2.6e-5.

:func:`sample` reruns step 1 of the original in float32 on its batch with every float
element moved one ulp up or down (a seeded coin per element: the smallest change float32
can represent, the size of one rounding; elements holding an exact integer -- indices,
classes, masks -- are left alone), on a copy of the original taken before any step.
``align`` takes each number's floor as the largest distance from the float64 reference
over the original's run and these samples (``align_noise_samples``, default 3); with
``--steps 1`` the parameter updates' floors too (each sample runs the optimizer's step).  A port
bug larger than float32's own sensitivity still stands out; a faithful port's float32 run
is one more such sample.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck.parity.batches import map_leaves, to_torch_like
from gradcheck.parity.hooks import TorchOutputs
from gradcheck.parity.judge import l2_dist
from gradcheck.parity.steps import torch_step


@dataclass
class NoiseSample:
    """Step 1 of the original (on a batch moved by one ulp, :func:`sample`; or its own run,
    ``align``'s ``original`` side) reduced to its distances from the float64 reference: a
    floor's key is (module, call) or the original parameter name."""

    loss: float
    terms: dict[str, float]
    grad_dist: dict[str, float]  # parameter -> |g - g_64| (L2; no gradient counts as zeros)
    update_dist: dict[str, float]  # parameter -> |u - u_64| of the step's update (L2)
    out_floor: dict[tuple[str, int], float]  # of the module's outputs (scale-relative)
    grad_floor: dict[tuple[str, int], float]  # of d loss / d its outputs


def param_distances(values: dict, reference: dict) -> dict[str, float]:
    """Per name, |values - reference| (L2, float64; a missing array counts as zeros)."""
    out = {}
    for n in values.keys() | reference.keys():
        a, r = values.get(n), reference.get(n)
        shape = np.shape(a) if a is not None else np.shape(r) if r is not None else ()
        out[n] = l2_dist(a, r, shape)
    return out


def one_ulp(batch, rng):
    """The numpy batch with every float element moved one ulp up or down (integer dtypes,
    and float elements that hold an exact integer, kept)."""

    def leaf(x):
        if not (isinstance(x, np.ndarray) and x.dtype.kind == "f"):
            return x
        up = rng.random_sample(x.shape) < 0.5
        inf = np.array(np.inf, x.dtype)
        moved = np.where(up, np.nextafter(x, inf), np.nextafter(x, -inf))
        # an exact integer in a float array is usually an index, a class or a mask (a target
        # row's image and class columns): moving it would change what it means, not round it
        return np.where(x == np.round(x), x, moved).astype(x.dtype)

    return map_leaves(batch, leaf)


@dataclass
class Reference:
    """The float64 run of step 1 that samples are measured against."""

    rec: TorchOutputs  # its module outputs and d loss / d outputs
    grads: dict  # original parameter name -> its gradient (None: none)
    model: Any  # the float64 model, after its step-1 update


def sample(workload, pristine, batch_np, batch_o, k: int, seed: int, torch, ref: Reference):
    """Step 1 of the original on the batch moved by one ulp (coin flips seeded by ``seed``,
    ``k``), on a fresh copy of ``pristine`` (its (model, optimizer) before any step), the
    optimizer's update included, reduced as it runs to its distances from the float64 run
    ``ref``: a sample never holds a model's worth of activations or gradients."""
    model, optimizer = copy.deepcopy(pristine)
    rng = np.random.RandomState([seed % 2**32, k])
    batch = to_torch_like(one_ulp(batch_np, rng), batch_o, torch)
    rec = TorchOutputs(model, torch, reference=ref.rec)
    with rec:
        loss, terms, grads = torch_step(workload, model, optimizer, batch, torch, rec)
    grad_dist = param_distances(grads, ref.grads)
    del grads
    optimizer.step()
    start = dict(pristine[0].named_parameters())  # the weights before the step (unchanged)
    ref_now = dict(ref.model.named_parameters())
    update_dist = {}
    for n, p in model.named_parameters():
        w0 = _f64(start[n])
        u, u64 = _f64(p) - w0, _f64(ref_now[n]) - w0
        update_dist[n] = float(np.linalg.norm((u - u64).ravel()))
    return NoiseSample(loss, terms, grad_dist, update_dist, rec.out_floor, rec.grad_floor)


def _f64(t) -> np.ndarray:
    """A torch tensor's values as a float64 array."""
    return t.detach().cpu().numpy().astype(np.float64)
