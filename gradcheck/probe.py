"""The probe: run real training steps and record, for every parameter, what training did to it.

Per step (see :func:`check`):

1. forward and loss, exactly as the workload defines them;
2. **structural reach**: which parameters have a path to the loss (and to each named loss
   term) in Jittor's graph, walked from the loss through differentiable float Vars.  This,
   not Jittor's warning, decides ``missing``: Jittor warns once per variable *name* per
   process, and its ``grads[N]`` indexes the optimizer's list, so warnings alone miss things;
3. the optimizer's own backward (``optimizer.backward(loss)``) inside a log capture, so
   Jittor's ``doesn't have gradient`` warnings are kept and mapped to parameter names as a
   cross-check; the gradient read back with ``param.opt_grad(optimizer)``.  Trainable
   parameters outside the optimizer get theirs from ``jt.grad``;
4. the optimizer step, then a comparison of every value before and after: weight decay and
   momentum move parameters without a gradient, and a tiny gradient can leave a float32
   value unchanged, so "updated" and "has a gradient" are recorded apart.
"""

from __future__ import annotations

import fnmatch
import math
import platform
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Optional

import numpy as np

from gradcheck import runtime
from gradcheck.report import BufferRecord, ParamRecord, Report, WarningRecord
from gradcheck.snapshot import GradSummary, Snapshot, grads_alongside
from gradcheck.workload import Workload, WorkloadError, _one_line, default_optimizer

BUFFER_ATTRS = ("running_mean", "running_var", "num_batches_tracked")
_GRAD_WARNING = re.compile(r"grads\[(\d+)\] '([^']*)' doesn't have gradient")
_VAR_INFO = re.compile(r"^Var\((\d+):[^,]*:g(\d),(\w+),")
_OP_INFO = re.compile(r"^Op\(\d+:[^,]*:g(\d),")


@dataclass
class Entry:
    """One Var of the model: a parameter (trainable or frozen) or a buffer."""

    name: str
    var: object
    module: str
    aliases: list = field(default_factory=list)
    buffer: bool = False


# --------------------------------------------------------------------- inventory
def inventory(model, buffer_globs=()) -> tuple[list, list]:
    """Split a model's Vars into parameters and buffers, in model order.

    Jittor's ``parameters()`` returns every public Var attribute, BatchNorm running stats
    included.  Buffers are: Vars registered with ``register_buffer``, the running stats of
    norm layers, and names matching ``buffer_globs``.  Everything else is a parameter,
    trainable unless ``stop_grad``.  A Var reachable under two names (shared) is listed once,
    under its first name, with the others as aliases.
    """
    jt = runtime.import_jittor()
    seen: dict[int, Entry] = {}
    params, buffers = [], []
    for mod_name, module in model.named_modules():
        attrs = module.params if isinstance(module, jt.nn.ParameterList) else module.__dict__
        for key, var in list(attrs.items()):
            if not isinstance(var, jt.Var) or (isinstance(key, str) and key.startswith("_")):
                continue
            name = f"{mod_name}.{key}" if mod_name else str(key)
            if id(var) in seen:
                seen[id(var)].aliases.append(name)
                continue
            is_buffer = (hasattr(var, "persistent") or key in BUFFER_ATTRS
                         or any(fnmatch.fnmatchcase(name, g) for g in buffer_globs))
            entry = Entry(name, var, mod_name, buffer=is_buffer)
            if len(var.name()) < len(name):  # as Jittor's parameters() does: names in warnings
                var.name(name)
            seen[id(var)] = entry
            (buffers if is_buffer else params).append(entry)
    return params, buffers


