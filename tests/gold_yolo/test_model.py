"""Tests of the Jittor Gold-YOLO model structure against the official PyTorch contract.

Wang et al., "Gold-YOLO: Efficient Object Detector via Gather-and-Distribute Mechanism",
NeurIPS 2023.  The contract is ``tests/fixtures/data/gold_yolo_{n,s,m,l}.params.tsv`` (every
parameter of the official models in training mode: name, shape, requires_grad), plus the
official training/deploy parameter totals.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

import gold_yolo  # noqa: F401
from fixtures import FIXTURES, ROOT
from gradcheck import runtime

jt = runtime.import_jittor()
from jittor import nn  # noqa: E402

from gold_yolo.configs import CONFIG_NAMES, get_config  # noqa: E402
from gold_yolo.layers.common import RepVGGBlock, SyncBatchNorm  # noqa: E402
from gold_yolo.layers.norm import BatchNorm2d  # noqa: E402
from gold_yolo.layers.ops import adaptive_avg_pool2d, interpolate_bilinear  # noqa: E402
from gold_yolo.layers.transformer import DropPath  # noqa: E402
from gold_yolo.model import GoldYOLO, build_model  # noqa: E402
from gold_yolo.reparam import count_parameters, reparameterize  # noqa: E402

SPEC_DIR = FIXTURES / "data"

TRAIN_TOTALS = {
    "gold_yolo_n": 6_062_590,
    "gold_yolo_s": 23_202_974,
    "gold_yolo_m": 44_326_806,
    "gold_yolo_l": 75_114_699,
}
DEPLOY_TOTALS = {
    "gold_yolo_n": 5_624_478,
    "gold_yolo_s": 21_546_398,
    "gold_yolo_m": 41_338_582,
    "gold_yolo_l": 75_114_699,
}
RUNNING = ("running_mean", "running_var")


def _is_running_stat(name: str) -> bool:
    return name.rsplit(".", 1)[-1] in RUNNING


def load_spec(name: str) -> dict:
    path = SPEC_DIR / f"{name}.params.tsv"
    spec = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        pname, shape, req = line.split("\t")
        spec[pname] = (tuple(int(s) for s in shape.split("x")), req.strip() == "true")
    return spec


def inventory(model) -> dict:
    return {
        n: (tuple(int(s) for s in p.shape), not p.is_stop_grad())
        for n, p in model.named_parameters()
        if not _is_running_stat(n)
    }


_MODELS: dict = {}


def fresh(name: str) -> GoldYOLO:
    jt.set_global_seed(0)
    return build_model(name)


def cached(name: str) -> GoldYOLO:
    """A shared, unmodified train-mode model (tests must not mutate it)."""
    if name not in _MODELS:
        _MODELS[name] = fresh(name)
    return _MODELS[name]


# --------------------------------------------------------------------------- configs


def test_configs():
    assert CONFIG_NAMES == ("gold_yolo_n", "gold_yolo_s", "gold_yolo_m", "gold_yolo_l")
    n, s, m, large = (get_config(k) for k in CONFIG_NAMES)
    assert (n.head.use_dfl, n.head.reg_max, n.head.iou_type) == (False, 0, "siou")
    for c in (s, m, large):
        assert (c.head.use_dfl, c.head.reg_max, c.head.iou_type) == (True, 16, "giou")
    assert [c.training_mode for c in (n, s, m, large)] == ["repvgg"] * 3 + ["conv_silu"]
    assert [c.neck.type for c in (n, s, m, large)] == [
        "RepGDNeck",
        "RepGDNeck",
        "GDNeck",
        "GDNeck2",
    ]
    assert n.solver.lr0 == 0.02 and s.solver.lr0 == 0.01 and s.solver.optim == "SGD"
    assert s.head.strides == [8, 16, 32] and s.head.atss_warmup_epoch == 0
    assert s.channels_list == [32, 64, 128, 256, 512, 128, 64, 64, 128, 128, 256]
    assert s.num_repeats == [1, 2, 4, 6, 2, 4, 4, 4, 4]
    assert s.model.head is s.head  # upstream spelling cfg.model.head works too
    a, b = get_config("gold_yolo_s"), get_config("gold_yolo_s")
    a.drop_path_rate = 0.0
    assert a.neck.extra_cfg.drop_path_rate == 0.0 and b.drop_path_rate == 0.1  # fresh copies


def test_configs_import_without_jittor():
    """The configs (and the package itself) load without starting Jittor; the first
    Jittor-using submodule sets up the runtime, once, for the whole port."""
    code = (
        "import sys, gold_yolo.configs as c, gold_yolo as g\n"
        "assert g.CONFIG_NAMES == c.CONFIG_NAMES and g.get_config('gold_yolo_n')\n"
        "print(sorted(m for m in ('jittor', 'gradcheck', 'gradcheck.runtime')\n"
        "             if m in sys.modules))\n"
        "import gold_yolo.layers.norm\n"
        "from gradcheck import runtime\n"
        "print('jittor' in sys.modules, runtime.state().device,\n"
        "      g.jt is sys.modules['jittor'])\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:2] == ["[]", f"True {runtime.state().device} True"], r.stdout


# --------------------------------------------------------------------------- inventory


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_inventory_matches_official(name):
    spec = load_spec(name)
    mine = inventory(cached(name))
    missing = sorted(set(spec) - set(mine))
    extra = sorted(set(mine) - set(spec))
    wrong = [
        f"{k}: official {spec[k]} vs ours {mine[k]}"
        for k in sorted(set(spec) & set(mine))
        if spec[k] != mine[k]
    ]
    problems = [f"missing {k}" for k in missing] + [f"extra {k}" for k in extra] + wrong
    assert not problems, f"{name}: {len(problems)} differences:\n" + "\n".join(problems[:60])


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_training_totals(name):
    assert count_parameters(cached(name)) == TRAIN_TOTALS[name]


@pytest.mark.parametrize("name", ["gold_yolo_n", "gold_yolo_l"])
def test_no_stray_vars(name):
    """Every public Var is an official parameter or a BatchNorm running stat; no Vars
    hide in lists/dicts of modules either."""
    model = cached(name)
    spec = load_spec(name)
    bn_prefixes = set()
    stray_in_containers = []
    for mname, mod in model.named_modules():
        if isinstance(mod, nn.BatchNorm):
            bn_prefixes.add(mname)
        for k, v in vars(mod).items():
            items = v.values() if isinstance(v, dict) else v if isinstance(v, (list, tuple)) else ()
            if k != "layers" and any(isinstance(i, jt.Var) for i in items):
                stray_in_containers.append(f"{mname}.{k}")
    stray = []
    for pname, _ in model.named_parameters():
        if pname in spec:
            continue
        owner, leaf = pname.rsplit(".", 1)
        if leaf in RUNNING and owner in bn_prefixes:
            continue
        stray.append(pname)
    assert not stray, f"Vars posing as parameters: {stray[:20]}"
    assert not stray_in_containers, f"Vars in containers: {stray_in_containers[:20]}"


# --------------------------------------------------------------------------- initialisation


@pytest.mark.parametrize("name", ["gold_yolo_n", "gold_yolo_s"])
def test_head_priors_and_proj(name):
    det = cached(name).detect
    prior = -math.log((1 - 1e-2) / 1e-2)
    for conv in det.cls_preds:
        np.testing.assert_allclose(conv.bias.numpy(), prior, rtol=1e-6)
        assert not conv.weight.numpy().any()
    for conv in det.reg_preds:
        np.testing.assert_allclose(conv.bias.numpy(), 1.0)
        assert not conv.weight.numpy().any()
    # upstream never passes reg_max to Detect: 17 projection bins even for n
    assert det.reg_max == 16
    np.testing.assert_array_equal(det.proj.numpy(), np.arange(17, dtype=np.float32))
    np.testing.assert_array_equal(
        det.proj_conv.weight.numpy(), np.arange(17, dtype=np.float32).reshape(1, 17, 1, 1)
    )
    assert det.proj.is_stop_grad() and det.proj_conv.weight.is_stop_grad()


def test_batchnorm_hyperparameters():
    model = cached("gold_yolo_n")
    plain = [m for m in model.modules() if type(m) is BatchNorm2d]
    sync = [m for m in model.modules() if isinstance(m, SyncBatchNorm)]
    assert plain and sync
    assert all((m.eps, m.momentum) == (1e-3, 0.03) for m in plain)
    # SyncBN (transformer + injection) is not retuned by upstream initialize_weights
    assert all((m.eps, m.momentum) == (1e-5, 0.1) for m in sync)
    # attention output projection BN starts at zero (bn_weight_init=0)
    bn = model.neck.high_IFM.transformer_blocks[0].attn.proj[1].bn
    assert not bn.weight.numpy().any()


# --------------------------------------------------------------------------- ops


def test_resampling_matches_torch_rules():
    x = jt.array(np.array([0.0, 1.0], dtype=np.float32).reshape(1, 1, 1, 2))
    up = interpolate_bilinear(x, (1, 4)).numpy().ravel()
    np.testing.assert_allclose(up, [0.0, 0.25, 0.75, 1.0], atol=1e-6)  # torch's values
    x = jt.array(np.arange(5, dtype=np.float32).reshape(1, 1, 1, 5))
    pooled = adaptive_avg_pool2d(x, (1, 3)).numpy().ravel()
    np.testing.assert_allclose(pooled, [0.5, 2.0, 3.5], atol=1e-6)  # bins [0:2],[1:4],[3:5]
    x = jt.array(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4))
    np.testing.assert_allclose(
        adaptive_avg_pool2d(x, (2, 2)).numpy().ravel(), [2.5, 4.5, 10.5, 12.5]
    )


def test_drop_path_uses_jittor_rng_and_can_be_disabled():
    dp = DropPath(0.5)
    x = jt.ones((64, 3, 2, 2))
    jt.set_global_seed(123)
    a = dp(x).numpy()
    jt.set_global_seed(123)
    b = dp(x).numpy()
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) <= {0.0, 2.0} and 0 < (a[:, 0, 0, 0] == 0).sum() < 64
    dp.drop_prob = 0.0
    np.testing.assert_array_equal(dp(x).numpy(), x.numpy())
    dp.drop_prob = 0.5
    dp.eval()
    np.testing.assert_array_equal(dp(x).numpy(), x.numpy())

    model = fresh("gold_yolo_n")
    paths = [b.drop_path for b in model.neck.high_IFM.transformer_blocks]
    assert isinstance(paths[1], DropPath) and paths[1].drop_prob == pytest.approx(0.1)
    model.set_drop_path(0.0)
    assert paths[1].drop_prob == 0.0


# --------------------------------------------------------------------------- forward


def _check_train_outputs(name, size=320, batch=2):
    model = cached(name)
    cfg = get_config(name)
    jt.set_global_seed(1)
    x = jt.randn(batch, 3, size, size)
    feats, cls_scores, reg_distri = model(x)
    ch = cfg.channels_list
    A = sum((size // s) ** 2 for s in (8, 16, 32))
    assert [tuple(f.shape) for f in feats] == [
        (batch, ch[6], size // 8, size // 8),
        (batch, ch[8], size // 16, size // 16),
        (batch, ch[10], size // 32, size // 32),
    ]
    assert tuple(cls_scores.shape) == (batch, A, 80)
    assert tuple(reg_distri.shape) == (batch, A, 4 * (cfg.head.reg_max + 1))
    c = cls_scores.numpy()
    assert np.isfinite(c).all() and (c > 0).all() and (c < 1).all()
    np.testing.assert_allclose(reg_distri.numpy(), 1.0)  # zero weights, bias prior 1
    for f in feats:
        assert np.isfinite(f.numpy()).all()


def test_train_outputs_n():
    _check_train_outputs("gold_yolo_n")


def test_train_outputs_s():
    _check_train_outputs("gold_yolo_s")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gold_yolo_m", "gold_yolo_l"])
def test_train_outputs_ml(name):
    _check_train_outputs(name, size=320, batch=1)


def test_eval_decoding_n():
    model = fresh("gold_yolo_n")
    model.eval()
    size = 128
    y = model(jt.randn(1, 3, size, size)).numpy()
    A = sum((size // s) ** 2 for s in (8, 16, 32))
    assert y.shape == (1, A, 85)
    # priors: ltrb = 1 grid cell each -> box of 2 strides centred on the cell centre
    expect = []
    for s in (8, 16, 32):
        g = size // s
        for j in range(g):
            for i in range(g):
                expect.append([(i + 0.5) * s, (j + 0.5) * s, 2 * s, 2 * s])
    np.testing.assert_allclose(y[0, :, :4], np.array(expect), rtol=1e-5)
    np.testing.assert_allclose(y[0, :, 4], 1.0)
    np.testing.assert_allclose(y[0, :, 5:], 0.01, rtol=1e-4)


# --------------------------------------------------------------------------- reparameterisation


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_deploy_counts(name):
    model = fresh(name)
    reparameterize(model)
    assert count_parameters(model) == DEPLOY_TOTALS[name]
    assert not any(isinstance(m, SyncBatchNorm) for m in model.modules())
    for m in model.modules():
        if isinstance(m, RepVGGBlock):
            assert hasattr(m, "rbr_reparam") and not hasattr(m, "rbr_dense")


def _randomise(model, seed=0):
    """Non-trivial BN statistics/affines and head weights, so outputs depend on every branch."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm):
            c = m.num_features
            m.running_mean.assign(jt.array(rng.normal(0, 0.1, c).astype(np.float32)))
            m.running_var.assign(jt.array(rng.uniform(0.5, 2.0, c).astype(np.float32)))
            m.weight.assign(jt.array(rng.uniform(0.5, 1.5, c).astype(np.float32)))
            m.bias.assign(jt.array(rng.normal(0, 0.1, c).astype(np.float32)))
    for conv in list(model.detect.cls_preds) + list(model.detect.reg_preds):
        conv.weight.assign(jt.array(rng.normal(0, 0.05, conv.weight.shape).astype(np.float32)))


