"""Gold-YOLO in Jittor: a faithful port of the official detector with its real training loss.

Wang et al., "Gold-YOLO: Efficient Object Detector via Gather-and-Distribute Mechanism",
NeurIPS 2023.  Upstream: huawei-noah/Efficient-Computing, Detection/Gold-YOLO (built on
meituan/YOLOv6).
"""

from gradcheck import runtime as _runtime

_runtime.setup()
_runtime.import_jittor()
