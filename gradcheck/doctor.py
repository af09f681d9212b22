"""``gradcheck doctor``: is this machine's Jittor fast, quiet and correct?

:func:`run_doctor` inspects the runtime gradcheck set up (:mod:`gradcheck.runtime`) and
returns a :class:`DoctorReport`: Jittor and Python/numpy versions, the C++ compiler Jittor
uses, Jittor's cache folder and its size, whether oneDNN is wired in (and which library
file is loaded), the device, and a self-test -- a small convolution forward and backward
pass checked against a numpy reference.  Each failed check carries a one-line fix hint.

:func:`render_doctor` prints a report as a rich table; ``report.to_dict()`` is the JSON
form.  The CLI stays a thin wrapper::

    report = run_doctor()
    render_doctor(report, console)      # or: print(json.dumps(report.to_dict()))
    sys.exit(0 if report.ok else 1)
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gradcheck.procmaps import mapped_files

__all__ = [
    "Check",
    "DoctorReport",
    "run_doctor",
    "render_doctor",
    "conv_self_test",
    "dir_size",
    "loaded_onednn_libs",
]

SELF_TEST_TOL = 1e-4


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix_hint: str = ""


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def get(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks]}


# --------------------------------------------------------------------------- helpers
def dir_size(path: Path) -> tuple[int, int]:
    """(bytes, files) under ``path``, not following symlinks (du-like, one stat each)."""
    total = files = 0
    stack = [str(path)]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
                        elif e.is_file(follow_symlinks=False):
                            total += e.stat(follow_symlinks=False).st_size
                            files += 1
                    except OSError:
                        continue
        except OSError:
            continue
    return total, files


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def loaded_onednn_libs() -> list[str]:
    """The oneDNN shared libraries mapped into this process."""
    return [
        p for p in mapped_files() or [] if os.path.basename(p).startswith(("libdnnl", "libmkldnn"))
    ]


def _compiler_version(cc: str) -> str:
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=20)
        return (out.stdout or out.stderr).splitlines()[0].strip()
    except (OSError, subprocess.SubprocessError, IndexError):
        return ""


def _short_error(exc: BaseException) -> str:
    """One readable line from an exception (Jittor's messages run to pages)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    interesting = [ln for ln in lines if not ln.startswith(("[i", "[w", "Traceback", "File "))]
    msg = (interesting or lines or [type(exc).__name__])[0]
    return f"{type(exc).__name__}: {msg}"[:300]


# --------------------------------------------------------------------------- self-test
def _conv_reference(x, w, pad: int):
    """numpy conv2d (stride 1) and the weight gradient of sum(out * g)."""
    import numpy as np

    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1
    # patches[n, c, i, j, a, b] = xp[n, c, i + a, j + b]
    # numpy's stub allows one axis only; the function documents a tuple of them
    patches = np.lib.stride_tricks.sliding_window_view(  # type: ignore[call-overload]
        xp, (kh, kw), axis=(2, 3)
    )
    patches = patches[:, :, :oh, :ow]
    out = np.einsum("ncijab,fcab->nfij", patches, w, optimize=True)
    return out, patches


def conv_self_test(jt=None, seed: int = 0) -> tuple[bool, str]:
    """A 2x3x8x8 input, 4 filters 3x3, padding 1: Jittor's conv output, weight and input
    gradients against numpy.  Returns (ok, detail)."""
    import numpy as np

    if jt is None:
        from gradcheck import runtime

        jt = runtime.import_jittor()
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, 8, 8)).astype("float32")
    w = rng.standard_normal((4, 3, 3, 3)).astype("float32")
    g = rng.standard_normal((2, 4, 8, 8)).astype("float32")
    ref_out, patches = _conv_reference(x, w, pad=1)
    ref_dw = np.einsum("nfij,ncijab->fcab", g, patches, optimize=True)
    # d out[n,f,i,j] / d xp[n,c,i+a,j+b] = w[f,c,a,b]: scatter back, then crop the padding
    dxp = np.zeros((2, 3, 10, 10), dtype="float64")
    contrib = np.einsum("nfij,fcab->ncijab", g, w, optimize=True)
    for a in range(3):
        for b in range(3):
            dxp[:, :, a : a + 8, b : b + 8] += contrib[:, :, :, :, a, b]
    ref_dx = dxp[:, :, 1:-1, 1:-1]

    t0 = time.perf_counter()
    jx, jw, jg = jt.array(x), jt.array(w), jt.array(g)
    out = jt.nn.conv2d(jx, jw, None, 1, 1)
    loss = (out * jg).sum()
    dx, dw = jt.grad(loss, [jx, jw])
    got_out, got_dx, got_dw = out.numpy(), dx.numpy(), dw.numpy()
    secs = time.perf_counter() - t0

    errs = {}
    for name, got, ref in (
        ("output", got_out, ref_out),
        ("weight grad", got_dw, ref_dw),
        ("input grad", got_dx, ref_dx),
    ):
        if got.shape != ref.shape:
            return False, f"{name} has shape {got.shape}, expected {ref.shape}"
        errs[name] = float(np.max(np.abs(got - ref) / (1.0 + np.abs(ref))))
    worst = max(errs, key=errs.__getitem__)
    detail = (
        f"conv 2x3x8x8 * 4x3x3x3, pad 1: max rel. error {errs[worst]:.1e} ({worst}), {secs:.2f}s"
    )
    return errs[worst] <= SELF_TEST_TOL, detail


