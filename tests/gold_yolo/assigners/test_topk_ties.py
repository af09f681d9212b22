"""The assigners' top-k breaks ties as torch's CPU ``torch.topk`` (gold_yolo/assigners/topk.py).

The reference is a plain-Python transcription of what torch's ``topk_impl_loop`` runs
(``std::partial_sort`` when ``k * 64 <= n``, else ``std::nth_element`` + ``std::sort`` of the
first k-1) with libstdc++'s algorithms (heap select / introselect / introsort), so no torch
is needed.  bench/topk_ties.py checks the same op against torch itself.
"""

from __future__ import annotations

import numpy as np
import pytest

from gold_yolo.assigners.topk import jt, torch_cpu_topk_indices


# ----------------------------------------------------------------- libstdc++ transcription
def _lg(n):
    return n.bit_length() - 1


def _adjust_heap(a, first, hole, length, value, comp):
    top = hole
    child = hole
    while child < (length - 1) // 2:
        child = 2 * (child + 1)
        if comp(a[first + child], a[first + child - 1]):
            child -= 1
        a[first + hole] = a[first + child]
        hole = child
    if length % 2 == 0 and child == (length - 2) // 2:
        child = 2 * (child + 1)
        a[first + hole] = a[first + child - 1]
        hole = child - 1
    parent = (hole - 1) // 2
    while hole > top and comp(a[first + parent], value):
        a[first + hole] = a[first + parent]
        hole = parent
        parent = (hole - 1) // 2
    a[first + hole] = value


def _make_heap(a, first, last, comp):
    length = last - first
    if length < 2:
        return
    parent = (length - 2) // 2
    while True:
        _adjust_heap(a, first, parent, length, a[first + parent], comp)
        if parent == 0:
            return
        parent -= 1


def _pop_heap(a, first, last, result, comp):
    value = a[result]
    a[result] = a[first]
    _adjust_heap(a, first, 0, last - first, value, comp)


def _heap_select(a, first, middle, last, comp):
    _make_heap(a, first, middle, comp)
    for i in range(middle, last):
        if comp(a[i], a[first]):
            _pop_heap(a, first, middle, i, comp)


def _partial_sort(a, first, middle, last, comp):
    _heap_select(a, first, middle, last, comp)
    while middle - first > 1:  # sort_heap
        middle -= 1
        _pop_heap(a, first, middle, middle, comp)


def _unguarded_linear_insert(a, last, comp):
    val = a[last]
    nxt = last - 1
    while comp(val, a[nxt]):
        a[last] = a[nxt]
        last = nxt
        nxt -= 1
    a[last] = val


def _insertion_sort(a, first, last, comp):
    if first == last:
        return
    for i in range(first + 1, last):
        if comp(a[i], a[first]):
            val = a[i]
            a[first + 1 : i + 1] = a[first:i]
            a[first] = val
        else:
            _unguarded_linear_insert(a, i, comp)


def _move_median_to_first(a, result, x, y, z, comp):
    if comp(a[x], a[y]):
        if comp(a[y], a[z]):
            m = y
        elif comp(a[x], a[z]):
            m = z
        else:
            m = x
    elif comp(a[x], a[z]):
        m = x
    elif comp(a[y], a[z]):
        m = z
    else:
        m = y
    a[result], a[m] = a[m], a[result]


def _unguarded_partition(a, first, last, pivot, comp):
    while True:
        while comp(a[first], a[pivot]):
            first += 1
        last -= 1
        while comp(a[pivot], a[last]):
            last -= 1
        if not first < last:
            return first
        a[first], a[last] = a[last], a[first]
        first += 1


def _partition_pivot(a, first, last, comp):
    mid = first + (last - first) // 2
    _move_median_to_first(a, first, first + 1, mid, last - 1, comp)
    return _unguarded_partition(a, first + 1, last, first, comp)


def _nth_element(a, first, nth, last, comp):
    if first == last or nth == last:
        return
    depth = _lg(last - first) * 2
    while last - first > 3:
        if depth == 0:
            _heap_select(a, first, nth + 1, last, comp)
            a[first], a[nth] = a[nth], a[first]
            return
        depth -= 1
        cut = _partition_pivot(a, first, last, comp)
        if cut <= nth:
            first = cut
        else:
            last = cut
    _insertion_sort(a, first, last, comp)


