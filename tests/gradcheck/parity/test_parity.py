"""Port parity: the torch probe, compare --across and align, on tiny original/port pairs
written here (tests/fixtures/parity_pairs.py).  Needs the ``torch`` extra."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

pytest.importorskip("torch")

from fixtures import FIXTURES, parity_pairs as pp
from gradcheck import api
from gradcheck.parity import align as align_mod
from gradcheck.parity.across import NameMap, compare_across, load_name_map, parse_rules
from gradcheck.parity.records import FrozenDiff, ShapeMismatch
from gradcheck.report import Report

# float64 reruns of align: see tests/conftest.py::_fusion
pytestmark = pytest.mark.fused


@pytest.fixture(scope="module")
def results():
    """Each planted bug aligned once against the original (2 steps)."""
    return {bug: align_mod.align(pp.port(bug), pp.original(), steps=2) for bug in pp.BUGS}


# ------------------------------------------------------------------ align: each bug found
def test_faithful_port_aligns(results):
    res = results["none"]
    assert res.aligned, res.verdict.reasons
    assert res.first_divergence is None and res.first_backward_divergence is None
    assert all(m.grad_ok for m in res.modules if m.grad_ok is not None)
    assert sum(m.grad_ok is not None for m in res.modules) >= 10  # d loss/d output, both sides
    assert res.calibrated and res.keys.copied == 16 and res.keys.known_torch_only == 2
    assert all(p.ok and p.value_ok for p in res.params)
    # the calibration is real: the original's own float32 noise, above zero
    assert all(p.noise_floor is not None for p in res.params)
    assert any(p.noise_floor > 0 for p in res.params)


@pytest.mark.parametrize(
    "bug, first",
    [
        ("skip_layer", "blocks.1.conv"),  # the first module of the skipped layer
        ("activation", "blocks.1.act"),
        ("no_residual", "blocks.0"),  # its children agree; the block's sum does not
        ("transposed", "aux"),
    ],
)
def test_first_diverging_module_is_named(results, bug, first):
    res = results[bug]
    assert not res.aligned
    assert res.first_divergence.module == first
    assert res.first_divergence.port_module == first
    # every module that runs before it agrees
    order = [m.original_module for m in res.modules]
    for m in res.modules[: order.index(first)]:
        assert m.ok in (True, None), m


def test_skipped_layer_is_reported_as_never_called(results):
    res = results["skip_layer"]
    assert res.first_divergence.note == "never called in the port"
    bad = {p.name for p in res.params if not p.ok}
    assert {"blocks.1.conv.weight", "blocks.1.bn.weight", "blocks.1.bn.bias"} <= bad


def test_bn_eps_mismatch(results):
    res = results["bn_eps"]
    assert not res.aligned
    assert [(b.module, b.setting, b.port, b.original) for b in res.bn_mismatch] == [
        ("blocks.0.bn", "eps", 0.1, 1e-5)
    ]
    assert res.first_divergence.module == "blocks.0.bn"


def test_frozen_by_mistake(results):
    res = results["frozen"]
    assert not res.aligned
    assert res.membership.frozen_diff == [
        FrozenDiff(name="fc.weight", original_name="fc.weight", port="frozen", original="trainable")
    ]
    # the forward is untouched, and so is d loss / d every output; the gradient is not
    assert res.first_divergence is None and res.first_backward_divergence is None
    fc = next(p for p in res.params if p.name == "fc.weight")
    assert not fc.ok and fc.grad_rel == pytest.approx(1.0)
    assert [p.name for p in res.params if not p.ok] == ["fc.weight"]


def test_transposed_linear_weight(results):
    res = results["transposed"]
    assert res.keys.shape_mismatch == [
        ShapeMismatch(
            name="aux.weight",
            original_name="aux.weight",
            port=[6, 4],
            original=[4, 6],
            transposed=True,
        )
    ]
    assert any("transposed" in r for r in res.verdict.reasons)


def test_align_pairs_renamed_modules_through_the_map():
    res = align_mod.align(pp.port("renamed"), pp.original(), steps=1)
    assert not res.aligned and len(res.keys.original_only) == 10  # 6 params + 4 stats
    rules = parse_rules(r"^blocks(?=\.|$) -> body")
    res = align_mod.align(pp.port("renamed"), pp.original(), name_map=rules, steps=1)
    assert res.aligned, res.verdict.reasons
    assert {m.module for m in res.modules} >= {"body", "body.1.act"}
    assert any(
        p.name == "body.0.conv.weight" and p.original_name == "blocks.0.conv.weight"
        for p in res.params
    )


def test_align_json_schema(results, tmp_path):
    d = json.loads(results["activation"].to_json())
    assert d["schema_version"] == 1 and d["kind"] == "align"
    assert d["verdict"]["result"] == "not_aligned"
    assert set(d["first_divergence"]) >= {"module", "port_module", "rel"}
    assert d["loss"]["terms"][0]["name"] == "ce"
    p = d["params"][0]
    assert set(p) >= {"name", "original_name", "grad_rel", "noise_floor", "ok"}
    assert d["modules"][0]["module"] == "stem"
    import io

    from gradcheck import render

    assert render.renderers_for("align") == ("table", "json", "markdown", "html")
    for fmt in render.renderers_for("align"):
        buf = io.StringIO()
        render.get_renderer(fmt).align(results["activation"], buf)
        assert "blocks.1.act" in buf.getvalue()
    render.write_file("html", results["activation"], tmp_path / "a.html", what="align")
    page = (tmp_path / "a.html").read_text()
    # the report page's template: its stylesheet, hero and script
    from gradcheck.render.html import _asset, _css

    assert "blocks.1.act" in page and '<header class="hero fail"' in page
    assert _css() in page and _asset("report.js") in page


def test_align_json_reads_back_as_the_same_records(results):
    """An align result's JSON read back is the same records, and writes the same bytes: the
    rows, the divergences (with and without a note, inf as its text), the float64 rerun."""
    from gradcheck.parity.alignment import Alignment
    from gradcheck.parity.records import Divergence, Float64Rerun, ForwardDivergence, LossRow

    for bug, res in results.items():
        text = res.to_json()
        back = Alignment.from_dict(json.loads(text))
        assert back.to_json() == text, bug
        assert (
            back.aligned,
            back.verdict,
            back.keys,
            back.membership,
            back.bn_mismatch,
            back.float64_rerun,
        ) == (
            res.aligned,
            res.verdict,
            res.keys,
            res.membership,
            res.bn_mismatch,
            res.float64_rerun,
        ), bug
        assert back.params == res.params and back.summary() == res.summary(), bug
        assert isinstance(back.loss, LossRow) and back.loss.terms == res.loss.terms
        assert [type(m) for m in back.modules] == [type(m) for m in res.modules]
        assert back.float64_rerun is None or isinstance(back.float64_rerun, Float64Rerun)
    skip = Alignment.from_dict(json.loads(results["skip_layer"].to_json()))
    assert type(skip.first_divergence) is ForwardDivergence
    assert (skip.first_divergence.note, skip.first_divergence.rel) == (
        "never called in the port",
        "inf",
    )  # as in the file
    fb = Alignment.from_dict(json.loads(results["activation"].to_json()))
    assert fb.first_divergence == results["activation"].first_divergence
    assert type(fb.first_backward_divergence) is Divergence
    assert "note" not in json.loads(results["activation"].to_json())["first_backward_divergence"]


def test_bad_align_json_is_one_clear_error(results):
    from gradcheck.parity.alignment import Alignment
    from gradcheck.report import ReportError

    good = json.loads(results["none"].to_json())
    for change, message in (
        ({"kind": "across"}, "not a gradcheck align result"),
        ({"schema_version": 2}, "schema_version 2"),
        ({"params": [{"name": "a"}]}, "malformed align result"),
        ({"seconds": "soon"}, "seconds is 'soon'"),
    ):
        with pytest.raises(ReportError, match=message):
            Alignment.from_dict({**good, **change})
    modules = [dict(good["modules"][0], call="first")]
    with pytest.raises(ReportError, match="ModuleRow.call"):
        Alignment.from_dict({**good, "modules": modules})


# ------------------------------------------------------------------ the noise floor's samples
def test_one_ulp_moves_every_float_element_by_one_ulp():
    from gradcheck.parity.noise import one_ulp

    # no 0.0: its neighbours are subnormal, equal to 0 once Jittor set flush-to-zero
    x = np.array([1.5, -2.5, 7e-3, 3e-38, 1e6 + 0.25], np.float32)
    y = np.array([1, 2, 3])
    batch = {"x": x, "pair": (x.astype(np.float64), y)}
    out = one_ulp(batch, np.random.RandomState(0))
    for a, b in ((x, out["x"]), (batch["pair"][0], out["pair"][0])):
        assert b.dtype == a.dtype
        up, down = np.nextafter(a, np.inf), np.nextafter(a, -np.inf)
        assert ((b == up) | (b == down)).all() and (b != a).all()
        assert (b == up).any() and (b == down).any()
    assert out["pair"][1] is y
    rows = np.array([[0.0, 3.0, 0.25, 0.5]], np.float32)  # [image, class, x, y]: ids kept
    moved = one_ulp(rows, np.random.RandomState(1))
    assert (moved[0, :2] == rows[0, :2]).all() and (moved[0, 2:] != rows[0, 2:]).all()
    again = one_ulp(batch, np.random.RandomState(0))
    assert np.array_equal(again["x"], out["x"])  # seeded: the same coins


def test_noise_floor_is_the_largest_over_the_samples():
    from gradcheck.parity.alignment import Tolerances

    one = align_mod.align(pp.port("none"), pp.original(), tolerances=Tolerances(noise_samples=0))
    four = align_mod.align(pp.port("none"), pp.original(), tolerances=Tolerances(noise_samples=3))
    assert (one.noise_samples, four.noise_samples) == (0, 3)
    assert four.to_dict()["config"]["noise_samples"] == 3
    floors = [(a.noise_floor, b.noise_floor) for a, b in zip(one.params, four.params)]
    assert all(b >= a for a, b in floors) and any(b > a for a, b in floors)
    assert four.loss.noise_floor >= one.loss.noise_floor
    # the port's own numbers do not depend on the samples
    assert [p.grad_rel for p in one.params] == [p.grad_rel for p in four.params]


# ------------------------------------------------------------------ what the recorders hold
def _nested_torch_model(torch, dtype):
    """Linear inside a Sequential inside the root: one tensor is three modules' output."""
    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(nn.Sequential(nn.Linear(5, 4)), nn.Tanh()).to(dtype)