# --------------------------------------------------------------------- graph reach
def graph_reach(roots: dict, targets: list) -> dict:
    """For each named root Var, the set of indices of ``targets`` with a differentiable path
    to it: walked backwards from the root through float Vars that do not stop gradients."""
    jt = runtime.import_jittor()
    graph = jt.dump_all_graphs()
    info, inputs = graph.nodes_info, graph.inputs
    index_of_id, passable = {}, [True] * len(info)
    for i, text in enumerate(info):
        m = _VAR_INFO.match(text)
        if m:
            index_of_id[int(m.group(1))] = i
            passable[i] = m.group(2) == "1" and m.group(3).startswith(("float", "bfloat"))
        else:  # an op: "g0" marks one that stops gradients (detach is a clone with g0)
            m = _OP_INFO.match(text)
            passable[i] = m is None or m.group(1) == "1"
    target_at = {}
    for t_index, var in enumerate(targets):
        node = index_of_id.get(var.id)
        if node is not None:
            target_at[node] = t_index
    reach = {}
    for root_name, root in roots.items():
        start = index_of_id.get(root.id)
        found: set = set()
        if start is not None:
            seen = {start}
            stack = [start]
            while stack:
                node = stack.pop()
                if node in target_at:
                    found.add(target_at[node])
                for parent in inputs[node]:
                    if parent not in seen and passable[parent]:
                        seen.add(parent)
                        stack.append(parent)
        reach[root_name] = found
    return reach


# --------------------------------------------------------------------- loss
def call_loss(workload: Workload, batch):
    """Run the workload's loss; return (scalar Var, {term: Var}, stats dict)."""
    jt = runtime.import_jittor()
    try:
        out = workload.loss(workload.model, batch)
    except WorkloadError:
        raise
    except Exception as exc:
        raise WorkloadError(f"the loss of {workload.name} raised {type(exc).__name__}: "
                            f"{_one_line(exc)}") from exc
    terms, stats = {}, {}
    if isinstance(out, tuple):
        if not 2 <= len(out) <= 3:
            raise WorkloadError(f"the loss returned a tuple of {len(out)}; expected "
                                "scalar, (scalar, terms) or (scalar, terms, stats)")
        loss, terms = out[0], out[1] or {}
        stats = out[2] if len(out) == 3 else {}
        if not isinstance(terms, dict):
            raise WorkloadError(f"the loss terms are a {type(terms).__name__}, expected a dict")
    else:
        loss = out
    if not isinstance(loss, jt.Var):
        raise WorkloadError(f"the loss is a {type(loss).__name__}, not a jittor Var")
    if loss.numel() != 1:
        raise WorkloadError(f"the loss is not a scalar: shape {list(loss.shape)}")
    if not str(loss.dtype).startswith(("float", "bfloat")):
        raise WorkloadError(f"the loss has dtype {loss.dtype}; gradients need a float")
    for k, v in terms.items():
        if not isinstance(v, jt.Var) or v.numel() != 1:
            raise WorkloadError(f"loss term {k!r} is not a scalar Var")
    return loss, dict(terms), dict(stats or {})


def optimizer_params(optimizer) -> list:
    out = []
    for group in getattr(optimizer, "param_groups", []):
        out.extend(group.get("params", []))
    return out


def describe_optimizer(optimizer) -> dict:
    d = {"type": type(optimizer).__name__}
    for key in ("lr", "momentum", "weight_decay", "nesterov", "dampening"):
        if hasattr(optimizer, key):
            d[key] = getattr(optimizer, key)
    groups = getattr(optimizer, "param_groups", [])
    d["groups"] = [{"params": len(g.get("params", [])),
                    **{k: g[k] for k in ("lr", "momentum", "weight_decay", "nesterov") if k in g}}
                   for g in groups]
    return d


