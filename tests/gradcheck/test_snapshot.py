"""gradcheck.snapshot: lazy before/after comparison, gradient summaries, one backward for extras."""

from __future__ import annotations

import math

import numpy as np

from gradcheck import runtime
from gradcheck.snapshot import GradSummary, Snapshot, grads_alongside

jt = runtime.import_jittor()


def test_snapshot_tells_changed_and_delta_norm():
    a = jt.array(np.array([1.0, 2.0, 3.0], np.float32))
    b = jt.array(np.array([4.0, 5.0], np.float32))
    n = jt.array(np.array([1.0, 1.0], np.float32))
    snap = Snapshot([a, b, n])
    a.update(a * 2)
    n.update(n * float("nan"))
    ca, cb, cn = snap.compare()
    assert ca.changed and math.isclose(ca.delta_norm, math.sqrt(14.0), rel_tol=1e-12)
    assert math.isclose(ca.before_norm, math.sqrt(14.0), rel_tol=1e-12)
    assert not cb.changed and cb.delta_norm == 0.0
    assert math.isclose(cb.before_norm, math.sqrt(41.0), rel_tol=1e-12)
    assert cn.changed  # NaN != NaN, as np.array_equal says


def test_snapshot_of_an_int_buffer():
    c = jt.array(np.array([3], np.int64))
    snap = Snapshot([c])
    c.update(c + 1)
    (ch,) = snap.compare()
    assert ch.changed and ch.delta_norm == 1.0


def test_grad_summary_status_and_norm():
    gs = [
        jt.zeros((3,)),
        jt.array(np.array([3.0, -4.0], np.float32)),
        jt.array(np.array([1.0, np.inf], np.float32)),
        jt.array(np.array([np.nan], np.float32)),
    ]
    summ = GradSummary(gs)
    jt.sync(summ.vars)
    res = summ.results()
    assert [s for s, _ in res] == ["zero", "nonzero", "nonfinite", "nonfinite"]
    assert res[0][1] == 0.0 and res[1][1] == 5.0 and math.isinf(res[2][1]) and math.isnan(res[3][1])


def test_grad_summary_sees_the_smallest_and_largest_float32():
    # the status comes from the float64 norm alone: the smallest normal float32 squared must
    # not underflow to zero, nor the largest float32 squared overflow to inf.  (Denormals are
    # left out: once a fast-math kernel has set flush-to-zero, the CPU reads them as 0 in
    # every comparison too.)
    tiny = np.array([0.0, 1.1754944e-38], np.float32)  # the smallest normal float32
    huge = np.full((1000,), 3.4028235e38, np.float32)  # the largest float32
    res = GradSummary([jt.array(tiny), jt.array(huge)])
    jt.sync(res.vars)
    (s_tiny, n_tiny), (s_huge, n_huge) = res.results()
    assert s_tiny == "nonzero" and n_tiny > 0
    assert s_huge == "nonzero" and math.isfinite(n_huge)


def test_grad_summary_kernel_chunks_and_mixed_dtypes():
    """Norms are numpy's float64 ones, in order, across several kernels (300 float32
    gradients of any shape) mixed with float64, float16 and empty ones that take Jittor ops."""
    rng = np.random.default_rng(1)
    vals = [
        rng.standard_normal(tuple(rng.integers(1, 6, size=int(rng.integers(1, 4))))).astype(
            np.float32
        )
        for _ in range(300)
    ]
    vals[7][...] = 0.0
    odd = [
        np.array([0.25, -2.0], np.float64),
        np.array([3.0, 4.0], np.float16),
        np.zeros((0, 3), np.float32),
        np.array([np.nan, 1.0], np.float32),
    ]
    allv = vals[:100] + odd + vals[100:]
    summ = GradSummary([jt.array(v) for v in allv])
    jt.sync(summ.vars)
    got = summ.results()
    assert len(got) == len(allv)
    for k, (v, (status, norm)) in enumerate(zip(allv, got)):
        want = float(np.linalg.norm(v.astype(np.float64).ravel()))
        if np.isnan(want):
            assert status == "nonfinite" and math.isnan(norm), k
            continue
        assert math.isclose(norm, want, rel_tol=1e-12, abs_tol=0.0), (k, norm, want)
        assert status == ("nonzero" if want > 0 else "zero"), k


