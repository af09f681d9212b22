"""Top-k indices that break ties exactly as torch's CPU ``torch.topk`` does (Jittor).

Gold-YOLO: Wang et al., NeurIPS 2023.  The TAL and ATSS assigners of
``yolov6/assigners/{tal,atss}_assigner.py`` (huawei-noah/Efficient-Computing,
Detection/Gold-YOLO) call ``torch.topk``.  From the official initialisation the prediction
weights are zero, so many anchors tie in the alignment metric (and grid-symmetric anchors
tie in the ATSS centre distance): which of the tied anchors become candidates decides the
positives of the very first step.  ``jt.topk`` breaks ties differently, so the port runs
torch's CPU algorithm instead (``aten/src/ATen/native/TopKImpl.h``, ``topk_impl_loop``):

- every row is copied into a vector of ``(value as double, index)`` pairs;
- ``k * 64 <= n``: ``std::partial_sort`` of the first k (a heap select, then a heap sort);
- otherwise ``std::nth_element`` at ``k - 1`` and ``std::sort`` of the first ``k - 1``;
- the comparator is ``x > y`` (``largest``) or ``x < y``, NaN counting as the largest.

The result is a deterministic function of the row (no threads inside a row, no
randomness; measured in ``bench/topk_ties.py``).  Our op is the same C++ calls on the same
pairs, so it gives the same indices in the same order as long as the C++ standard library
implements those algorithms the same way (libstdc++ has done so since GCC 4.x; torch's
wheels are built with GCC).  ``tests/gold_yolo/assigners/test_topk_ties.py`` checks the op
against a numpy transcription of the libstdc++ algorithms.  On CUDA it falls back to
``jt.topk`` (torch's CUDA top-k breaks ties in yet another way).
"""

from __future__ import annotations

from .. import jt  # the package sets up the Jittor runtime first

__all__ = ["torch_cpu_topk_indices"]

_HEADER = (
    "#include <algorithm>\n#include <vector>\n#include <utility>\n#include <cmath>\n"
    "#include <cstdint>\n#include <cstring>\n"
)

# one source per (k, largest): jt.code caches the compiled kernel by its source text
_SRC = """
typedef std::pair<double, int64_t> elem_t;
auto is_nan = [](double v) -> bool {{
    uint64_t b;
    std::memcpy(&b, &v, 8);
    return (b & 0x7ff0000000000000ull) == 0x7ff0000000000000ull && (b & 0x000fffffffffffffull);
}};
const int64_t rows = in0_shape0, n = in0_shape1, k = {k};
std::vector<elem_t> q(n);
auto cmp = [&](const elem_t& x, const elem_t& y) -> bool {{
    return {cmp};
}};
for (int64_t r = 0; r < rows; r++) {{
    for (int64_t j = 0; j < n; j++) q[j] = elem_t((double)@in0(r, j), j);
    if (k * 64 <= n) {{
        std::partial_sort(q.begin(), q.begin() + k, q.end(), cmp);
    }} else {{
        std::nth_element(q.begin(), q.begin() + k - 1, q.end(), cmp);
        std::sort(q.begin(), q.begin() + k - 1, cmp);
    }}
    for (int64_t j = 0; j < k; j++) @out0(r, j) = (int32)q[j].second;
}}
"""
# Jittor compiles kernels with -Ofast, under which std::isnan is taken to be false: with a
# NaN in a row the comparator would no longer be a strict weak ordering, and std::sort may
# then walk off the vector.  NaN is tested on the bits instead.
_CMP = {
    True: "(is_nan(x.first) && !is_nan(y.first)) "
    "|| (!is_nan(x.first) && !is_nan(y.first) && x.first > y.first)",
    False: "(!is_nan(x.first) && is_nan(y.first)) "
    "|| (!is_nan(x.first) && !is_nan(y.first) && x.first < y.first)",
}


def torch_cpu_topk_indices(x, k: int, largest: bool = True):
    """x (..., n) float -> int32 indices (..., k) of its top-k along the last axis, in the
    order (ties included) of torch's CPU ``torch.topk(x, k, dim=-1, largest, sorted=True)``."""
    k = int(k)
    n = x.shape[-1]
    if not 0 < k <= n:
        raise ValueError(f"top-k: k={k} not in 1..{n}")
    if jt.flags.use_cuda:
        return jt.topk(x, k, dim=-1, largest=largest)[1].int32()
    lead = tuple(x.shape[:-1])
    rows = x.reshape(-1, n)  # (R, n)
    out = jt.code(
        (rows.shape[0], k),
        "int32",
        [rows],
        cpu_header=_HEADER,
        cpu_src=_SRC.format(k=k, cmp=_CMP[bool(largest)]),
    )  # (R, k)
    return out.reshape(lead + (k,))