# --------------------------------------------------------------------- the probe
def check(workload: Workload, steps: int = 1, seed: Optional[int] = 0,
          on_step: Optional[Callable[[int, int, str], None]] = None,
          config: Optional[dict] = None, policy=None) -> Report:
    """Run ``steps`` real training steps of ``workload`` and return the :class:`Report`."""
    from gradcheck import explain, policy as policy_mod, summary

    if not isinstance(steps, int) or steps < 1:
        raise WorkloadError(f"steps must be a positive integer, got {steps!r}")
    jt = runtime.import_jittor()
    if seed is not None:
        runtime.seed_everything(seed)
    model = workload.model
    if not isinstance(model, jt.nn.Module):
        raise WorkloadError(f"the model is a {type(model).__name__}, not a jittor Module")
    model.train()
    params, buffers = inventory(model, workload.buffers)
    trainable = [e for e in params if not e.var.is_stop_grad()]
    if workload.optimizer is None:
        if not trainable:
            raise WorkloadError("the model has no trainable parameters")
        workload.optimizer = default_optimizer([e.var for e in trainable])
    optimizer = workload.optimizer
    opt_list = optimizer_params(optimizer)
    opt_ids = {id(v) for v in opt_list}
    # Jittor's grads[N] indexes the optimizer's parameters that take gradients, in order.
    opt_grad_list = [v for v in opt_list if not v.is_stop_grad()]
    name_of = {}
    for e in params + buffers:
        name_of[id(e.var)] = e.name
    extra = [e for e in trainable if id(e.var) not in opt_ids]

    records = [ParamRecord(name=e.name, shape=list(e.var.shape), numel=int(e.var.numel()),
                           requires_grad=not e.var.is_stop_grad(), in_optimizer=id(e.var) in opt_ids,
                           module=e.module, aliases=list(e.aliases),
                           frozen_reason=workload.frozen_reason(e.name))
               for e in params]
    buf_records = [BufferRecord(name=e.name, shape=list(e.var.shape), numel=int(e.var.numel()))
                   for e in buffers]
    warnings_out: list = []
    step_log: list = []
    reach_by_term: dict = {}
    hooks = explain.CallRecorder(model)
    index_of = {e.name: i for i, e in enumerate(params)}

    for step in range(1, steps + 1):
        t0 = time.perf_counter()
        if on_step:
            on_step(step, steps, "forward")
        batch = workload.batch_for(step)
        # values before the forward: a BatchNorm forward already queues its running-stat update
        before = Snapshot(e.var for e in params)      # lazy: no copy while values stand
        buf_before = Snapshot(e.var for e in buffers)
        with hooks:
            loss, terms, stats = call_loss(workload, batch)
        roots = {"__loss__": loss, **terms}
        reach = graph_reach(roots, [e.var for e in params])
        reached = reach["__loss__"]
        for term in terms:
            reach_by_term.setdefault(term, set()).update(reach[term])
        if on_step:
            on_step(step, steps, "backward")
        with jt.log_capture_scope(log_v=0, log_silent=1) as logs:
            with grads_alongside(e.var for e in extra) as extra_grads:   # one backward graph
                optimizer.backward(loss, retain_graph=bool(extra))
            if len(extra_grads) != len(extra):                         # a custom backward
                extra_grads = jt.grad(loss, [e.var for e in extra]) if extra else []
        grads = {}
        for e in trainable:
            if id(e.var) in opt_ids:
                grads[id(e.var)] = e.var.opt_grad(optimizer)
        for e, g in zip(extra, extra_grads):
            grads[id(e.var)] = g
        grad_summary = GradSummary(grads.values())          # status and norm, no host copies
        # node_order=1 as Jittor's optimizer.step() executes a backward: without it the
        # execution order keeps far more activations alive (2x peak RSS on Gold-YOLO-L)
        with jt.flag_scope(node_order=1):
            jt.sync([loss, *terms.values(), *grads.values(), *grad_summary.vars])   # one execution
        loss_value = float(loss.item())
        term_values = {k: float(v.item()) for k, v in terms.items()}
        grad_info = dict(zip(grads, grad_summary.results()))
        del grad_summary, extra_grads
        if on_step:
            on_step(step, steps, "update")
        optimizer.step()
        before.queue()
        buf_before.queue()
        jt.sync_all()
        changes, buf_changes = before.compare(), buf_before.compare()
        missing_by_warning = set()
        for log in logs:
            text = str(log.get("msg", ""))
            m = _GRAD_WARNING.search(text)
            rec = WarningRecord(text=text.split(": Var(")[0], level=str(log.get("level", "w")),
                                step=step)
            if m:
                idx = int(m.group(1))
                rec.index = idx
                if idx < len(opt_grad_list):
                    rec.param = name_of.get(id(opt_grad_list[idx]), m.group(2))
                    missing_by_warning.add(id(opt_grad_list[idx]))
            warnings_out.append(rec)
        for i, (e, rec) in enumerate(zip(params, records)):
            changed, delta = changes[i].changed, changes[i].delta_norm
            if step == 1:
                rec.weight_norm = changes[i].before_norm
            if e.var.is_stop_grad():
                status, gnorm = "frozen", None
            else:
                status, gnorm = grad_info[id(e.var)]
                if i not in reached or id(e.var) in missing_by_warning:
                    status = "missing"
            rec.steps.append(status)
            rec.grad_norms.append(gnorm)
            rec.update_norms.append(delta)
            rec.updated_steps.append(changed)
            if changed:
                rec.updated = True
                if status in ("missing", "zero", "frozen"):
                    rec.moved_without_grad = True
            if status == "nonzero" and rec.first_nonzero_step is None:
                rec.first_nonzero_step = step
            if status == "nonfinite" and rec.first_nonfinite_step is None:
                rec.first_nonfinite_step = step
        for rec, change in zip(buf_records, buf_changes):
            if change.changed:
                rec.changed = True
        for w in warnings_out:
            if w.step == step and w.param in index_of:
                w.agrees = index_of[w.param] not in reached
        step_log.append({"step": step, "loss": loss_value, "terms": term_values,
                         "stats": _jsonable(stats), "seconds": round(time.perf_counter() - t0, 4)})

    for idx, rec in enumerate(records):
        rec.status = run_status(rec.steps)
        rec.grad_norm = rec.grad_norms[-1] if rec.grad_norms else None
        rec.update_norm = rec.update_norms[-1] if rec.update_norms else None
        if reach_by_term:
            rec.reached_by = [t for t, found in reach_by_term.items() if idx in found]
    loss_terms = []
    for term, reached_set in reach_by_term.items():
        values = [s["terms"].get(term) for s in step_log]
        # constant: the same value on every step, and either several steps or exactly 0
        constant = all(v == values[0] for v in values) and (len(values) > 1 or values[0] == 0)
        loss_terms.append({"name": term, "reaches": len(reached_set), "constant": constant,
                           "values": values})
    cfg = {"model": workload.name, "steps": steps, "seed": seed,
           "device": runtime.state().device, "optimizer": describe_optimizer(optimizer),
           **workload.info, **(config or {})}
    report = Report(config=cfg, environment=environment(), params=records, buffers=buf_records,
                    warnings=warnings_out, steps=step_log, loss_terms=loss_terms,
                    created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    explain.explain(report, calls=hooks, policy=policy, zero_hint=workload.zero_hint)
    summary.finalize(report, policy or policy_mod.Policy())
    return report


def run_status(steps: list) -> str:
    if not steps:
        return "missing"
    if all(s == "frozen" for s in steps):
        return "frozen"
    if "nonfinite" in steps:
        return "nonfinite"
    if "nonzero" in steps:
        return "covered"
    if "zero" in steps:
        return "zero"
    return "missing"


def environment() -> dict:
    jt = runtime.import_jittor()
    st = runtime.state()
    return {"jittor": getattr(jt, "__version__", "?"), "python": platform.python_version(),
            "numpy": np.__version__, "onednn": st.onednn, "onednn_lib": st.onednn_lib,
            "device": st.device, "host": socket.gethostname(), "platform": platform.platform()}


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if hasattr(obj, "item") and hasattr(obj, "numel"):
        try:
            return obj.item() if obj.numel() == 1 else obj.numpy().tolist()
        except Exception:
            return str(obj)
    if isinstance(obj, (int, float, str, bool)) or obj is None:
        return obj
    return str(obj)
