"""Parity of the Jittor Gold-YOLO port (``gold_yolo``) with the official PyTorch model,
measured by ``gradcheck align`` (:mod:`gradcheck.parity.align`); this script only builds the two
workloads and prints a table::

    python3 bench/parity_official.py --official /work/ext/official/Detection/Gold-YOLO \\
        --pythonpath /work/ext/offdeps [--variants n,s] [--img-size 320] [--batch-size 2] \\
        [--steps 1] [--seed 0] [--json out/parity.json]

or, through the command line, with the official folder in ``GOLD_YOLO_OFFICIAL`` (and its
dependencies' folder in ``GOLD_YOLO_OFFDEPS``; ``GOLD_YOLO_IMG_SIZE``, ``GOLD_YOLO_BATCH_SIZE``,
``GOLD_YOLO_SEED`` and ``GOLD_YOLO_PRED_STD`` -- 0: upstream's initialisation -- too)::

    GOLD_YOLO_OFFICIAL=/work/ext/official/Detection/Gold-YOLO GOLD_YOLO_OFFDEPS=/work/ext/offdeps \\
        gradcheck align --port bench/parity_official.py:port_s \\
                        --original bench/parity_official.py:official_s --output out/align_s.json
    gradcheck run --model bench/parity_official.py:official_s --output out/official_s.json

No official code is part of this repository: the official sources (huawei-noah/
Efficient-Computing, ``Detection/Gold-YOLO``: packages ``yolov6`` and ``gold_yolo``,
``configs/gold_yolo-{n,s,m,l}.py``) are imported at run time from the given folder, put
first on ``sys.path`` while they are imported.  They need, besides torch: ``addict``,
``mmcv`` (mmcv-lite 2.x), ``mmengine`` and ``opencv-python-headless``, e.g. ``pip install
--target /tmp/offdeps mmcv-lite mmengine-lite addict opencv-python-headless yapf termcolor``
(appended to ``sys.path``, never shadowing this environment's packages).  Both sides have a
top-level package ``gold_yolo``; ours is imported first, the official one with ours taken out
of ``sys.modules`` and put back after.

The two workloads, float32 on CPU, are built to be comparable: official SyncBN layers become
BatchNorm2d (official ``gold_yolo.switch_tool._convert_batchnorm``), the neck drop-path rate
is 0 on both sides, the official loss is ``ComputeLoss`` built as ``yolov6/core/engine.py``
does (``ori_img_size=img_size``, TAL from epoch 0), the optimizers are both upstream's SGD
groups with the engine's batch-size scaling, and the batch is ``gold_yolo.synthetic_batch``.
The prediction convolutions get the same small random weights (N(0, 0.01); upstream starts
them at exactly zero, where nearly every gradient is exactly zero and the assigner's top-k
ties make the positives differ by about 1%).  ``align`` copies the official weights into
ours, so both start equal.

Beyond ``align``, the script checks eval mode (unfused) and the fused deploy model
(ours ``reparameterize`` vs the official ``switch_to_deploy``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import gold_yolo  # noqa: E402
import gold_yolo.optim  # noqa: E402  (not imported by the package itself)
import gradcheck  # noqa: E402
from gradcheck import runtime  # noqa: E402
from gradcheck.parity import align as align_mod, torchenv  # noqa: E402
from gradcheck.parity.alignment import Tolerances  # noqa: E402
from gradcheck.parity.judge import rel_scale  # noqa: E402

jt = runtime.import_jittor()
torch = torchenv.import_torch()  # after Jittor, with its forking compile pool off

OFF: dict = {}  # official modules, filled by import_official()
PRED_STD = 0.01


# --------------------------------------------------------------------------- official import
def import_official(path: str, extra_paths=()) -> None:
    if OFF:
        return
    if not (Path(path) / "yolov6").is_dir():
        raise gradcheck.workload.WorkloadError(
            f"{path} is not the official Detection/Gold-YOLO folder (no yolov6/ in it)"
        )
    for p in extra_paths:
        if p and p not in sys.path:
            sys.path.append(p)
    ours = {
        k: sys.modules.pop(k)
        for k in list(sys.modules)
        if k == "gold_yolo" or k.startswith("gold_yolo.")
    }
    sys.path.insert(0, path)
    try:
        # The official checkout's modules, in the order they were written (their import side
        # effects are not ours to reorder).
        # isort: off
        import yolov6.models.yolo as yolo
        import yolov6.models.losses.loss as loss
        import yolov6.solver.build as solver
        import yolov6.utils.config as config
        import gold_yolo.switch_tool as switch_tool  # the official gold_yolo package

        # isort: on
        OFF.update(
            yolo=yolo, loss=loss, config=config, solver=solver, switch_tool=switch_tool, path=path
        )
        for k in [k for k in sys.modules if k == "gold_yolo" or k.startswith("gold_yolo.")]:
            OFF["mod:" + k] = sys.modules.pop(k)
    finally:
        sys.path.remove(path)
        sys.modules.update(ours)
    assert sys.modules["gold_yolo"] is gold_yolo


def _settings():
    return {
        "img_size": int(os.environ.get("GOLD_YOLO_IMG_SIZE", 320)),
        "pred_std": float(os.environ.get("GOLD_YOLO_PRED_STD", PRED_STD)),
        "batch_size": int(os.environ.get("GOLD_YOLO_BATCH_SIZE", 2)),
        "seed": int(os.environ.get("GOLD_YOLO_SEED", 0)),
    }


def _env_import():
    path = os.environ.get("GOLD_YOLO_OFFICIAL")
    if not path:
        raise gradcheck.workload.WorkloadError(
            "set GOLD_YOLO_OFFICIAL to the official Detection/Gold-YOLO folder"
        )
    import_official(path, [p for p in os.environ.get("GOLD_YOLO_OFFDEPS", "").split(":") if p])


# --------------------------------------------------------------------------- the workloads
def build_official(official: str, variant: str, img_size: int):
    """The official config, model (SyncBN -> BatchNorm2d, drop-path 0, as trained on one CPU)
    and ComputeLoss keyword arguments, from the imported official code (see import_official)."""
    cfg = OFF["config"].Config.fromfile(str(Path(official) / "configs" / f"gold_yolo-{variant}.py"))
    if not hasattr(cfg, "training_mode"):  # tools/train.py default
        cfg.training_mode = "repvgg"
    cfg.model.neck.extra_cfg.drop_path_rate = 0.0
    model = OFF["yolo"].build_model(cfg, 80, "cpu")
    model = OFF["switch_tool"]._convert_batchnorm(model)
    head = cfg.model.head
    loss_kw = dict(
        num_classes=80,
        ori_img_size=img_size,
        warmup_epoch=head.atss_warmup_epoch,
        use_dfl=head.use_dfl,
        reg_max=head.reg_max,
        iou_type=head.iou_type,
        fpn_strides=head.strides,
    )
    return cfg, model, loss_kw


def sync_weights(ours, off) -> int:
    """Copy our parameters and buffers into the official model by name (the same weights on
    both sides, so both assign the same positives); returns how many tensors were copied."""
    state = {k: np.asarray(v.numpy()) for k, v in ours.state_dict().items()}
    new = {
        k: torch.from_numpy(state[k].astype(np.float32)).to(v.dtype)
        for k, v in off.state_dict().items()
        if k in state and tuple(state[k].shape) == tuple(v.shape)
    }
    off.load_state_dict(new, strict=False)
    return len(new)


def official_workload(
    variant: str,
    img_size: int = 320,
    batch_size: int = 2,
    seed: int = 0,
    pred_std: float = PRED_STD,
):
    """The official model, loss and optimizer as a torch :class:`gradcheck.Workload`;
    ``pred_std`` 0 keeps upstream's zero-initialised prediction convolutions."""
    torch.manual_seed(seed)  # the official random initialisation, the same every run
    cfg, model, loss_kw = build_official(OFF["path"], variant, img_size)
    model = model.float().train()
    rng = np.random.RandomState(seed + 1)
    with torch.no_grad():
        for k, p in sorted(model.named_parameters()) if pred_std else ():
            if k.startswith(("detect.cls_preds.", "detect.reg_preds.")) and k.endswith("weight"):
                p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape)) * pred_std))
    hp = gold_yolo.optim.solver_hparams(gold_yolo.get_config(f"gold_yolo_{variant}"), batch_size)
    cfg.solver.lr0, cfg.solver.weight_decay = hp["lr0"], hp["weight_decay"]
    optimizer = OFF["solver"].build_optimizer(cfg, model)
    per_dtype: dict = {}  # align reruns the original in float64: a loss built for it

    def loss(model, batch):
        imgs, targets = batch
        dtype = torch.get_default_dtype()
        fn = per_dtype.get(dtype) or per_dtype.setdefault(dtype, OFF["loss"].ComputeLoss(**loss_kw))
        parts = {}
        bbox = fn.bbox_loss.forward

        def capture(*a, **k):  # the iou and dfl terms, still attached to the graph
            parts["iou"], parts["dfl"] = bbox(*a, **k)
            return parts["iou"], parts["dfl"]

        fn.bbox_loss.forward = capture
        try:
            outputs, _ = model(imgs)
            total, _ = fn(outputs, targets, 0, 0)
        finally:
            fn.bbox_loss.forward = bbox
        w = fn.loss_weight
        iou, dfl = w["iou"] * parts["iou"], w["dfl"] * parts["dfl"]
        return total, {"iou": iou, "dfl": dfl, "cls": total - iou - dfl}

    images, targets = gold_yolo.synthetic_batch(img_size, batch_size, seed)
    batch = (
        torch.from_numpy(images.numpy().copy()),
        torch.from_numpy(np.asarray(targets, np.float32)),
    )
    frozen = {
        "detect.proj": "fixed DFL projection, not trained, as upstream",
        "detect.proj_conv.weight": "fixed DFL projection, not trained, as upstream",
    }
    return gradcheck.Workload(
        model,
        batch,
        loss,
        optimizer=optimizer,
        frozen=frozen,
        name=f"official_gold_yolo_{variant}",
        info={"img_size": img_size, "batch_size": batch_size, "data": "synthetic"},
    )