def _reparam_roundtrip(name, size):
    model = fresh(name)
    _randomise(model)
    model.eval()
    jt.set_global_seed(2)
    x = jt.randn(1, 3, size, size)
    before, feats_before = model(x, return_featmaps=True)
    before = before.numpy()
    feats_before = [f.numpy() for f in feats_before]
    reparameterize(model)
    after, feats_after = model(x, return_featmaps=True)
    for a, b in zip(feats_after, feats_before):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(after.numpy(), before, rtol=1e-3, atol=1e-2)
    # a second call changes nothing
    params = {n: id(p) for n, p in model.named_parameters()}
    reparameterize(model)
    assert {n: id(p) for n, p in model.named_parameters()} == params
    np.testing.assert_allclose(model(x).numpy(), after.numpy(), rtol=1e-6, atol=1e-5)


def test_reparam_preserves_eval_output_n():
    _reparam_roundtrip("gold_yolo_n", 128)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gold_yolo_s", "gold_yolo_m", "gold_yolo_l"])
def test_reparam_preserves_eval_output_sml(name):
    _reparam_roundtrip(name, 128)


def test_batchnorm_training_statistics_match_torch_semantics():
    """Two-pass batch variance (not Jittor's float32 E[x^2]-E[x]^2) and an unbiased running
    variance, as torch.nn.BatchNorm2d: checked against float64 numpy."""
    rng = np.random.default_rng(0)
    x = (5.0 + 0.01 * rng.standard_normal((2, 3, 40, 40))).astype(np.float32)  # big mean
    bn = BatchNorm2d(3, eps=1e-3, momentum=0.03)
    bn.train()
    y = bn(jt.array(x)).numpy()
    x64 = x.astype(np.float64)
    mean, var = x64.mean((0, 2, 3)), x64.var((0, 2, 3))
    ref = (x64 - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-3)
    np.testing.assert_allclose(y, ref, rtol=0, atol=2e-4)
    n = x.size // 3
    np.testing.assert_allclose(bn.running_var.numpy(), 0.97 + 0.03 * var * n / (n - 1), rtol=1e-6)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.03 * mean, rtol=1e-6)
