"""gold_yolo BatchNorm2d: the explicit training-mode backward equals the float64 analytic one."""

from __future__ import annotations

import numpy as np

from gold_yolo.layers.norm import BatchNorm2d, jt


def test_batchnorm_backward_matches_float64_reference():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 4, 5, 6)) * 3 + 1).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    w = np.array([0.5, -1.0, 2.0, 0.0], np.float32)
    bn = BatchNorm2d(4, eps=1e-3)
    bn.weight.update(jt.array(w))
    bn.train()
    xv = jt.array(x)
    y = bn(xv)
    gx, gw, gb = jt.grad((y * jt.array(gy)).sum(), [xv, bn.weight, bn.bias])

    x64, g64 = x.astype(np.float64), gy.astype(np.float64)
    mean = x64.mean((0, 2, 3), keepdims=True)
    inv = 1 / np.sqrt(x64.var((0, 2, 3), keepdims=True) + 1e-3)
    xhat = (x64 - mean) * inv
    ref_gb = g64.sum((0, 2, 3))
    ref_gw = (g64 * xhat).sum((0, 2, 3))
    ref_gx = w.reshape(1, -1, 1, 1) * inv * (g64 - g64.mean((0, 2, 3), keepdims=True)
                                             - xhat * (g64 * xhat).mean((0, 2, 3), keepdims=True))
    np.testing.assert_allclose(gb.numpy(), ref_gb, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gw.numpy(), ref_gw, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gx.numpy(), ref_gx, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(y.numpy(), xhat * w.reshape(1, -1, 1, 1), rtol=1e-4, atol=1e-5)
