"""Runtime bootstrap (device, oneDNN layout and fallback, seeding) and the fd-2 compile
progress capture (:mod:`gradcheck.progress`)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fixtures import ROOT as REPO
from gradcheck import runtime
from gradcheck.progress import CompileStats, ProgressParser, compile_progress


def run_py(code: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, PYTHONPATH=str(REPO))
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --------------------------------------------------------------------------- device
def test_auto_picks_cpu_when_no_driver(monkeypatch):
    monkeypatch.setattr(runtime, "cuda_available", lambda: (False, "no CUDA driver (test)"))
    assert runtime.choose_device("auto") == ("cpu", "no CUDA driver (test)")
    assert runtime.choose_device("cpu")[0] == "cpu"


def test_auto_picks_cuda_when_driver_answers(monkeypatch):
    monkeypatch.setattr(runtime, "cuda_available", lambda: (True, "1 CUDA GPU(s)"))
    assert runtime.choose_device("auto") == ("cuda", "1 CUDA GPU(s)")
    assert runtime.choose_device("cpu")[0] == "cpu"  # an explicit cpu always wins


def test_cuda_requested_without_gpu_names_the_problem(monkeypatch):
    monkeypatch.setattr(
        runtime, "cuda_available", lambda: (False, "CUDA driver present but no GPU")
    )
    with pytest.raises(runtime.RuntimeSetupError) as info:
        runtime.choose_device("cuda")
    msg = str(info.value)
    assert "cuda" in msg and "no GPU" in msg and "\n" not in msg


def test_invalid_device_lists_the_choices():
    with pytest.raises(runtime.RuntimeSetupError, match=r"unknown device 'gpu'.*auto, cpu, cuda"):
        runtime.choose_device("gpu")


def test_cuda_probe_answers_without_crashing():
    ok, why = runtime.cuda_available()
    assert isinstance(ok, bool) and why


@pytest.fixture
def fresh_setup(monkeypatch, tmp_path):
    """runtime.setup() as if Jittor were not imported yet, writing oneDNN into tmp_path
    and the environment into a throwaway copy."""
    monkeypatch.setattr(os, "environ", dict(os.environ))
    os.environ.pop("use_mkl", None)
    monkeypatch.setattr(runtime, "_state", None)
    monkeypatch.setattr(runtime, "_warned", False)
    monkeypatch.setattr(runtime, "_mkl_disabled_by_us", False)
    monkeypatch.setattr(runtime, "_nvcc_hidden_by_us", False)
    monkeypatch.delitem(sys.modules, "jittor", raising=False)
    monkeypatch.setattr(runtime, "jittor_mkl_dir", lambda: tmp_path / "mkl")
    monkeypatch.setattr(runtime, "cuda_available", lambda: (False, "no CUDA driver (test)"))
    return tmp_path / "mkl"


def test_setup_cpu_hides_nvcc_and_silences_logs(fresh_setup):
    os.environ.pop("log_silent", None)
    st = runtime.setup()
    assert st.device == "cpu" and st.requested_device == "auto"
    assert os.environ["nvcc_path"] == "" and os.environ["log_silent"] == "1"


def test_setup_cuda_without_gpu_raises(fresh_setup):
    with pytest.raises(runtime.RuntimeSetupError, match="--device cuda asked for, but no CUDA"):
        runtime.setup(device="cuda")


def test_onednn_fallback_warns_once_and_disables_mkl(fresh_setup, monkeypatch):
    monkeypatch.setattr(
        runtime,
        "find_pypi_onednn",
        lambda: (None, None, f"onednn-cpu-gomp=={runtime.ONEDNN_PYPI} is not installed"),
    )
    with pytest.warns(runtime.OneDNNSlowWarning) as rec:
        st = runtime.setup()
        runtime.setup(device="cpu")  # a second setup (another device asked) must not warn again
    assert len(rec) == 1
    assert f"onednn-cpu-gomp=={runtime.ONEDNN_PYPI} is not installed" in str(rec[0].message)
    assert "pip install onednn-cpu-gomp" in str(rec[0].message)
    assert st.onednn is False and os.environ["use_mkl"] == "0"
    assert not (fresh_setup / runtime.DNNL_DIRNAME).exists()


def test_user_use_mkl_0_is_respected_without_warning(fresh_setup, recwarn):
    os.environ["use_mkl"] = "0"
    st = runtime.setup()
    assert st.onednn is False and st.onednn_reason == "disabled by use_mkl=0"
    assert not [w for w in recwarn if issubclass(w.category, runtime.OneDNNSlowWarning)]


def test_onednn_fallback_end_to_end_in_a_fresh_process(tmp_path):
    """Missing oneDNN: one warning, use_mkl=0, and Jittor then runs without mkl ops."""
    r = run_py(f"""
        import os, warnings
        import gradcheck.runtime as rt           # importing it sets nothing up
        rt._state = None; os.environ.pop("use_mkl", None)
        rt.find_pypi_onednn = lambda: (None, None, "onednn-cpu-gomp is not installed")
        rt.jittor_mkl_dir = lambda: __import__("pathlib").Path({str(tmp_path)!r})
        rt.setup(); rt.setup()
        jt = rt.import_jittor()
        from jittor import compile_extern
        print("use_mkl", os.environ["use_mkl"], "mkl_ops", compile_extern.mkl_ops)
    """)
    assert r.returncode == 0, r.stderr
    assert "use_mkl 0 mkl_ops None" in r.stdout
    assert r.stderr.count("OneDNNSlowWarning") == 1, r.stderr
    assert "Traceback" not in r.stderr


# --------------------------------------------------------------------------- layout
@pytest.fixture
def mkl_dir(monkeypatch, tmp_path):
    if runtime.find_pypi_onednn()[0] is None:
        pytest.skip("PyPI oneDNN (onednn-cpu-gomp, onednn-devel-cpu-gomp) not installed")
    d = tmp_path / "mkl"
    monkeypatch.setattr(runtime, "jittor_mkl_dir", lambda: d)
    return d


def test_layout_is_what_jittor_looks_for(mkl_dir):
    ok, lib, why = runtime.install_onednn_for_jittor()
    assert ok, why
    target = mkl_dir / runtime.DNNL_DIRNAME
    # Jittor's own check (compile_extern.install_mkl) and the headers its mkl ops include
    assert (target / "lib" / "libmkldnn.so").is_file()
    assert (target / "include" / "dnnl.h").is_file()
    assert (target / "include" / "oneapi" / "dnnl" / "dnnl.hpp").is_file()
    assert Path(lib).resolve() == (target / "lib" / "libmkldnn.so").resolve()
    assert [p.name for p in mkl_dir.iterdir()] == [runtime.DNNL_DIRNAME]  # no temp leftovers


def test_onednn_include_dir_is_the_laid_out_headers(mkl_dir, monkeypatch):
    """Our own oneDNN kernels (gold_yolo/layers/conv.py) compile against the headers Jittor's
    mkl ops use; none without oneDNN, or where the layout lacks them."""
    monkeypatch.setattr(runtime, "_state", runtime.RuntimeState(onednn=True))
    assert runtime.onednn_include_dir() is None  # nothing laid out yet
    assert runtime.install_onednn_for_jittor()[0]
    inc = runtime.onednn_include_dir()
    assert inc == mkl_dir / runtime.DNNL_DIRNAME / "include"
    assert (inc / "oneapi" / "dnnl" / "dnnl.hpp").is_file()
    monkeypatch.setattr(runtime, "_state", runtime.RuntimeState(onednn=False))
    assert runtime.onednn_include_dir() is None


def test_layout_is_idempotent(mkl_dir):
    first = runtime.install_onednn_for_jittor()
    ino = (mkl_dir / runtime.DNNL_DIRNAME).stat().st_ino
    second = runtime.install_onednn_for_jittor()
    assert second[0] and second[1] == first[1] and second[2] == "already in place"
    assert (mkl_dir / runtime.DNNL_DIRNAME).stat().st_ino == ino


def test_a_half_written_target_is_repaired(mkl_dir):
    target = mkl_dir / runtime.DNNL_DIRNAME
    (target / "lib").mkdir(parents=True)  # e.g. an interrupted download
    (target / "lib" / "libmkldnn.so").write_bytes(b"")
    ok, _, why = runtime.install_onednn_for_jittor()
    assert ok, why
    assert runtime._valid_dnnl_dir(target)


def test_a_broken_folder_that_would_shadow_ours_is_reported(mkl_dir):
    (mkl_dir / "dnnl_old_partial").mkdir(parents=True)
    ok, lib, why = runtime.install_onednn_for_jittor()
    assert not ok and lib is None
    assert "dnnl_old_partial" in why and "remove it" in why


def _fake_dnnl_dir(d, version):
    """A complete-looking oneDNN folder of another *version* (e.g. Jittor's own 2.2 download)."""
    (d / "lib").mkdir(parents=True)
    (d / "lib" / "libmkldnn.so").write_bytes(b"not a library")
    (d / "include" / "oneapi" / "dnnl").mkdir(parents=True)
    for f in ("dnnl.h", "oneapi/dnnl/dnnl.hpp"):
        (d / "include" / f).write_text("")
    major, minor, patch = version
    (d / "include" / "dnnl_version.h").write_text(
        f"#define DNNL_VERSION_MAJOR {major}\n#define DNNL_VERSION_MINOR {minor}\n"
        f"#define DNNL_VERSION_PATCH {patch}\n"
    )


def test_a_folder_of_another_onednn_version_is_laid_out_anew(mkl_dir):
    """An upgrade of the pinned oneDNN (or Jittor's own 2.2 download) must not keep Jittor
    on the old library: the folder is replaced by the installed PyPI version."""
    target = mkl_dir / runtime.DNNL_DIRNAME
    _fake_dnnl_dir(target, (2, 2, 0))
    want = runtime.dnnl_version(runtime.find_pypi_onednn()[1])
    assert want is not None and want != (2, 2, 0)
    ok, lib, why = runtime.install_onednn_for_jittor()
    assert ok and why.startswith("linked from"), why
    assert runtime.dnnl_version(target / "include") == want
    assert Path(lib).read_bytes()[:4] == b"\x7fELF"
    assert runtime.install_onednn_for_jittor()[2] == "already in place"


def test_another_version_is_kept_when_pypi_onednn_is_missing(mkl_dir, monkeypatch):
    target = mkl_dir / runtime.DNNL_DIRNAME
    _fake_dnnl_dir(target, (2, 2, 0))
    monkeypatch.setattr(runtime, "find_pypi_onednn", lambda: (None, None, "not installed"))
    ok, lib, why = runtime.install_onednn_for_jittor()
    assert ok and why == "already in place"
    assert runtime.dnnl_version(target / "include") == (2, 2, 0)


def test_the_pinned_onednn_is_the_one_installed():
    """setup.cfg, the fix hint and the installed wheel name one version: 2022.2.1 is
    oneDNN 2.6, the newest with the 2.x API Jittor's mkl ops use."""
    from importlib import metadata

    cfg = (REPO / "setup.cfg").read_text()
    assert f"onednn-cpu-gomp=={runtime.ONEDNN_PYPI};" in cfg
    assert f"onednn-devel-cpu-gomp=={runtime.ONEDNN_PYPI};" in cfg
    assert metadata.version("onednn-cpu-gomp") == runtime.ONEDNN_PYPI
    inc = runtime.find_pypi_onednn()[1]
    assert runtime.dnnl_version(inc)[:2] == (2, 6)


def test_missing_pypi_onednn_leaves_nothing_behind(mkl_dir, monkeypatch):
    monkeypatch.setattr(
        runtime,
        "find_pypi_onednn",
        lambda: (None, None, "onednn-devel-cpu-gomp is not installed (no dnnl.h)"),
    )
    ok, lib, why = runtime.install_onednn_for_jittor()
    assert (ok, lib) == (False, None) and "onednn-devel-cpu-gomp" in why
    assert not (mkl_dir / runtime.DNNL_DIRNAME).exists()


# --------------------------------------------------------------------------- seeding
@pytest.mark.parametrize(
    "cache_name,built",
    [(None, True), ("master", True), ("ci/run_7", True), ("other", False), ("ci", False)],
)
def test_core_is_built_looks_in_the_cache_name_jittor_will_use(
    tmp_path, monkeypatch, cache_name, built
):
    """Jittor builds a core per ``$cache_name`` folder and exits after building its
    jit_utils_core (runtime._exit_in_import): a core in another folder does not count."""
    import sysconfig

    name = "jit_utils_core" + sysconfig.get_config_var("EXT_SUFFIX")
    py = f"py{sys.version_info.major}.{sys.version_info.minor}.0"
    base = tmp_path / ".cache" / "jittor" / "jt1.3.11" / "g++12" / py / "Linux" / "cpu" / "ab12"
    for folder in (base / "master", base / "ci" / "run_7"):
        folder.mkdir(parents=True)
        (folder / name).write_bytes(b"")
    monkeypatch.setenv("JITTOR_HOME", str(tmp_path))
    monkeypatch.delenv("cache_path", raising=False)
    if cache_name is None:
        monkeypatch.delenv("cache_name", raising=False)
    else:
        monkeypatch.setenv("cache_name", cache_name)
    assert runtime.core_is_built() is built


LATE_WORKER = """
import multiprocessing, os, sys, time
from gradcheck import runtime
runtime.import_jittor()
import jittor_utils
path, parent_exits = sys.argv[1], sys.argv[2] == "exits"

def worker():
    time.sleep(1)                    # meanwhile its parent exits: a worker forked as it ends
    jittor_utils.pool_initializer()  # what the compile pool runs first in each worker
    open(path, "w").write(str(os.getpid()))
    if parent_exits:
        time.sleep(120)              # a worker waiting for a task that never comes

child = multiprocessing.Process(target=worker)
child.start()
if parent_exits:
    os._exit(0)                      # as gradcheck exits on a signal
child.join()
"""


@pytest.mark.parametrize("parent", ["exits", "stays"])
def test_a_compile_worker_forked_as_its_process_ends_does_not_outlive_it(tmp_path, parent):
    """Jittor's compile pool forks new workers when a Ctrl-C to the process group killed the
    old ones; one forked as gradcheck exits found its parent gone, waited for ever and held
    the terminal's or a pipe's ends open (a piped run never ended).  A worker whose parent
    is there carries on."""
    alive = tmp_path / "alive"
    subprocess.run(
        [sys.executable, "-c", LATE_WORKER, str(alive), parent],
        check=True,
        timeout=300,
        cwd=tmp_path,
    )
    time.sleep(3)
    assert alive.exists() == (parent == "stays")


def test_jittor_compiles_its_extern_operators_under_our_signal_handlers():
    """On a fresh operator cache, ``import jittor`` compiles its extern operators in child
    processes after ``jit_utils_core`` (loaded by ``import jittor_utils``) installed Jittor's
    handlers; its SIGCHLD one quick-exits with status 1 when a child merely stops, so a
    Ctrl-Z during a first run ended it as a silent coverage "FAIL".  Inside a command, the
    handlers when that compile begins are gradcheck's."""
    r = run_py("""
        import ctypes, importlib.abc, signal, sys
        from gradcheck import errors, runtime

        def handler(sig):  # the process's own (C) handler: Python's getsignal cannot see Jittor's
            action = ctypes.create_string_buffer(256)  # struct sigaction; the handler first
            assert ctypes.CDLL(None, use_errno=True).sigaction(sig, None, action) == 0
            return ctypes.c_void_p.from_buffer(action).value or 0

        seen = {}

        class Spy(importlib.abc.MetaPathFinder):  # the handlers when that import begins
            def find_spec(self, name, path=None, target=None):
                if name == "jittor.compile_extern" and not seen:
                    seen.update(chld=handler(signal.SIGCHLD), int=handler(signal.SIGINT))
                return None

        sys.meta_path.insert(0, Spy())
        with errors.handling_signals():
            python_sigint = handler(signal.SIGINT)  # Python's own C-level trampoline
            runtime.import_jittor()
        print(seen["chld"] == 0, seen["int"] == python_sigint)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True"], r.stdout


def test_seed_everything_reproduces_and_differs():
    def draw(seed):
        runtime.seed_everything(seed)
        jt = runtime.import_jittor()
        return (jt.randn(6).numpy(), jt.rand(4).numpy(), np.random.rand(3), random.random())

    a, b, c = draw(7), draw(7), draw(8)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    for x, z in zip(a, c):
        assert not np.array_equal(x, z)


# --------------------------------------------------------------------------- import
def test_import_is_quiet_and_uses_onednn():
    r = run_py("""
        import gradcheck
        from gradcheck import runtime
        jt = runtime.import_jittor()
        from jittor import compile_extern
        print(compile_extern.mkl_ops is not None)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "True"
    alarming = [
        ln
        for ln in r.stderr.splitlines()
        if ln.startswith(("[w", "[e", "[f"))
        or "Traceback" in ln
        or "ownload" in ln
        or "Warning" in ln
    ]
    assert not alarming, r.stderr


# --------------------------------------------------------------------------- progress
PROGRESS = [
    f"Compiling Operators({i}/7) used: {0.5 * i:4.3g}s eta: {7.0 - i:4.3g}s \r" for i in range(1, 8)
]
JITTOR_BURST = "\n" + "".join(PROGRESS) + "\n"  # exactly what parallel_compiler.cc writes


def _parse(chunks):
    out, prog, batches = [], [], []
    p = ProgressParser(lambda *a: prog.append(a), out.append, batches.append)
    for c in chunks:
        p.feed(c)
    p.close()
    return b"".join(out), prog, batches


@pytest.mark.parametrize("step", [1, 3, 7, 1 << 20])
def test_parser_strips_progress_and_keeps_everything_else(step):
    data = ("before\n" + JITTOR_BURST + "[e 0101 error] boom\r\n\n" + "tail no newline").encode()
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    out, prog, batches = _parse(chunks)
    assert out == b"before\n[e 0101 error] boom\r\n\ntail no newline"
    assert [(p[1], p[2]) for p in prog] == [(i, 7) for i in range(1, 8)]
    assert len(batches) == 1 and batches[0].n == 7 and batches[0].used == pytest.approx(3.5)


def test_parser_passes_look_alikes_through():
    text = b"Compiling Operators is fun\nCompiling x(1/2) used: soon\n"
    out, prog, _ = _parse([text])
    assert out == text and prog == []


class Fd2File:
    """Points fd 2 at a file (the 'original stderr' a capture forwards to) inside a test
    body -- pytest re-points fd 2 at its own file between fixture setup and the call."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 2)
        os.close(fd)
        return self

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)

    def read(self) -> bytes:
        return self.path.read_bytes()


@pytest.fixture
def stderr_file(tmp_path):
    return Fd2File(tmp_path / "stderr.txt")


def _fd2_identity():
    st = os.fstat(2)
    return st.st_dev, st.st_ino


def test_capture_hides_progress_and_forwards_the_rest(stderr_file):
    big = b"x" * (1 << 20)  # far more than a pipe holds: must not deadlock
    with stderr_file, compile_progress(quiet=True) as stats:
        os.write(2, b"first\n")
        os.write(2, JITTOR_BURST.encode())
        with os.fdopen(os.dup(2), "w") as py_stderr:  # what sys.stderr is outside pytest
            print("from python", file=py_stderr)
        os.write(2, big + b"\nlast line without newline")
    data = stderr_file.read()
    expected = b"first\nfrom python\n" + big + b"\nlast line without newline"
    assert len(data) == len(expected) and data == expected
    assert stats.progress_ops == 7 and stats.ops_compiled >= 7 and stats.batches == 1
    assert stats.compile_seconds == pytest.approx(3.5)


def test_capture_not_quiet_reports_a_summary(stderr_file):
    with stderr_file, compile_progress(quiet=False):
        os.write(2, JITTOR_BURST.encode())
    text = stderr_file.read().decode()
    assert "compiled 7 Jittor operators in 3.5s" in text and "Compiling Operators" not in text


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_fd2_restored_on_exceptions(stderr_file, exc):
    with stderr_file:
        before = _fd2_identity()
        with pytest.raises(exc):
            with compile_progress(quiet=True):
                assert _fd2_identity() != before
                os.write(2, b"error message before the crash\n")
                raise exc("boom")
        assert _fd2_identity() == before
    assert stderr_file.read() == b"error message before the crash\n"


def test_nested_capture_is_a_no_op(stderr_file):
    with stderr_file, compile_progress(quiet=True) as outer:
        captured = _fd2_identity()
        with compile_progress(quiet=False) as inner:
            assert inner is outer and _fd2_identity() == captured
        assert _fd2_identity() == captured  # the inner block did not restore fd 2
        os.write(2, JITTOR_BURST.encode() + b"after inner\n")
    assert stderr_file.read() == b"after inner\n"
    assert outer.progress_ops == 7


def test_a_failing_display_falls_back_to_raw_stderr(stderr_file, monkeypatch):
    def explode(self, data):
        raise ValueError("display bug")

    monkeypatch.setattr(ProgressParser, "feed", explode)
    with stderr_file, compile_progress(quiet=True):
        os.write(2, b"real error\n")
    data = stderr_file.read()
    assert b"display bug" in data and data.endswith(b"real error\n")


def test_capture_counts_a_real_jittor_compile():
    r = run_py("""
        import os, random
        from gradcheck import runtime
        from gradcheck.progress import compile_progress
        jt = runtime.import_jittor()
        a = jt.ones(4)
        tag = f"{os.getpid()}_{random.getrandbits(48)}"   # a never-seen op: forces a compile
        with compile_progress(quiet=True) as st:
            b = jt.code(a.shape, a.dtype, [a],
                        cpu_src=f"// {tag}\\nfor (int i=0;i<in0_shape0;i++) @out(i)=@in0(i)*2;")
            print(b.numpy().tolist())
        with compile_progress(quiet=True) as again:
            jt.code(a.shape, a.dtype, [a],
                    cpu_src=f"// {tag}\\nfor (int i=0;i<in0_shape0;i++) @out(i)=@in0(i)*2;").sync()
        print("compiled", st.ops_compiled, "again", again.ops_compiled)
    """)
    assert r.returncode == 0, r.stderr
    assert "[2.0, 2.0, 2.0, 2.0]" in r.stdout
    line = r.stdout.strip().splitlines()[-1].split()
    assert int(line[1]) >= 1 and int(line[3]) == 0, r.stdout


def test_pipe_chunks_drain_and_stop_while_a_writer_keeps_the_pipe_open():
    # forked children may keep the pipe's write end open: the stop pipe must end the read
    from gradcheck.progress import _pipe_chunks

    r, w = os.pipe()
    stop_r, stop_w = os.pipe()
    try:
        os.write(w, b"left in the pipe")
        os.write(stop_w, b"x")
        got: list = []
        reader = threading.Thread(target=lambda: got.extend(_pipe_chunks(r, stop_r)), daemon=True)
        reader.start()
        reader.join(timeout=30)
        assert not reader.is_alive() and got == [b"left in the pipe"]
    finally:
        for fd in (r, w, stop_r, stop_w):
            os.close(fd)


def test_stats_summary():
    assert CompileStats().summary() == "no operators compiled"
    assert (
        CompileStats(ops_compiled=3, compile_seconds=2.5).summary()
        == "compiled 3 Jittor operator(s) in 2.5s"
    )


# --------------------------------------------------------------------------- op compiler
class _Flags:
    def __init__(self, cache_path, par=16):
        self.cache_path, self.use_parallel_op_compiler = str(cache_path), par


def _cache_with(tmp_path, libs):
    (tmp_path / "jit").mkdir()
    for i in range(libs):
        (tmp_path / "jit" / f"op{i}.so").write_bytes(b"")
        (tmp_path / "jit" / f"op{i}.cc").write_text("")  # sources do not count
    return _Flags(tmp_path)


def test_a_warm_cache_prepares_operators_serially(tmp_path, monkeypatch):
    monkeypatch.delenv("use_parallel_op_compiler", raising=False)
    flags = _cache_with(tmp_path, runtime.WARM_CACHE_LIBS)
    said = runtime.choose_op_compiler(flags)
    assert flags.use_parallel_op_compiler == 0
    assert said == f"serial ({runtime.WARM_CACHE_LIBS} compiled operators cached)"


def test_a_fresh_cache_keeps_jittors_threads(tmp_path, monkeypatch):
    monkeypatch.delenv("use_parallel_op_compiler", raising=False)
    flags = _cache_with(tmp_path, runtime.WARM_CACHE_LIBS - 1)
    assert runtime.choose_op_compiler(flags).startswith("parallel (63 compiled")
    assert flags.use_parallel_op_compiler == 16
    missing = _Flags(tmp_path / "nowhere")
    assert runtime.choose_op_compiler(missing).startswith("parallel (0 compiled")


def test_the_users_op_compiler_setting_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("use_parallel_op_compiler", "4")
    flags = _cache_with(tmp_path, 100)
    flags.use_parallel_op_compiler = 4
    assert "from the environment" in runtime.choose_op_compiler(flags)
    assert flags.use_parallel_op_compiler == 4


def test_import_jittor_applies_the_choice_to_jittor():
    r = run_py("""
        import os
        os.environ.pop("use_parallel_op_compiler", None)
        from gradcheck import runtime
        jt = runtime.import_jittor()
        n = runtime.cached_operator_libs(__import__("pathlib").Path(jt.flags.cache_path) / "jit")
        warm = n >= runtime.WARM_CACHE_LIBS
        print("ok", jt.flags.use_parallel_op_compiler == (0 if warm else 16),
              runtime.state().op_compiler)
    """)
    assert r.returncode == 0, r.stderr
    assert "ok True" in r.stdout, r.stdout


# --------------------------------------------------------------------------- Jittor's core
def test_core_is_found_in_the_cache_and_not_in_an_empty_home(tmp_path, monkeypatch):
    assert runtime.core_is_built()  # this process imported Jittor
    monkeypatch.setattr(runtime, "jittor_home", lambda: tmp_path)
    monkeypatch.delenv("cache_path", raising=False)
    assert not runtime.core_is_built()


@pytest.mark.slow
def test_first_import_on_a_fresh_home_keeps_jittor_warnings(tmp_path):
    """On a fresh HOME the core is built in a child first, so this process's log capture sees
    the ``doesn't have gradient`` warning (without the child it captured nothing); minutes:
    Jittor compiles its core."""
    r = run_py(
        """
        from gradcheck import runtime
        runtime.setup()
        assert not runtime.core_is_built()
        jt = runtime.import_jittor()
        w = jt.array([1.5, 2.5])
        with jt.log_capture_scope(log_v=0, log_silent=1) as logs:
            jt.grad((w * 3).round().sum(), [w])
        print("built", runtime.core_is_built(),
              "warned", any("doesn't have gradient" in str(l.get("msg")) for l in logs))
    """,
        env={"HOME": str(tmp_path), "JITTOR_HOME": str(tmp_path)},
        timeout=1500,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "built True warned True" in r.stdout, r.stdout
