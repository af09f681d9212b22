"""What a Jittor code op's input count costs: the chunk sizes of our two many-Var kernels.

gradcheck's before/after comparison (``gradcheck/snapshot.py``) and Gold-YOLO's fused SGD
(``gold_yolo/optim.py``) each run one ``jt.code`` kernel per chunk of Vars.  Jittor prepares a
code op's source once per process (``precompile``, on the main thread) at a cost that grows with
the square of the op's Vars, even when the compiled library is cached; a bigger chunk means fewer
ops per step.  For each chunk size this prints, on a model's real parameters and in a fresh
process on a warm Jittor cache (a first untimed process compiles the kernel):

* first: the first step (preparation, loading and running the kernels);
* later: the median of the next steps (running them);
* kernels: how many ops one step runs.

    python3 bench/bench_code_inputs.py [--model gold_yolo_n] [--chunks 8,16,32,64,128,256]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
from gradcheck import runtime
jt = runtime.import_jittor()
import gold_yolo
from gold_yolo import optim
from gradcheck import snapshot
kind, chunk, name, steps = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
optim._SGD_CHUNK = chunk
snapshot._CMP_CHUNK = chunk
model = gold_yolo.build_model(name)
opt = gold_yolo.build_optimizer(model, name, batch_size=2)
params = [p for p in model.parameters() if not p.is_stop_grad()]
jt.sync_all(True)
times = []
for step in range(steps):
    if kind == "sgd":   # gradients first, untimed: the update alone is timed
        opt.backward(sum((p * p).sum() for p in params))
        jt.sync([g for pg in opt.param_groups for g in pg["grads"]])
        t = time.perf_counter()
        opt.step()
        jt.sync_all(True)
    else:               # every parameter moved, then compared
        snap = snapshot.Snapshot(params)
        for p in params:
            p.update(p * 1.001)
        t = time.perf_counter()
        snap.compare()
    times.append(time.perf_counter() - t)
per_step = -(-len(params) // chunk)
print(json.dumps({"times": times, "kernels": per_step, "params": len(params)}))
"""


def measure(kind: str, chunk: int, model: str, steps: int, env: dict) -> dict:
    args = [sys.executable, "-c", CHILD, kind, str(chunk), model, str(steps)]
    subprocess.run(args, cwd=ROOT, env=env, capture_output=True, check=True)  # compile if new
    out = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gold_yolo_n")
    ap.add_argument("--chunks", default="8,16,32,64,128,256")
    ap.add_argument("--steps", type=int, default=6)
    a = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    chunks = [int(c) for c in a.chunks.split(",") if c.strip()]
    print(
        f"# {a.model}, warm Jittor cache, fresh process per row; first step, then median of "
        f"{a.steps - 1}"
    )
    print(f"{'kernel':<11}{'chunk':>6}{'Vars/op':>8}{'kernels':>8}{'first':>10}{'later':>10}")
    # Vars of one op: (after, before) per pair and the result; (p, g, v, p', v') per parameter
    # and the hyper-parameters
    for kind, per in (("snapshot", 2), ("sgd", 5)):
        for chunk in chunks:
            r = measure(kind, chunk, a.model, a.steps, env)
            later = statistics.median(r["times"][1:])
            print(
                f"{kind:<11}{chunk:6d}{per * chunk + 1:8d}{r['kernels']:8d}"
                f"{r['times'][0] * 1e3:8.1f} ms{later * 1e3:8.1f} ms",
                flush=True,
            )


if __name__ == "__main__":
    main()
