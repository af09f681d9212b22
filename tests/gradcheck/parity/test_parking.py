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
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # set: used even where /tmp is a tmpfs
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


def test_a_write_that_fails_midway_leaves_no_part_behind(tmpdir_only, monkeypatch):
    def half_then_full(path, a, allow_pickle=False):
        with open(path, "wb") as f:
            f.write(b"\x93NUMPY partial")
        raise OSError(28, "No space left on device")

    a, b = _big(4), _big(5)
    with ParkingLot() as lot:
        first = lot.park(a)
        monkeypatch.setattr(parking.np, "save", half_then_full)
        assert lot.park([b])[0] is b
        (folder,) = list(tmpdir_only.iterdir())
        assert sorted(os.listdir(folder)) == ["0.npy"]
        assert np.array_equal(fetch(first), a)


def test_the_file_system_type_is_the_nearest_mount_above(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/vda / ext4 rw 0 0\n"
        "tmpfs /tmp tmpfs rw 0 0\n"
        "tmpfs /tmp/my\\040disk ext4 rw 0 0\n"
        "broken line\n"
    )
    assert parking._fs_type("/tmp/x/y", str(mounts)) == "tmpfs"
    assert parking._fs_type("/tmp", str(mounts)) == "tmpfs"
    assert parking._fs_type("/tmpfoo", str(mounts)) == "ext4"
    assert parking._fs_type("/tmp/my disk/z", str(mounts)) == "ext4"
    assert parking._fs_type("/", str(tmp_path / "absent")) is None


def test_a_tmpfs_temporary_folder_is_passed_over_for_var_tmp(monkeypatch):
    monkeypatch.delenv("TMPDIR", raising=False)
    monkeypatch.setattr(parking, "_fs_type", lambda path: "tmpfs")
    want = "/var/tmp" if os.access("/var/tmp", os.W_OK) else None
    assert parking._folder() == want
    monkeypatch.setenv("TMPDIR", "/somewhere")  # the user's own choice stands
    assert parking._folder() is None
    monkeypatch.delenv("TMPDIR")
    monkeypatch.setattr(parking, "_fs_type", lambda path: "ext4")
    assert parking._folder() is None


def test_a_reader_reads_an_array_the_previous_record_held_once(tmpdir_only, monkeypatch):
    a, b = _big(6), _big(7)
    with ParkingLot() as lot:
        leaf, parent, other, small = lot.park(([a], [a, b], [b], [np.arange(2.0)]))
        loads = []
        load = parking.np.load
        monkeypatch.setattr(parking.np, "load", lambda p, **k: loads.append(p) or load(p, **k))
        read = parking.Reader()
        got = [read(leaf), read(parent), read(other), read(small), read(leaf)]
        assert len(loads) == 3  # a; b (a from the leaf's read); a again, after a record without it
        assert got[1][0] is got[0][0] and np.array_equal(got[1][1], b)
        assert got[2][0] is got[1][1] and got[3][0].tolist() == [0.0, 1.0]
        assert np.array_equal(got[4][0], a)