def _record(model, torch, x, reference=None):
    from gradcheck.parity.hooks import TorchOutputs

    rec = TorchOutputs(model, torch, reference=reference)
    with rec:
        loss = model(x).square().sum()
        rec.output_grads(loss)
    return rec


def test_recorder_holds_one_array_per_tensor():
    """The Linear's output is also its Sequential's: one copy, one gradient, shared; the
    gradients keep the run's own dtype."""
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(np.random.RandomState(0).standard_normal((3, 5)).astype(np.float32))
    rec = _record(_nested_torch_model(torch, torch.float32), torch, x)
    assert rec.out["0.0"][0][0] is rec.out["0"][0][0]
    assert rec.out[""][0][0] is not rec.out["0"][0][0]  # Tanh made a new tensor
    assert rec.grads[("0.0", 0)][0] is rec.grads[("0", 0)][0]
    assert rec.grads[("0", 0)][0].dtype == np.float32
    # the values are the layer's, and d loss / d output that of sum(tanh(y)^2)
    y = rec.out["0.0"][0][0].astype(np.float64)
    want = 2 * np.tanh(y) * (1 - np.tanh(y) ** 2)
    assert np.allclose(rec.grads[("0.0", 0)][0], want, rtol=1e-5)


def test_recorder_against_a_reference_keeps_distances_and_shapes_only():
    """Measured against a float64 record as it runs: the same distances as a full record
    compared afterwards, and no array data kept."""
    from gradcheck.parity.judge import rel_scale

    torch = pytest.importorskip("torch")
    x32 = torch.from_numpy(np.random.RandomState(1).standard_normal((3, 5)).astype(np.float32))
    ref = _record(_nested_torch_model(torch, torch.float64), torch, x32.double())
    full = _record(_nested_torch_model(torch, torch.float32), torch, x32)
    reduced = _record(_nested_torch_model(torch, torch.float32), torch, x32, reference=ref)
    assert set(reduced.out_floor) == {("", 0), ("0", 0), ("0.0", 0), ("1", 0)}
    for name, call, _ in full.order:
        key = (name, call)
        want_out = rel_scale(full.out[name][call][0], ref.out[name][call][0])
        want_grad = rel_scale(full.grads[key][0], ref.grads[key][0])
        assert reduced.out_floor[key] == want_out and want_out > 0
        assert reduced.grad_floor[key] == want_grad and want_grad > 0
        kept = reduced.out[name][call][0]
        assert kept.shape == full.out[name][call][0].shape and kept.strides == (0, 0)
        assert reduced.grads[key][0].strides == (0, 0)
    assert reduced.order == full.order


