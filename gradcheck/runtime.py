"""Jittor runtime bootstrap: make ``import jittor`` fast, quiet and safe on any machine.

Importing this module (or ``gradcheck``) does nothing: the set-up runs when an entry point
first needs Jittor, through :func:`ensure_jittor` (set up once, then ``import jittor``): the
CLI's ``run``, ``align`` and ``doctor``, :func:`gradcheck.check` and ``watch`` (through the
probe), the pytest plugin's fixture, and every module of ``gold_yolo`` that uses Jittor.
``gradcheck --help``, ``compare`` and ``show`` never start it.  Code that imports Jittor
itself calls ``jt = gradcheck.ensure_jittor()`` first (a plain ``import jittor`` before it
keeps Jittor's own settings).  The set-up, :func:`setup`, does this:

1. **Device.**  Jittor compiles CUDA kernels whenever it finds ``nvcc``, and crashes at
   import when a CUDA compiler stub sits on the ``PATH`` without a working driver.  We pick
   the device ourselves (``auto``: CUDA only when the driver answers with at least one GPU)
   and hide ``nvcc`` from Jittor (``nvcc_path=""``) everywhere else.
2. **oneDNN.**  Without oneDNN, Jittor's CPU convolutions are 70-120x slower.  Jittor wants
   to download oneDNN 2.2 at first import, which fails offline.  PyPI has oneDNN builds
   (``onednn-cpu-gomp`` + ``onednn-devel-cpu-gomp``); we pin 2022.2.1, which is oneDNN 2.6, the
   newest release with the 2.x API that Jittor's mkl ops are written against (3.x removed it),
   and ABI-compatible with 2.2 (one soname, ``libdnnl.so.2``).  On AVX-512 its convolution
   forward is about 1.8x faster than 2.2's.  We lay it out where Jittor looks
   (``~/.cache/jittor/mkl/dnnl_lnx_2.2.0_cpu_gomp/{lib,include}``: the folder name is Jittor's,
   whatever the version inside) so Jittor finds it and never downloads; a folder holding another
   version (Jittor's own 2.2 download, or an older layout of ours) is laid out anew.  If it
   truly cannot be had we fall back to ``use_mkl=0`` and say so once, loudly, with the slowdown.
3. **Quiet.**  Jittor's ``[i ...]`` log lines are silenced (``log_silent=1``); the
   "Compiling Operators" progress Jittor writes to fd 2 is taken over by
   :func:`gradcheck.progress.compile_progress` where gradcheck runs Jittor.
4. **Seeds.**  :func:`seed_everything` seeds Jittor, numpy and ``random`` from one number.
5. **Serial operator compiler on a warm cache.**  Jittor generates and checks every new fused
   operator's source in up to 8 threads (``parallel_compile_all_ops``), even when the compiled
   library is already cached, and those threads are not safe: a process hung in a benchmark
   showed a SIGSEGV in ``VarRelayManager::get_relay_src`` on one of them (Jittor's handler then
   calls ``exit`` inside the signal handler, which deadlocked on torch's exit handlers).  The
   rare ``op_compiler.cc: Check failed: member.size() <= var_num`` comes from the same source
   generation.  Each hit about one process in 20-40 here.  With a warm cache (at least
   ``WARM_CACHE_LIBS`` compiled operators) :func:`import_jittor` sets
   ``use_parallel_op_compiler=0``: each operator is then prepared on the main thread when it
   first runs, no slower when nothing needs compiling (Gold-YOLO-N's first step: 3.9 s serial
   against 4.1 s in threads).  A fresh cache keeps the threads, so a first run still compiles
   its few hundred operators in parallel.  A ``use_parallel_op_compiler`` in the environment
   is left as it is.
6. **Jittor's core built in a child.**  The first ``import jittor`` on a machine compiles
   Jittor's core (``jit_utils_core``) inside the importing process, and in that process
   ``jt.log_capture_scope`` captures nothing: every ``doesn't have gradient`` warning of the
   run is lost (seen on a fresh ``HOME``: the capture works from the next process on).  When
   the cache holds no core for this Jittor and Python, :func:`import_jittor` first imports
   Jittor in a child process, which builds it, then imports the built core.
"""

