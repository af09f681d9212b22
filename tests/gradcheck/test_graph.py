"""gradcheck.graph: the deep inventory walk and the zero-gradient proofs, on hand-built graphs
whose truth is plain algebra."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import graph, runtime

jt = runtime.import_jittor()
nn = jt.nn


def _rand(*shape, seed=0):
    return jt.array(np.random.default_rng(seed).normal(size=shape).astype("float32"))


def _proofs(loss, targets, zero_valued):
    reach, _, view = graph.analyse({"L": loss}, targets, keep=True)
    return graph.zero_proofs(view, "L", set(reach["L"]), zero_valued)


def test_a_zero_weight_after_it_blocks_and_is_named():
    a, w0 = _rand(4, 3), jt.zeros((3, 2))
    loss = ((_rand(5, 4, seed=1) @ a) @ w0).sum()
    assert _proofs(loss, [a, w0], {1}) == {0: ("blocked", [1])}


def test_a_zero_bias_blocks_nothing():
    a, b0 = _rand(4, 3), jt.zeros((3,))
    loss = ((_rand(5, 4, seed=1) @ a) + b0).sum()  # an add passes the gradient through
    assert _proofs(loss, [a, b0], {1}) == {}


def test_a_zero_weight_on_one_of_two_paths_proves_nothing():
    a, w0, w1 = _rand(4, 3), jt.zeros((3, 2)), _rand(3, 2, seed=2)
    h = _rand(5, 4, seed=1) @ a
    loss = (h @ w0).sum() + (h @ w1).sum()
    assert 0 not in _proofs(loss, [a, w0, w1], {1})


def test_an_empty_selection_on_every_path_is_no_data():
    e = _rand(4, 3)
    rows = jt.array(np.zeros((0,), "int32"))
    loss = (_rand(5, 4, seed=1)[rows] @ e).sum() + _rand(2, seed=3).sum()
    assert _proofs(loss, [e], set()) == {0: ("empty", None)}


def test_a_custom_function_blocks_only_on_a_zero_matrix():
    class Scale(jt.Function):  # y = x * w (w a row), its own gradient
        def execute(self, x, w):
            self.x, self.w = x, w
            return x * w

        def grad(self, g):
            return g * self.w, (g * self.x).sum(0)

    x = _rand(4, 3)
    p = _rand(3, 3, seed=4)
    row0, mat0 = jt.zeros((3,)), jt.zeros((3, 3))
    loss_row = Scale.apply(x @ p, row0).sum()  # 1-D zero input: opaque, not proven
    assert _proofs(loss_row, [p, row0], {1}) == {}
    loss_mat = (Scale.apply(x @ p, jt.ones((3,))) @ mat0).sum()  # a zero matrix after it
    assert _proofs(loss_mat, [p, mat0], {1}) == {0: ("blocked", [1])}


class _Lists(nn.Module):
    def __init__(self):
        self.blocks = [nn.Linear(2, 2), nn.Linear(2, 2)]
        self.heads = {"cls": nn.Linear(2, 1)}
        self.scales = [jt.ones((2,))]
        self.seq = nn.Sequential(nn.Linear(2, 2))
        self._private = [nn.Linear(2, 2)]


def test_walk_names_plain_lists_and_dicts_and_skips_private():
    names = [name for name, *_ in graph.walk(_Lists())]
    assert sorted(names) == [
        "blocks.0.bias",
        "blocks.0.weight",
        "blocks.1.bias",
        "blocks.1.weight",
        "heads.cls.bias",
        "heads.cls.weight",
        "scales.0",
        "seq.0.bias",
        "seq.0.weight",
    ]


def test_inventory_marks_what_parameters_misses():
    model = _Lists()
    params, _ = graph.inventory(model)
    tracked = {e.name for e in params if e.tracked}
    assert tracked == {"seq.0.weight", "seq.0.bias"}
    assert {e.name for e in params} - tracked == {
        "scales.0",
        "blocks.0.weight",
        "blocks.0.bias",
        "blocks.1.weight",
        "blocks.1.bias",
        "heads.cls.weight",
        "heads.cls.bias",
    }


@pytest.mark.parametrize(
    "shape, empty",
    [("[0,3,]", True), ("[3,0,]", True), ("[10,]", False), ("[2,10,]", False), ("[20,3,]", False)],
)
def test_empty_shape_pattern(shape, empty):
    assert bool(graph._EMPTY.search(f"Var(1:1:1:1:i1:o1:s0:n0:g1,float32,,0){shape}")) is empty


@pytest.mark.parametrize("op", ["round", "floor", "ceil"])
def test_a_path_only_through_rounding_reaches_nothing(op):
    """Jittor's UnaryOp::grad has no gradient for rounding: jt.grad warns and returns zeros,
    so the graph walk must not pass through it either (found by the oracle)."""
    w = _rand(3)
    loss = getattr(jt, op)(w * 3).sum() + _rand(2, seed=5).sum()
    reach, _ = graph.analyse({"L": loss}, [w])
    assert reach["L"] == set()
    with jt.log_capture_scope(log_v=0, log_silent=1) as logs:
        w.name(f"rounded_{op}")
        jt.grad(loss, [w])
    assert any("doesn't have gradient" in str(log.get("msg")) for log in logs)