@pytest.mark.parametrize("bug", ["none", *pp.BUGS[1:3]])
def test_port_measured_against_the_reference_early_judges_the_same(monkeypatch, bug):
    """The port's records are reduced to distances right after the reference ran; the rows
    are those of the port's whole records judged at the end."""
    early = align_mod.align(pp.port(bug), pp.original())
    assert early.calibrated
    monkeypatch.setattr(align_mod._Runs, "measure_port", lambda self: None)
    late = align_mod.align(pp.port(bug), pp.original())
    assert [dataclasses.asdict(m) for m in early.modules] == [
        dataclasses.asdict(m) for m in late.modules
    ]
    assert early.first_divergence == late.first_divergence


@pytest.mark.parametrize("bug", ["none", pp.BUGS[1]])
def test_records_parked_through_the_peak_judge_the_same(monkeypatch, tmp_path, bug):
    """Every array parked on disk (not only the large ones) while the reference steps and
    while the port reruns in float64: the same rows as an alignment that parks nothing,
    and no folder left behind."""
    from gradcheck.enums import Float64Mode
    from gradcheck.parity import parking
    from gradcheck.parity.alignment import Tolerances

    tol = Tolerances(float64_mode=Float64Mode.ALWAYS)
    kept = align_mod.align(pp.port(bug), pp.original(), steps=2, tolerances=tol)
    monkeypatch.setattr(parking, "MIN_BYTES", 0)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    written = []
    save = parking.np.save
    monkeypatch.setattr(
        parking.np, "save", lambda p, *a, **k: written.append(p) or save(p, *a, **k)
    )
    parked = align_mod.align(pp.port(bug), pp.original(), steps=2, tolerances=tol)
    assert written and not list(tmp_path.iterdir())
    assert parked.float64_rerun is not None and parked.float64_rerun.error is None
    for field in ("modules", "params", "loss", "first_divergence", "first_divergence_f64"):
        got, want = getattr(parked, field), getattr(kept, field)
        assert dataclasses.asdict(Wrap(got)) == dataclasses.asdict(Wrap(want)), field


