"""Benchmark: Jittor CPU training-step speed with oneDNN on/off, against PyTorch CPU.

A small RepVGG-style network (3x3 + 1x1 conv/BN branches summed, ReLU; a stride-2 stem and
three stride-2 stages; ~1.3M parameters), batch 2, one SGD step (forward, backward,
update) per iteration, at several input sizes.  Every configuration runs in its own
subprocess, because ``use_mkl`` must be set before ``import jittor``.  For each it prints
the first step (operator compilation included, on a warm or cold Jittor cache), the median
warm step, and peak RSS.  When ``torch`` is importable (the ``bench`` extra; never a
runtime dependency) the same network runs in PyTorch and the Jittor/PyTorch ratio is shown.

    python bench/bench_runtime.py                      # 160/320/640, oneDNN off at 160/320
    python bench/bench_runtime.py --sizes 160 --steps 3 --off-sizes ""   # quick look
    python bench/bench_runtime.py --json out/bench_runtime.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: (out channels, stride, blocks) per stage after a 3x3/2 stem with 32 channels
STAGES = ((64, 2, 2), (128, 2, 2), (256, 2, 2))
STEM = 32
NUM_CLASSES = 10
BATCH = 2


# --------------------------------------------------------------------------- workers
def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _time_steps(step, steps: int) -> dict:
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return {
        "first_s": first,
        "steps_s": times,
        "median_s": statistics.median(times),
        "best_s": min(times),
    }


def worker_jittor(size: int, steps: int) -> dict:
    sys.path.insert(0, str(REPO))
    from gradcheck import runtime
    from gradcheck.progress import compile_progress

    t0 = time.perf_counter()
    jt = runtime.import_jittor()
    import_s = time.perf_counter() - t0
    from jittor import compile_extern, nn

    def conv_bn(cin, cout, k, s):
        return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout))

    class Block(nn.Module):
        def __init__(self, cin, cout, s):
            self.b3 = conv_bn(cin, cout, 3, s)
            self.b1 = conv_bn(cin, cout, 1, s)
            self.act = nn.ReLU()

        def execute(self, x):
            return self.act(self.b3(x) + self.b1(x))

    class Net(nn.Module):
        def __init__(self):
            layers, cin = [Block(3, STEM, 2)], STEM
            for cout, s, n in STAGES:
                for i in range(n):
                    layers.append(Block(cin, cout, s if i == 0 else 1))
                    cin = cout
            self.features = nn.Sequential(*layers)
            self.head = nn.Linear(cin, NUM_CLASSES)

        def execute(self, x):
            return self.head(self.features(x).mean(dims=(2, 3)))

    runtime.seed_everything(0)
    model = Net()
    n_params = sum(int(p.numel()) for p in model.parameters())
    opt = nn.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = jt.randn(BATCH, 3, size, size)
    y = jt.array([1, 7][:BATCH]).int32()

    def step():
        loss = nn.cross_entropy_loss(model(x), y)
        opt.step(loss)
        jt.sync_all(True)

    with compile_progress(quiet=True) as cs:
        t0 = time.perf_counter()
        step()
        first = time.perf_counter() - t0
    res = _time_steps(step, steps)
    res["first_s"] = first  # _time_steps' own first step is a warm-up here: report ours
    res.update(
        framework="jittor",
        onednn=compile_extern.mkl_ops is not None,
        import_s=import_s,
        ops_compiled=cs.ops_compiled,
        params=n_params,
        peak_rss_mib=_peak_rss_mib(),
    )
    return res


def worker_torch(size: int, steps: int) -> dict:
    import torch
    from torch import nn

    def conv_bn(cin, cout, k, s):
        return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout))

    class Block(nn.Module):
        def __init__(self, cin, cout, s):
            super().__init__()
            self.b3, self.b1 = conv_bn(cin, cout, 3, s), conv_bn(cin, cout, 1, s)
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.b3(x) + self.b1(x))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            layers, cin = [Block(3, STEM, 2)], STEM
            for cout, s, n in STAGES:
                for i in range(n):
                    layers.append(Block(cin, cout, s if i == 0 else 1))
                    cin = cout
            self.features = nn.Sequential(*layers)
            self.head = nn.Linear(cin, NUM_CLASSES)

        def forward(self, x):
            return self.head(self.features(x).mean(dim=(2, 3)))

    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(BATCH, 3, size, size)
    y = torch.tensor([1, 7][:BATCH])

    def step():
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    res = _time_steps(step, steps)
    res.update(
        framework="torch",
        onednn=None,
        threads=torch.get_num_threads(),
        version=torch.__version__,
        params=sum(p.numel() for p in model.parameters()),
        peak_rss_mib=_peak_rss_mib(),
    )
    return res


# --------------------------------------------------------------------------- driver
def run_config(
    framework: str,
    size: int,
    steps: int,
    onednn: bool = True,
    timeout: float = 3600,
    threads: int = 0,
) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if threads:  # oneDNN (GNU OpenMP) and PyTorch both honour it
        env["OMP_NUM_THREADS"] = str(threads)
    if framework == "jittor" and not onednn:
        env["use_mkl"] = "0"
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        framework,
        "--sizes",
        str(size),
        "--steps",
        str(steps),
    ]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"framework": framework, "size": size, "error": f"timed out after {timeout:.0f}s"}
    wall = time.perf_counter() - t0
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        err = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return {"framework": framework, "size": size, "error": err[:200]}
    res = json.loads(lines[-1])
    res.update(size=size, wall_s=wall)
    return res


def _fmt(res: dict | None, key: str, spec: str) -> str:
    if not res or "error" in res or res.get(key) is None:
        return "-"
    return format(res[key], spec)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="160,320,640", help="input sizes, comma-separated")
    ap.add_argument(
        "--off-sizes",
        default="160,320",
        help="sizes also run with oneDNN off (slow: 640 takes many minutes)",
    )
    ap.add_argument("--steps", type=int, default=5, help="warm steps timed (median)")
    ap.add_argument("--off-steps", type=int, default=2, help="warm steps with oneDNN off")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per configuration")
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="OMP_NUM_THREADS for every configuration (0: library default). "
        "On a busy shared machine 1 gives steadier numbers: OpenMP barriers "
        "stall for whole scheduler slices when cores are oversubscribed",
    )
    ap.add_argument("--worker", choices=["jittor", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    if args.worker:
        fn = worker_jittor if args.worker == "jittor" else worker_torch
        print(json.dumps(fn(sizes[0], args.steps)), flush=True)
        return 0

    off_sizes = [int(s) for s in args.off_sizes.split(",") if s.strip()]
    try:
        import importlib.util

        have_torch = importlib.util.find_spec("torch") is not None and not args.no_torch
    except (ImportError, ValueError):
        have_torch = False

    results = []
    hdr = (
        f"{'size':>5} {'config':<16} {'first step':>11} {'warm median':>11} "
        f"{'warm best':>10} {'ops compiled':>12} {'peak RSS':>10} {'vs torch':>9}"
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"RepVGG-style net, batch {BATCH}, SGD step; {os.cpu_count()} CPU cores "
        f"(load {load:.1f}); threads: {args.threads or 'default'}; "
        f"python {sys.version.split()[0]}",
        flush=True,
    )
    print(hdr)
    print("-" * len(hdr), flush=True)
    print("(vs torch: ratio of warm medians, Jittor / PyTorch)", flush=True)
    for size in sizes:
        row = {}
        if have_torch:
            row["torch"] = run_config(
                "torch", size, args.steps, timeout=args.timeout, threads=args.threads
            )
        row["jittor+onednn"] = run_config(
            "jittor", size, args.steps, True, args.timeout, args.threads
        )
        if size in off_sizes:
            row["jittor-no-onednn"] = run_config(
                "jittor", size, args.off_steps, False, args.timeout, args.threads
            )
        t = row.get("torch")
        for name, res in row.items():
            ratio = "-"
            if t and "error" not in t and "error" not in res and name != "torch":
                ratio = f"{res['median_s'] / t['median_s']:.2f}x"
                res["ratio_vs_torch"] = res["median_s"] / t["median_s"]
            if "error" in res:
                print(f"{size:>5} {name:<16} error: {res['error']}", flush=True)
                continue
            print(
                f"{size:>5} {name:<16} {_fmt(res, 'first_s', '10.2f')}s "
                f"{_fmt(res, 'median_s', '10.3f')}s {_fmt(res, 'best_s', '9.3f')}s "
                f"{_fmt(res, 'ops_compiled', '12d')} "
                f"{_fmt(res, 'peak_rss_mib', '6.0f')} MiB {ratio:>9}",
                flush=True,
            )
            results.append(dict(res, config=name))
    params = next((r["params"] for r in results if "params" in r), None)
    if params:
        print(
            f"parameters: {params / 1e6:.2f}M; first step includes operator compilation "
            "(a cold Jittor cache compiles more)"
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
