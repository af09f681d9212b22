"""Data for the Gold-YOLO port: a deterministic synthetic batch and a small YOLO-format reader.

Gold-YOLO: Wang et al., NeurIPS 2023.  The reader follows the evaluation path (no
augmentation) of ``yolov6/data/datasets.py`` (``TrainValDataset.load_image`` +
``__getitem__``) and ``yolov6/data/data_augment.py`` (``letterbox``) of
huawei-noah/Efficient-Computing, Detection/Gold-YOLO:

* the image is resized so its long side is ``img_size`` (area filter when shrinking,
  bilinear when enlarging; PIL's BOX/BILINEAR stand in for cv2's INTER_AREA/INTER_LINEAR),
* then centred on a ``img_size x img_size`` canvas of colour (114, 114, 114),
* boxes are moved with the same scale and padding, clipped to the canvas, and returned
  normalised to it.

Label files: ``root/labels/<stem>.txt``, one ``class xc yc w h`` line per box, normalised
to 0..1 (YOLO format).  A missing or empty label file means an image without boxes (as
upstream); duplicate lines are dropped (as upstream).  Anything malformed raises
:class:`DatasetError` with ``file:line``.

Batch format everywhere: ``images`` jt.Var (b, 3, H, W) float32 RGB in 0..1 and
``targets`` numpy float32 (n, 6) ``[image_index, class, xc, yc, w, h]`` normalised, the
format ``ComputeLoss`` takes (upstream's collate_fn output).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import jt  # the package sets up the Jittor runtime first

__all__ = [
    "DatasetError",
    "synthetic_batch",
    "synthetic_targets",
    "YoloDataset",
    "load_batch",
    "letterbox",
    "parse_label_file",
    "IMG_EXTS",
    "PAD_COLOR",
]

IMG_EXTS = (".jpg", ".jpeg", ".png")
PAD_COLOR = (114, 114, 114)
_STRIDES = (8, 16, 32)


class DatasetError(ValueError):
    """A dataset folder, image or label line that cannot be used (message names file:line)."""


# ------------------------------------------------------------------ synthetic batch
def synthetic_targets(
    img_size: int, batch_size: int, seed: int = 0, num_classes: int = 80
) -> np.ndarray:
    """Deterministic targets (n, 6) ``[img, cls, xc, yc, w, h]`` for square ``img_size`` images.

    Every image gets, for each stride s in (8, 16, 32):

    * a box of side about 5*s (the ATSS anchor size of that level, x0.8..1.25, aspect
      0.7..1.4, clipped to the image), which gives ATSS positives on level s;
    * a small box (about 5-7 px) centred near one anchor centre of level s that contains
      no anchor centre of the other levels, so TAL's candidates for it are on level s only;

    plus one large box (0.85-0.95 of the image side) and 0-2 boxes of random size.  The large
    box matters for TAL with DFL: at initialisation every anchor predicts a box 16 strides
    wide (uniform bins, expectation 8 strides per side), so only a box near or above 16*32 px
    makes the stride-32 level win the alignment metric; without one, the stride-32
    regression branch gets a gradient around 1e-22 and its convolutions stay at exactly zero
    for many steps.  So every stride gets positives under both assigners
    for ``img_size`` from 160 to 640 (multiples of 32) whenever the predicted boxes contain
    their anchor points (always true with DFL; true for the n head at initialisation).
    """
    if img_size % 32 or img_size < 64:
        raise ValueError(f"img_size must be a multiple of 32 and >= 64, got {img_size}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rng = np.random.RandomState(seed)
    rows: list[list[float]] = []
    S = float(img_size)
    for i in range(batch_size):
        boxes = []  # pixels: xc, yc, w, h
        for s in _STRIDES:
            side = 5.0 * s * rng.uniform(0.8, 1.25)
            ar = rng.uniform(0.7, 1.4)
            w, h = min(side * math.sqrt(ar), S), min(side / math.sqrt(ar), S)
            xc, yc = rng.uniform(w / 2, S - w / 2), rng.uniform(h / 2, S - h / 2)
            boxes.append((xc, yc, w, h))
        for s in _STRIDES:
            n = img_size // s
            cx, cy = (rng.randint(n) + 0.5) * s, (rng.randint(n) + 0.5) * s
            half = rng.uniform(2.5, 3.0, size=2)  # < 4 px: other levels' centres stay outside
            jx, jy = rng.uniform(-0.9, 0.9, size=2) * (3.9 - half)
            boxes.append((cx + jx, cy + jy, 2 * half[0], 2 * half[1]))
        big = rng.uniform(0.85, 0.95, size=2) * S
        boxes.append(
            (
                S / 2 + rng.uniform(-0.02, 0.02) * S,
                S / 2 + rng.uniform(-0.02, 0.02) * S,
                big[0],
                big[1],
            )
        )
        for _ in range(rng.randint(0, 3)):
            w, h = rng.uniform(0.05, 0.6, size=2) * S
            xc, yc = rng.uniform(w / 2, S - w / 2), rng.uniform(h / 2, S - h / 2)
            boxes.append((xc, yc, w, h))
        for xc, yc, w, h in boxes:
            rows.append([i, rng.randint(num_classes), xc / S, yc / S, w / S, h / S])
    t = np.asarray(rows, np.float32)
    t[:, 2:] = np.clip(t[:, 2:], 0.0, 1.0)
    return t


def synthetic_batch(img_size: int = 320, batch_size: int = 2, seed: int = 0, num_classes: int = 80):
    """Deterministic ``(images jt.Var (b, 3, H, W) float32 0..1, targets numpy (n, 6))``.

    Images are low-amplitude noise on grey with each box filled by a class colour, all from
    ``numpy.random.RandomState(seed)`` (never the clock).  See :func:`synthetic_targets`.
    """
    targets = synthetic_targets(img_size, batch_size, seed, num_classes)
    rng = np.random.RandomState(seed + 7919)
    imgs = (0.45 + 0.1 * rng.rand(batch_size, 3, img_size, img_size)).astype(np.float32)
    palette = np.random.RandomState(12345).uniform(0.0, 1.0, (num_classes, 3)).astype(np.float32)
    for img_i, cls, xc, yc, w, h in targets:  # a handful of boxes: fine to loop
        x1, x2 = int(round((xc - w / 2) * img_size)), int(round((xc + w / 2) * img_size))
        y1, y2 = int(round((yc - h / 2) * img_size)), int(round((yc + h / 2) * img_size))
        imgs[int(img_i), :, max(y1, 0) : y2, max(x1, 0) : x2] = palette[int(cls)][:, None, None]
    return jt.array(imgs), targets


# ------------------------------------------------------------------ letterbox
def letterbox(img, img_size: int):
    """PIL RGB image -> (uint8 array (S, S, 3), ratio, (pad_w, pad_h)) as upstream's eval path.

    ``ratio`` maps original pixels to canvas pixels, ``pad`` is the (float) left/top offset
    used for boxes (upstream's ``(dw, dh)``); the pixel border is ``round(d -/+ 0.1)``.
    """
    from PIL import Image

    w0, h0 = img.size
    r = img_size / max(h0, w0)
    if r != 1:  # upstream load_image: int() truncation, INTER_AREA down / INTER_LINEAR up
        new_w, new_h = max(int(w0 * r), 1), max(int(h0 * r), 1)
        img = img.resize((new_w, new_h), Image.BOX if r < 1 else Image.BILINEAR)
    w, h = img.size
    # letterbox(auto=False, scaleup=False): no further scaling as w, h <= img_size
    dw, dh = (img_size - w) / 2, (img_size - h) / 2
    top, left = int(round(dh - 0.1)), int(round(dw - 0.1))
    canvas = np.empty((img_size, img_size, 3), np.uint8)
    canvas[...] = PAD_COLOR
    canvas[top : top + h, left : left + w] = np.asarray(img, np.uint8)
    return canvas, (w / w0, h / h0), (dw, dh)


# ------------------------------------------------------------------ labels
def parse_label_file(path) -> np.ndarray:
    """Read a YOLO label file -> float32 (k, 5) ``[cls, xc, yc, w, h]``; DatasetError on bad
    lines."""
    path = Path(path)
    if not path.exists():
        return np.zeros((0, 5), np.float32)
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            where = f"{path}:{lineno}"
            if len(parts) != 5:
                raise DatasetError(
                    f"{where}: expected 5 columns 'class xc yc w h', got {len(parts)}"
                )
            try:
                vals = [float(p) for p in parts]
            except ValueError:
                raise DatasetError(f"{where}: not a number in {line.strip()!r}") from None
            if not all(math.isfinite(v) for v in vals):
                raise DatasetError(f"{where}: non-finite value in {line.strip()!r}")
            cls = vals[0]
            if cls < 0 or cls != int(cls):
                raise DatasetError(
                    f"{where}: class must be a non-negative integer, got {parts[0]!r}"
                )
            if any(v < 0 or v > 1 for v in vals[1:]):
                raise DatasetError(
                    f"{where}: coordinates must be normalised to 0..1, got {' '.join(parts[1:])}"
                )
            rows.append(vals)
    if not rows:
        return np.zeros((0, 5), np.float32)
    labels = np.asarray(rows, np.float32)
    _, idx = np.unique(labels, axis=0, return_index=True)
    if len(idx) < len(labels):  # upstream drops duplicate rows (keeping np.unique's order)
        labels = labels[idx]
    return labels


# ------------------------------------------------------------------ dataset
class YoloDataset:
    """YOLO-format folder ``root/images/*.{jpg,jpeg,png}`` + ``root/labels/<stem>.txt``.

    ``ds[i]`` -> ``(image float32 (3, S, S) RGB 0..1, labels float32 (k, 5) [cls, xc, yc, w, h]
    normalised to the letterboxed canvas, image path)``.  Labels are read and checked
    eagerly at construction, so a bad line fails fast.
    """

    def __init__(self, root, img_size: int = 640):
        self.root = Path(root)
        self.img_size = int(img_size)
        if self.img_size <= 0:
            raise DatasetError(f"img_size must be positive, got {img_size}")
        img_dir = self.root / "images"
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: dataset folder does not exist")
        if not img_dir.is_dir():
            raise DatasetError(f"{img_dir}: images folder does not exist")
        self.img_paths = sorted(
            p for p in img_dir.iterdir() if p.is_file() and p.suffix.lower() in IMG_EXTS
        )
        if not self.img_paths:
            raise DatasetError(f"{img_dir}: no images ({', '.join(IMG_EXTS)})")
        self.label_dir = self.root / "labels"
        self.labels = [parse_label_file(self.label_dir / (p.stem + ".txt")) for p in self.img_paths]

    def __len__(self) -> int:
        return len(self.img_paths)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        from PIL import Image, UnidentifiedImageError

        path = self.img_paths[index]
        try:
            with Image.open(path) as im:
                img = im.convert("RGB")
        except (OSError, UnidentifiedImageError) as e:
            raise DatasetError(f"{path}: cannot read image ({e})") from None
        w0, h0 = img.size
        canvas, (rw, rh), (dw, dh) = letterbox(img, self.img_size)
        labels = self.labels[index].copy()
        if len(labels):
            S = float(self.img_size)
            w, h = w0 * rw, h0 * rh  # resized image size on the canvas
            xc, yc, bw, bh = labels[:, 1], labels[:, 2], labels[:, 3], labels[:, 4]
            x1 = np.clip(w * (xc - bw / 2) + dw, 0, S - 1e-3)
            y1 = np.clip(h * (yc - bh / 2) + dh, 0, S - 1e-3)
            x2 = np.clip(w * (xc + bw / 2) + dw, 0, S - 1e-3)
            y2 = np.clip(h * (yc + bh / 2) + dh, 0, S - 1e-3)
            labels[:, 1:] = np.stack(
                [(x1 + x2) / 2 / S, (y1 + y2) / 2 / S, (x2 - x1) / S, (y2 - y1) / S], 1
            )
        image = canvas.transpose(2, 0, 1).astype(np.float32) / 255.0
        return np.ascontiguousarray(image), labels.astype(np.float32), str(path)

    def batch(self, indices) -> tuple[jt.Var, np.ndarray]:
        """Collate items -> ``(images jt.Var (b, 3, S, S), targets (n, 6))`` (upstream
        collate_fn)."""
        images, targets = [], []
        for i, idx in enumerate(indices):
            img, labels, _ = self[idx]
            images.append(img)
            targets.append(np.concatenate([np.full((len(labels), 1), i, np.float32), labels], 1))
        return (
            jt.array(np.stack(images)),
            np.concatenate(targets, 0).reshape(-1, 6).astype(np.float32),
        )


def load_batch(root, img_size: int = 640, batch_size: int = 2, start: int = 0):
    """Images ``start .. start+batch_size-1`` of ``YoloDataset(root, img_size)`` (wrapping
    around the end) -> ``(images jt.Var (b, 3, S, S) float32 0..1, targets numpy (n, 6))``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ds = YoloDataset(root, img_size)
    return ds.batch([(start + i) % len(ds) for i in range(batch_size)])
