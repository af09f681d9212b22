"""One training step on either side of ``gradcheck align``: loss, terms and gradients.

The home of :func:`port_step` (Jittor, through the optimizer's own backward) and
:func:`torch_step` (torch), and of the original's default optimizer.
"""

from __future__ import annotations

import numpy as np


def port_step(workload, batch, extra_trainable, jt, recorder=None):
    """Forward, loss and the optimizer's backward on the port: (loss, terms, {id: grad})."""
    from gradcheck.workload import call_loss

    loss, terms, _ = call_loss(workload.loss, workload.model, batch, workload.name)
    if recorder is not None:
        recorder.output_grads(loss)
    opt = workload.optimizer
    opt.backward(loss, retain_graph=bool(extra_trainable))
    extra_grads = jt.grad(loss, extra_trainable) if extra_trainable else []
    grads = {}
    for g in opt.param_groups:
        for v in g["params"]:
            if not v.is_stop_grad():
                grads[id(v)] = v.opt_grad(opt)
    for v, g in zip(extra_trainable, extra_grads):
        grads[id(v)] = g
    jt.sync([loss, *terms.values(), *grads.values()])
    return (
        float(loss.item()),
        {k: float(v.item()) for k, v in terms.items()},
        {k: g.numpy() for k, g in grads.items()},
    )


def torch_step(workload, model, optimizer, batch, torch, recorder=None):
    from gradcheck.parity.torch_probe import call_loss

    optimizer.zero_grad(set_to_none=True)
    for p in model.parameters():
        p.grad = None
    loss, terms, _ = call_loss(workload, batch, model=model)
    if recorder is not None:
        recorder.output_grads(loss)
    if loss.requires_grad:
        loss.backward()
    grads = {
        n: (None if p.grad is None else p.grad.detach().cpu().numpy().astype(np.float64))
        for n, p in model.named_parameters()
    }
    return float(loss.detach()), {k: float(v.detach()) for k, v in terms.items()}, grads


def default_torch_optimizer(model, torch):
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