@dataclasses.dataclass
class Wrap:
    """Any field of an Alignment, for ``dataclasses.asdict``."""

    value: object


def test_original_and_reference_draw_the_same_random_numbers():
    """The float64 reference runs on the random draws the original's float32 run gets: a
    dropout mask is then the same on both, and the floor measures float32 noise, not the
    mask (a port with its own masks still differs: a random model is not aligned)."""
    torch = pytest.importorskip("torch")
    from gradcheck.parity.alignment import Tolerances

    class DropLinear(torch.nn.Linear):
        def forward(self, x):
            return super().forward(torch.nn.functional.dropout(x, 0.5, training=True))

    orig = pp.original()
    fc = orig.model.fc
    orig.model.fc = DropLinear(fc.in_features, fc.out_features)
    orig.model.fc.load_state_dict(fc.state_dict())
    orig.optimizer = None  # built again by align, over the new layer
    res = align_mod.align(pp.port("none"), orig, tolerances=Tolerances(noise_samples=0))
    assert res.calibrated
    row = next(m for m in res.modules if m.original_module == "fc")
    assert row.noise_floor is not None and row.noise_floor < 1e-5  # float32 rounding only
    assert row.ok is False and row.rel > 1e-2  # the port's masks are its own
    assert not res.aligned


def test_a_failing_noise_sample_costs_the_samples_not_the_reference():
    """A loss that fails on the moved batches of the noise samples (only there): the
    alignment keeps its float64 reference, with a warning that it has no samples."""
    torch = pytest.importorskip("torch")
    orig = pp.original()
    model, loss = orig.model, orig.loss

    def picky_loss(m, batch):  # a float32 model other than the original's: a sample's copy
        if m is not model and m.fc.weight.dtype == torch.float32:
            raise ValueError("not this batch")
        return loss(m, batch)

    orig.loss = picky_loss
    res = align_mod.align(pp.port("none"), orig)
    assert res.calibrated and res.noise_samples == 0
    assert any(w.startswith("no noise samples") for w in res.verdict.warnings)
    assert res.aligned


