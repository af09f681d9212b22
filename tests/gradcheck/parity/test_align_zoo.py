"""``gradcheck align`` on Jittor's own zoo (``jittor.models``) against torchvision-style
originals (tests/fixtures/align_zoo_pairs.py): faithful pairs align, float64 rerun included, and a
bug planted at a known module is named there (issue 23: the float64 rerun died in MKL's
float32-only matmul on Jittor's ResNet).  Needs the ``torch`` extra."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from fixtures import align_zoo_pairs as zp, parity_pairs as pp
from gradcheck.parity import align as align_mod, float64
from gradcheck.parity.across import NameMap
from gradcheck.parity.alignment import Alignment, Tolerances
from gradcheck.parity.records import Leak

# float64 reruns of convolutions and matmuls: see tests/conftest.py::_fusion
pytestmark = pytest.mark.fused

jt = zp.jt
ALWAYS = Tolerances(float64_mode="always")


def _align(name, bug="none", tolerances=ALWAYS):
    name_map = NameMap(zp.NAME_MAP_DENSENET) if name.startswith("densenet") else None
    return align_mod.align(
        zp.port(name, bug), zp.original(name), name_map=name_map, tolerances=tolerances
    )


def _check_faithful(res, name):
    assert res.aligned, res.verdict
    # the only warning allowed: float32 rows the float64 rerun explains (VGG at 224x224:
    # Jittor's float32 gradients through its BatchNorms are ~1e-2 off where torch's are
    # ~1e-6, and the float64 rerun agrees with torch's float64 to ~1e-13)
    assert all("agree when the port is rerun in float64" in w for w in res.verdict.warnings)
    assert res.first_divergence is None and res.first_backward_divergence is None
    k = res.keys
    assert (k.shape_mismatch, k.original_only, k.port_only) == ([], [], [])
    assert k.copied == len(zp.torch_model(name).state_dict()) - k.known_torch_only
    # the float64 rerun ran to the end, float64 all the way, and agrees with the original's
    # far below float32's rounding (a float32 leak, even one no dtype shows, such as Jittor's
    # float32 1/N in a mean's backward, puts the gradients 1e-9..1e-7 off)
    f = res.float64_rerun
    assert f is not None and f.error is None and f.float32_leaks == [], f
    assert f.float64_only == 0 and res.first_divergence_f64 is None
    assert res.loss.rel_f64 < 1e-9
    compared = [m for m in res.modules if m.rel_f64 is not None]
    assert len(compared) >= 0.9 * sum(m.ok is not None for m in res.modules)
    assert max(m.rel_f64 for m in compared) < 1e-10
    assert all(p.grad_ok_f64 for p in res.params if p.grad_ok_f64 is not None)
    big = [
        p.grad_rel_f64
        for p in res.params
        if (p.grad_norm or 0) > 1e-3 * max((q.grad_norm or 0) for q in res.params)
    ]
    assert big and np.median(big) < 1e-11


# ------------------------------------------------------------------ faithful pairs
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "vgg11_bn", "densenet121"])
def test_faithful_zoo_port_aligns_in_float32_and_float64(name):
    _check_faithful(_align(name), name)


def test_densenet_layers_differ_in_what_they_return():
    """Without the rename rule, torchvision's _DenseLayer (new features) and Jittor's (new
    features concatenated to the input) differ in output shape: reported, not hidden."""
    res = align_mod.align(
        zp.port("densenet_small"),
        zp.original("densenet_small"),
        tolerances=Tolerances(float64_mode="never"),
    )
    assert not res.aligned
    assert res.first_divergence.module == "features.denseblock1.denselayer1"
    assert res.first_divergence.note.startswith("output shape")
    assert res.loss.ok and all(p.ok for p in res.params)


# ------------------------------------------------------------------ planted bugs
def _before_agree(res, module, call=0):
    order = [(m.original_module, m.call) for m in res.modules]
    for m in res.modules[: order.index((module, call))]:
        assert m.ok is not False, m


def test_resnet18_lost_final_relu_is_named():
    """layer2.1's final ReLU removed: the second call of layer2.1.relu never happens."""
    res = _align("resnet18", "final_relu", Tolerances())
    assert not res.aligned
    fd = res.first_divergence
    assert (fd.module, fd.port_module) == ("layer2.1.relu", "layer2.1.relu")
    assert "called 1 time(s) in the port" in fd.note
    _before_agree(res, "layer2.1.relu", call=1)
    # float64 does not explain it away; where float64 can compare, layer2.1 differs first
    f = res.float64_rerun
    assert f is not None and f.explained == 0 and f.float32_leaks == []
    assert res.first_divergence_f64.module == "layer2.1"