from __future__ import annotations

import ctypes
import glob
import os
import random
import signal
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

DEVICES = ("auto", "cpu", "cuda")
WARM_CACHE_LIBS = 64  # compiled operators that make a Jittor cache "warm"
DNNL_DIRNAME = "dnnl_lnx_2.2.0_cpu_gomp"  # the folder name Jittor 1.3.11 itself downloads to
ONEDNN_PYPI = "2022.2.1"  # onednn-cpu-gomp / onednn-devel-cpu-gomp: oneDNN 2.6
ONEDNN_FIX = f"pip install onednn-cpu-gomp=={ONEDNN_PYPI} onednn-devel-cpu-gomp=={ONEDNN_PYPI}"


class RuntimeSetupError(RuntimeError):
    """The runtime cannot be set up as asked (e.g. ``--device cuda`` without a GPU)."""


class OneDNNSlowWarning(UserWarning):
    """oneDNN could not be found; Jittor convolutions run 70-120x slower."""


@dataclass
class RuntimeState:
    device: str = "cpu"  # the device chosen: "cpu" or "cuda"
    requested_device: str = "auto"
    cuda_reason: str = ""  # why CUDA was or was not chosen
    onednn: bool = False  # oneDNN wired in for Jittor
    onednn_lib: str | None = None  # the libmkldnn.so Jittor links against
    onednn_reason: str = ""
    jittor_was_imported: bool = False  # jittor was already imported before setup ran
    notes: list = field(default_factory=list)
    op_compiler: str = ""  # how Jittor prepares new operators (see point 5 above)


_state: RuntimeState | None = None
_mkl_disabled_by_us = False  # we set use_mkl=0 ourselves (a later setup must not blame the user)
_warned = False  # OneDNNSlowWarning is emitted once per process
_nvcc_hidden_by_us = False


# --------------------------------------------------------------------------- device
def cuda_available() -> tuple[bool, str]:
    """Whether a working CUDA driver with at least one GPU exists (no nvcc needed)."""
    for name in ("libcuda.so.1", "libcuda.so"):
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    else:
        return False, "no CUDA driver (libcuda.so.1 not found)"
    try:
        if lib.cuInit(0) != 0:
            return False, "CUDA driver present but cuInit failed"
        count = ctypes.c_int(0)
        if lib.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
            return False, "CUDA driver present but no GPU"
        return True, f"{count.value} CUDA GPU(s)"
    except (AttributeError, OSError) as exc:  # a stub library without the symbols
        return False, f"CUDA driver unusable ({exc})"


def choose_device(requested: str) -> tuple[str, str]:
    if requested not in DEVICES:
        raise RuntimeSetupError(f"unknown device {requested!r}: choose one of {', '.join(DEVICES)}")
    if requested == "cpu":
        return "cpu", "asked for cpu"
    ok, why = cuda_available()
    if requested == "cuda" and not ok:
        raise RuntimeSetupError(f"--device cuda asked for, but {why}")
    return ("cuda", why) if ok else ("cpu", why)


# --------------------------------------------------------------------------- oneDNN
def jittor_home() -> Path:
    """Jittor's home, as ``jittor_utils.home()`` computes it, without importing jittor."""
    import json

    default = str(Path.home())
    cfg = Path.home() / ".cache" / "jittor" / "config.json"
    try:
        default = json.loads(cfg.read_text()).get("JITTOR_HOME", default)
    except (OSError, ValueError):
        pass
    return Path(os.environ.get("JITTOR_HOME", default))


def jittor_mkl_dir() -> Path:
    return jittor_home() / ".cache" / "jittor" / "mkl"


def onednn_include_dir() -> Path | None:
    """The headers of the oneDNN that Jittor's mkl ops run on, for kernels of our own that call
    it (``gold_yolo/layers/conv.py``); None when Jittor runs without oneDNN or they are missing."""
    if not state().onednn:
        return None
    d = jittor_mkl_dir() / DNNL_DIRNAME / "include"  # where Jittor compiles its own mkl ops from
    return d if (d / "oneapi" / "dnnl" / "dnnl.hpp").exists() else None