@pytest.mark.parametrize("park_all", [False, True])
def test_reference_that_fails_in_its_step_leaves_no_float64_rerun(monkeypatch, park_all):
    """A forward that only works in float32 (here: it reads the float32 original's weight
    from the float64 copy) fails the reference's step: the verdict is the float32 one, with
    a warning, and the float64 rerun of the port -- nothing to compare it with -- is not
    run (it used to crash the alignment).  The port's records, parked for the reference's
    step, are judged whole."""
    torch = pytest.importorskip("torch")
    from gradcheck.enums import Float64Mode
    from gradcheck.parity import parking
    from gradcheck.parity.alignment import Tolerances

    if park_all:
        monkeypatch.setattr(parking, "MIN_BYTES", 0)

    orig = pp.original()
    fc = orig.model.fc
    fc.forward = lambda x: torch.nn.functional.linear(x, fc.weight, fc.bias)  # not copied
    tol = Tolerances(noise_samples=0, float64_mode=Float64Mode.ALWAYS)
    res = align_mod.align(pp.port("none"), orig, tolerances=tol)
    assert not res.calibrated and res.float64_rerun is None
    assert any(w.startswith("no float64 reference") for w in res.verdict.warnings)
    assert res.aligned  # float32 against float32: the faithful port still agrees
    assert all(m.ok and m.rel is not None for m in res.modules)


# ------------------------------------------------------- noise or port bug: the float64 rerun
def test_every_planted_bug_survives_the_float64_rerun(results):
    """A planted bug differs at any precision: the rerun (auto: float32 left rows beyond
    tolerance) explains none of its rows."""
    for bug in pp.BUGS:
        res = results[bug]
        if bug == "none":
            assert res.float64_rerun is None  # nothing for it to explain: not run
            continue
        assert res.float64_rerun is not None and res.float64_rerun.explained == 0, bug
        assert not res.aligned and not any(p.explained for p in res.params)


def test_float64_rerun_explains_noise_the_model_amplifies():
    """The faithful but cancelling port: float32 puts its gradients 1e5x beyond the
    original's noise floor; in float64 they agree to ~1e-10, so they are explained."""
    from gradcheck.parity.alignment import Tolerances

    res = align_mod.align(
        pp.port_cancel(), pp.original_cancel(), tolerances=Tolerances(float64_mode="never")
    )
    assert not res.aligned and res.float64_rerun is None
    res = align_mod.align(pp.port_cancel(), pp.original_cancel())
    assert res.aligned, res.verdict.reasons
    by = {p.name: p for p in res.params}
    for name in ("a", "b", "head.weight"):
        p = by[name]
        assert p.grad_rel > 1e3 * p.noise_floor and p.grad_rel > 1e-2  # float32
        assert p.grad_rel_f64 < 1e-8 and p.explained == "float64"  # float64
    assert res.float64_rerun.explained >= 3 and res.first_divergence_f64 is None
    act = next(m for m in res.modules if m.module == "act")
    assert act.rel > 1e-2 and act.rel_f64 < 1e-8 and act.ok
    assert any("agree when the port is rerun in float64" in w for w in res.verdict.warnings)
    assert res.summary().explained_by_float64 == 3
    import io

    from gradcheck.render import get_renderer

    buf = io.StringIO()
    get_renderer("table").align(res, buf)
    assert "(3 more agree in float64)" in buf.getvalue()
    assert "a: grad rel" in buf.getvalue() and "ok (agrees in float64)" in buf.getvalue()


