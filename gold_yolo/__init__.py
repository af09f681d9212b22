"""Gold-YOLO in Jittor: a faithful port of the official detector with its real training loss.

Wang et al., "Gold-YOLO: Efficient Object Detector via Gather-and-Distribute Mechanism",
NeurIPS 2023.  Upstream: huawei-noah/Efficient-Computing, Detection/Gold-YOLO (built on
meituan/YOLOv6).  Importing this package sets up the Jittor runtime first
(:mod:`gradcheck.runtime`: device, oneDNN, quiet logs).

Public API::

    model = build_model("gold_yolo_s", num_classes=80)        # training mode
    loss_fn = build_loss("gold_yolo_s", num_classes=80)        # (outputs, targets, epoch, step)
    optimizer = build_optimizer(model, "gold_yolo_s", batch_size=2)
    images, targets = synthetic_batch(img_size=320, batch_size=2, seed=0)
    loss, loss_items = loss_fn(model(images), targets, 0, 0)   # loss_items: [iou, dfl, cls]
    optimizer.step(loss)
    reparameterize(model)                                      # fuse RepVGG branches for deploy
"""

from gradcheck import runtime as _runtime

_runtime.setup()
_runtime.import_jittor()

from gold_yolo.configs import CONFIG_NAMES, get_config  # noqa: E402
from gold_yolo.data import DatasetError, YoloDataset, load_batch, synthetic_batch  # noqa: E402
from gold_yolo.loss import ComputeLoss, LossOutput, build_loss  # noqa: E402
from gold_yolo.model import GoldYOLO, build_model  # noqa: E402
from gold_yolo.optim import build_optimizer  # noqa: E402
from gold_yolo.reparam import reparameterize  # noqa: E402

__all__ = ["CONFIG_NAMES", "get_config", "build_model", "build_loss", "build_optimizer",
           "reparameterize", "synthetic_batch", "load_batch", "YoloDataset", "DatasetError",
           "ComputeLoss", "LossOutput", "GoldYOLO"]
