"""How torch's CPU ``torch.topk`` breaks ties, against ``gold_yolo``'s port of it and ``jt.topk``.

    python3 bench/topk_ties.py [--rows 200] [--seed 0]

Rows with many ties (values drawn from a handful of levels, zeros included), for the row
lengths and k of the Gold-YOLO assigners (TAL k=13 over all anchors; ATSS k=9 per level,
at 320 and 640), largest and smallest.  Prints, per case, how many rows give exactly
torch's indices (same order) with ``torch_cpu_topk_indices`` and with ``jt.topk``, and
whether torch itself is reproducible: the same input again, with 1 and 2 intra-op threads,
and the same row inside a bigger batch.  torch is needed here, never by the package.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gold_yolo.assigners.topk import jt, torch_cpu_topk_indices  # noqa: E402

CASES = [
    (n, k, largest)
    for n, k in ((2100, 13), (8400, 13), (1600, 9), (400, 9), (100, 9), (6400, 9))
    for largest in (True, False)
]


def tie_rows(rng, rows, n):
    levels = rng.integers(2, 8)
    x = rng.integers(0, levels, size=(rows, n)).astype(np.float32) / levels
    x[rng.random((rows, n)) < 0.5] = 0.0  # like metric * mask_in_gts: mostly zeros
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    data = {c: tie_rows(rng, args.rows, c[0]) for c in CASES}
    ours, jts = {}, {}
    for (n, k, largest), x in data.items():  # all Jittor compiles before torch starts
        ours[(n, k, largest)] = torch_cpu_topk_indices(jt.array(x), k, largest).numpy()
        jts[(n, k, largest)] = jt.topk(jt.array(x), k, dim=-1, largest=largest)[1].numpy()
    import torch

    print(
        f"torch {torch.__version__}; {args.rows} tie-heavy rows per case; "
        "'same' = identical index order"
    )
    print(
        f"{'n':>5s} {'k':>3s} {'largest':>7s} {'algorithm':>13s} {'ours same':>9s} "
        f"{'ours set':>8s} {'jt.topk set':>11s} {'torch repeat':>12s} {'1 vs 2 thr':>10s} "
        f"{'row vs batch':>12s}"
    )
    for (n, k, largest), x in data.items():
        t = torch.from_numpy(x)
        torch.set_num_threads(2)
        ref = torch.topk(t, k, dim=-1, largest=largest)[1].numpy()
        again = torch.topk(t.clone(), k, dim=-1, largest=largest)[1].numpy()
        torch.set_num_threads(1)
        one = torch.topk(t, k, dim=-1, largest=largest)[1].numpy()
        torch.set_num_threads(2)
        single = np.stack(
            [
                torch.topk(t[i : i + 1], k, dim=-1, largest=largest)[1].numpy()[0]
                for i in range(0, len(x), 10)
            ]
        )
        o, j = ours[(n, k, largest)], jts[(n, k, largest)]
        same = int((o == ref).all(-1).sum())
        set_same = int((np.sort(o, -1) == np.sort(ref, -1)).all(-1).sum())
        jt_set = int((np.sort(j, -1) == np.sort(ref, -1)).all(-1).sum())
        alg = "partial_sort" if k * 64 <= n else "nth_element"
        print(
            f"{n:5d} {k:3d} {str(largest):>7s} {alg:>13s} {same:5d}/{len(x):<3d} "
            f"{set_same:4d}/{len(x):<3d} {jt_set:7d}/{len(x):<3d} "
            f"{str((again == ref).all()):>12s} {str((one == ref).all()):>10s} "
            f"{str((single == ref[::10]).all()):>12s}"
        )


if __name__ == "__main__":
    main()