def test_float64_rerun_keeps_a_bug_hidden_in_float32_noise():
    """``b`` scaled by 1 + 2e-7: in float32 as far off as the faithful cancelling port, in
    float64 still 10% off -- not explained, and located at the first module it changes."""
    res = align_mod.align(pp.port_cancel_bug(), pp.original_cancel())
    assert not res.aligned
    by = {p.name: p for p in res.params}
    assert by["a"].grad_rel_f64 > 1e-2 and not by["a"].ok
    assert res.float64_rerun.explained == 0
    assert res.first_divergence_f64.port_module == "act"


def test_float64_rerun_always_and_the_port_restored():
    """``always`` reruns a faithful port too: its float64 gradients agree with the
    original's to far below the tolerance, and afterwards every port Var has its dtype,
    its trainable flag and its value back (the same as an align without the rerun)."""
    from gradcheck.parity.alignment import Tolerances

    ports = {}
    for mode in ("never", "always"):
        wl = pp.port("none")
        res = align_mod.align(wl, pp.original(), steps=1, tolerances=Tolerances(float64_mode=mode))
        assert res.aligned, res.verdict.reasons
        ports[mode] = {
            n: (str(v.dtype), v.is_stop_grad(), v.numpy()) for n, v in wl.model.state_dict().items()
        }
        if mode == "always":
            assert res.float64_rerun is not None and res.float64_rerun.explained == 0
            assert max(p.grad_rel_f64 for p in res.params) < 1e-6
            assert res.loss.rel_f64 < 1e-9
    assert ports["never"].keys() == ports["always"].keys()
    for n, (dtype, frozen, value) in ports["always"].items():
        assert (dtype, frozen) == ports["never"][n][:2], n
        assert np.array_equal(value, ports["never"][n][2]), n


def test_float32_casts_in_a_tiny_port_are_leak_records():
    """A cast before a module (the caller's code) and one in a module's own code: two Leak
    records, where each first shows, named in the warning, and read back from the JSON."""
    from gradcheck.parity.alignment import Alignment, Tolerances
    from gradcheck.parity.records import Leak

    wl = pp.port("none")
    blk, fc = wl.model.blocks[1], wl.model.fc
    blk_exec, fc_exec = blk.execute, fc.execute
    blk.execute = lambda x: blk_exec(x.float32())
    fc.execute = lambda x: fc_exec(x).float32()
    res = align_mod.align(wl, pp.original(), tolerances=Tolerances(float64_mode="always"))
    assert res.float64_rerun.float32_leaks == [
        Leak(module="blocks.1.conv", type="Conv", at="input", dtype="float32", after="blocks.0"),
        Leak(module="fc", type="Linear", at="output", dtype="float32", after="blocks"),
    ]
    assert any(
        "blocks.1.conv [Conv] got a float32 input after blocks.0 gave out float64: a "
        "cast to float32 in the code of blocks.1, which calls it (+1 more place(s))" in w
        for w in res.verdict.warnings
    )
    back = Alignment.from_dict(json.loads(res.to_json()))
    assert back.float64_rerun == res.float64_rerun and back.to_json() == res.to_json()


# ------------------------------------------------------------------ the torch probe
@pytest.fixture(scope="module")
def reports():
    torch_rep = api.check(pp.original(), steps=2)
    jt_ok = api.check(pp.port("none"), steps=2)
    jt_skip = api.check(pp.port("skip_layer"), steps=2)
    return torch_rep, jt_ok, jt_skip


def test_torch_probe_same_schema(reports):
    rep, jrep, _ = reports
    assert rep.environment["framework"] == "torch" and jrep.environment["framework"] == "jittor"
    again = Report.from_dict(json.loads(rep.to_json()))
    assert [p.name for p in again.params] == [p.name for p in jrep.params]
    assert {b.name for b in rep.buffers} - {b.name for b in jrep.buffers} == {
        "blocks.0.bn.num_batches_tracked",
        "blocks.1.bn.num_batches_tracked",
    }
    assert rep.verdict.result == "pass"
    assert all(p.status == "covered" and p.in_optimizer for p in rep.params)
    # ce does not reach aux, reg does not reach fc: the same reach as Jittor's graph walk
    assert {t.name: t.reaches for t in rep.loss_terms} == {"ce": 10, "reg": 10}
    assert rep.loss_terms == [
        dataclasses.replace(t, values=t2.values) for t, t2 in zip(jrep.loss_terms, rep.loss_terms)
    ]
    assert rep.config["optimizer"]["type"] == "SGD"