def port_workload(variant: str, img_size: int = 320, batch_size: int = 2, seed: int = 0):
    """Our ``gold_yolo`` as the bundled workload, with the official run's settings."""
    from gradcheck import bundled

    wl = bundled.build(f"gold_yolo_{variant}", img_size=img_size, batch_size=batch_size, seed=seed)
    wl.model.set_drop_path(0)
    loss_fn = gold_yolo.build_loss(f"gold_yolo_{variant}", ori_img_size=img_size)

    def loss(model, batch):
        imgs, tgts = batch
        out = loss_fn.compute(model(imgs), tgts, epoch_num=0, step_num=0)
        return out.total, out.terms, out.stats

    wl.loss = loss
    images, targets = wl.batch_for(1)  # the bundled batch is a function of the step
    wl.batch = (images, np.asarray(targets, np.float32))
    return wl


def _factory(kind: str, variant: str):
    def make():
        if kind == "official":
            _env_import()
            return official_workload(variant, **_settings())
        kw = _settings()
        kw.pop("pred_std")
        return port_workload(variant, **kw)

    make.__name__ = f"{kind}_{variant}"
    return make


for _v in "nsml":
    globals()[f"official_{_v}"] = _factory("official", _v)
    globals()[f"port_{_v}"] = _factory("port", _v)