def test_mobilenet_v2_lost_residual_is_named():
    res = _align("mobilenet_v2", "no_residual", Tolerances())
    assert not res.aligned
    assert res.first_divergence.module == "features.3"  # its children all agree
    _before_agree(res, "features.3")
    assert res.float64_rerun.explained == 0
    assert res.first_divergence_f64.module == "features.3"


def test_vgg11_bn_wrong_eps_is_named():
    res = _align("vgg11_bn", "bn_eps", Tolerances())
    assert not res.aligned
    assert [(b.module, b.setting) for b in res.bn_mismatch] == [("features.5", "eps")]
    assert res.first_divergence.module == "features.5"
    _before_agree(res, "features.5")
    assert res.first_divergence_f64.module == "features.5"


# ------------------------------------------------------------ float32 in the float64 rerun
def test_float32_cast_in_the_port_is_named_not_fatal():
    """Jittor's ResNet with float32() where it has float_auto(): the issue's crash (MKL's
    float32-only matmul on fc's float32 input and float64 weight).  The rerun now runs on
    Jittor's own kernels and names where the float32 came in."""
    res = _align("resnet18", "float32_cast")
    assert res.aligned, res.verdict  # in float32 the cast changes nothing
    f = res.float64_rerun
    assert f.error is None
    assert f.float32_leaks[0] == Leak(
        module="fc", type="Linear", at="input", dtype="float32", after="avgpool"
    )
    assert len(f.float32_leaks) == 1  # the loss after fc: the leak spreading
    assert Alignment.from_dict(json.loads(res.to_json())).float64_rerun == f  # Leak records
    assert any("fc [Linear] got a float32 input after avgpool" in w for w in res.verdict.warnings)
    by = {m.module: m for m in res.modules}
    assert by["avgpool"].rel_f64 < 1e-12 < by["fc"].rel_f64  # float32 rounding from fc


def test_failed_float64_rerun_is_a_warning_with_its_reason():
    """A port that fails in float64 only: the float32 verdict stands, the error is kept."""
    wl = pp.port("none")
    loss = wl.loss

    def float32_only(model, batch):
        if str(batch[0].dtype) == "float64":
            raise RuntimeError("float32 only, said the port")
        return loss(model, batch)

    wl.loss = float32_only
    before = {n: (str(v.dtype), v.numpy().copy()) for n, v in wl.model.state_dict().items()}
    res = align_mod.align(wl, pp.original(), tolerances=ALWAYS)
    assert res.aligned
    assert "float32 only, said the port" in res.float64_rerun.error
    back = Alignment.from_dict(json.loads(res.to_json()))
    assert back.float64_rerun == res.float64_rerun and back.to_json() == res.to_json()
    assert any("float64 rerun failed" in w for w in res.verdict.warnings)
    assert res.first_divergence_f64 is None
    for n, v in wl.model.state_dict().items():  # dtypes back (values: one SGD step on)
        assert str(v.dtype) == before[n][0], n


def test_output_gradient_of_a_module_that_hands_back_its_input():
    """Jittor's Dropout(p=0) returns ``x.to(x.dtype)``: the same Var under a new handle, for
    which a second place in jt.grad's list used to get zeros."""
    from gradcheck.parity.hooks import JittorOutputs

    jt.set_global_seed(0)
    model = jt.nn.Sequential(
        jt.nn.Linear(4, 3), jt.nn.ReLU(), jt.nn.Dropout(0.0), jt.nn.Linear(3, 2)
    )
    model.train()
    rec = JittorOutputs(model, jt)
    with rec:
        loss = model(jt.array(np.random.RandomState(0).rand(2, 4).astype(np.float32))).sum()
        rec.output_grads(loss)
    rec.fetch()
    relu, drop = rec.grads[("1", 0)][0], rec.grads[("2", 0)][0]
    assert np.abs(relu).max() > 0 and np.array_equal(relu, drop)


