"""Run a command with Jittor's operators, our ``jt.code`` kernels among them, built with
AddressSanitizer and UndefinedBehaviorSanitizer (issue 22, item 2)::

    python3 bench/sanitize.py -- python3 -m gradcheck.cli run --model bench/bench_crash.py:workload
    BENCH_CRASH_SHAPE='{"size": 100, "batch": 3, "boxes": true, "seed": 2}' \
        python3 bench/sanitize.py -- ...

How (each found the hard way):

* Jittor compiles operators with ``$kernel_flags`` appended (its core is not rebuilt): we pass
  ``-fsanitize=address,undefined -fno-omit-frame-pointer -g``;
* in a cache of their own (``cache_name=gradcheck_sanitize/ops``, next to the shared one; two
  parts so that its ``jittor.lock`` is not the shared one, which Jittor keeps one level up: a
  copy of its compiled core, no operators), since an instrumented operator library must never be
  loaded by an ordinary process; it is kept between runs, so only the first compiles;
* Jittor's main memory pool kept on (``use_sfrl_allocator=1``): with it off, Jittor 1.3.11
  computes wrong results, since a reshape's output shares its input's buffer only through a
  pool (``Var::alloc_buffer`` asks the allocator to ``share_with``; the plain allocator says
  no, so the reshape gets a fresh buffer that nothing writes: ``x.int32().squeeze(-1)`` reads
  as AddressSanitizer's fill, 0xBEBEBEBE).  The price: an overflow of one Var's buffer into
  the next inside a pool block goes unseen; an overflow of anything a kernel allocates
  itself, of the stack or of a global is caught.  The temporary pool is off
  (``use_temp_allocator=0``), which computes right;
* the sanitizer runtimes preloaded (``g++ -print-file-name``), after
  ``tests/fixtures/sanitize/jittor_shim.c`` (built here), which drops Jittor's
  ``RTLD_DEEPBIND`` and makes its ``aligned_alloc`` sizes legal; ``verify_asan_link_order=0``
  lets the shim come first;
* ``gdb_path=""``: Jittor runs ``gdb --version`` at import, which hangs under the preload;
* ``detect_leaks=0`` (Python and Jittor keep memory until exit); ``halt_on_error=1`` and
  ``abort_on_error=1``: the first report ends the process with SIGABRT, so that gradcheck's
  crash handler prints the Python frame that synced the faulty operator;
* UBSan's suppressions (``tests/fixtures/sanitize/ubsan.supp``) for Jittor's own headers only.

A report is ``ERROR: AddressSanitizer`` or ``runtime error:`` on stderr.  Under ``gradcheck
run`` the report itself goes into the compile-progress pipe and is lost when the process
aborts (the exit status, 134, remains): run a bare script (``bench/bench_crash.py --worker``)
to read it.  The last line says how many there were.  Exit: the command's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIM = ROOT / "tests" / "fixtures" / "sanitize" / "jittor_shim.c"
CACHE_NAME = "gradcheck_sanitize/ops"  # two parts: its jittor.lock is its own (cache/../)
SUPPRESSIONS = ROOT / "tests" / "fixtures" / "sanitize" / "ubsan.supp"
REPORT = re.compile(r"ERROR: AddressSanitizer|runtime error: ")


def runtime_lib(name: str) -> str:
    """The compiler's own sanitizer runtime, e.g. ``libasan.so`` (what its code links to)."""
    out = subprocess.run(
        [os.environ.get("cc_path", "g++"), f"-print-file-name={name}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    path = os.path.realpath(out)
    if not os.path.isfile(path):
        raise RuntimeError(f"{name} not found (install the compiler's sanitizer runtimes)")
    return path


def warm_cache() -> Path:
    """The Jittor cache this checkout uses (importing Jittor in this process)."""
    sys.path.insert(0, str(ROOT))
    from gradcheck import runtime

    return Path(runtime.import_jittor().flags.cache_path)


def fresh_op_cache(warm: Path, name: str) -> Path:
    """A ``cache_name`` folder next to ``warm`` holding a copy of its compiled core and none
    of its operators (made once; ``name`` may have several parts: ``a/b``)."""
    target = warm.parent.joinpath(*name.split("/"))
    if (target / "jittor_core.done").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for entry in warm.iterdir():
        if entry.name in ("jit", "tmp", "checkpoints"):
            continue
        if entry.is_dir():
            shutil.copytree(entry, target / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, target / entry.name)
    # Jittor keeps each library's compile command (its output path included) in a .key file
    # next to it and rebuilds it when the command differs: name the copy's own paths there,
    # or the copy's core is rebuilt (and Jittor exits after rebuilding jit_utils_core)
    for key in [*target.glob("*.key"), *target.glob("obj_files/*.key")]:
        text = key.read_text(encoding="utf-8", errors="surrogateescape")
        key.write_text(
            text.replace(str(warm), str(target)), encoding="utf-8", errors="surrogateescape"
        )
    for gen in target.glob("gen/*"):
        if gen.is_file():
            text = gen.read_text(encoding="utf-8", errors="surrogateescape")
            gen.write_text(
                text.replace(str(warm), str(target)), encoding="utf-8", errors="surrogateescape"
            )
    (target / "jittor_core.done").touch()
    return target


def sanitizer_env(base: dict | None = None, cache_name: str = CACHE_NAME) -> dict:
    """The environment that runs Python with instrumented Jittor operators (module doc)."""
    cache = fresh_op_cache(warm_cache(), cache_name)
    shim = cache / "jittor_shim.so"
    if not shim.exists() or shim.stat().st_mtime < SHIM.stat().st_mtime:
        subprocess.run(
            ["gcc", "-shared", "-fPIC", "-O2", "-o", str(shim), str(SHIM), "-ldl"], check=True
        )
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "cache_name": cache_name,
            "kernel_flags": "-fsanitize=address,undefined -fno-omit-frame-pointer -g",
            "use_sfrl_allocator": "1",
            "use_temp_allocator": "0",
            "gdb_path": "",
            "LD_PRELOAD": " ".join(
                [str(shim), runtime_lib("libasan.so"), runtime_lib("libubsan.so")]
            ),
            "ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1:abort_on_error=1:"
            "verify_asan_link_order=0",
            "UBSAN_OPTIONS": f"print_stacktrace=1:halt_on_error=1:abort_on_error=1:"
            f"suppressions={SUPPRESSIONS}",
            "GRADCHECK_SUPERVISE": "0",  # a sanitizer report must not be rerun away
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
    )
    return env


def reports(stderr: str) -> int:
    return len(REPORT.findall(stderr))


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        sys.exit(__doc__)
    env = sanitizer_env()
    import signal

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # Jittor's would quick-exit on an abort
    proc = subprocess.run(argv, env=env, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(proc.stderr)
    n = reports(proc.stderr)
    print(f"sanitize: {n} sanitizer report(s); exit {proc.returncode}", file=sys.stderr)
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
