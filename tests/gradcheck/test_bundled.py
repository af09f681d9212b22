"""gradcheck on the bundled Gold-YOLO: loss-term reach in the head, the data path through
the CLI, and the per-level explanation of a zero gradient."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

import gradcheck
from gradcheck import bundled
from gradcheck.cli import main
from gradcheck.explain import explain
from gradcheck.policy import Policy
from gradcheck.report import ParamRecord, Report, StepRecord


def test_head_branches_are_reached_by_their_loss_terms():
    report = gradcheck.check(bundled.build("gold_yolo_n", img_size=320, batch_size=2), steps=1)
    by = {p.name: set(p.reached_by) for p in report.params if p.requires_grad}
    for i in range(3):
        assert by[f"detect.reg_preds.{i}.weight"] == {"iou", "dfl"}
        assert by[f"detect.reg_convs.{i}.conv.weight"] == {"iou", "dfl"}
        assert by[f"detect.cls_preds.{i}.weight"] == {"cls"}
        assert by[f"detect.cls_convs.{i}.conv.weight"] == {"cls"}
        assert by[f"detect.stems.{i}.conv.weight"] == {"iou", "dfl", "cls"}
    assert by["backbone.stem.rbr_dense.conv.weight"] == {"iou", "dfl", "cls"}
    # n has no DFL: its dfl term is a constant zero, and gradcheck says so
    dfl = next(t for t in report.loss_terms if t.name == "dfl")
    assert dfl.constant and dfl.values == [0.0]
    assert any("'dfl' is constant" in w for w in report.verdict.warnings)
    # from the official init only the prediction layers get a gradient on step 1
    first = {p.name for p in report.params if p.steps == ["nonzero"]}
    assert first and all(n.startswith(("detect.cls_preds", "detect.reg_preds")) for n in first)
    assert report.param("detect.proj").cause == "frozen"


def _dataset(root, n=2, size=(200, 150)):
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        arr = (rng.random((size[1], size[0], 3)) * 255).astype("uint8")
        Image.fromarray(arr).save(root / "images" / f"im{i}.png")
        (root / "labels" / f"im{i}.txt").write_text("3 0.5 0.5 0.6 0.7\n1 0.3 0.3 0.1 0.1\n")


def test_cli_with_a_yolo_dataset(tmp_path, monkeypatch):
    _dataset(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "r.json"
    res = CliRunner().invoke(
        main,
        [
            "run",
            "--model",
            "gold_yolo_n",
            "--data",
            "data",
            "--img-size",
            "320",
            "--batch-size",
            "2",
            "--steps",
            "1",
            "-o",
            str(out),
            "--quiet",
        ],
        catch_exceptions=False,
    )
    assert res.exit_code in (0, 1), res.output
    data = json.loads(out.read_text())
    assert data["config"]["data"] == "data" and data["steps"][0]["stats"]["num_targets"] == 4
    bad = tmp_path / "bad"
    _dataset(bad)
    (bad / "labels" / "im1.txt").write_text("3 0.5 0.5 0.6\n")
    res = CliRunner().invoke(
        main,
        ["run", "--model", "gold_yolo_n", "--data", str(bad), "--img-size", "320"],
        catch_exceptions=False,
    )
    assert res.exit_code == 2 and "im1.txt:1" in res.stderr and "Traceback" not in res.output


def _report_with_level_stats(pos, scores):
    rec = ParamRecord(
        name="detect.reg_convs.2.conv.weight",
        shape=[1],
        numel=1,
        status="zero",
        steps=["zero"],
        grad_norms=[0.0],
        module="detect.reg_convs.2.conv",
    )
    return rec, Report(
        config={"model": "gold_yolo_s"},
        environment={},
        params=[rec],
        steps=[
            StepRecord(step=1, stats={"num_pos_per_stride": pos, "target_score_per_stride": scores})
        ],
    )


def test_level_hint_names_the_starved_level():
    hint = bundled.level_hint([8, 16, 32])
    rec, rep = _report_with_level_stats(
        {"8": 80, "16": 15, "32": 2}, {"8": 48.1, "16": 19.9, "32": 1.2e-20}
    )
    assert "stride 32 has 2 positive anchors" in hint(rec, rep)
    rec, rep = _report_with_level_stats(
        {"8": 80, "16": 15, "32": 0}, {"8": 48.1, "16": 19.9, "32": 0}
    )
    assert "no positive anchors on stride 32" in hint(rec, rep)
    rec, rep = _report_with_level_stats(
        {"8": 80, "16": 15, "32": 9}, {"8": 48.1, "16": 19.9, "32": 12}
    )
    assert hint(rec, rep) is None
    other = ParamRecord(name="neck.x.weight", shape=[1], numel=1)
    assert hint(other, rep) is None
    rec, rep = _report_with_level_stats(
        {"8": 80, "16": 15, "32": 0}, {"8": 48.1, "16": 19.9, "32": 0}
    )
    explain(rep, policy=Policy(), zero_hint=hint)
    assert rec.cause == "zero_gradient" and "no positive anchors on stride 32" in rec.cause_detail
