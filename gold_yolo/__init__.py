"""Gold-YOLO in Jittor: a faithful port of the official detector with its real training loss.

Wang et al., "Gold-YOLO: Efficient Object Detector via Gather-and-Distribute Mechanism",
NeurIPS 2023.  Upstream: huawei-noah/Efficient-Computing, Detection/Gold-YOLO (built on
meituan/YOLOv6).

Public API::

    model = build_model("gold_yolo_s", num_classes=80)        # training mode
    loss_fn = build_loss("gold_yolo_s", num_classes=80)        # (outputs, targets, epoch, step)
    optimizer = build_optimizer(model, "gold_yolo_s", batch_size=2)
    images, targets = synthetic_batch(img_size=320, batch_size=2, seed=0)
    loss, loss_items = loss_fn(model(images), targets, 0, 0)   # loss_items: [iou, dfl, cls]
    optimizer.step(loss)
    reparameterize(model)                                      # fuse RepVGG branches for deploy

The one Jittor bootstrap of the port lives here: every submodule that uses Jittor takes it as
``from gold_yolo import jt``, which sets up the runtime (:mod:`gradcheck.runtime`: device,
oneDNN, quiet logs) and then imports Jittor, once.  Importing the package itself, or a part
without Jittor (:mod:`gold_yolo.configs`, :mod:`gold_yolo.registry`), does neither; the public
names above are loaded on first use.
"""

__all__ = [
    "CONFIG_NAMES",
    "get_config",
    "build_model",
    "build_loss",
    "build_optimizer",
    "reparameterize",
    "synthetic_batch",
    "load_batch",
    "YoloDataset",
    "DatasetError",
    "ComputeLoss",
    "LossOutput",
    "GoldYOLO",
]

_LAZY = {
    "CONFIG_NAMES": "configs",
    "get_config": "configs",
    "DatasetError": "data",
    "YoloDataset": "data",
    "load_batch": "data",
    "synthetic_batch": "data",
    "ComputeLoss": "loss",
    "LossOutput": "loss",
    "build_loss": "loss",
    "GoldYOLO": "model",
    "build_model": "model",
    "build_optimizer": "optim",
    "reparameterize": "reparam",
}


def _jittor():
    """Set up the Jittor runtime (the runtime set-up only, nothing else of gradcheck), then
    import Jittor with the chosen device."""
    from gradcheck.runtime import ensure_jittor

    return ensure_jittor()


def __getattr__(name):  # PEP 562: lazy, so `import gold_yolo.configs` does not start Jittor
    import importlib

    if name == "jt":
        value = _jittor()
    elif name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