def _dist_file(dist: str, suffix: str) -> Path | None:
    from importlib import metadata

    try:
        files = metadata.distribution(dist).files or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).replace("\\", "/").endswith(suffix):
            path = Path(f.locate()).resolve()
            if path.exists():
                return path
    return None


def find_pypi_onednn() -> tuple[Path | None, Path | None, str]:
    """(lib dir holding libdnnl.so.2, include dir holding dnnl.h, reason if missing)."""
    lib = None
    for dist in ("onednn-cpu-gomp", "onednn-devel-cpu-gomp"):
        for name in ("lib/libdnnl.so.2", "lib/libmkldnn.so"):
            lib = lib or _dist_file(dist, name)
    inc = _dist_file("onednn-devel-cpu-gomp", "include/dnnl.h")
    if lib is None:
        # A prefix install without metadata (conda, a copied venv): look next to Python.
        for name in ("libdnnl.so.2", "libmkldnn.so"):
            cand = Path(sys.prefix) / "lib" / name
            lib = lib or (cand if cand.exists() else None)
    if inc is None:
        cand = Path(sys.prefix) / "include" / "dnnl.h"
        inc = cand if cand.exists() else None
    if lib is None:
        return None, None, f"onednn-cpu-gomp=={ONEDNN_PYPI} is not installed (no libdnnl.so.2)"
    if inc is None:
        return None, None, f"onednn-devel-cpu-gomp=={ONEDNN_PYPI} is not installed (no dnnl.h)"
    return lib.parent, inc.parent, ""


def dnnl_version(include_dir: Path) -> tuple | None:
    """(major, minor, patch) from *include_dir*'s ``dnnl_version.h``, or None.  From 2.3 on
    the top-level header only includes ``oneapi/dnnl/dnnl_version.h``."""
    import re

    for header in (
        include_dir / "oneapi" / "dnnl" / "dnnl_version.h",
        include_dir / "dnnl_version.h",
    ):
        try:
            text = header.read_text()
        except OSError:
            continue
        parts = [
            re.search(rf"#define\s+DNNL_VERSION_{k}\s+(\d+)", text)
            for k in ("MAJOR", "MINOR", "PATCH")
        ]
        if all(parts):
            return tuple(int(m.group(1)) for m in parts if m is not None)
    return None


def _valid_dnnl_dir(d: Path) -> bool:
    return (
        (d / "lib" / "libmkldnn.so").exists()
        and (d / "include" / "dnnl.h").exists()
        and (d / "include" / "oneapi" / "dnnl" / "dnnl.hpp").exists()
    )


def install_onednn_for_jittor() -> tuple[bool, str | None, str]:
    """Lay PyPI's oneDNN out where Jittor looks for it.  Returns (ok, lib, reason)."""
    mkl = jittor_mkl_dir()
    target = mkl / DNNL_DIRNAME
    # Jittor uses the *first* ``dnnl*`` folder it lists: a broken one shadows ours.
    try:
        others = [p for p in mkl.iterdir() if p.name.startswith("dnnl") and p.is_dir()]
    except OSError:
        others = []
    in_place = _valid_dnnl_dir(target) and all(_valid_dnnl_dir(p) for p in others)
    lib_dir, inc_dir, why = find_pypi_onednn()
    if in_place and (
        lib_dir is None
        or inc_dir is None  # (both or neither are found)
        or dnnl_version(target / "include") == dnnl_version(inc_dir)
    ):
        # ours, or one that works when PyPI's is missing (Jittor's own download)
        return True, str((target / "lib" / "libmkldnn.so").resolve()), "already in place"
    if lib_dir is None or inc_dir is None:
        return False, None, why
    broken = [p for p in others if p != target and not _valid_dnnl_dir(p)]
    if broken:
        return False, None, f"a broken oneDNN folder shadows ours: {broken[0]} (remove it)"
    tmp = mkl / f".{DNNL_DIRNAME}.tmp{os.getpid()}"
    try:
        mkl.mkdir(parents=True, exist_ok=True)
        for sub, src, patterns in (
            ("lib", lib_dir, ("libdnnl.so*", "libmkldnn.so*")),
            ("include", inc_dir, ("dnnl*.h*", "mkldnn*.h*", "oneapi")),
        ):
            (tmp / sub).mkdir(parents=True, exist_ok=True)
            for pat in patterns:
                for f in src.glob(pat):
                    (tmp / sub / f.name).symlink_to(f)
        if not (tmp / "lib" / "libmkldnn.so").exists():  # newer wheels ship libdnnl.so* only
            (tmp / "lib" / "libmkldnn.so").symlink_to(lib_dir / "libdnnl.so.2")
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():
            import shutil

            shutil.rmtree(target)
        os.replace(tmp, target)  # atomic: another process sees all or nothing
    except OSError as exc:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        if _valid_dnnl_dir(target):  # another process won the race
            return (
                True,
                str((target / "lib" / "libmkldnn.so").resolve()),
                "installed by another process",
            )
        return False, None, f"cannot write {target}: {exc}"
    return True, str((target / "lib" / "libmkldnn.so").resolve()), f"linked from {lib_dir}"


