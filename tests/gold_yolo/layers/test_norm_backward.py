"""gold_yolo BatchNorm2d: the explicit training-mode backward equals the float64 analytic one."""

from __future__ import annotations

import numpy as np

from fixtures import ROOT
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
    ref_gx = (
        w.reshape(1, -1, 1, 1)
        * inv
        * (
            g64
            - g64.mean((0, 2, 3), keepdims=True)
            - xhat * (g64 * xhat).mean((0, 2, 3), keepdims=True)
        )
    )
    np.testing.assert_allclose(gb.numpy(), ref_gb, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gw.numpy(), ref_gw, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gx.numpy(), ref_gx, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(y.numpy(), xhat * w.reshape(1, -1, 1, 1), rtol=1e-4, atol=1e-5)


def test_batchnorm_backward_twice_and_in_float64():
    """The backward may run twice on one graph (``retain_graph``: ``gradcheck align`` asks
    d loss / d every module output before the optimizer's backward), and it follows the
    input's dtype: float64 in, float64 gradients out, equal to the analytic ones to ~1e-12."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 4, 5)) * 2 + 0.5
    gy = rng.standard_normal(x.shape)
    bn = BatchNorm2d(3, eps=1e-5)
    bn.train()
    xv = jt.array(x.astype(np.float32))
    loss = (bn(xv) * jt.array(gy.astype(np.float32))).sum()
    first = jt.grad(loss, [xv], retain_graph=True)[0].numpy()
    second = jt.grad(loss, [xv])[0].numpy()
    np.testing.assert_array_equal(first, second)

    bn64 = BatchNorm2d(3, eps=1e-5).float64()
    bn64.train()
    with jt.flag_scope(auto_convert_64_to_32=0):
        xv = jt.array(x)
        y = bn64(xv)
        gx, gw = jt.grad((y * jt.array(gy)).sum(), [xv, bn64.weight])
    assert str(y.dtype) == str(gx.dtype) == str(gw.dtype) == "float64"
    assert str(bn64.running_var.dtype) == "float64"
    mean = x.mean((0, 2, 3), keepdims=True)
    inv = 1 / np.sqrt(x.var((0, 2, 3), keepdims=True) + 1e-5)
    xhat = (x - mean) * inv
    ref_gx = inv * (
        gy - gy.mean((0, 2, 3), keepdims=True) - xhat * (gy * xhat).mean((0, 2, 3), keepdims=True)
    )
    np.testing.assert_allclose(gx.numpy(), ref_gx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gw.numpy(), (gy * xhat).sum((0, 2, 3)), rtol=1e-10)


def test_cpu_kernels_match_the_graph_path():
    """The float32 CPU kernels (one loop nest per direction) compute what the Jittor graph
    path (CUDA, float64 reruns) computes, to float32 rounding, forward and backward, on a
    shape with several images and channels (the kernels index (N, C, H*W) by hand)."""
    from gold_yolo.layers import norm

    rng = np.random.default_rng(5)
    x = (rng.standard_normal((3, 5, 7, 4)) * 2 - 0.5).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    w = rng.standard_normal(5).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    got = {}
    for cpu in (True, False):
        xv, wv, bv = jt.array(x), jt.array(w), jt.array(b)
        f = norm._TrainNorm()
        if cpu:
            y, mean, var = f(xv, wv, bv, 1e-3)
        else:
            orig, norm._cpu_kernels = norm._cpu_kernels, lambda *a: False
            try:
                y, mean, var = f(xv, wv, bv, 1e-3)
            finally:
                norm._cpu_kernels = orig
        assert f.cpu is cpu
        grads = jt.grad((y * jt.array(gy)).sum(), [xv, wv, bv])
        got[cpu] = [t.numpy() for t in (y, mean, var, *grads)]
    for name, k, g in zip(("y", "mean", "var", "gx", "gw", "gb"), got[True], got[False]):
        assert k.dtype == g.dtype and k.shape == g.shape, name
        tol = 1e-12 if k.dtype == np.float64 else 2e-6
        np.testing.assert_allclose(k, g, rtol=tol, atol=tol * 4, err_msg=name)


_DIGEST = """
import hashlib, numpy as np
from gold_yolo.layers.norm import BatchNorm2d, jt
rng = np.random.default_rng(7)
x = jt.array((rng.standard_normal((2, 24, 64, 48)) * 2 + 0.5).astype(np.float32))
gy = jt.array(rng.standard_normal((2, 24, 64, 48)).astype(np.float32))
bn = BatchNorm2d(24)
bn.train()
y = bn(x)
grads = jt.grad((y * gy).sum(), [x, bn.weight, bn.bias])
h = hashlib.sha256()
for v in [y, bn.running_mean, bn.running_var, *grads]:
    h.update(v.numpy().tobytes())
print("digest", h.hexdigest())
"""


def test_cpu_kernels_do_not_depend_on_the_thread_count():
    """The kernels split channels over OpenMP threads; each channel's float64 sums stay in
    one thread, so 1, 2 or 3 threads give the same bits (a split reduction would not)."""
    import os
    import subprocess
    import sys

    digests = set()
    for threads in ("1", "2", "3"):
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=threads)
        r = subprocess.run(
            [sys.executable, "-c", _DIGEST],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        digests.add(next(ln for ln in r.stdout.splitlines() if ln.startswith("digest")))
    assert len(digests) == 1, digests
