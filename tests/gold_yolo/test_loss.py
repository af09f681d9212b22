"""Tests of the Jittor Gold-YOLO training loss, assigners, box ops and optimizer.

Wang et al., "Gold-YOLO", NeurIPS 2023; upstream ``yolov6/models/losses/loss.py``,
``yolov6/assigners/*``, ``yolov6/utils/figure_iou.py``, ``yolov6/solver/build.py``.
Torch-free: reference values are hand-computed or from loop-based numpy re-statements of
the upstream algorithms.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from gradcheck import runtime

jt = runtime.import_jittor()

from gold_yolo.assigners import ATSSAssigner, TaskAlignedAssigner, generate_anchors  # noqa: E402
from gold_yolo.assigners.iou2d import bbox_overlaps  # noqa: E402
from gold_yolo.assigners.utils import select_highest_overlaps  # noqa: E402
from gold_yolo.box_ops import IOUloss, bbox2dist, dist2bbox, xywh2xyxy, xyxy2xywh  # noqa: E402
from gold_yolo.data import synthetic_batch  # noqa: E402
from gold_yolo.loss import ComputeLoss, LossOutput, build_loss, preprocess_targets  # noqa: E402
from gold_yolo.optim import build_optimizer, param_groups, solver_hparams  # noqa: E402

STRIDES = (8, 16, 32)


def fake_outputs(batch, img, nc=80, reg_max=16, use_dfl=True, seed=0):
    """Outputs in the model's training contract; predicted boxes contain their anchor point."""
    rng = np.random.RandomState(seed)
    feats = [jt.zeros((batch, 2, img // s, img // s)) for s in STRIDES]
    a = sum((img // s) ** 2 for s in STRIDES)
    scores = jt.sigmoid(jt.array((rng.randn(batch, a, nc) - 3).astype(np.float32)))
    if use_dfl:
        distri = rng.randn(batch, a, 4 * (reg_max + 1))
    else:
        distri = 0.5 + 1.5 * rng.rand(batch, a, 4)
    return feats, scores, jt.array(distri.astype(np.float32))


def loss_s(**kw):
    kw.setdefault("warmup_epoch", 0)
    return ComputeLoss(num_classes=80, iou_type="giou", use_dfl=True, reg_max=16, **kw)


def loss_n(**kw):
    kw.setdefault("warmup_epoch", 0)
    return ComputeLoss(num_classes=80, iou_type="siou", use_dfl=False, reg_max=0, **kw)


# ---------------------------------------------------------------- jittor idioms
def test_jittor_reduction_idioms_match_numpy():
    x = np.array([[1.0, 5, 5, 0], [7, 2, 7, 3]], np.float32)
    v = jt.array(x)
    idx, val = jt.argmax(v, 1)  # (indices, values), first index on ties
    np.testing.assert_array_equal(idx.numpy(), x.argmax(1))
    np.testing.assert_array_equal(val.numpy(), x.max(1))
    np.testing.assert_array_equal(v.max(1).numpy(), x.max(1))  # values only
    np.testing.assert_array_equal(v.max(0).numpy(), x.max(0))  # NOT image 0's row
    _, top = jt.topk(v, 2, dim=-1)
    assert set(top.numpy()[1]) == {0, 2}
    np.testing.assert_allclose(v.std().numpy(), np.std(x, ddof=1), rtol=1e-6)


# ---------------------------------------------------------------- box ops
def _np_iou_terms(b1, b2, eps):
    x1, y1, x2, y2 = b1
    X1, Y1, X2, Y2 = b2
    inter = max(min(x2, X2) - max(x1, X1), 0) * max(min(y2, Y2) - max(y1, Y1), 0)
    w1, h1, w2, h2 = x2 - x1, y2 - y1 + eps, X2 - X1, Y2 - Y1 + eps
    union = w1 * h1 + w2 * h2 - inter + eps
    cw, ch = max(x2, X2) - min(x1, X1), max(y2, Y2) - min(y1, Y1)
    return inter, union, w1, h1, w2, h2, cw, ch


def _np_siou(b1, b2, eps):
    x1, y1, x2, y2 = b1
    X1, Y1, X2, Y2 = b2
    inter, union, w1, h1, w2, h2, cw, ch = _np_iou_terms(b1, b2, eps)
    iou = inter / union
    s_cw = (X1 + X2 - x1 - x2) * 0.5 + eps
    s_ch = (Y1 + Y2 - y1 - y2) * 0.5 + eps
    sigma = math.hypot(s_cw, s_ch)
    sa1, sa2 = abs(s_cw) / sigma, abs(s_ch) / sigma
    sin_alpha = sa2 if sa1 > math.sqrt(2) / 2 else sa1
    angle = math.cos(2 * math.asin(sin_alpha) - math.pi / 2)
    gamma = angle - 2
    dist = 2 - math.exp(gamma * (s_cw / cw) ** 2) - math.exp(gamma * (s_ch / ch) ** 2)
    ow, oh = abs(w1 - w2) / max(w1, w2), abs(h1 - h2) / max(h1, h2)
    shape = (1 - math.exp(-ow)) ** 4 + (1 - math.exp(-oh)) ** 4
    return 1 - (iou - 0.5 * (dist + shape))


def test_iou_giou_hand_values():
    b1 = jt.array(np.array([[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 1, 1]], np.float32))
    b2 = jt.array(np.array([[1, 1, 3, 3], [0, 0, 2, 2], [2, 2, 3, 3]], np.float32))
    iou = IOUloss("xyxy", "iou", eps=1e-10)(b1, b2).numpy()[:, 0]
    giou = IOUloss("xyxy", "giou", eps=1e-10)(b1, b2).numpy()[:, 0]
    np.testing.assert_allclose(iou, [1 - 1 / 7, 0, 1], atol=1e-6)
    # GIoU = IoU - (C - U) / C: C = 9, U = 7 ; disjoint unit boxes: C = 9, U = 2
    np.testing.assert_allclose(giou, [1 - (1 / 7 - 2 / 9), 0, 1 - (0 - 7 / 9)], atol=1e-6)
    # xywh gives the same numbers
    xywh = IOUloss("xywh", "giou", eps=1e-10)(xyxy2xywh(b1), xyxy2xywh(b2)).numpy()[:, 0]
    np.testing.assert_allclose(xywh, giou, atol=1e-6)
    assert IOUloss("xyxy", "giou", reduction="sum")(b1, b2).numpy().size == 1


def test_siou_matches_hand_formula_and_is_zero_on_identity():
    rng = np.random.RandomState(3)
    pairs = []
    for _ in range(6):
        a = np.sort(rng.uniform(0, 10, (2, 2)), 0).T.reshape(-1)[[0, 2, 1, 3]]
        b = np.sort(rng.uniform(0, 10, (2, 2)), 0).T.reshape(-1)[[0, 2, 1, 3]]
        pairs.append((a, b))
    # |dx| > |dy|: the sin_alpha branch
    pairs.append((np.array([1, 1, 4, 3.0]), np.array([2, 0.5, 6, 5.0])))
    pairs.append((np.array([1, 1, 3, 3.0]), np.array([1, 1, 3, 3.0])))  # identical
    b1 = jt.array(np.array([p[0] for p in pairs], np.float32))
    b2 = jt.array(np.array([p[1] for p in pairs], np.float32))
    got = IOUloss("xyxy", "siou", eps=1e-10)(b1, b2).numpy()[:, 0]
    want = [_np_siou(a, b, 1e-10) for a, b in pairs]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert abs(got[-1]) < 1e-5
    # and its gradient is finite on the identity pair
    p = jt.array(np.array([[1, 1, 3, 3.0]], np.float32))
    same = jt.array(np.array([[1, 1, 3, 3.0]], np.float32))
    g = jt.grad(IOUloss("xyxy", "siou", eps=1e-10)(p, same).sum(), p)
    assert np.isfinite(g.numpy()).all()


def test_diou_ciou_hand_values():
    b1 = jt.array(np.array([[0, 0, 2, 2]], np.float32))
    b2 = jt.array(np.array([[1, 0, 3, 2]], np.float32))
    eps = 1e-10
    iou = 2 / 6
    c2 = 3**2 + 2**2
    rho2 = 1.0
    np.testing.assert_allclose(
        IOUloss("xyxy", "diou", eps=eps)(b1, b2).numpy()[0, 0], 1 - (iou - rho2 / c2), rtol=1e-5
    )
    # same aspect ratio -> v = 0 -> CIoU == DIoU
    np.testing.assert_allclose(
        IOUloss("xyxy", "ciou", eps=eps)(b1, b2).numpy()[0, 0], 1 - (iou - rho2 / c2), rtol=1e-5
    )


def test_iou_loss_rejects_misaligned_shapes():
    with pytest.raises(ValueError):
        IOUloss("xyxy", "giou")(jt.zeros((2, 4)), jt.zeros((3, 4)))
    with pytest.raises(ValueError):
        IOUloss("xyxy", "foo")


def test_dist2bbox_bbox2dist_roundtrip_and_clip():
    rng = np.random.RandomState(0)
    pts = rng.uniform(0, 40, (50, 2)).astype(np.float32)
    d = rng.uniform(0, 15, (3, 50, 4)).astype(np.float32)
    boxes = dist2bbox(jt.array(d), jt.array(pts)).numpy()
    np.testing.assert_allclose(boxes[..., :2], pts - d[..., :2], rtol=1e-6)
    back = bbox2dist(jt.array(pts), jt.array(boxes), 16).numpy()
    np.testing.assert_allclose(back, d, atol=1e-4)
    np.testing.assert_allclose(bbox2dist(pts, dist2bbox(d, pts), 16), d, atol=1e-4)  # numpy path
    big = bbox2dist(jt.array(pts), jt.array(dist2bbox(d * 3 - 5, pts)), 16).numpy()
    assert big.min() >= 0 and big.max() <= 16 - 0.01 + 1e-6
    xywh = dist2bbox(jt.array(d), jt.array(pts), "xywh").numpy()
    np.testing.assert_allclose(xywh2xyxy(xywh), boxes, atol=1e-4)


def test_xywh2xyxy_does_not_modify_input():
    a = np.array([[10, 20, 4, 6]], np.float32)
    np.testing.assert_array_equal(xywh2xyxy(a), [[8, 17, 12, 23]])
    np.testing.assert_array_equal(a, [[10, 20, 4, 6]])
    np.testing.assert_array_equal(xywh2xyxy(jt.array(a)).numpy(), [[8, 17, 12, 23]])


def test_bbox_overlaps_modes():
    a = jt.array(np.array([[0, 0, 10, 10], [10, 10, 20, 20], [32, 32, 38, 42]], np.float32))
    b = jt.array(np.array([[0, 0, 10, 20], [0, 10, 10, 19], [10, 10, 20, 20]], np.float32))
    got = bbox_overlaps(a, b).numpy()
    want = np.array([[0.5, 0, 0], [0, 0, 1], [0, 0, 0]])
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(bbox_overlaps(a, b, is_aligned=True).numpy(), [0.5, 0, 0], atol=1e-6)
    np.testing.assert_allclose(bbox_overlaps(a, b, mode="iof").numpy()[0, 0], 1.0, atol=1e-6)
    g = bbox_overlaps(a, b, mode="giou").numpy()
    assert g[1, 1] < 0 and abs(g[1, 2] - 1) < 1e-6


def test_anchors_layout():
    anchors, points, n_list, strides = generate_anchors([(4, 4), (2, 2), (1, 1)], STRIDES)
    assert n_list == [16, 4, 1]
    p = points.numpy()
    np.testing.assert_array_equal(p[:3], [[4, 4], [12, 4], [20, 4]])  # x fastest
    np.testing.assert_array_equal(p[16], [8, 8])
    np.testing.assert_array_equal(anchors.numpy()[20], [16 - 80, 16 - 80, 16 + 80, 16 + 80])
    np.testing.assert_array_equal(strides.numpy()[:, 0], [8] * 16 + [16] * 4 + [32])


# ---------------------------------------------------------------- numpy references
def _np_iou_matrix(g, p, eps=1e-9):
    """(M, 4) x (A, 4) -> (M, A), as upstream iou_calculator."""
    lt = np.maximum(g[:, None, :2], p[None, :, :2])
    rb = np.minimum(g[:, None, 2:], p[None, :, 2:])
    ov = np.clip(rb - lt, 0, None).prod(-1)
    a1 = np.clip(g[:, 2:] - g[:, :2], 0, None).prod(-1)[:, None]
    a2 = np.clip(p[:, 2:] - p[:, :2], 0, None).prod(-1)[None]
    return ov / (a1 + a2 - ov + eps)


def _np_in_gts(points, g, eps=1e-9):
    d = np.concatenate([points[None] - g[:, None, :2], g[:, None, 2:] - points[None]], -1)
    return d.min(-1) > eps


def _np_resolve(mask_pos, overlaps):
    mask_pos = mask_pos.copy()
    for a in np.flatnonzero(mask_pos.sum(0) > 1):
        mask_pos[:, a] = 0
        mask_pos[overlaps[:, a].argmax(), a] = 1
    fg = mask_pos.sum(0)
    return mask_pos.argmax(0), fg, mask_pos


def np_tal(scores, pd, points, labels, gts, valid, topk=13, alpha=1.0, beta=6.0, eps=1e-9):
    """Loop-based restatement of upstream TaskAlignedAssigner for ONE image."""
    m, a = len(gts), len(points)
    ov = _np_iou_matrix(gts, pd)
    metric = scores[:, np.maximum(labels, 0)].T ** alpha * ov**beta
    in_gt = _np_in_gts(points, gts)
    mask_pos = np.zeros((m, a))
    for j in range(m):
        if not valid[j]:
            continue
        order = np.argsort(-(metric[j] * in_gt[j]), kind="stable")[:topk]
        mask_pos[j, order] = 1
    mask_pos *= in_gt
    idx, fg, mask_pos = _np_resolve(mask_pos, ov)
    am = metric * mask_pos
    norm = (am * (ov * mask_pos).max(1, keepdims=True) / (am.max(1, keepdims=True) + eps)).max(0)
    lab = np.maximum(labels[idx], 0)
    sc = np.eye(scores.shape[1])[lab] * (fg > 0)[:, None] * norm[:, None]
    return lab, gts[idx], sc, fg > 0


def np_atss(anchors, n_levels, labels, gts, valid, pd, nc, topk=9):
    """Loop-based restatement of upstream ATSSAssigner for ONE image."""
    m, a = len(gts), len(anchors)
    area_g = (gts[:, 2] - gts[:, 0]) * (gts[:, 3] - gts[:, 1])
    area_a = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
    lt = np.maximum(gts[:, None, :2], anchors[None, :, :2])
    rb = np.minimum(gts[:, None, 2:], anchors[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    ov = inter / np.maximum(area_g[:, None] + area_a[None] - inter, 1e-6)
    gc = (gts[:, :2] + gts[:, 2:]) / 2
    ac = (anchors[:, :2] + anchors[:, 2:]) / 2
    dist = np.sqrt(((gc[:, None] - ac[None]) ** 2).sum(-1))
    mask_pos = np.zeros((m, a))
    for j in range(m):
        if not valid[j]:
            continue
        cands, start = [], 0
        for n in n_levels:
            order = np.argsort(dist[j, start : start + n], kind="stable")
            cands += list(start + order[: min(topk, n)])
            start += n
        vals = ov[j, cands]
        thr = vals.mean() + vals.std(ddof=1)
        for c in cands:
            if ov[j, c] > thr:
                mask_pos[j, c] = 1
    mask_pos *= _np_in_gts(ac, gts)
    idx, fg, mask_pos = _np_resolve(mask_pos, ov)
    lab = np.where(fg > 0, labels[idx], nc)
    sc = np.eye(nc + 1)[lab][:, :nc]
    sc = sc * (_np_iou_matrix(gts, pd) * mask_pos).max(0)[:, None]
    return lab, gts[idx], sc, fg > 0


def _random_problem(seed, img=128, nc=5, counts=(4, 2)):
    rng = np.random.RandomState(seed)
    shapes = [(img // s, img // s) for s in STRIDES]
    anchors, points, n_list, _ = generate_anchors(shapes, STRIDES)
    anchors, points = anchors.numpy(), points.numpy()
    b, m, a = len(counts), max(counts), len(points)
    gts = np.zeros((b, m, 4), np.float32)
    labels = -np.ones((b, m), np.int64)
    valid = np.zeros((b, m), bool)
    for i, c in enumerate(counts):
        wh = rng.uniform(10, 90, (c, 2))
        ctr = rng.uniform(wh / 2, img - wh / 2)
        gts[i, :c] = np.concatenate([ctr - wh / 2, ctr + wh / 2], 1)
        labels[i, :c] = rng.randint(0, nc, c)
        valid[i, :c] = True
    d = rng.uniform(2, 40, (b, a, 4))
    pd = np.concatenate([points[None] - d[..., :2], points[None] + d[..., 2:]], -1)
    pd = pd.astype(np.float32)
    scores = rng.uniform(0.01, 0.99, (b, a, nc)).astype(np.float32)
    return dict(
        anchors=anchors,
        points=points,
        n_list=n_list,
        gts=gts,
        labels=labels,
        valid=valid,
        pd=pd,
        scores=scores,
        nc=nc,
    )


def _as_jt(p):
    return (
        jt.array(p["labels"][..., None].astype(np.float32)),
        jt.array(p["gts"]),
        jt.array(p["valid"][..., None].astype(np.float32)),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tal_matches_numpy_reference(seed):
    p = _random_problem(seed)
    gl, gb, mg = _as_jt(p)
    lab, box, sc, fg = TaskAlignedAssigner(13, p["nc"])(
        jt.array(p["scores"]), jt.array(p["pd"]), jt.array(p["points"]), gl, gb, mg
    )
    for i in range(len(p["gts"])):
        r_lab, r_box, r_sc, r_fg = np_tal(
            p["scores"][i], p["pd"][i], p["points"], p["labels"][i], p["gts"][i], p["valid"][i]
        )
        np.testing.assert_array_equal(fg.numpy()[i], r_fg)
        assert r_fg.sum() > 0
        np.testing.assert_array_equal(lab.numpy()[i][r_fg], r_lab[r_fg])
        np.testing.assert_allclose(box.numpy()[i][r_fg], r_box[r_fg], rtol=1e-6)
        np.testing.assert_allclose(sc.numpy()[i], r_sc, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_atss_matches_numpy_reference(seed):
    p = _random_problem(seed)
    gl, gb, mg = _as_jt(p)
    lab, box, sc, fg = ATSSAssigner(9, p["nc"])(
        jt.array(p["anchors"]), p["n_list"], gl, gb, mg, jt.array(p["pd"])
    )
    for i in range(len(p["gts"])):
        r_lab, r_box, r_sc, r_fg = np_atss(
            p["anchors"],
            p["n_list"],
            p["labels"][i],
            p["gts"][i],
            p["valid"][i],
            p["pd"][i],
            p["nc"],
        )
        np.testing.assert_array_equal(fg.numpy()[i], r_fg)
        assert r_fg.sum() > 0
        np.testing.assert_array_equal(lab.numpy()[i], r_lab)
        np.testing.assert_allclose(box.numpy()[i][r_fg], r_box[r_fg], rtol=1e-6)
        np.testing.assert_allclose(sc.numpy()[i], r_sc, rtol=1e-4, atol=1e-6)


def test_select_highest_overlaps_resolves_conflicts():
    mask_pos = np.array([[[1, 1, 0], [1, 0, 0]]], np.float32)  # anchor 0 claimed by both gts
    overlaps = np.array([[[0.2, 0.5, 0.1], [0.7, 0.1, 0.0]]], np.float32)
    idx, fg, mp = select_highest_overlaps(jt.array(mask_pos), jt.array(overlaps), 2)
    np.testing.assert_array_equal(idx.numpy(), [[1, 0, 0]])
    np.testing.assert_array_equal(fg.numpy(), [[1, 1, 0]])
    np.testing.assert_array_equal(mp.numpy(), [[[0, 1, 0], [1, 0, 0]]])


def _one_gt_case(img=64):
    shapes = [(img // s, img // s) for s in STRIDES]
    anchors, points, n_list, _ = generate_anchors(shapes, STRIDES)
    gt = np.array([[[10, 10, 30, 26]]], np.float32)  # one box, image 0
    return anchors, points, n_list, gt


def test_tal_one_gt_positives_inside_it():
    anchors, points, n_list, gt = _one_gt_case()
    pts = points.numpy()
    a = len(pts)
    pd = np.concatenate([pts - 8, pts + 8], -1)[None].astype(np.float32)
    scores = np.full((1, a, 3), 0.3, np.float32)
    lab, box, sc, fg = TaskAlignedAssigner(13, 3)(
        jt.array(scores),
        jt.array(pd),
        points,
        jt.array(np.array([[[2.0]]], np.float32)),
        jt.array(gt),
        jt.ones((1, 1, 1)),
    )
    fg = fg.numpy()[0]
    inside = (pts[:, 0] > 10) & (pts[:, 0] < 30) & (pts[:, 1] > 10) & (pts[:, 1] < 26)
    # < 13 candidates: all the inside ones (6+1+1)
    assert fg.sum() == inside.sum() == 8 and (fg <= inside).all()
    assert (lab.numpy()[0][fg] == 2).all()
    np.testing.assert_allclose(box.numpy()[0][fg], np.repeat(gt[0], fg.sum(), 0))
    s = sc.numpy()[0]
    assert (s[~fg] == 0).all() and (s[fg][:, [0, 1]] == 0).all() and (s[fg][:, 2] > 0).all()
    # the best anchor -> its IoU
    assert abs(s[:, 2].max() - (_np_iou_matrix(gt[0], pd[0])[0][fg]).max()) < 1e-5


def test_atss_one_gt_positives_inside_it():
    anchors, points, n_list, gt = _one_gt_case()
    pts = points.numpy()
    lab, box, sc, fg = ATSSAssigner(9, 3)(
        anchors,
        n_list,
        jt.array(np.array([[[1.0]]], np.float32)),
        jt.array(gt),
        jt.ones((1, 1, 1)),
        None,
    )
    fg = fg.numpy()[0]
    assert fg.sum() > 0
    p = pts[fg]
    assert ((p[:, 0] > 10) & (p[:, 0] < 30) & (p[:, 1] > 10) & (p[:, 1] < 26)).all()
    assert (lab.numpy()[0][fg] == 1).all() and (lab.numpy()[0][~fg] == 3).all()
    np.testing.assert_array_equal(sc.numpy()[0][fg][:, 1], 1.0)  # no pd_bboxes: hard labels


def test_assigners_with_no_gt_at_all():
    anchors, points, n_list, _ = _one_gt_case()
    a = len(points.numpy())
    empty_l, empty_b, empty_m = jt.zeros((2, 0, 1)), jt.zeros((2, 0, 4)), jt.zeros((2, 0, 1))
    lab, box, sc, fg = TaskAlignedAssigner(13, 3)(
        jt.zeros((2, a, 3)), jt.zeros((2, a, 4)), points, empty_l, empty_b, empty_m
    )
    assert fg.shape == [2, a] and not fg.numpy().any() and (lab.numpy() == 3).all()
    lab, box, sc, fg = ATSSAssigner(9, 3)(
        anchors, n_list, empty_l, empty_b, empty_m, jt.zeros((2, a, 4))
    )
    assert not fg.numpy().any() and sc.shape == [2, a, 3]


# ---------------------------------------------------------------- loss
def test_preprocess_targets_pads_and_scales():
    t = np.array(
        [[1, 3, 0.5, 0.5, 0.5, 0.25], [0, 1, 0.25, 0.5, 0.5, 0.5], [1, 2, 0.5, 0.5, 1, 1]],
        np.float32,
    )
    out, counts = preprocess_targets(t, 3, (64, 128))  # H=64, W=128
    assert out.shape == (3, 2, 5) and list(counts) == [1, 2, 0]
    np.testing.assert_allclose(out[0, 0], [1, 0, 16, 64, 48])
    np.testing.assert_allclose(out[0, 1], [-1, 0, 0, 0, 0])
    np.testing.assert_allclose(out[1], [[3, 32, 24, 96, 40], [2, 0, 0, 128, 64]])  # order kept
    assert (out[2, :, 0] == -1).all()
    assert preprocess_targets(np.zeros((0, 6)), 2, (64, 64))[0].shape == (2, 0, 5)
    with pytest.raises(ValueError):
        preprocess_targets(np.array([[2, 0, 0.5, 0.5, 0.1, 0.1]]), 2, (64, 64))


def test_loss_api_terms_items_and_stats():
    out = fake_outputs(2, 160)
    _, targets = synthetic_batch(160, 2, 0)
    crit = loss_s()
    res = crit.compute(out, targets, 0, 0)
    assert isinstance(res, LossOutput) and set(res.terms) == {"iou", "dfl", "cls"}
    total = res.total.item()
    assert np.isfinite(total) and total > 0
    np.testing.assert_allclose(total, sum(v.item() for v in res.terms.values()), rtol=1e-5)
    loss, items = crit(out, targets, 0, 0)
    np.testing.assert_allclose(loss.item(), total, rtol=1e-6)
    np.testing.assert_allclose(
        items.numpy(), [res.terms[k].item() for k in ("iou", "dfl", "cls")], rtol=1e-6
    )
    assert items.is_stop_grad()
    # targets as a Var
    np.testing.assert_allclose(crit.compute(out, jt.array(targets)).total.item(), total, rtol=1e-6)
    st = res.stats
    assert set(st["num_pos_per_stride"]) == set(STRIDES) and st["num_targets"] == len(targets)
    assert st["assigner"] == "tal" and st["num_pos"] == sum(st["num_pos_per_stride"].values())
    assert crit.loss_weight == {"class": 1.0, "iou": 2.5, "dfl": 0.5}
    tal = crit.formal_assigner
    assert (tal.topk, tal.alpha, tal.beta) == (13, 1.0, 6.0)
    assert crit.warmup_assigner.topk == 9


def test_each_term_carries_gradient():
    feats, scores, distri = fake_outputs(2, 160)
    _, targets = synthetic_batch(160, 2, 0)
    res = loss_s().compute((feats, scores, distri), targets, 0, 0)
    g_cls = jt.grad(res.terms["cls"], scores).numpy()
    g_iou = jt.grad(res.terms["iou"], distri).numpy()
    g_dfl = jt.grad(res.terms["dfl"], distri).numpy()
    for g in (g_cls, g_iou, g_dfl):
        assert np.isfinite(g).all() and np.abs(g).sum() > 0
    assert res.terms["dfl"].item() > 0  # the always-0 DFL bug


def test_dfl_matches_hand_computation():
    crit = loss_s()
    logits = np.random.RandomState(0).randn(2, 4, 17).astype(np.float32)
    target = np.array([[0.0, 3.25, 15.99, 7.5], [1.0, 2.0, 0.5, 9.75]], np.float32)
    got = crit.bbox_loss._df_loss(jt.array(logits), jt.array(target)).numpy()[:, 0]
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    left = np.floor(target).astype(int)
    wl = left + 1 - target
    want = -(
        np.take_along_axis(logp, left[..., None], -1)[..., 0] * wl
        + np.take_along_axis(logp, left[..., None] + 1, -1)[..., 0] * (1 - wl)
    ).mean(-1)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_varifocal_hand_value():
    p = np.array([[[0.2, 0.9]]], np.float32)
    q = np.array([[[0.0, 0.6]]], np.float32)
    lab = np.array([[[0.0, 1.0]]], np.float32)
    from gold_yolo.loss import VarifocalLoss

    got = VarifocalLoss()(jt.array(p), jt.array(q), jt.array(lab)).item()
    bce = lambda x, y: -(y * np.log(x) + (1 - y) * np.log(1 - x))  # noqa: E731
    want = 0.75 * 0.2**2 * bce(0.2, 0.0) + 0.6 * bce(0.9, 0.6)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_n_variant_has_constant_zero_dfl_attached():
    feats, scores, distri = fake_outputs(2, 160, use_dfl=False)
    _, targets = synthetic_batch(160, 2, 1)
    res = loss_n().compute((feats, scores, distri), targets, 0, 0)
    assert res.terms["dfl"].item() == 0.0
    g = jt.grad(res.terms["dfl"], distri).numpy()  # attached, zero gradient (upstream: sum()*0)
    assert np.isfinite(g).all() and not g.any()
    assert res.terms["iou"].item() > 0 and np.isfinite(res.total.item())
    gi = jt.grad(res.terms["iou"], distri).numpy()
    assert np.isfinite(gi).all() and np.abs(gi).sum() > 0


@pytest.mark.parametrize("make", [loss_s, loss_n])
@pytest.mark.parametrize("epoch", [0, 5])
def test_loss_finite_on_empty_and_partial_targets(make, epoch):
    use_dfl = make is loss_s
    crit = make()
    crit.warmup_epoch = 3  # epoch 0 -> ATSS, 5 -> TAL
    feats, scores, distri = fake_outputs(2, 160, use_dfl=use_dfl)
    # no box at all
    res = crit.compute((feats, scores, distri), np.zeros((0, 6), np.float32), epoch, 0)
    assert np.isfinite(res.total.item()) and res.stats["num_pos"] == 0
    assert res.terms["iou"].item() == 0 and res.terms["dfl"].item() == 0
    assert res.terms["cls"].item() > 0
    g = jt.grad(res.total, scores).numpy()
    assert np.isfinite(g).all()
    # image 0 without boxes
    _, targets = synthetic_batch(160, 2, 0)
    only1 = targets[targets[:, 0] == 1]
    res = crit.compute((feats, scores, distri), only1, epoch, 0)
    assert np.isfinite(res.total.item())
    assert res.stats["num_pos_per_image"][0] == 0 and res.stats["num_pos_per_image"][1] > 0
    assert res.stats["assigner"] == ("atss" if epoch < 3 else "tal")
    for v in jt.grad(res.total, [scores, distri]):
        assert np.isfinite(v.numpy()).all()


@pytest.mark.parametrize("epoch", [0, 5])
def test_batch_independence(epoch):
    """Image 1's assignment must not depend on image 0's boxes (the ``.max(dim)[0]`` bug)."""
    crit = loss_s(warmup_epoch=3)
    rng = np.random.RandomState(5)
    feats, scores, distri = fake_outputs(2, 160, seed=5)
    _, t_a = synthetic_batch(160, 2, 11)
    t_b = t_a.copy()
    sel = t_b[:, 0] == 0
    t_b[sel, 2:4] = rng.uniform(0.3, 0.7, (sel.sum(), 2))  # move image 0's boxes
    t_b = np.concatenate([t_b, [[0, 3, 0.5, 0.5, 0.2, 0.2]] * 4])  # and more (changes padding M)

    def assignment(targets):
        # re-run the assigner the loss runs, via its public pieces
        gt_np, _ = preprocess_targets(targets, 2, (160, 160))
        gt = jt.array(gt_np)
        mask = jt.array((gt_np[:, :, 1:].sum(-1, keepdims=True) > 0).astype(np.float32))
        anchors, points, n_list, stride = generate_anchors(feats, STRIDES)
        pd = crit.bbox_decode(points / stride, distri) * stride
        if epoch < crit.warmup_epoch:
            r = crit.warmup_assigner(anchors, n_list, gt[:, :, :1], gt[:, :, 1:], mask, pd)
        else:
            r = crit.formal_assigner(scores, pd, points, gt[:, :, :1], gt[:, :, 1:], mask)
        return [x.numpy() for x in r]

    ra, rb = assignment(t_a), assignment(t_b)  # labels, boxes, scores, fg
    fg1 = ra[3][1]
    assert fg1.sum() > 0
    np.testing.assert_array_equal(fg1, rb[3][1])
    for xa, xb in zip(ra[:3], rb[:3]):
        np.testing.assert_allclose(xa[1][fg1], xb[1][fg1], rtol=1e-6)
    assert not np.array_equal(ra[3][0], rb[3][0])  # image 0 did change
    # and the full loss reports the same per-image positives for image 1
    sa = crit.compute((feats, scores, distri), t_a, epoch, 0).stats
    sb = crit.compute((feats, scores, distri), t_b, epoch, 0).stats
    assert sa["num_pos_per_image"][1] == sb["num_pos_per_image"][1]
    # a batch of two identical images has exactly the single-image loss (normalised by the sum)
    one = t_a[t_a[:, 0] == 1].copy()
    one[:, 0] = 0
    two = np.concatenate([one, one * [0, 1, 1, 1, 1, 1] + [1, 0, 0, 0, 0, 0]])
    s1 = jt.array(scores.numpy()[1:2])
    d1 = jt.array(distri.numpy()[1:2])
    f1 = [jt.zeros((1, 2) + tuple(f.shape[2:])) for f in feats]
    r1 = crit.compute((f1, s1, d1), one, epoch, 0)
    r2 = crit.compute((feats, jt.concat([s1, s1]), jt.concat([d1, d1])), two, epoch, 0)
    for k in ("iou", "dfl", "cls"):
        np.testing.assert_allclose(r1.terms[k].item(), r2.terms[k].item(), rtol=1e-4)


@pytest.mark.parametrize("img", [160, 224, 320, 640])
@pytest.mark.parametrize("epoch", [0, 5])
def test_synthetic_batch_gives_positives_on_every_stride(img, epoch):
    for use_dfl, make in ((True, loss_s), (False, loss_n)):
        crit = make()
        crit.warmup_epoch = 3
        _, targets = synthetic_batch(img, 2, img + epoch)
        res = crit.compute(fake_outputs(2, img, use_dfl=use_dfl, seed=img), targets, epoch, 0)
        st = res.stats
        assert st["assigner"] == ("atss" if epoch < 3 else "tal")
        assert min(st["num_pos_per_stride"].values()) > 0, (use_dfl, st)
        assert min(st["num_pos_per_image"]) > 0
        assert np.isfinite(res.total.item())


def test_image_size_taken_from_features_or_fixed():
    out = fake_outputs(1, 160)
    t = np.array([[0, 1, 0.5, 0.5, 0.4, 0.4]], np.float32)
    assert loss_s().compute(out, t).stats["img_hw"] == (160, 160)
    assert loss_s(ori_img_size=640).compute(out, t).stats["img_hw"] == (640, 640)


def test_shape_mismatch_is_reported():
    feats, scores, distri = fake_outputs(1, 160, use_dfl=False)
    with pytest.raises(ValueError, match="pred_distri"):
        loss_s().compute((feats, scores, distri), np.zeros((0, 6)))


def test_from_config_and_build_loss():
    from gold_yolo.configs import get_config

    n = build_loss("gold_yolo_n", 20)
    assert (n.iou_type, n.use_dfl, n.reg_max, n.warmup_epoch, n.num_classes) == (
        "siou",
        False,
        0,
        0,
        20,
    )
    s = ComputeLoss.from_config(get_config("gold_yolo_s"), 80)
    assert (s.iou_type, s.use_dfl, s.reg_max, s.fpn_strides) == ("giou", True, 16, [8, 16, 32])
    for name in ("gold_yolo_m", "gold_yolo_l"):
        c = build_loss(name)
        assert (c.iou_type, c.use_dfl, c.reg_max) == ("giou", True, 16)


def test_loss_speed_320_batch2():
    crit = loss_s()
    out = fake_outputs(2, 320)
    _, targets = synthetic_batch(320, 2, 0)
    crit.compute(out, targets).total.sync()  # compile once
    t = time.perf_counter()
    for _ in range(3):
        crit.compute(out, targets).total.sync()
    per_call = (time.perf_counter() - t) / 3
    assert per_call < 1.0, f"loss + TAL at 320, batch 2 took {per_call:.3f}s"


# ---------------------------------------------------------------- optimizer
class _Tiny(jt.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = jt.nn.Conv2d(3, 4, 3, bias=False)
        self.bn = jt.nn.BatchNorm2d(4)
        self.fc = jt.nn.Linear(4, 2)
        self.frozen = jt.nn.Conv2d(2, 1, 1, bias=False)
        self.frozen.weight = self.frozen.weight.stop_grad()
        self.extra = jt.ones((2,))  # neither weight nor bias of a module

    def execute(self, x):
        y = self.bn(self.conv(x)).mean([2, 3])
        return self.fc(y) * self.extra


def _cfg(lr0=0.01, wd=0.0005, momentum=0.937):
    from types import SimpleNamespace

    return SimpleNamespace(
        solver=SimpleNamespace(optim="SGD", lr0=lr0, momentum=momentum, weight_decay=wd)
    )


def test_optimizer_groups_on_small_module():
    m = _Tiny()
    g = param_groups(m)
    assert [n for n, _ in g.bn_weights] == ["bn.weight"]
    assert sorted(n for n, _ in g.weights) == ["conv.weight", "fc.weight", "frozen.weight"]
    assert sorted(n for n, _ in g.biases) == ["bn.bias", "fc.bias"]
    assert [n for n, _ in g.ungrouped] == ["extra"]
    opt = build_optimizer(m, _cfg(), batch_size=16)
    assert [pg["name"] for pg in opt.param_groups] == ["bn_weights", "weights", "biases"]
    wds = [pg["weight_decay"] for pg in opt.param_groups]
    assert wds[0] == 0 and wds[2] == 0 and wds[1] == pytest.approx(0.0005 * 16 * 4 / 64)
    assert all(pg["nesterov"] for pg in opt.param_groups) and opt.nesterov
    assert all(pg["momentum"] == 0.937 for pg in opt.param_groups)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * 16 / 32)
    frozen0 = m.frozen.weight.numpy().copy()
    conv0 = m.conv.weight.numpy().copy()
    loss = m(jt.array(np.random.RandomState(0).rand(2, 3, 8, 8).astype(np.float32))).sum()
    opt.step(loss)
    assert not np.array_equal(m.conv.weight.numpy(), conv0)
    np.testing.assert_array_equal(m.frozen.weight.numpy(), frozen0)


def test_solver_scaling_like_engine():
    hp = solver_hparams(_cfg(), batch_size=32)
    assert hp["accumulate"] == 2 and hp["weight_decay"] == pytest.approx(0.0005)
    assert hp["lr0"] == 0.01
    hp = solver_hparams(_cfg(), batch_size=2)
    assert hp["accumulate"] == 32 and hp["weight_decay"] == pytest.approx(0.0005)
    hp = solver_hparams(_cfg(), batch_size=8, accumulate=1)
    assert hp["weight_decay"] == pytest.approx(0.0005 / 8) and hp["lr0"] == pytest.approx(0.0025)


def test_nesterov_update_matches_hand_formula():
    m = jt.nn.Linear(1, 1, bias=False)
    m.weight.assign(jt.array(np.array([[2.0]], np.float32)))
    opt = build_optimizer(m, _cfg(lr0=0.1, wd=0.0, momentum=0.9), batch_size=32)
    loss = (m(jt.ones((1, 1))) * 3).sum()  # d/dw = 3
    opt.step(loss)
    # v = 3 ; w -= lr * (g + mu * v) = 2 - 0.1 * (3 + 2.7)
    np.testing.assert_allclose(m.weight.numpy(), [[2 - 0.1 * 5.7]], rtol=1e-6)


# bitwise against jittor.optim.SGD as Jittor runs it by default: fused, where g++ contracts
# its multiply-adds as our kernel's do (unfused, each operator rounds on its own)
@pytest.mark.fused
@pytest.mark.parametrize("nesterov,dampening", [(True, 0.0), (False, 0.0), (False, 0.25)])
def test_fused_sgd_equals_jittor_sgd_bitwise(nesterov, dampening):
    """gold_yolo.optim.SGD (one fused kernel per chunk of parameters) gives exactly the values
    of jittor.optim.SGD: parameters and momentum buffers, over several steps, with a frozen
    parameter, three groups (decay only on one), and more parameters than one chunk."""
    from gold_yolo import optim

    def run(cls):
        jt.set_global_seed(0)
        layers = [jt.nn.Linear(3, 3) for _ in range(70)]  # 140 parameters > one chunk
        params = [p for m in layers for p in (m.weight, m.bias)]
        params[5] = params[5].stop_grad()
        groups = [
            {"params": params[:40], "weight_decay": 0.0},
            {"params": params[40:100], "weight_decay": 5e-4},
            {"params": params[100:], "weight_decay": 0.0, "lr": 0.02},
        ]
        opt = cls(groups, lr=0.01, momentum=0.937, nesterov=nesterov, dampening=dampening)
        x = jt.array(np.random.RandomState(1).rand(4, 3).astype(np.float32))
        for _ in range(3):
            y = x
            for m in layers:
                y = jt.tanh(m(y))
            opt.step((y * y).sum())
        return [p.numpy() for p in params] + [
            v.numpy() for pg in opt.param_groups for v in pg["values"]
        ]

    ref, got = run(jt.optim.SGD), run(optim.SGD)
    assert len(ref) == len(got)
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- real model
def test_real_model_n_loss_gradients_and_one_step():
    from gold_yolo.model import build_model

    jt.set_global_seed(0)
    model = build_model("gold_yolo_n", num_classes=80)
    images, targets = synthetic_batch(160, 2, 0)
    crit = build_loss("gold_yolo_n", 80)
    out = model(images)
    feats, scores, distri = out
    assert [tuple(f.shape[2:]) for f in feats] == [(20, 20), (10, 10), (5, 5)]
    assert tuple(scores.shape) == (2, 525, 80) and tuple(distri.shape) == (2, 525, 4)
    res = crit.compute(out, targets, 0, 0)
    assert np.isfinite(res.total.item()) and min(res.stats["num_pos_per_stride"].values()) > 0
    # the official head init zeroes cls_pred/reg_pred weights: at step 0 only those layers
    # (and their biases) get gradient; everything must be finite
    head = [model.detect.cls_preds[i].weight for i in range(3)] + [
        model.detect.reg_preds[i].bias for i in range(3)
    ]
    for g in jt.grad(res.total, head):
        g = g.numpy()
        assert np.isfinite(g).all() and np.abs(g).sum() > 0
    g = param_groups(model)
    assert [n for n, _ in g.ungrouped] == ["detect.proj"]
    assert [n for n, p in g.weights if p.is_stop_grad()] == ["detect.proj_conv.weight"]
    opt = build_optimizer(model, "gold_yolo_n", batch_size=2)
    before = model.detect.reg_preds[0].weight.numpy().copy()
    proj = model.detect.proj_conv.weight.numpy().copy()
    opt.step(res.total)
    assert not np.array_equal(model.detect.reg_preds[0].weight.numpy(), before)
    np.testing.assert_array_equal(model.detect.proj_conv.weight.numpy(), proj)
    res2 = crit.compute(model(images), targets, 0, 1)
    assert np.isfinite(res2.total.item())
    # after one step the prediction weights are non-zero: gradient now reaches the neck
    neck_w = model.detect.stems[0].conv.weight
    assert np.abs(jt.grad(res2.total, neck_w).numpy()).sum() > 0


@pytest.mark.slow
@pytest.mark.parametrize("epoch", [0, 5])
def test_real_model_s_dfl_nonzero_and_every_stride(epoch):
    from gold_yolo.model import build_model

    jt.set_global_seed(0)
    model = build_model("gold_yolo_s", num_classes=80)
    images, targets = synthetic_batch(160, 2, 3)
    crit = build_loss("gold_yolo_s", 80, warmup_epoch=3)
    res = crit.compute(model(images), targets, epoch, 0)
    assert res.stats["assigner"] == ("atss" if epoch < 3 else "tal")
    assert min(res.stats["num_pos_per_stride"].values()) > 0
    assert res.terms["dfl"].item() > 0 and np.isfinite(res.total.item())
    opt = build_optimizer(model, "gold_yolo_s", batch_size=2)
    opt.step(res.total)
    assert np.isfinite(crit.compute(model(images), targets, epoch, 1).total.item())