def _preload(lib: str) -> None:
    """Make ``libmkldnn.so.2`` resolvable by Jittor's compiled ops without LD_LIBRARY_PATH."""
    real = Path(lib)
    for name in ("libmkldnn.so.2", "libdnnl.so.2"):
        cand = real.parent / name
        if cand.exists():
            ctypes.CDLL(str(cand), mode=ctypes.RTLD_GLOBAL)
            return
    ctypes.CDLL(str(real), mode=ctypes.RTLD_GLOBAL)


# --------------------------------------------------------------------------- setup
def setup(device: str | None = None, quiet: bool = True) -> RuntimeState:
    """Prepare the environment for ``import jittor`` (environment variables, oneDNN laid out
    and preloaded), without importing it: :func:`ensure_jittor` does both.  Idempotent; the
    first call wins unless jittor is not imported yet, in which case a later call may change
    the device."""
    global _state, _mkl_disabled_by_us, _warned, _nvcc_hidden_by_us
    requested = device or os.environ.get("GRADCHECK_DEVICE", "auto")
    if _state is not None and (device is None or requested == _state.requested_device):
        return _state
    imported = "jittor" in sys.modules
    if imported and _state is not None:
        if requested not in (_state.requested_device, _state.device):
            raise RuntimeSetupError(
                f"device {requested!r} asked for after Jittor started on {_state.device!r}"
            )
        return _state
    dev, why = choose_device(requested)
    state = RuntimeState(
        device=dev, requested_device=requested, cuda_reason=why, jittor_was_imported=imported
    )
    if not imported:
        if dev == "cpu":
            os.environ["nvcc_path"] = ""
            _nvcc_hidden_by_us = True
        elif _nvcc_hidden_by_us:  # an earlier setup chose cpu; let Jittor find nvcc
            os.environ.pop("nvcc_path", None)
            _nvcc_hidden_by_us = False
        if quiet:
            os.environ.setdefault("log_silent", "1")
        if os.environ.get("use_mkl") == "0" and not _mkl_disabled_by_us:
            state.onednn_reason = "disabled by use_mkl=0"
        else:
            ok, lib, reason = install_onednn_for_jittor()
            state.onednn, state.onednn_lib, state.onednn_reason = ok, lib, reason
            if ok:
                assert lib is not None  # installed: its path
                try:
                    _preload(lib)
                except OSError as exc:
                    state.onednn, state.onednn_reason = False, f"cannot load {lib}: {exc}"
            if state.onednn and _mkl_disabled_by_us:
                os.environ.pop("use_mkl", None)
                _mkl_disabled_by_us = False
            if not state.onednn:
                os.environ["use_mkl"] = "0"
                _mkl_disabled_by_us = True
            if not state.onednn and not _warned:
                _warned = True
                warnings.warn(
                    f"oneDNN unavailable ({state.onednn_reason}): Jittor convolutions will run "
                    f"70-120x slower. Fix: {ONEDNN_FIX}",
                    OneDNNSlowWarning,
                    stacklevel=2,
                )
    else:
        state.notes.append(
            "jittor was imported before gradcheck; its settings were left as they are"
        )
        ce = sys.modules.get("jittor.compile_extern")
        state.onednn = (
            getattr(ce, "mkl_ops", None) is not None
            if ce is not None
            else os.environ.get("use_mkl", "1") != "0"
        )
        state.onednn_reason = "set up by whoever imported jittor first"
    _state = state
    return state