def test_torch_probe_statuses():
    """not_called via hooks, missing via grad_fn reach, frozen, not_in_optimizer."""
    import torch

    wl = pp.original()
    model = wl.model
    model.blocks[1].forward = lambda x: x  # blocks.1 never runs
    model.fc.bias.requires_grad_(False)  # frozen, undeclared
    opt = torch.optim.SGD(
        [
            p
            for n, p in model.named_parameters()
            if p.requires_grad and not n.startswith("aux.bias")
        ],
        lr=0.1,
    )
    wl.optimizer = opt

    def loss(model, batch):
        x, y = batch
        logits, aux = model(x)
        ce = torch.nn.functional.cross_entropy(logits, y)
        return ce + 0 * aux.detach().sum() + (aux[:, :0] ** 2).sum(), {"ce": ce}

    wl.loss = loss
    rep = api.check(wl, steps=1)
    by = rep.by_name()
    assert by["blocks.1.conv.weight"].status == "missing"
    assert by["blocks.1.conv.weight"].cause == "not_called"
    assert by["fc.bias"].status == "frozen" and by["fc.bias"].cause == "frozen_undeclared"
    assert by["aux.weight"].status in ("missing", "zero")
    assert not by["aux.bias"].in_optimizer
    assert by["stem.weight"].status == "covered"
    assert rep.verdict.result == "fail"


# ------------------------------------------------------------------ compare --across
def test_across_agrees_on_a_faithful_port(reports):
    torch_rep, jt_ok, _ = reports
    cmp = compare_across(jt_ok, torch_rep)
    assert cmp.ok, cmp.to_dict()
    assert cmp.paired == 12 and cmp.known_torch_only == 2
    assert cmp.port_framework == "jittor" and cmp.original_framework == "torch"


def test_across_finds_the_lost_gradients(reports):
    torch_rep, _, jt_skip = reports
    cmp = compare_across(jt_skip, torch_rep)
    assert not cmp.ok
    assert {p.name for p in cmp.lost} == {
        "blocks.1.conv.weight",
        "blocks.1.bn.weight",
        "blocks.1.bn.bias",
    }
    assert all(p.port_cause == "not_called" for p in cmp.lost)


def test_across_rename_rules_and_one_side_only(reports):
    torch_rep, jt_ok, _ = reports
    renamed = Report.from_dict(json.loads(jt_ok.to_json()))
    for p in renamed.params:
        p.name = p.name.replace("blocks.", "body.")
    renamed.params[0].shape = [6, 3, 3, 4]
    renamed.params[-1].requires_grad = False
    cmp = compare_across(renamed, torch_rep)
    assert len(cmp.original_only) == 6 and len(cmp.port_only) == 6
    cmp = compare_across(renamed, torch_rep, parse_rules(r"^blocks\. -> body."))
    assert cmp.paired == 12 and not cmp.original_only and not cmp.port_only
    assert [s.name for s in cmp.shape_mismatch] == ["stem.weight"]
    assert [d.name for d in cmp.frozen_diff] == ["aux.bias"]
    assert not cmp.ok


def test_name_map_sources(tmp_path):
    f = tmp_path / "map.txt"
    f.write_text("# comment\n^backbone\\.(\\d+) -> body.layer\\1\n")
    assert load_name_map(str(f))("backbone.3.weight") == "body.layer3.weight"
    j = tmp_path / "map.json"
    j.write_text('[["^a\\\\.", "b."]]')
    assert load_name_map(str(j))("a.w") == "b.w"
    cfg = tmp_path / "setup.cfg"
    cfg.write_text("[gradcheck]\nname_map =\n    ^x\\. -> y.\n")
    assert load_name_map(None, str(cfg))("x.w") == "y.w"
    from gradcheck.parity.across import NameMapError

    with pytest.raises(NameMapError):
        parse_rules("no arrow here")
    with pytest.raises(NameMapError):
        NameMap([("(", "x")])