# --------------------------------------------------------------------------- eval / deploy
def eval_and_deploy(port_model, off_model, images) -> dict:
    """Eval-mode and fused-deploy outputs (scale-relative differences)."""
    sd = {k: v.detach().numpy() for k, v in off_model.state_dict().items()}
    port_model.load_parameters(
        {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    )
    x_j, x_t = jt.array(images), torch.from_numpy(images.copy())
    port_model.eval()
    off_model.eval()
    with jt.no_grad():
        ev_j = port_model(x_j).numpy()
    with torch.no_grad():
        ev_t = off_model(x_t)
        ev_t = (ev_t[0] if isinstance(ev_t, (list, tuple)) else ev_t).numpy()
    gold_yolo.reparameterize(port_model)
    port_model.eval()
    OFF["switch_tool"].switch_to_deploy(off_model)
    off_model.eval()
    with jt.no_grad():
        dp_j = port_model(x_j).numpy()
    with torch.no_grad():
        dp_t = off_model(x_t)
        dp_t = (dp_t[0] if isinstance(dp_t, (list, tuple)) else dp_t).numpy()
    return {"eval": rel_scale(ev_j, ev_t), "deploy": rel_scale(dp_j, dp_t)}


def main() -> None:
    from gradcheck.policy import load_config
    from gradcheck.render import get_renderer

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--official", required=True, help="folder Detection/Gold-YOLO of the official sources"
    )
    ap.add_argument(
        "--pythonpath",
        default="",
        help="extra folders (':'-separated) appended to sys.path for the official "
        "model's dependencies",
    )
    ap.add_argument("--variants", default="n,s")
    ap.add_argument("--img-size", type=int, default=320)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--no-deploy",
        dest="deploy",
        action="store_false",
        help="skip the eval / fused-deploy comparison",
    )
    ap.add_argument(
        "--float64",
        choices=("auto", "always", "never"),
        default=None,
        help="rerun the port in float64 (align --float64; default: the config's)",
    )
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    import_official(args.official, [p for p in args.pythonpath.split(":") if p])
    tol = Tolerances.from_policy(
        load_config(None).policy.with_overrides(align_float64=args.float64)
    )
    rows, results = [], []
    for v in [s.strip() for s in args.variants.split(",") if s.strip()]:
        t0 = time.time()
        runtime.seed_everything(args.seed)
        kw = dict(img_size=args.img_size, batch_size=args.batch_size, seed=args.seed)
        port, off = port_workload(v, **kw), official_workload(v, **kw)
        images = off.batch[0].numpy().copy()
        res = align_mod.align(port, off, steps=args.steps, tolerances=tol, seed=args.seed)
        get_renderer("table").align(res, sys.stdout)
        d = res.to_dict()
        if args.deploy:
            d["eval_deploy"] = eval_and_deploy(port.model, off.model, images)
        s = d["summary"]
        out = {m.original_module: m for m in res.modules}
        rows.append(
            (
                v,
                res.verdict.result,
                res.keys.copied,
                out["detect"].rel if "detect" in out else None,
                res.loss.rel,
                s["grad_rel_median"],
                s["noise_floor_median"],
                s["grad_not_ok"],
                s["params"],
                s["explained_by_float64"],
                _largest_f64_rel(res.params),
                d.get("eval_deploy", {}).get("eval"),
                d.get("eval_deploy", {}).get("deploy"),
                time.time() - t0,
            )
        )
        results.append(d)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    print(
        "\n| variant | verdict | tensors copied | head outputs | loss | gradients, median "
        "(official f32 vs f64) | gradients beyond tolerance | of them explained in float64 "
        "| float64 rerun: largest gradient rel | eval / fused deploy | seconds |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for v, verdict, n, head, loss, gmed, floor, bad, np_, expl, f64, ev, dp, sec in rows:
        f = _fmt
        print(
            f"| {v} | {verdict} | {n} | {f(head)} | {f(loss)} | {f(gmed)} ({f(floor)}) | "
            f"{bad + expl}/{np_} | {expl} | {f(f64)} | {f(ev)} / {f(dp)} | {sec:.0f} |"
        )


def _largest_f64_rel(params):
    """The largest float64-rerun gradient difference, over gradients not ~0 (a gradient that
    is zero in exact arithmetic has no meaningful relative difference)."""
    gmax = max((p.grad_norm or 0.0 for p in params), default=0.0)
    rels = [
        p.grad_rel_f64
        for p in params
        if p.grad_rel_f64 is not None and (p.grad_norm or 0.0) > 1e-9 * gmax
    ]
    return max(rels, default=None)


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.1e}"


if __name__ == "__main__":
    main()