def state() -> RuntimeState:
    return _state if _state is not None else setup()


def ensure_jittor(device: str | None = None):
    """The one entry to Jittor: set the runtime up (:func:`setup`, once per process) and
    import Jittor with its ``use_cuda`` flag set for the chosen device; returns ``jittor``.
    Idempotent and cheap after the first call.  ``device`` (``auto``, ``cpu``, ``cuda``)
    changes an earlier choice only while Jittor is not imported yet; None keeps it (else
    ``$GRADCHECK_DEVICE``, else ``auto``).  A device that cannot be had raises
    :class:`RuntimeSetupError`."""
    setup(device=device)
    return import_jittor()


def import_jittor():
    """:func:`ensure_jittor` with the device already chosen (or the default): set up if
    nothing was yet, import Jittor, set its use_cuda flag for the chosen device."""
    st = state()
    if "jittor" not in sys.modules and not core_is_built():
        build_core_in_child()
    try:
        if "jittor" not in sys.modules:
            import jittor_utils  # what `import jittor` imports first

            _pool_workers_die_with_their_process(jittor_utils)
            _signals_back_once_its_core_loads(jittor_utils)
        import jittor as jt
    except SystemExit as exc:
        raise _exit_in_import(exc) from None

    jt.flags.use_cuda = 1 if st.device == "cuda" else 0
    if not st.op_compiler:
        st.op_compiler = choose_op_compiler(jt.flags)
    if st.onednn:
        from jittor import compile_extern

        if compile_extern.mkl_ops is None:  # Jittor refused our oneDNN after all
            st.onednn, st.onednn_reason = False, "Jittor did not load its oneDNN ops"
    return jt


def _signals_back_once_its_core_loads(jittor_utils) -> None:
    """Loading ``jit_utils_core`` installs Jittor's signal handlers; the rest of ``import
    jittor`` then compiles (on a fresh operator cache: its extern operators, half a minute
    and more) in child processes.  Jittor's SIGCHLD handler quick-exits with status 1 when a
    child merely stops (Ctrl-Z, SIGSTOP) or is killed, writing its message to fd 2, which
    during a run is the compile-progress pipe: the run ended as a silent coverage "FAIL".
    Inside a command (:func:`errors.handling_signals`), gradcheck's handlers are put back as
    soon as that core is loaded (Jittor loads it through ``try_import_jit_utils_core``), in
    this process only: the compile pool's workers keep Jittor's."""
    original = jittor_utils.try_import_jit_utils_core
    if getattr(original, "reclaims_signals", False):
        return
    from gradcheck import errors

    here = os.getpid()

    def try_import_jit_utils_core(*args, **kwargs):
        result = original(*args, **kwargs)
        if os.getpid() == here:
            errors.reclaim_signals()
        return result

    try_import_jit_utils_core.reclaims_signals = True  # type: ignore[attr-defined]
    jittor_utils.try_import_jit_utils_core = try_import_jit_utils_core