def test_grads_alongside_serves_extras_from_the_optimizer_backward():
    w = jt.array(np.array([1.0, 2.0], np.float32))
    v = jt.array(np.array([3.0], np.float32))
    x = jt.array(np.array([5.0, 7.0], np.float32))
    opt = jt.optim.SGD([w], lr=0.1)
    real = jt.grad
    loss = (w * x * v).sum()
    with grads_alongside([v]) as got:
        opt.backward(loss)
    assert jt.grad is real
    assert len(got) == 1
    np.testing.assert_allclose(got[0].numpy(), [5.0 + 14.0])  # d/dv = sum(w*x)
    np.testing.assert_allclose(w.opt_grad(opt).numpy(), [15.0, 21.0])  # d/dw = x*v


def test_grads_alongside_without_extras_changes_nothing():
    w = jt.array(np.array([2.0], np.float32))
    opt = jt.optim.SGD([w], lr=0.1)
    with grads_alongside([]) as got:
        opt.backward((w * w).sum())
    assert got == []
    np.testing.assert_allclose(w.opt_grad(opt).numpy(), [4.0])


def test_snapshot_fused_kernel_edge_values_and_chunks():
    """The float32 kernel's "changed" is np.array_equal's (NaN staying NaN, 0.0 -> -0.0 and
    inf staying inf are no change; turning inf is one), its norms are numpy's float64 ones,
    and order survives chunking (300 Vars: several kernels) and a mix with int / float64."""
    rng = np.random.default_rng(0)
    vals = [rng.standard_normal(int(rng.integers(1, 50))).astype(np.float32) for _ in range(300)]
    vs = [jt.array(v) for v in vals]
    odd = {
        "nan": jt.array(np.array([np.nan, 1.0], np.float32)),
        "zero": jt.array(np.array([0.0, 2.0], np.float32)),
        "inf": jt.array(np.array([np.inf, 1.0], np.float32)),
        "to_inf": jt.array(np.array([3.0], np.float32)),
        "int": jt.array(np.array([1, 2], np.int32)),
        "f64": jt.array(np.array([0.5], np.float64)),
    }
    allv = vs[:150] + list(odd.values()) + vs[150:]
    snap = Snapshot(allv)
    for k, v in enumerate(vs):
        if k % 3 == 0:
            v.update(v * 1.5)
    odd["nan"].update(jt.array(np.array([np.nan, 1.0], np.float32)) * 1.0)
    odd["zero"].update(jt.array(np.array([-0.0, 4.0], np.float32)))
    odd["to_inf"].update(odd["to_inf"] * float("inf"))
    odd["f64"].update(odd["f64"] + 1.0)
    changes = snap.compare()
    got = dict(zip(odd, changes[150 : 150 + len(odd)]))
    assert not got["nan"].changed and not got["inf"].changed
    assert got["zero"].changed and math.isclose(got["zero"].delta_norm, 2.0)  # the 2.0 -> 4.0
    assert got["to_inf"].changed and got["f64"].changed and not got["int"].changed
    for k, (v, ch) in enumerate(zip(vals, changes[:150] + changes[150 + len(odd) :])):
        assert ch.changed == (k % 3 == 0), k
        assert math.isclose(ch.before_norm, np.linalg.norm(v.astype(np.float64)), rel_tol=1e-12)
        want = np.linalg.norm(v.astype(np.float64) * 0.5) if k % 3 == 0 else 0.0
        assert math.isclose(ch.delta_norm, want, rel_tol=1e-6, abs_tol=1e-30), k


def test_snapshot_zero_sign_alone_is_no_change():
    z = jt.array(np.array([0.0, 1.0], np.float32))
    snap = Snapshot([z])
    z.update(jt.array(np.array([-0.0, 1.0], np.float32)))
    (ch,) = snap.compare()
    assert not ch.changed and ch.delta_norm == 0.0
