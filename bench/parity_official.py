"""Parity of the Jittor Gold-YOLO port (``gold_yolo``) against the official PyTorch model.

    python3 bench/parity_official.py --official /tmp/official/Detection/Gold-YOLO \
        [--variants n,s,m,l] [--img-size 320] [--batch-size 2] [--seed 0] \
        [--pythonpath /tmp/offdeps] [--trace] [--json out/parity.json]

No official code is part of this repository or of this script: the official sources
(huawei-noah/Efficient-Computing, ``Detection/Gold-YOLO``: packages ``yolov6`` and
``gold_yolo``, ``configs/gold_yolo-{n,s,m,l}.py``) are imported at run time from the
``--official`` folder (put first on ``sys.path`` while they are imported).  Export them
outside the repository, e.g.::

    mkdir -p /tmp/official && for p in yolov6 gold_yolo configs tools; do
      git --git-dir=<mirror> archive HEAD Detection/Gold-YOLO/$p | tar -x -C /tmp/official; done

The official model needs, besides torch and numpy: ``addict`` (its config loader),
``mmcv`` (``mmcv.cnn.ConvModule`` / ``build_norm_layer``; mmcv-lite 2.x works), its
``mmengine`` and ``opencv-python-headless``.  None of them is a dependency of this project;
install them anywhere, e.g. ``pip install --target /tmp/offdeps mmcv-lite mmengine-lite
addict opencv-python-headless yapf termcolor``, and pass ``--pythonpath /tmp/offdeps``
(appended to ``sys.path``, so it never shadows this environment's packages).

Both sides have a top-level package called ``gold_yolo``; ours is imported first, the
official one is imported with ours temporarily taken out of ``sys.modules`` and then put
back (the official modules stay referenced by the official objects).

What it measures, per variant (float32 on both sides, CPU):

0. state_dict names/shapes: every official key must exist in ours with the same shape and
   every one of our keys in the official model (``num_batches_tracked`` is torch-only and
   only counted).  Our weights (BN running statistics included) are copied into the
   official model by name.  BatchNorm ``eps``/``momentum`` are compared module by module.
   Official SyncBN layers are converted to BatchNorm2d (official
   ``gold_yolo.switch_tool._convert_batchnorm``, eps/momentum/weights kept); the neck
   drop-path rate is 0 on both sides (official config ``drop_path_rate``, ours
   ``set_drop_path(0)``).
1. training-mode outputs on the same images (``gold_yolo.synthetic_batch``): the neck
   outputs, the head's feats, cls scores (post-sigmoid) and reg distri.
2. the loss and loss_items [iou, dfl, cls]: ours (``build_loss``) vs the official
   ``ComputeLoss`` built exactly like ``yolov6/core/engine.py`` (``ori_img_size=img_size``,
   ``warmup_epoch=atss_warmup_epoch`` i.e. TAL from epoch 0, ...) and called as there:
   ``(outputs, targets, epoch_num=0, step_num=0)``, targets ``[img, cls, xc, yc, w, h]``
   normalised (the official collate format).  Also the number of positives and the target
   score sum of the assignment, and the loss under the ATSS warm-up assigner (loss only).
3. gradients of the total loss w.r.t. every trainable parameter:
   ``||g_ours - g_off|| / (||g_off|| + 1e-12)`` per parameter, max / median, worst 5.
   Phase A is the official initialisation (prediction weights are zero, so most
   gradients are exactly zero); phase B gives ``detect.cls_preds.*.weight`` and
   ``detect.reg_preds.*.weight`` the same small random values (N(0, 0.01)) on both sides
   and repeats 1-3, so that gradients reach everything.
   Calibration: phase B once more with the official model and loss in float64 (a copy);
   official-float32 vs that and ours vs that give the float32 noise floor of each number.
4. BN running statistics after the training-mode forwards (momentum and the variance
   estimator of the running update).
5. eval mode: ours vs official without fusion, and ours after ``reparameterize`` vs the
   official ``switch_to_deploy`` (RepVGG fusion); weights and running statistics are
   re-synchronised (ours -> official) first.

Differences: ``max_abs`` = max |ours - off|; ``rel`` = max_abs / max |off| (scale-relative);
``rel_elem`` = max |ours - off| / (|off| + 1e-3 max |off|) (element-wise, floored).  Float32
op-ordering noise is about 1e-6..1e-4 relative; a row above ``--tol`` (1e-3; gradients
``--grad-tol`` 1e-2) is flagged ``<<`` and, for training outputs, the first diverging
module is located with forward hooks on both models (``--trace`` forces that).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import gold_yolo  # noqa: E402  (sets up Jittor first)
from gradcheck import runtime  # noqa: E402

jt = runtime.import_jittor()
import torch  # noqa: E402

OFF = {}       # official modules, filled by import_official()
EPS = 1e-12


# --------------------------------------------------------------------------- official import
def import_official(path: str, extra_paths=()) -> None:
    for p in extra_paths:
        if p and p not in sys.path:
            sys.path.append(p)
    ours = {k: sys.modules.pop(k) for k in list(sys.modules)
            if k == "gold_yolo" or k.startswith("gold_yolo.")}
    sys.path.insert(0, path)
    try:
        import yolov6.models.yolo as yolo
        import yolov6.models.losses.loss as loss
        import yolov6.utils.config as config
        import gold_yolo.switch_tool as switch_tool   # the official gold_yolo package
        OFF.update(yolo=yolo, loss=loss, config=config, switch_tool=switch_tool)
        for k in [k for k in sys.modules if k == "gold_yolo" or k.startswith("gold_yolo.")]:
            OFF["mod:" + k] = sys.modules.pop(k)
    finally:
        sys.path.remove(path)
        sys.modules.update(ours)
    assert sys.modules["gold_yolo"] is gold_yolo


def build_official(official: str, variant: str, img_size: int):
    cfg = OFF["config"].Config.fromfile(str(Path(official) / "configs" / f"gold_yolo-{variant}.py"))
    if not hasattr(cfg, "training_mode"):          # tools/train.py default
        setattr(cfg, "training_mode", "repvgg")
    cfg.model.neck.extra_cfg.drop_path_rate = 0.0
    model = OFF["yolo"].build_model(cfg, 80, "cpu")
    model = OFF["switch_tool"]._convert_batchnorm(model)   # SyncBN -> BatchNorm2d (train on CPU)
    head = cfg.model.head
    loss_kw = dict(num_classes=80, ori_img_size=img_size, warmup_epoch=head.atss_warmup_epoch,
                   use_dfl=head.use_dfl, reg_max=head.reg_max, iou_type=head.iou_type,
                   fpn_strides=head.strides)
    return cfg, model, loss_kw


# --------------------------------------------------------------------------- BN diagnostic
_BN_EXECUTE = None


def set_bn_f64_stats(on: bool) -> None:
    """Diagnostic only (never part of the port): make Jittor's ``nn.BatchNorm`` compute its
    training-mode batch statistics like torch, i.e. accurately (float64, two-pass variance)
    and with an unbiased running-variance update; the normalisation itself stays float32.
    Jittor's own BatchNorm uses float32 ``mean(x)`` and ``mean(x*x) - mean(x)**2`` and a
    biased running variance."""
    global _BN_EXECUTE
    from jittor import nn
    if _BN_EXECUTE is None:
        _BN_EXECUTE = nn.BatchNorm.execute
    if not on:
        nn.BatchNorm.execute = _BN_EXECUTE
        return

    def execute(self, x):
        if not self.is_train:
            return _BN_EXECUTE(self, x)
        dims = [0] + list(range(2, x.ndim))
        x64 = x.float64()
        mean = x64.mean(dims=dims)
        var = ((x64 - mean.broadcast(x64, dims)).sqr()).mean(dims=dims)
        w = 1.0 / jt.sqrt(var + self.eps)
        if self.weight is not None:
            w = w * self.weight.float64()
        b = -mean * w
        if self.bias is not None:
            b = b + self.bias.float64()
        w, b = w.float32(), b.float32()
        n = x.numel() // x.shape[1]
        self.running_mean.update(self.running_mean + (mean.float32() - self.running_mean) * self.momentum)
        unbiased = (var * (n / max(n - 1, 1))).float32()
        self.running_var.update(self.running_var + (unbiased - self.running_var) * self.momentum)
        return x * w.broadcast(x, dims) + b.broadcast(x, dims)
    nn.BatchNorm.execute = execute


# --------------------------------------------------------------------------- helpers
def np32(v):
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    if isinstance(v, jt.Var):
        return v.numpy()
    return np.asarray(v)


def diff(ours, off) -> dict:
    a = np.asarray(np32(ours), np.float64)
    b = np.asarray(np32(off), np.float64)
    if a.shape != b.shape:
        return {"shape": f"{a.shape} vs {b.shape}", "max_abs": math.inf, "rel": math.inf, "rel_elem": math.inf}
    if a.size == 0:
        return {"max_abs": 0.0, "rel": 0.0, "rel_elem": 0.0}
    d = np.abs(a - b)
    scale = float(np.abs(b).max())
    out = {"max_abs": float(d.max()), "rel": float(d.max() / (scale + 1e-30)),
           "rel_elem": float((d / (np.abs(b) + 1e-3 * scale + 1e-30)).max())}
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        out["nonfinite"] = True
    return out


def leaves(o):
    """Flatten nested lists/tuples of tensors/Vars."""
    if isinstance(o, (list, tuple)):
        return [x for e in o for x in leaves(e)]
    if isinstance(o, (torch.Tensor, jt.Var)):
        return [o]
    return []


def to_torch(a, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(like.dtype).reshape(like.shape)


def sync_weights(ours, off, report=None):
    """Copy our state_dict into the official model by name; return the key mismatches."""
    sd_j = {k: np32(v) for k, v in ours.state_dict().items()}
    sd_t = off.state_dict()
    missing, shape, copied, nbt = [], [], 0, 0
    new = {}
    for k, v in sd_t.items():
        if k.endswith("num_batches_tracked"):
            nbt += 1
            continue
        if k not in sd_j:
            missing.append(k)
            continue
        if tuple(sd_j[k].shape) != tuple(v.shape):
            shape.append(f"{k}: ours {tuple(sd_j[k].shape)} off {tuple(v.shape)}")
            continue
        new[k] = to_torch(sd_j[k], v)
        copied += 1
    off.load_state_dict(new, strict=False)
    extra = sorted(k for k in sd_j if k not in sd_t)
    if report is not None:
        report.update(copied=copied, official_only=missing, ours_only=extra, shape_mismatch=shape,
                      num_batches_tracked=nbt)
    return new


def bn_settings(ours, off):
    mj = dict(ours.named_modules())
    bad, n = [], 0
    for name, m in off.named_modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n += 1
            o = mj.get(name)
            if o is None:
                bad.append(f"{name}: missing in ours")
                continue
            ej, mo = float(getattr(o, "eps", float("nan"))), float(getattr(o, "momentum", float("nan")))
            if not (math.isclose(ej, m.eps, rel_tol=1e-6) and math.isclose(mo, m.momentum, rel_tol=1e-6)):
                bad.append(f"{name}: eps/momentum ours {ej:g}/{mo:g} off {m.eps:g}/{m.momentum:g}")
    return n, bad


def trainable(ours, off):
    pj = dict(ours.named_parameters())
    pairs = []
    for name, p in off.named_parameters():
        if not p.requires_grad:
            continue
        q = pj.get(name)
        if q is None or q.is_stop_grad():
            continue
        pairs.append((name, q, p))
    return pairs


def grad_compare(pairs, grads_j):
    rows = []
    for (name, _, p), gj in zip(pairs, grads_j):
        gt = np.zeros(p.shape, np.float64) if p.grad is None else p.grad.detach().double().numpy()
        gj = np.asarray(np32(gj), np.float64)
        num = float(np.linalg.norm(gj - gt))
        den = float(np.linalg.norm(gt))
        rows.append((name, num / (den + EPS), den, float(np.linalg.norm(gj))))
    rel = np.array([r[1] for r in rows])
    zero_off = sum(1 for r in rows if r[2] == 0.0)
    zero_ours = sum(1 for r in rows if r[3] == 0.0)
    worst = sorted(rows, key=lambda r: -r[1])[:5]
    # "negligible": |g_off| < 1e-6 max |g_off| (float32 noise, e.g. a conv bias or BN shift that
    # feeds a training-mode BatchNorm, whose exact gradient is 0); stats over the others too
    gmax = max((r[2] for r in rows), default=0.0)
    sig = [r for r in rows if r[2] >= 1e-6 * gmax and r[2] > 0]
    rel_sig = np.array([r[1] for r in sig]) if sig else np.zeros(1)
    worst_sig = sorted(sig, key=lambda r: -r[1])[:5]
    return {"n": len(rows), "max": float(rel.max()), "median": float(np.median(rel)),
            "p90": float(np.percentile(rel, 90)), "zero_off": zero_off, "zero_ours": zero_ours,
            "worst": [{"name": n, "rel": r, "norm_off": d, "norm_ours": e} for n, r, d, e in worst],
            "n_sig": len(sig), "n_negligible": len(rows) - len(sig) - zero_off,
            "sig_max": float(rel_sig.max()), "sig_median": float(np.median(rel_sig)),
            "sig_p90": float(np.percentile(rel_sig, 90)),
            "worst_sig": [{"name": n, "rel": r, "norm_off": d, "norm_ours": e} for n, r, d, e in worst_sig]}


# --------------------------------------------------------------------------- one training pass
def train_pass(ours, off, loss_j, loss_t, loss_j_atss, loss_t_atss, x_j, x_t, targets_np, targets_t):
    res = {}
    ours.train()
    off.train()
    # ours
    out_j, feat_j = ours(x_j, return_featmaps=True)
    lo = loss_j.compute(out_j, targets_np, 0, 0)
    pairs = trainable(ours, off)
    grads_j = jt.grad(lo.total, [q for _, q, _ in pairs])
    jt.sync(list(grads_j))
    items_j = np32(lo.items())
    # official
    for p in off.parameters():
        p.grad = None
    with capture_assignment(loss_t) as cap:
        out_t, feat_t = off(x_t)
        feat_t = [f.detach().clone() for f in feat_t]
        loss_tot_t, items_t = loss_t(out_t, targets_t, 0, 0)
    loss_tot_t.backward()

    res["neck"] = [diff(a, b) for a, b in zip(feat_j, feat_t)]
    res["feats"] = [diff(a, b) for a, b in zip(out_j[0], out_t[0])]
    res["cls"] = diff(out_j[1], out_t[1])
    res["reg"] = diff(out_j[2], out_t[2])
    res["loss"] = {"ours": float(np32(lo.total).reshape(-1)[0]), "off": float(loss_tot_t.item())}
    res["loss"].update(diff(np32(lo.total).reshape(-1), loss_tot_t.detach().reshape(-1)))
    res["items"] = {"ours": [float(v) for v in items_j.reshape(-1)],
                    "off": [float(v) for v in items_t.numpy().reshape(-1)]}
    res["items_diff"] = [diff(a, b) for a, b in zip(items_j.reshape(-1), items_t.numpy().reshape(-1))]
    res["assign"] = {"num_pos_ours": lo.stats["num_pos"], "num_pos_off": int(cap["fg"].sum()),
                     "tss_ours": lo.stats["target_scores_sum"], "tss_off": cap["tss"]}
    res["grads"] = grad_compare(pairs, grads_j)
    res["_raw"] = {"grads": {n: (np32(g), None if p.grad is None else p.grad.detach().numpy().copy())
                             for (n, _, p), g in zip(pairs, grads_j)},
                   "cls": (np32(out_j[1]), np32(out_t[1])), "reg": (np32(out_j[2]), np32(out_t[2]))}
    res["loss_same_in"] = loss_same_inputs(loss_j, loss_t, out_t, targets_np, targets_t)
    # ATSS warm-up assigner (loss only, same outputs)
    with jt.no_grad():
        la, ia = loss_j_atss(out_j, targets_np, 0, 0)
    with torch.no_grad():
        lb, ib = loss_t_atss(out_t, targets_t, 0, 0)
    res["loss_atss"] = {"ours": float(np32(la).reshape(-1)[0]), "off": float(lb.item())}
    res["loss_atss"].update(diff(np32(la).reshape(-1), lb.reshape(-1)))
    res["items_atss"] = {"ours": [float(v) for v in np32(ia).reshape(-1)],
                         "off": [float(v) for v in ib.numpy().reshape(-1)]}
    return res


@contextlib.contextmanager
def capture_assignment(loss_t):
    """Wrap the official loss's TAL assigner for one call: the yielded dict receives the
    foreground mask (``fg``) and the target-score sum (``tss``)."""
    cap = {}
    fa = loss_t.formal_assigner

    def capture(*a, **k):
        r = fa(*a, **k)
        cap["fg"] = r[3].detach().clone()
        cap["tss"] = float(r[2].sum())
        return r

    loss_t.formal_assigner = capture
    try:
        yield cap
    finally:
        loss_t.formal_assigner = fa


def loss_same_inputs(loss_j, loss_t, out_t, targets_np, targets_t):
    """Both losses on the very same arrays (the official model's outputs): isolates the loss
    from the model.  Compares loss, items, positives and d loss / d (cls_scores, reg_distri)."""
    feats = [f.detach().numpy() for f in out_t[0]]
    cls_np, reg_np = out_t[1].detach().numpy(), out_t[2].detach().numpy()
    cj, rj = jt.array(cls_np), jt.array(reg_np)
    lo = loss_j.compute(([jt.array(f) for f in feats], cj, rj), targets_np, 0, 0)
    gcj, grj = jt.grad(lo.total, [cj, rj])
    ct = torch.from_numpy(cls_np.copy()).requires_grad_(True)
    rt = torch.from_numpy(reg_np.copy()).requires_grad_(True)
    with capture_assignment(loss_t) as cap:
        lt, it = loss_t(([torch.from_numpy(f.copy()) for f in feats], ct, rt), targets_t, 0, 0)
    lt.backward()
    ij = np32(lo.items()).reshape(-1)
    return {"loss": diff(np32(lo.total).reshape(-1), lt.detach().reshape(-1)),
            "items": [diff(a, b) for a, b in zip(ij, it.numpy().reshape(-1))],
            "items_ours": [float(v) for v in ij], "items_off": [float(v) for v in it.numpy().reshape(-1)],
            "num_pos": (lo.stats["num_pos"], int(cap["fg"].sum())),
            "tss": (lo.stats["target_scores_sum"], cap["tss"]),
            "grad_cls": diff(gcj, ct.grad), "grad_reg": diff(grj, rt.grad)}


def calibrate(off, loss_kw, x_t, targets_t, raw):
    """Float32 noise floor: the official model and loss once more in float64 (a deep copy,
    same weights); returns how far official-float32 and ours each are from that reference."""
    import copy
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        m64 = copy.deepcopy(off).double().train()
        for p in m64.parameters():
            p.grad = None
        loss64 = OFF["loss"].ComputeLoss(**loss_kw)
        out64, _ = m64(x_t.double())
        l64, _ = loss64(out64, targets_t.double(), 0, 0)
        l64.backward()
        g64 = {n: (np.zeros(p.shape) if p.grad is None else p.grad.detach().numpy()) for n, p in m64.named_parameters()}
    finally:
        torch.set_default_dtype(old)
    res = {"cls_off32": diff(raw["cls"][1], out64[1])["rel"], "cls_ours": diff(raw["cls"][0], out64[1])["rel"],
           "reg_off32": diff(raw["reg"][1], out64[2])["rel"], "reg_ours": diff(raw["reg"][0], out64[2])["rel"]}
    gmax = max(float(np.linalg.norm(g)) for g in g64.values())
    r32, rj = [], []
    for n, (gj, gt) in raw["grads"].items():
        ref = g64[n]
        den = float(np.linalg.norm(ref))
        if den < 1e-6 * gmax or den == 0:
            continue
        gt = np.zeros(ref.shape) if gt is None else gt
        r32.append(float(np.linalg.norm(gt - ref)) / den)
        rj.append(float(np.linalg.norm(gj - ref)) / den)
    for key, arr in (("grad_off32", r32), ("grad_ours", rj)):
        a = np.array(arr) if arr else np.zeros(1)
        res[key] = {"median": float(np.median(a)), "p90": float(np.percentile(a, 90)), "max": float(a.max()),
                    "n": len(arr)}
    return res


# --------------------------------------------------------------------------- trace
def trace(ours, off, x_j, x_t, training: bool, tol: float, top: int = 8):
    """Forward both with hooks on every named module; return modules in official execution
    order whose outputs differ by more than ``tol`` (scale-relative), first ones first."""
    ours.train() if training else ours.eval()
    off.train() if training else off.eval()
    rec_t, rec_j, order = {}, {}, []
    handles = []
    for name, m in off.named_modules():
        if not name:
            continue

        def hook(mod, inp, out, name=name):
            rec_t.setdefault(name, []).append([t.detach().clone() for t in leaves(out)])
            order.append((name, len(rec_t[name]) - 1, type(mod).__name__))
        handles.append(m.register_forward_hook(hook))
    mods_j = [(n, m) for n, m in ours.named_modules() if n]
    for name, m in mods_j:
        def hook_j(mod, inp, out, *rest, name=name):
            rec_j.setdefault(name, []).append([v.detach() for v in leaves(out)])
        m.register_forward_hook(hook_j)
    try:
        with torch.no_grad():
            off(x_t)
        with jt.no_grad():
            ours(x_j)
            jt.sync([v for outs in rec_j.values() for o in outs for v in o])
    finally:
        for h in handles:
            h.remove()
        for _, m in mods_j:
            m.remove_forward_hook()
    found, unmatched, n_cmp = [], [], 0
    for name, call, typ in order:
        outs_j = rec_j.get(name)
        if outs_j is None or call >= len(outs_j):
            unmatched.append(name)
            continue
        a, b = outs_j[call], rec_t[name][call]
        if len(a) != len(b):
            found.append({"module": name, "type": typ, "call": call, "note": f"{len(a)} vs {len(b)} outputs"})
            continue
        n_cmp += 1
        worst = max((diff(u, v) for u, v in zip(a, b)), key=lambda d: d["rel"], default=None)
        if worst is not None and worst["rel"] > tol:
            found.append({"module": name, "type": typ, "call": call, **worst})
            if len(found) >= top:
                break
    return {"compared": n_cmp, "unmatched": unmatched[:10], "n_unmatched": len(unmatched), "diverging": found}


# --------------------------------------------------------------------------- per variant
def run_variant(args, v: str) -> dict:
    t0 = time.time()
    name = f"gold_yolo_{v}"
    R = {"variant": v, "img_size": args.img_size, "batch_size": args.batch_size, "bn_f64": bool(args.bn_f64)}
    set_bn_f64_stats(bool(args.bn_f64))
    runtime.seed_everything(args.seed)
    ours = gold_yolo.build_model(name)
    ours.set_drop_path(0)
    cfg, off, loss_kw = build_official(args.official, v, args.img_size)
    off.float()
    R["keys"] = {}
    sync_weights(ours, off, R["keys"])
    pj = {n for n, p in ours.named_parameters() if not p.is_stop_grad()}
    pt = {n for n, p in off.named_parameters() if p.requires_grad}
    R["keys"]["trainable_ours_only"] = sorted(pj - pt)
    R["keys"]["trainable_off_only"] = sorted(pt - pj)
    n_bn, bad_bn = bn_settings(ours, off)
    R["bn_settings"] = {"n": n_bn, "mismatch": bad_bn}

    loss_j = gold_yolo.build_loss(name, ori_img_size=args.img_size)
    loss_j_atss = gold_yolo.build_loss(name, ori_img_size=args.img_size, warmup_epoch=4)
    LT = OFF["loss"].ComputeLoss
    loss_t = LT(**loss_kw)
    loss_t_atss = LT(**{**loss_kw, "warmup_epoch": 4})

    x_j, targets_np = gold_yolo.synthetic_batch(args.img_size, args.batch_size, args.seed)
    x_np = np32(x_j).astype(np.float32)
    x_t = torch.from_numpy(x_np.copy())
    targets_np = np.asarray(targets_np, np.float32)
    targets_t = torch.from_numpy(targets_np.copy())
    R["num_targets"] = int(len(targets_np))

    args_pass = (ours, off, loss_j, loss_t, loss_j_atss, loss_t_atss, x_j, x_t, targets_np, targets_t)
    R["A_init"] = train_pass(*args_pass)
    # phase B: same small random prediction weights on both sides
    rng = np.random.RandomState(args.seed + 1)
    pj_all = dict(ours.named_parameters())
    sd_t = off.state_dict()
    upd = {}
    for k in sorted(pj_all):
        if (k.startswith("detect.cls_preds.") or k.startswith("detect.reg_preds.")) and k.endswith("weight"):
            w = (rng.standard_normal(tuple(pj_all[k].shape)) * 0.01).astype(np.float32)
            pj_all[k].update(jt.array(w))
            upd[k] = to_torch(w, sd_t[k])
    off.load_state_dict(upd, strict=False)
    R["B_random_preds"] = train_pass(*args_pass)
    if args.calibrate:
        R["calib"] = calibrate(off, loss_kw, x_t, targets_t, R["B_random_preds"]["_raw"])
    for ph in ("A_init", "B_random_preds"):
        R[ph].pop("_raw", None)

    # BN running statistics after the two training forwards (no re-sync in between)
    sd_j = {k: np32(v) for k, v in ours.state_dict().items()}
    rm, rv = [], []
    for k, t in off.state_dict().items():
        if k.endswith("running_mean") and k in sd_j:
            rm.append((k, diff(sd_j[k], t)["rel"]))
        elif k.endswith("running_var") and k in sd_j:
            rv.append((k, diff(sd_j[k], t)["rel"]))
    R["running_stats"] = {"mean_max_rel": max((r for _, r in rm), default=0.0),
                          "var_max_rel": max((r for _, r in rv), default=0.0),
                          "var_worst": max(rv, key=lambda r: r[1], default=("", 0))[0]}

    flagged = any(d["rel"] > args.tol for ph in ("A_init", "B_random_preds")
                  for d in (R[ph]["cls"], R[ph]["reg"], *R[ph]["neck"], *R[ph]["feats"]))
    if flagged or args.trace:
        R["trace_train"] = trace(ours, off, x_j, x_t, True, args.tol)

    # eval mode: re-sync weights + running stats, then unfused and fused
    sync_weights(ours, off)
    ours.eval()
    off.eval()
    with jt.no_grad():
        ev_j = np32(ours(x_j))
    with torch.no_grad():
        ev_t = off(x_t)
        ev_t = np32(ev_t[0] if isinstance(ev_t, (list, tuple)) and not torch.is_tensor(ev_t) else ev_t)
    R["eval"] = {"all": diff(ev_j, ev_t), "boxes": diff(ev_j[..., :4], ev_t[..., :4]),
                 "scores": diff(ev_j[..., 5:], ev_t[..., 5:])}
    if R["eval"]["all"]["rel"] > args.tol and "trace_train" not in R:
        R["trace_eval"] = trace(ours, off, x_j, x_t, False, args.tol)
        ours.eval()
        off.eval()
    gold_yolo.reparameterize(ours)
    ours.eval()
    OFF["switch_tool"].switch_to_deploy(off)
    off.eval()
    with jt.no_grad():
        dp_j = np32(ours(x_j))
    with torch.no_grad():
        dp_t = off(x_t)
        dp_t = np32(dp_t[0] if isinstance(dp_t, (list, tuple)) else dp_t)
    R["deploy"] = {"all": diff(dp_j, dp_t), "boxes": diff(dp_j[..., :4], dp_t[..., :4]),
                   "scores": diff(dp_j[..., 5:], dp_t[..., 5:]),
                   "ours_fused_vs_unfused": diff(dp_j, ev_j)["rel"],
                   "off_fused_vs_unfused": diff(dp_t, ev_t)["rel"]}
    R["seconds"] = time.time() - t0
    return R


# --------------------------------------------------------------------------- printing
def fmt(x):
    return "-" if x is None else (f"{x:.2e}" if isinstance(x, float) else str(x))


def print_report(R, tol, grad_tol):
    v = R["variant"]
    k = R["keys"]
    mode = ("DIAGNOSTIC: Jittor BatchNorm batch statistics patched to float64 two-pass + unbiased "
            "running var" if R["bn_f64"] else "port as is")
    print(f"\n=== gold_yolo_{v}  img {R['img_size']} batch {R['batch_size']}  targets {R['num_targets']}"
          f"  ({R['seconds']:.0f}s)  [{mode}]")
    print(f"state_dict: {k['copied']} tensors copied; official-only {len(k['official_only'])}, ours-only "
          f"{len(k['ours_only'])}, shape mismatches {len(k['shape_mismatch'])}, trainable-only-ours "
          f"{len(k['trainable_ours_only'])}, trainable-only-official {len(k['trainable_off_only'])} "
          f"(num_batches_tracked skipped: {k['num_batches_tracked']})")
    for lab in ("official_only", "ours_only", "shape_mismatch", "trainable_ours_only", "trainable_off_only"):
        for e in k[lab][:10]:
            print(f"  {lab}: {e}")
    bn = R["bn_settings"]
    print(f"BatchNorm eps/momentum: {bn['n']} modules, {len(bn['mismatch'])} mismatches")
    for e in bn["mismatch"][:10]:
        print(f"  {e}")
    hdr = f"{'quantity':34s} {'max_abs':>9s} {'rel':>9s} {'rel_elem':>9s}"
    for ph, title in (("A_init", "A: official init"), ("B_random_preds", "B: random pred weights")):
        P = R[ph]
        print(f"-- {title}")
        print(hdr)

        def row(label, d, t=tol):
            flag = " <<" if d["rel"] > t else ""
            print(f"{label:34s} {fmt(d['max_abs']):>9s} {fmt(d['rel']):>9s} {fmt(d['rel_elem']):>9s}{flag}"
                  + (f" shape {d['shape']}" if "shape" in d else "") + (" NONFINITE" if d.get("nonfinite") else ""))
        for i, d in enumerate(P["neck"]):
            row(f"neck out {i}", d)
        for i, d in enumerate(P["feats"]):
            row(f"head feats {i}", d)
        row("cls_scores", P["cls"])
        row("reg_distri", P["reg"])
        row(f"loss ({P['loss']['ours']:.6f} / {P['loss']['off']:.6f})", P["loss"])
        for nm, d, a, b in zip(("iou", "dfl", "cls"), P["items_diff"], P["items"]["ours"], P["items"]["off"]):
            row(f"  item {nm} ({a:.5f} / {b:.5f})", d)
        S = P["loss_same_in"]
        row(f"same-input loss", S["loss"])
        for nm, d, a, b in zip(("iou", "dfl", "cls"), S["items"], S["items_ours"], S["items_off"]):
            row(f"  same-input {nm} ({a:.5f} / {b:.5f})", d)
        row("  same-input dL/dcls_scores", S["grad_cls"])
        row("  same-input dL/dreg_distri", S["grad_reg"])
        print(f"  same-input positives ours/off {S['num_pos']}, target-score sum {S['tss'][0]:.5f}/{S['tss'][1]:.5f}")
        la = P["loss_atss"]
        row(f"loss ATSS ({la['ours']:.6f} / {la['off']:.6f})", la)
        a = P["assign"]
        print(f"assignment (TAL): positives ours {a['num_pos_ours']} off {a['num_pos_off']}; "
              f"target-score sum ours {a['tss_ours']:.5f} off {a['tss_off']:.5f}")
        g = P["grads"]
        flag = " <<" if g["max"] > grad_tol else ""
        print(f"grads: {g['n']} params, rel max {g['max']:.2e} median {g['median']:.2e} p90 {g['p90']:.2e}; "
              f"exactly zero: off {g['zero_off']} ours {g['zero_ours']}{flag}")
        for w in g["worst"]:
            print(f"   {w['name']:58s} rel {w['rel']:.2e}  |g_off| {w['norm_off']:.3e} |g_ours| {w['norm_ours']:.3e}")
        flag = " <<" if g["sig_max"] > grad_tol else ""
        print(f"grads without the {g['n_negligible']} negligible ones (|g_off| < 1e-6 max, float32 noise) and the "
              f"{g['zero_off']} exactly zero: {g['n_sig']} params, rel max {g['sig_max']:.2e} median "
              f"{g['sig_median']:.2e} p90 {g['sig_p90']:.2e}{flag}")
        for w in g["worst_sig"]:
            print(f"   {w['name']:58s} rel {w['rel']:.2e}  |g_off| {w['norm_off']:.3e} |g_ours| {w['norm_ours']:.3e}")
    if "calib" in R:
        C = R["calib"]
        print(f"float32 noise floor (phase B, vs the official model in float64): cls rel off32 {C['cls_off32']:.1e} "
              f"ours {C['cls_ours']:.1e}; reg rel off32 {C['reg_off32']:.1e} ours {C['reg_ours']:.1e}")
        for key, lab in (("grad_off32", "official f32"), ("grad_ours", "ours        ")):
            g = C[key]
            print(f"   grads {lab} vs f64: median {g['median']:.2e} p90 {g['p90']:.2e} max {g['max']:.2e} ({g['n']} params)")
    rs = R["running_stats"]
    print(f"BN running stats after 2 train forwards: mean rel {rs['mean_max_rel']:.2e}, var rel "
          f"{rs['var_max_rel']:.2e} (worst {rs['var_worst']})" + (" <<" if max(rs['mean_max_rel'], rs['var_max_rel']) > tol else ""))
    for key in ("trace_train", "trace_eval"):
        if key in R:
            T = R[key]
            print(f"trace ({key}): module outputs in official execution order, the first {len(T['diverging'])} "
                  f"beyond tol (of {T['compared']} compared until then; {T['n_unmatched']} official modules "
                  f"without a counterpart {T['unmatched'][:5]})")
            for f in T["diverging"]:
                print(f"   {f['module']} [{f['type']}] call {f['call']} "
                      + (f.get("note") or f"rel {f['rel']:.2e} max_abs {f['max_abs']:.2e}"))
    e, d = R["eval"], R["deploy"]
    print(hdr)
    for lab, dd in (("eval (unfused) all", e["all"]), ("eval boxes", e["boxes"]), ("eval scores", e["scores"]),
                    ("deploy (fused) all", d["all"]), ("deploy boxes", d["boxes"]), ("deploy scores", d["scores"])):
        flag = " <<" if dd["rel"] > tol else ""
        print(f"{lab:34s} {fmt(dd['max_abs']):>9s} {fmt(dd['rel']):>9s} {fmt(dd['rel_elem']):>9s}{flag}")
    print(f"fused vs unfused (self): ours {d['ours_fused_vs_unfused']:.2e}, official {d['off_fused_vs_unfused']:.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official", required=True, help="folder Detection/Gold-YOLO of the official sources")
    ap.add_argument("--variants", default="n,s")
    ap.add_argument("--img-size", type=int, default=320)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pythonpath", default="", help="extra folders (':'-separated) appended to sys.path "
                                                    "for the official model's dependencies (mmcv, addict)")
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--grad-tol", type=float, default=1e-2)
    ap.add_argument("--trace", action="store_true", help="always locate the first diverging module")
    ap.add_argument("--bn-diagnostic", choices=("auto", "always", "never"), default="auto",
                    help="repeat a variant with Jittor BatchNorm batch statistics computed like torch "
                         "(diagnostic patch inside this process only): auto = when the as-is run diverges "
                         "in training mode")
    ap.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                    help="skip the float32 noise-floor reference (official model in float64, phase B)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    torch.set_grad_enabled(True)
    import_official(args.official, [p for p in args.pythonpath.split(":") if p])
    results = []
    for v in [s.strip() for s in args.variants.split(",") if s.strip()]:
        args.bn_f64 = False
        R = run_variant(args, v)
        print_report(R, args.tol, args.grad_tol)
        sys.stdout.flush()
        results.append(R)
        bn_first = any(f.get("type", "").startswith("BatchNorm")
                       for f in R.get("trace_train", {}).get("diverging", [])[:1])
        if args.bn_diagnostic == "always" or (args.bn_diagnostic == "auto" and bn_first):
            args.bn_f64 = True
            R2 = run_variant(args, v)
            set_bn_f64_stats(False)
            print_report(R2, args.tol, args.grad_tol)
            sys.stdout.flush()
            results.append(R2)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