def _pool_workers_die_with_their_process(jittor_utils) -> None:
    """Jittor compiles in a ``multiprocessing.Pool`` that lives as long as the process
    (``jittor_utils.run_cmds``).  A Ctrl-C to the process group kills its workers, the pool's
    handler thread forks new ones, and gradcheck then exits at once (its exit handler can hang
    on the dead pool: :mod:`gradcheck.cli`): the new workers outlived it for ever, waiting on
    the task queue and holding the terminal's or a pipe's ends open (``gradcheck run | tee``
    never ended).  Jittor's own initializer asks for SIGKILL at its parent's end
    (``PR_SET_PDEATHSIG``), but too late for a worker forked as the process exits: that
    parent is gone already.  This one also checks the parent it was forked from."""
    original = jittor_utils.pool_initializer
    if getattr(original, "dies_with_parent", False):
        return

    def initializer():
        import multiprocessing

        maker = multiprocessing.parent_process()  # its pid was taken before the fork
        die_with_parent(maker.pid if maker and maker.pid else os.getppid(), signal.SIGKILL)
        original()

    initializer.dies_with_parent = True  # type: ignore[attr-defined]
    jittor_utils.pool_initializer = initializer


def die_with_parent(parent: int, sig: int) -> None:
    """Have the kernel send ``sig`` to this process when ``parent`` (the process that forked
    it) ends, and send it now if that already happened (Linux; elsewhere nothing)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it ended before prctl
        os.kill(os.getpid(), sig)


def _exit_in_import(exc: SystemExit):
    """What Jittor's ``sys.exit`` while being imported stands for.  When it has just rebuilt
    its ``jit_utils_core`` (a new ``cache_name``, an upgraded Jittor, a cache half cleared:
    whatever :func:`core_is_built` did not foresee), it prints "jit_utils updated, please
    rerun your command" and exits with status 0, which would read as a passing verdict."""
    from gradcheck.errors import JittorFailure

    if exc.code in (0, None):
        return JittorFailure(
            "Jittor rebuilt its core library (jit_utils_core) while starting, and exits "
            "asking for the command to be run again",
            kind="restart",
        )
    return JittorFailure(f"Jittor exited while being imported (status {exc.code})")


def core_is_built() -> bool:
    """Whether Jittor's cache holds a ``jit_utils_core`` for this Python (point 6 above):
    under ``$cache_path``, or ``~/.cache/jittor/jt<version>/<compiler>/py<version>/<system>/
    <cpu>/.../master`` (a few levels, by machine)."""
    import sysconfig

    name = "jit_utils_core" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so")
    if os.environ.get("cache_path"):
        return (Path(os.environ["cache_path"]) / name).exists()
    py = f"/py{sys.version_info.major}.{sys.version_info.minor}"
    root = jittor_home() / ".cache" / "jittor"
    # Jittor's $cache_name is the last folder(s) of its cache ("a/b": two), each its own core
    named = os.environ.get("cache_name")
    last = glob.escape(os.path.normpath(named)) + "/" if named else "*/"
    try:
        return any(
            py in str(p) for depth in range(4, 9) for p in root.glob("*/" * depth + last + name)
        )
    except OSError:
        return False


def build_core_in_child() -> None:
    """Import Jittor once in a child process (same environment), which compiles its core;
    a failure there is left for this process's own import to raise and report."""
    import subprocess

    subprocess.run(
        [sys.executable, "-c", "import jittor"],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )


def cached_operator_libs(jit_dir: Path) -> int:
    """How many compiled operator libraries Jittor's cache holds (0 if none or unreadable)."""
    try:
        with os.scandir(jit_dir) as it:
            return sum(1 for e in it if e.name.endswith(".so"))
    except OSError:
        return 0


def choose_op_compiler(flags) -> str:
    """Point 5 of the module docstring: serial on a warm cache, Jittor's threads on a fresh
    one, the user's ``use_parallel_op_compiler`` if set.  Returns what was chosen, in words."""
    if "use_parallel_op_compiler" in os.environ:
        return f"use_parallel_op_compiler={flags.use_parallel_op_compiler} (from the environment)"
    n = cached_operator_libs(Path(flags.cache_path) / "jit")
    if n >= WARM_CACHE_LIBS:
        flags.use_parallel_op_compiler = 0
        return f"serial ({n} compiled operators cached)"
    return f"parallel ({n} compiled operators cached: a fresh cache compiles in threads)"


def seed_everything(seed: int) -> None:
    """Seed Jittor, numpy and ``random``; two runs with one seed give the same numbers."""
    import numpy as np

    jt = import_jittor()
    jt.set_global_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