def _introsort_loop(a, first, last, depth, comp):
    while last - first > 16:
        if depth == 0:
            _partial_sort(a, first, last, last, comp)
            return
        depth -= 1
        cut = _partition_pivot(a, first, last, comp)
        _introsort_loop(a, cut, last, depth, comp)
        last = cut


def _sort(a, first, last, comp):
    if first == last:
        return
    _introsort_loop(a, first, last, _lg(last - first) * 2, comp)
    if last - first > 16:
        _insertion_sort(a, first, first + 16, comp)
        for i in range(first + 16, last):
            _unguarded_linear_insert(a, i, comp)
    else:
        _insertion_sort(a, first, last, comp)


def reference_topk(row, k, largest):
    """torch's CPU topk index order for one row (no NaNs here)."""
    comp = (lambda x, y: x[0] > y[0]) if largest else (lambda x, y: x[0] < y[0])
    n = len(row)
    q = [(float(v), j) for j, v in enumerate(row)]
    if k * 64 <= n:
        _partial_sort(q, 0, k, n, comp)
    else:
        _nth_element(q, 0, k - 1, n, comp)
        _sort(q, 0, k - 1, comp)
    return [j for _, j in q[:k]]


# ----------------------------------------------------------------- tests
def _tie_rows(rng, rows, n):
    x = rng.integers(0, 4, size=(rows, n)).astype(np.float32) / 4
    x[rng.random((rows, n)) < 0.5] = 0.0
    return x


@pytest.mark.parametrize("n,k", [(640, 9), (576, 9), (575, 9), (100, 9), (200, 13), (30, 13)])
@pytest.mark.parametrize("largest", [True, False])
def test_ties_follow_torch_cpu_algorithm(n, k, largest):
    rng = np.random.default_rng(n * 31 + k + largest)
    x = _tie_rows(rng, 12, n)
    got = torch_cpu_topk_indices(jt.array(x.reshape(3, 4, n)), k, largest).numpy().reshape(12, k)
    want = np.array([reference_topk(r, k, largest) for r in x])
    np.testing.assert_array_equal(got, want)
    # the values are a valid top-k whatever the tie rule
    v = np.take_along_axis(x, got, -1)
    kth = np.sort(x, -1)[:, ::-1][:, k - 1] if largest else np.sort(x, -1)[:, k - 1]
    assert ((v >= kth[:, None]) if largest else (v <= kth[:, None])).all()


def test_constant_row_heap_branch_keeps_the_first_k():
    # k * 64 <= n: heap select keeps the first k (an equal value never displaces the heap top)
    x = np.zeros((1, 640), np.float32)
    got = torch_cpu_topk_indices(jt.array(x), 9, largest=True).numpy()[0]
    assert sorted(got.tolist()) == list(range(9))
    assert got.tolist() == reference_topk(x[0], 9, True)


def test_k_out_of_range_is_refused():
    with pytest.raises(ValueError):
        torch_cpu_topk_indices(jt.zeros((2, 5)), 6)


def test_nan_rows_rank_nan_largest_and_stay_in_bounds():
    """Jittor compiles kernels with -Ofast (std::isnan is taken to be false): rows full of
    NaN must still sort with a strict ordering -- NaN largest, as torch's CPU top-k -- and
    never walk off the row (a long row exercises introsort's unguarded insertion)."""
    rng = np.random.RandomState(7)
    x = rng.standard_normal((64, 400)).astype(np.float32)
    x[rng.random_sample(x.shape) < 0.3] = np.nan
    for largest in (True, False):
        for k in (3, 13, 300):
            got = torch_cpu_topk_indices(jt.array(x), k, largest).numpy()
            for r in range(len(x)):
                row, idx = x[r], got[r]
                assert len(set(idx.tolist())) == k
                picked = row[idx]
                # largest: the NaNs come first (all of them, or the first k); then values descend
                n_nan = min(int(np.isnan(row).sum()), k) if largest else 0
                assert np.isnan(picked[:n_nan]).all(), (r, largest, k)
                rest = picked[n_nan:]
                finite = rest[~np.isnan(rest)]
                assert (np.diff(finite) <= 0).all() if largest else (np.diff(finite) >= 0).all()