# --------------------------------------------------------------------------- doctor
def run_doctor(self_test: bool = True, quiet: bool = True, console=None) -> DoctorReport:
    """Inspect the Jittor runtime; never raises for a broken environment (that is what
    the report is for).  ``quiet``/``console`` control compile progress display."""
    import numpy as np

    from gradcheck import runtime
    from gradcheck.progress import compile_progress

    report = DoctorReport()
    add = lambda *a: report.checks.append(Check(*a))  # noqa: E731

    add(
        "python",
        True,
        f"Python {platform.python_version()} ({sys.executable}), numpy {np.__version__}",
        "",
    )

    try:
        st = runtime.state()
    except runtime.RuntimeSetupError as exc:
        add("device", False, str(exc), "use --device cpu, or GRADCHECK_DEVICE=auto")
        return report
    dev_detail = f"{st.device} (asked: {st.requested_device}; {st.cuda_reason})"
    add("device", True, dev_detail, "")

    try:
        with compile_progress(quiet=quiet, console=console):
            jt = runtime.import_jittor()
    except Exception as exc:  # noqa: BLE001 - a broken install is a finding, not a crash
        add(
            "jittor",
            False,
            f"import failed: {_short_error(exc)}",
            "pip install --force-reinstall jittor==1.3.11; then rerun gradcheck doctor",
        )
        return report
    report.checks += [_jittor_check(jt), _compiler_check(jt), _cache_check(jt), _onednn_check(st)]
    if self_test:
        report.checks.append(_self_test_check(jt, quiet, console))
    return report


def _jittor_check(jt) -> Check:
    """The imported Jittor's version against the one gradcheck is tested with."""
    want = "1.3.11"
    ver = getattr(jt, "__version__", "?")
    return Check(
        "jittor",
        ver.startswith(want),
        f"Jittor {ver} ({os.path.dirname(jt.__file__)})",
        "" if ver.startswith(want) else f"pip install jittor=={want} (tested version)",
    )


def _compiler_check(jt) -> Check:
    """The C++ compiler Jittor uses, and whether it runs."""
    cc = str(getattr(jt.flags, "cc_path", "") or "")
    cc_ver = _compiler_version(cc) if cc else ""
    return Check(
        "compiler",
        bool(cc and cc_ver),
        f"{cc} ({cc_ver or 'does not run'})" if cc else "none found",
        ""
        if cc and cc_ver
        else "install a C++ compiler (apt-get install g++) or set cc_path=/path/to/g++",
    )


def _cache_check(jt) -> Check:
    """Jittor's cache: its size, this build's compiled operators, whether it is writable."""
    from gradcheck import runtime

    cache = Path(str(jt.flags.cache_path))
    root = runtime.jittor_home() / ".cache" / "jittor"
    size, files = dir_size(root)
    jit_dir = cache / "jit"
    n_ops = sum(1 for p in jit_dir.glob("*.so")) if jit_dir.is_dir() else 0
    writable = os.access(cache, os.W_OK)
    try:
        build = cache.relative_to(root)
    except ValueError:
        build = cache
    return Check(
        "cache",
        writable,
        f"{root}: {_human(size)} in {files} files; this build: {build} "
        f"({n_ops} compiled operators)",
        "" if writable else f"make {cache} writable (Jittor compiles operators into it)",
    )


def _onednn_check(st) -> Check:
    """Whether Jittor loaded its oneDNN ops (and from which library), or why not."""
    from jittor import compile_extern

    from gradcheck import runtime

    mkl_ops = getattr(compile_extern, "mkl_ops", None)
    libs = loaded_onednn_libs()
    if mkl_ops is not None:
        lib = libs[0] if libs else (st.onednn_lib or "?")
        real = os.path.realpath(lib)
        return Check("onednn", True, f"on: {lib}" + (f" -> {real}" if real != lib else ""), "")
    why = st.onednn_reason or "Jittor did not load its oneDNN ops"
    hint = (
        "unset use_mkl (oneDNN makes CPU convolutions 70-120x faster)"
        if os.environ.get("use_mkl") == "0" and "use_mkl=0" in why
        else runtime.ONEDNN_FIX
    )
    return Check("onednn", False, f"off: {why}; convolutions run 70-120x slower", hint)


def _self_test_check(jt, quiet: bool, console) -> Check:
    """The convolution self-test (:func:`conv_self_test`), with what its first run compiled;
    a crash in it is a failed check."""
    from gradcheck.progress import compile_progress

    cache = Path(str(jt.flags.cache_path))
    try:
        with compile_progress(quiet=quiet, console=console) as cs:
            ok, detail = conv_self_test(jt)
        if cs.ops_compiled:
            detail += f" (first run: {cs.summary()})"
        return Check(
            "self-test",
            ok,
            detail,
            ""
            if ok
            else "wrong convolution results: clear the Jittor cache "
            f"(rm -rf {cache}) and rerun; if it persists, run with use_mkl=0 and "
            "report it",
        )
    except Exception as exc:  # noqa: BLE001
        return Check(
            "self-test",
            False,
            f"conv forward/backward failed: {_short_error(exc)}",
            f"clear the Jittor cache (rm -rf {cache}) and rerun gradcheck doctor",
        )


# --------------------------------------------------------------------------- rendering
def render_doctor(report: DoctorReport, console=None) -> None:
    """Print ``report`` as a table (a rich Console; stdout when None)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    table = Table(title="gradcheck doctor", show_lines=False, title_justify="left")
    table.add_column("check", style="bold", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for c in report.checks:
        mark = Text("ok", style="green") if c.ok else Text("FAIL", style="bold red")
        detail = Text(c.detail)
        if not c.ok and c.fix_hint:
            detail.append("\nfix: ", style="yellow").append(c.fix_hint)
        table.add_row(c.name, mark, detail)
    console.print(table)
    if report.ok:
        console.print("[green]all checks passed[/]")
    else:
        n = len(report.failed)
        console.print(f"[bold red]{n} problem{'s' if n > 1 else ''} found[/]")
