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

import numpy as np

from gradcheck.parity.batches import map_leaves, to_torch_like
from gradcheck.parity.hooks import TorchOutputs
from gradcheck.parity.steps import torch_step


@dataclass
class NoiseSample:
    """Step 1 of the original on a batch moved by one ulp (:func:`sample`); a floor's key is
    (module, call), its value the distance from the float64 reference."""

    loss: float
    terms: dict[str, float]
    grads: dict[str, np.ndarray | None]  # original parameter name -> float64 gradient
    updates: dict[str, np.ndarray]  # original parameter name -> value after - before
    out_floor: dict[tuple[str, int], float]  # of the module's outputs
    grad_floor: dict[tuple[str, int], float]  # of d loss / d its outputs


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


def _distances(recorded: dict, reference: dict) -> dict:
    """Per key, the largest scale-relative distance of the recorded arrays from the
    reference's (keys and arrays the reference lacks, or shaped otherwise, skipped)."""
    from gradcheck.parity.judge import rel_scale

    out = {}
    for key, arrays in recorded.items():
        ref = reference.get(key)
        if ref is None:
            continue
        d = [rel_scale(a, r) for a, r in zip(arrays, ref) if tuple(a.shape) == tuple(r.shape)]
        if d:
            out[key] = max(d)
    return out


def sample(
    workload, pristine, batch_np, batch_o, k: int, seed: int, torch, reference
) -> NoiseSample:
    """Step 1 of the original on the batch moved by one ulp (coin flips seeded by ``seed``,
    ``k``), on a fresh copy of ``pristine`` (its (model, optimizer) before any step), the
    optimizer's update included.  Module outputs are reduced at once to their distances
    from ``reference`` (the float64 run's recorder): a sample never holds a model's worth
    of activations."""
    model, optimizer = copy.deepcopy(pristine)
    rng = np.random.RandomState([seed % 2**32, k])
    batch = to_torch_like(one_ulp(batch_np, rng), batch_o, torch)
    before = {n: p.detach().cpu().numpy().astype(np.float64) for n, p in model.named_parameters()}
    rec = TorchOutputs(model, torch)
    with rec:
        loss, terms, grads = torch_step(workload, model, optimizer, batch, torch, rec)
    optimizer.step()
    updates = {
        n: p.detach().cpu().numpy().astype(np.float64) - before[n]
        for n, p in model.named_parameters()
    }
    outs = {
        (name, call): arrays for name, calls in rec.out.items() for call, arrays in enumerate(calls)
    }
    refs = {
        (name, call): arrays
        for name, calls in reference.out.items()
        for call, arrays in enumerate(calls)
    }
    return NoiseSample(
        loss, terms, grads, updates, _distances(outs, refs), _distances(rec.grads, reference.grads)
    )
