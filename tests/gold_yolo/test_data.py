"""Tests of the Gold-YOLO data helpers: synthetic batch and the YOLO-format reader.

Upstream: ``yolov6/data/datasets.py`` and ``yolov6/data/data_augment.py`` (letterbox) of
huawei-noah/Efficient-Computing, Detection/Gold-YOLO.  Datasets are written by the tests
into ``tmp_path`` with PIL.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gradcheck import runtime

jt = runtime.import_jittor()

from gold_yolo.data import DatasetError, YoloDataset, load_batch, synthetic_batch, synthetic_targets  # noqa: E402


# ---------------------------------------------------------------- synthetic
def test_synthetic_batch_is_deterministic_and_well_formed():
    imgs, t = synthetic_batch(224, 3, seed=7)
    imgs2, t2 = synthetic_batch(224, 3, seed=7)
    _, t3 = synthetic_batch(224, 3, seed=8)
    assert isinstance(imgs, jt.Var) and tuple(imgs.shape) == (3, 3, 224, 224)
    assert imgs.dtype == "float32"
    a = imgs.numpy()
    assert a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, imgs2.numpy())
    np.testing.assert_array_equal(t, t2)
    assert t.shape != t3.shape or not np.array_equal(t, t3)
    assert isinstance(t, np.ndarray) and t.dtype == np.float32 and t.shape[1] == 6
    assert set(t[:, 0].astype(int)) == {0, 1, 2}  # every image has boxes
    assert (t[:, 2:] >= 0).all() and (t[:, 2:] <= 1).all() and (t[:, 4:] > 0).all()
    assert (t[:, 1] == t[:, 1].astype(int)).all() and t[:, 1].max() < 80
    # several sizes: smallest below one stride-8 cell, largest around 5 x 32 px
    side = np.sqrt(t[:, 4] * t[:, 5]) * 224
    assert side.min() < 8 and side.max() > 100


def test_synthetic_targets_respect_num_classes_and_bad_sizes():
    t = synthetic_targets(160, 2, 0, num_classes=3)
    assert t[:, 1].max() <= 2
    with pytest.raises(ValueError):
        synthetic_targets(150, 2, 0)
    with pytest.raises(ValueError):
        synthetic_targets(160, 0, 0)


# ---------------------------------------------------------------- dataset
def _write_dataset(root, images, labels):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for name, (w, h, color) in images.items():
        Image.new("RGB", (w, h), color).save(root / "images" / name)
    for stem, text in labels.items():
        (root / "labels" / f"{stem}.txt").write_text(text)
    return root


def test_letterbox_and_box_adjustment(tmp_path):
    root = _write_dataset(
        tmp_path / "ds",
        {"a.png": (200, 100, (255, 0, 0)), "b.jpg": (50, 100, (0, 0, 255))},
        {"a": "3 0.5 0.5 0.5 0.5\n", "b": "1 0.5 0.25 1.0 0.5\n0 0.5 0.5 0.2 0.2\n"},
    )
    ds = YoloDataset(root, 64)
    assert len(ds) == 2
    img, lab, path = ds[0]
    assert path.endswith("a.png") and img.shape == (3, 64, 64) and img.dtype == np.float32
    # 200x100 -> 64x32, centred: 16 rows of pad (114) on top and bottom
    np.testing.assert_allclose(img[:, 0, 0], 114 / 255, atol=1e-6)
    np.testing.assert_allclose(img[:, 63, 63], 114 / 255, atol=1e-6)
    np.testing.assert_allclose(img[:, 32, 32], [1, 0, 0], atol=1e-6)
    assert np.allclose(img[:, 15, 32], 114 / 255) and np.allclose(img[:, 16, 32], [1, 0, 0])
    # box x 16..48, y 24..40 on the 64 canvas
    np.testing.assert_allclose(lab, [[3, 0.5, 0.5, 0.5, 0.25]], atol=1e-5)
    img, lab, _ = ds[1]
    # 50x100 -> 32x64, 16 columns of pad left and right
    np.testing.assert_allclose(img[:, 32, 0], 114 / 255, atol=1e-6)
    assert abs(img[2, 32, 32] - 1) < 0.02
    np.testing.assert_allclose(lab, [[1, 0.5, 0.25, 0.5, 0.5], [0, 0.5, 0.5, 0.1, 0.2]], atol=1e-5)


def test_load_batch_format_and_missing_labels(tmp_path):
    root = _write_dataset(
        tmp_path / "ds",
        {
            "a.png": (80, 80, (10, 20, 30)),
            "b.png": (60, 90, (0, 0, 0)),
            "c.jpeg": (64, 64, (5, 5, 5)),
        },
        # a duplicate line; b has no label file
        {"a": "2 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.2 0.2\n\n", "c": ""},
    )
    images, targets = load_batch(root, 64, batch_size=4, start=0)
    assert isinstance(images, jt.Var) and tuple(images.shape) == (4, 3, 64, 64)
    assert targets.shape == (2, 6) and targets.dtype == np.float32
    np.testing.assert_array_equal(targets[:, 0], [0, 3])  # a, b(no boxes), c(empty), a again
    np.testing.assert_allclose(targets[0, 1:], [2, 0.5, 0.5, 0.2, 0.2], atol=1e-5)
    images, targets = load_batch(root, 64, batch_size=1, start=1)
    assert targets.shape == (0, 6)


def test_dataset_feeds_the_loss(tmp_path):
    from gold_yolo.loss import ComputeLoss

    root = _write_dataset(
        tmp_path / "ds", {"a.png": (96, 64, (200, 10, 10))}, {"a": "0 0.5 0.5 0.6 0.6\n"}
    )
    images, targets = load_batch(root, 64, batch_size=1)
    feats = [jt.zeros((1, 1, 64 // s, 64 // s)) for s in (8, 16, 32)]
    a = sum((64 // s) ** 2 for s in (8, 16, 32))
    out = (feats, jt.full((1, a, 2), 0.1), jt.zeros((1, a, 68)))
    res = ComputeLoss(num_classes=2, warmup_epoch=0).compute(out, targets)
    assert np.isfinite(res.total.item()) and res.stats["num_pos"] > 0


@pytest.mark.parametrize(
    "line,what",
    [
        ("1 0.5 0.5 0.2", "expected 5 columns"),
        ("1 0.5 0.5 0.2 0.2 7", "expected 5 columns"),
        ("cat 0.5 0.5 0.2 0.2", "not a number"),
        ("1 0.5 0.5 0.2 abc", "not a number"),
        ("1 1.5 0.5 0.2 0.2", "normalised"),
        ("1 0.5 -0.1 0.2 0.2", "normalised"),
        ("-1 0.5 0.5 0.2 0.2", "non-negative integer"),
        ("1.5 0.5 0.5 0.2 0.2", "non-negative integer"),
        ("1 nan 0.5 0.2 0.2", "non-finite"),
    ],
)
def test_bad_label_lines_name_file_and_line(tmp_path, line, what):
    root = _write_dataset(
        tmp_path / "ds",
        {"a.png": (32, 32, (0, 0, 0))},
        {"a": "0 0.5 0.5 0.1 0.1\n\n" + line + "\n"},
    )
    with pytest.raises(DatasetError) as ei:
        YoloDataset(root, 64)
    msg = str(ei.value)
    assert "a.txt:3:" in msg and what in msg and "\n" not in msg


def test_missing_folders_and_empty_dataset(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        YoloDataset(tmp_path / "nope", 64)
    (tmp_path / "noimg").mkdir()
    with pytest.raises(DatasetError, match="images folder does not exist"):
        YoloDataset(tmp_path / "noimg", 64)
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "images" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="no images"):
        load_batch(tmp_path / "empty", 64, 2)


def test_unreadable_image(tmp_path):
    root = _write_dataset(tmp_path / "ds", {}, {})
    (root / "images" / "bad.jpg").write_bytes(b"not an image")
    ds = YoloDataset(root, 64)
    with pytest.raises(DatasetError, match="bad.jpg: cannot read image"):
        ds[0]
