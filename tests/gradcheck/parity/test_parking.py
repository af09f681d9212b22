"""Parking arrays on disk while align's memory peak passes (gradcheck/parity/parking.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from gradcheck.parity import parking
from gradcheck.parity.parking import Parked, ParkingLot, fetch


@pytest.fixture
def tmpdir_only(tmp_path, monkeypatch):
    """Python's temporary folder moved under ``tmp_path`` (what is left there is seen)."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    return tmp_path


def _big(seed: int, n: int = 20_000) -> np.ndarray:
    return np.random.RandomState(seed).standard_normal(n).astype(np.float32)  # 80 kB


def test_parked_tree_comes_back_equal_and_shared_arrays_are_written_once(tmpdir_only):
    a, b, small = _big(0), _big(1).reshape(100, 200), np.arange(3.0)
    tree = ({"m": [[a, small]], "n": [[a, b]]}, {("m", 0): [b]}, None)
    with ParkingLot() as lot:
        parked = lot.park(tree)
        outs, grads, none = parked
        assert isinstance(outs["m"][0][0], Parked) and outs["m"][0][1] is small
        assert outs["m"][0][0] is outs["n"][0][0]  # one file for the array under two keys
        assert grads[("m", 0)][0].shape == (100, 200)  # a record's shape, without its data
        (folder,) = list(tmpdir_only.iterdir())
        assert len(os.listdir(folder)) == 2
        back = lot.fetch_all(parked)
        assert np.array_equal(back[0]["n"][0][1], b) and back[0]["n"][0][1].dtype == b.dtype
        assert np.array_equal(fetch(outs["m"][0][0]), a) and none is None
        assert back[1][("m", 0)][0].shape == (100, 200)
    assert not list(tmpdir_only.iterdir())  # the folder goes with the lot


def test_a_folder_that_cannot_be_written_keeps_the_arrays_in_memory(monkeypatch):
    def no_room(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(parking.tempfile, "mkdtemp", no_room)
    a = _big(2)
    with ParkingLot() as lot:
        assert lot.park([a, a])[0] is a
        assert lot.park({"later": _big(3)})["later"].dtype == np.float32  # no retry
