"""gold_yolo Conv2d: its oneDNN CPU forward gives Jittor's convolution, to float32 rounding."""

from __future__ import annotations

import numpy as np
import pytest
from jittor import nn

from gold_yolo.layers import conv
from gold_yolo.layers.conv import Conv2d, jt

# (in, out, kernel, stride, padding, dilation, groups, bias): every geometry Gold-YOLO has
# (3x3 and 1x1, stride 1 and 2, the stem's 3 input channels, depthwise), and dilation
GEOMETRIES = [
    (3, 16, 3, 2, 1, 1, 1, True),
    (16, 16, 1, 1, 0, 1, 1, False),
    (16, 24, 3, 1, 1, 1, 1, True),
    (16, 16, 3, 1, 1, 1, 16, True),
    (8, 16, 3, 1, 2, 2, 1, False),
    (16, 8, 1, 2, 0, 1, 1, True),
    (12, 24, 5, 1, 2, 1, 3, False),
]


def _pair(geometry, seed):
    ci, co, k, s, p, d, g, b = geometry
    ref = nn.Conv2d(ci, co, k, stride=s, padding=p, dilation=d, groups=g, bias=b)
    ours = Conv2d(ci, co, k, stride=s, padding=p, dilation=d, groups=g, bias=b)
    ours.load_state_dict(ref.state_dict())
    x = np.random.default_rng(seed).standard_normal((2, ci, 19, 17)).astype(np.float32)
    return ref, ours, x


def _run(model, x, dtype="float32"):
    xv = jt.array(x.astype(dtype))
    y = model(xv)
    gy = jt.array(np.cos(np.arange(y.numel())).reshape(y.shape).astype(dtype))
    wrt = [xv, model.weight] + ([model.bias] if model.bias is not None else [])
    return [y.numpy()] + [g.numpy() for g in jt.grad((y * gy).sum(), wrt)]


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_onednn_forward_equals_jittor_convolution(geometry, monkeypatch):
    """Output and gradients (input, weight, bias) agree with ``jittor.nn.Conv2d`` to float32
    rounding, and the oneDNN path is the one that ran."""
    ref, ours, x = _pair(geometry, seed=len(str(geometry)))
    calls = []
    apply = conv._OneDnnConv.apply
    monkeypatch.setattr(
        conv._OneDnnConv, "apply", classmethod(lambda cls, *a: calls.append(a[2:]) or apply(*a))
    )
    want, got = _run(ref, x), _run(ours, x)
    assert calls, "the oneDNN forward did not run"
    assert want[0].shape == got[0].shape
    for a, b in zip(want, got):
        scale = np.abs(a).max()
        np.testing.assert_allclose(b, a, rtol=0, atol=2e-6 * scale)


def test_other_dtypes_take_jittor_convolution_unchanged(monkeypatch):
    """float64 (``gradcheck align``'s rerun) never reaches the float32 kernel: Jittor's own
    convolution runs, and gives exactly what ``jittor.nn.Conv2d`` gives."""
    ref, ours, x = _pair(GEOMETRIES[2], seed=1)
    monkeypatch.setattr(conv._OneDnnConv, "apply", None)  # would fail if called
    with jt.flag_scope(auto_convert_64_to_32=0):
        ref64, ours64 = ref.float64(), ours.float64()
        for a, b in zip(_run(ref64, x, "float64"), _run(ours64, x, "float64")):
            assert a.dtype == np.float64
            np.testing.assert_array_equal(a, b)


def test_backward_twice_on_one_graph():
    """``gradcheck align`` asks for d loss / d module outputs before the optimizer's backward:
    the saved inputs must serve a second backward."""
    _, ours, x = _pair(GEOMETRIES[0], seed=2)
    xv = jt.array(x)
    loss = (ours(xv) ** 2).sum()
    first = jt.grad(loss, [ours.weight], retain_graph=True)[0].numpy()
    second = jt.grad(loss, [ours.weight])[0].numpy()
    np.testing.assert_array_equal(first, second)


def test_one_compiled_kernel_serves_every_geometry(monkeypatch):
    """The geometry is the op's run-time ``data``, never its source: Jittor compiles the
    oneDNN forward once (about 4 s of g++ each on a cold cache), not once per geometry."""
    sources, code = set(), jt.code

    def spy(*args, **kwargs):
        sources.add((kwargs.get("cpu_header"), kwargs.get("cpu_src")))
        return code(*args, **kwargs)

    monkeypatch.setattr(conv.jt, "code", spy)
    for geometry in GEOMETRIES:
        _, ours, x = _pair(geometry, seed=1)
        ours(jt.array(x)).sync()
    assert len(sources) == 1