def test_float64_mean_backward_is_float64():
    """Jittor's mean backward scales by a float32 1/N (N = 7 here); the rerun's is exact."""
    x64 = np.random.RandomState(0).rand(7)
    for means in (False, True):
        with jt.flag_scope(auto_convert_64_to_32=0):
            ctx = float64.float64_means(jt) if means else float64.float64_scalars(jt)
            with ctx:
                x = jt.array(x64)
                g = jt.grad(jt.mean(x) + x.mean() + x.reduce("mean", [0]), [x])[0].numpy()
        assert g.dtype == np.float64
        if means:
            assert np.allclose(g, 3 / 7, rtol=1e-15, atol=0)
        else:  # what the means fix: float32's 1/7
            assert np.allclose(g, 3 * float(np.float32(1 / 7))) and not np.allclose(
                g, 3 / 7, rtol=1e-12, atol=0
            )


def test_model_vars_reaches_private_and_contained_vars():
    class M(jt.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = jt.nn.Linear(2, 2)
            self._scale = jt.array(np.float32(0.5))
            self.table = {"a": [jt.ones(3), jt.ones(3).int32()], "m": jt.nn.Linear(2, 1)}

        def execute(self, x):
            return self.lin(x) * self._scale

    m = M()
    found = {id(v) for v in float64.model_vars(m, jt)}
    want = [
        m.lin.weight,
        m.lin.bias,
        m._scale,
        m.table["a"][0],
        m.table["m"].weight,
        m.table["m"].bias,
    ]
    assert found == {id(v) for v in want}  # the int32 Var is not a float


def test_brief_keeps_what_failed():
    msg = (
        "\x1b[38;5;1m[f 1202 22:06:59.636300 44 executor.cc:686] \nExecute fused operator"
        "(338/566) failed.[JIT Source]: /root/.cache/x.cc\n[OP TYPE]: fused_op:( "
        "broadcast_to, broadcast_to, binary.multiply, reduce.add,)\n[Input]: float64[10,"
        "512,]fc.weight, float32[2,512,], \n[Output]: float64[2,10,], \n[Async Backtrace]: "
        "not found\n[Reason]: \x1b[38;5;1m[f 1202 22:06:59.636090 44 mkl_matmul_op.cc:27] "
        "Check failed: a->dtype().dsize() == 4  Something wrong... Could you please report "
        "this issue?\n support float32 only now.\x1b[m\x1b[m\n**********\nAsync error was "
        "detected."
    )
    text = float64._brief(msg)
    assert text.startswith("Check failed: a->dtype().dsize() == 4 support float32 only now.")
    assert "(mkl_matmul_op.cc:27)" in text and "float32[2,512,]" in text
    assert "\x1b" not in text and "Async" not in text and "report this issue" not in text


def test_jittor_recorder_fetches_one_array_per_var(monkeypatch):
    """A Var that three modules return is fetched once, into one array they share, with the
    Var's value; gradients too.  Fetching lets each Var go as it goes (Jittor's freed blocks
    handed back on the way: here after every array)."""
    from gradcheck.parity import hooks

    monkeypatch.setattr(hooks, "RELEASE_BYTES", 0)
    jt.set_global_seed(0)
    model = jt.nn.Sequential(jt.nn.Sequential(jt.nn.Linear(5, 4)), jt.nn.Tanh())
    x = jt.array(np.random.RandomState(0).rand(3, 5).astype(np.float32))
    rec = hooks.JittorOutputs(model, jt)
    with rec:
        loss = model(x).sqr().sum()
        rec.output_grads(loss)
    rec.fetch()
    y = rec.out["0.0"][0][0]
    assert y is rec.out["0"][0][0] and rec.out[""][0][0] is not y
    assert np.allclose(y, model[0](x).numpy(), rtol=1e-6)
    assert rec.grads[("0.0", 0)][0] is rec.grads[("0", 0)][0]
    want = 2 * np.tanh(y) * (1 - np.tanh(y) ** 2)
    assert np.allclose(rec.grads[("0", 0)][0], want, rtol=1e-5)


def test_jittor_recorder_with_nothing_to_fetch():
    """A model whose modules return no Var (here: a number) records nothing, and fetching
    that is no error."""
    from gradcheck.parity import hooks

    class Count(jt.nn.Module):
        def execute(self, x):
            return 3

    rec = hooks.JittorOutputs(Count(), jt)
    with rec:
        rec.model(jt.array([1.0]))
    rec.fetch()
    assert rec.out == {"": [[]]} and rec.grads == {}
