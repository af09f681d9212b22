"""Building blocks of the Jittor Gold-YOLO port (one idea per file).

Wang et al., "Gold-YOLO: Efficient Object Detector via Gather-and-Distribute Mechanism",
NeurIPS 2023.  Upstream: ``yolov6/layers/common.py`` (-> ``common``), ``gold_yolo/
transformer.py`` + ``gold_yolo/layers.py`` (-> ``transformer``), ``gold_yolo/common.py``
(-> ``gd``); ``ops`` holds torch-exact resampling.
"""

from .common import *  # noqa: F403
from .gd import *  # noqa: F403
from .ops import adaptive_avg_pool2d, interpolate_bilinear  # noqa: F401
from .transformer import *  # noqa: F403