# ------------------------------------------------------------------ command line
def _cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "gradcheck.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def test_cli_compare_across_and_bad_input(reports, repo_root, tmp_path):
    torch_rep, jt_ok, jt_skip = reports
    paths = {}
    for name, rep in (("t", torch_rep), ("ok", jt_ok), ("skip", jt_skip)):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(rep.to_json())
    r = _cli("compare", str(paths["ok"]), str(paths["t"]), "--across", "--quiet", cwd=repo_root)
    assert r.returncode == 0 and "agree" in r.stdout, r.stdout + r.stderr
    r = _cli("compare", str(paths["skip"]), str(paths["t"]), "--across", cwd=repo_root)
    assert r.returncode == 1 and "blocks.1.conv.weight" in r.stdout
    r = _cli(
        "compare",
        str(paths["skip"]),
        str(paths["t"]),
        "--across",
        "--format",
        "json",
        cwd=repo_root,
    )
    assert json.loads(r.stdout)["kind"] == "across"
    (tmp_path / "bad.map").write_text("(unclosed -> x\n")
    r = _cli(
        "compare",
        str(paths["ok"]),
        str(paths["t"]),
        "--across",
        "--map",
        str(tmp_path / "bad.map"),
        cwd=repo_root,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = _cli("align", "--port", "no/such/file.py:make", "--original", "x.py:make", cwd=repo_root)
    assert r.returncode == 2 and "no/such/file.py" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_cli_align_and_run_on_torch(repo_root, tmp_path):
    pairs = str(FIXTURES / "parity_pairs.py")
    out = tmp_path / "align.json"
    r = _cli(
        "align",
        "--port",
        f"{pairs}:port_activation",
        "--original",
        f"{pairs}:original",
        "--output",
        str(out),
        "--html",
        str(tmp_path / "a.html"),
        "--quiet",
        cwd=repo_root,
    )
    assert r.returncode == 1, r.stderr
    assert "first divergence blocks.1.act" in r.stdout
    assert json.loads(out.read_text())["first_divergence"]["module"] == "blocks.1.act"
    r = _cli(
        "align",
        "--port",
        f"{pairs}:port_none",
        "--original",
        f"{pairs}:original",
        "--steps",
        "2",
        "--quiet",
        cwd=repo_root,
    )
    assert r.returncode == 0 and "aligned" in r.stdout, r.stdout + r.stderr
    # run on the torch original and on the port, then pair the two reports
    rt, rj = tmp_path / "t.json", tmp_path / "j.json"
    (tmp_path / "plain.cfg").write_text("[gradcheck]\nsteps = 1\n")
    for spec, path in ((f"{pairs}:original", rt), (f"{pairs}:port_none", rj)):
        r = _cli(
            "run",
            "--model",
            spec,
            "-o",
            str(path),
            "-q",
            "--config",
            str(tmp_path / "plain.cfg"),
            cwd=repo_root,
        )
        assert r.returncode == 0, r.stderr
    assert json.loads(rt.read_text())["environment"]["framework"] == "torch"
    r = _cli("compare", str(rj), str(rt), "--across", "--quiet", cwd=repo_root)
    assert r.returncode == 0 and "agree" in r.stdout, r.stdout + r.stderr


# ------------------------------------------------------------------ torch next to Jittor
def test_jittor_compiles_after_torch_threads_started(repo_root):
    """A fresh Jittor compile after torch's thread pool ran must not hang, and Jittor's
    forking compile pool must be off once torch is imported through gradcheck."""
    code = textwrap.dedent(f"""
        import time, gradcheck
        from gradcheck import runtime
        from gradcheck.parity import torchenv
        torch = torchenv.import_torch()
        import jittor_utils
        assert jittor_utils.run_cmds is torchenv.serial_run_cmds
        torch.set_num_threads(2)
        a = torch.randn(256, 256)
        for _ in range(20):
            a = torch.tanh(a @ a.T / 256)          # torch's intra-op threads are up
        jt = runtime.import_jittor()
        x = jt.array([1.0, 2.0])
        y = jt.code(x.shape, x.dtype, [x],
                    cpu_src="for (int i=0; i<in0_shape0; i++) "
                            "@out(i) = @in0(i) * {time.time_ns() % 997}.0 + 1;")
        print("OK", float(y.numpy()[1]))
    """)
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(repo_root),
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("OK")
