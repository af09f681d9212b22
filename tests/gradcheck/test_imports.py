"""Set-up at entry points, not at import (issue 24).

Importing gradcheck (or any part of it, or gold_yolo's configs) sets nothing up: no Jittor, no
environment variables, no library loaded.  The commands that only read reports (``--help``,
``compare``, ``show``) never start Jittor.  Every module that imports Jittor at its top sets
the runtime up first.  And gradcheck's modules import one another without a circle.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap

import pytest

from fixtures import ROOT as REPO

REPORT = str(REPO / "reports" / "gold_yolo_s.json")  # the committed baseline
RUNTIME_ENV = ("nvcc_path", "log_silent", "use_mkl")  # what runtime.setup() may set
RESULT = "RESULT "


def fresh(code: str, timeout: int = 120) -> dict:
    """Run ``code`` in a new interpreter on this checkout, with the environment a new shell
    has (this test process set the runtime up: its variables are left out); return the JSON
    it prints after ``RESULT``."""
    env = {k: v for k, v in os.environ.items() if k not in RUNTIME_ENV}
    env["PYTHONPATH"] = str(REPO)
    prelude = textwrap.dedent("""
        import json, os, sys

        def maps():
            with open("/proc/self/maps") as f:
                return {ln.split()[-1] for ln in f if len(ln.split()) > 5}

        def changes(env, libs):
            return {"env": sorted(k for k in set(env) | set(os.environ)
                                  if env.get(k) != os.environ.get(k)),
                    "libs": sorted(maps() - libs), "jittor": "jittor" in sys.modules}

        env0, libs0 = dict(os.environ), maps()
    """)
    r = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith(RESULT)]
    assert lines, r.stdout[-3000:] + r.stderr[-3000:]
    return json.loads(lines[-1][len(RESULT) :])


# --------------------------------------------------------------------------- inert imports
def test_import_gradcheck_has_no_side_effects():
    out = fresh("""
        import gradcheck
        ch = changes(env0, libs0)
        ch["modules"] = sorted(m for m in sys.modules if m.split(".")[0] == "gradcheck")
        print("RESULT", json.dumps(ch))
    """)
    assert out == {"env": [], "libs": [], "jittor": False, "modules": ["gradcheck"]}


@pytest.mark.parametrize(
    "module",
    [
        "gradcheck.runtime",
        "gradcheck.cli",
        "gradcheck.api",
        "gradcheck.probe",
        "gradcheck.pytest_plugin",
        "gradcheck.watching",
        "gold_yolo",
        "gold_yolo.configs",
    ],
)
def test_importing_a_part_sets_nothing_up(module):
    out = fresh(f"""
        import importlib
        importlib.import_module({module!r})
        from gradcheck import runtime
        ch = changes(env0, libs0)
        ch["set_up"] = runtime._state is not None
        print("RESULT", json.dumps(ch))
    """)
    onednn = [lib for lib in out["libs"] if "dnnl" in lib or "mkldnn" in lib or "libcuda" in lib]
    assert (out["env"], onednn, out["jittor"], out["set_up"]) == ([], [], False, False), out


def test_ensure_jittor_is_the_one_entry_and_is_idempotent():
    out = fresh(
        """
        import gradcheck
        jt = gradcheck.ensure_jittor()
        from gradcheck import runtime
        st = runtime.state()
        ch = changes(env0, libs0)
        ch.update(same=gradcheck.ensure_jittor() is jt and runtime.state() is st,
                  device=st.device, onednn=st.onednn)
        print("RESULT", json.dumps(ch))
    """,
        timeout=600,
    )
    assert out["jittor"] and out["same"]
    assert "log_silent" in out["env"]
    if out["device"] == "cpu":
        assert "nvcc_path" in out["env"]
    if out["onednn"]:  # laid out and preloaded before Jittor started
        assert any("dnnl" in lib or "mkldnn" in lib for lib in out["libs"]), out["libs"]


# --------------------------------------------------------------------------- the commands
def test_help_compare_and_show_never_start_jittor():
    commands = [
        ["--help"],
        ["--version"],
        ["run", "--help"],
        ["align", "--help"],
        ["doctor", "--help"],
        ["show", REPORT],
        ["show", "--format", "html", REPORT],
        ["show", "--format", "json", REPORT],
        ["compare", REPORT, REPORT],
        ["compare", "--format", "markdown", REPORT, REPORT],
        ["compare", "--across", REPORT, REPORT],
    ]
    out = fresh(f"""
        from gradcheck import runtime
        from gradcheck.cli import main
        codes = []
        for args in {commands!r}:
            try:
                main(args)
            except SystemExit as exc:
                codes.append(exc.code)
        ch = changes(env0, libs0)
        ch.update(codes=codes, set_up=runtime._state is not None)
        print("RESULT", json.dumps(ch))
    """)
    assert out["codes"] == [0] * len(commands)  # the baseline passes: show and compare 0
    assert (out["jittor"], out["set_up"], out["env"]) == (False, False, []), out


# --------------------------------------------------------------------------- Jittor users
def _top_level(tree: ast.Module):
    """The statements that run when the module is imported, in order (not in functions,
    not under ``if TYPE_CHECKING``)."""

    def walk(body):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                yield from walk(node.orelse)
                continue
            yield node
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, field, None)
                if isinstance(inner, list):
                    yield from walk(inner)

    yield from walk(tree.body)


def _imports_jittor(node) -> bool:
    if isinstance(node, ast.Import):
        return any(a.name.split(".")[0] in ("jittor", "jittor_utils") for a in node.names)
    return (
        isinstance(node, ast.ImportFrom)
        and not node.level
        and (node.module or "").split(".")[0] in ("jittor", "jittor_utils")
    )


def _sets_up(node) -> bool:
    """``from . import jt`` (gold_yolo's bootstrap) or a call of the runtime's entry."""
    if isinstance(node, ast.ImportFrom) and any(a.name == "jt" for a in node.names):
        return node.level > 0 or node.module == "gold_yolo"
    return any(
        isinstance(n, ast.Call)
        and ast.unparse(n.func).split(".")[-1] in ("ensure_jittor", "import_jittor", "setup")
        for n in ast.walk(node)
    )


def test_every_module_that_imports_jittor_at_its_top_sets_the_runtime_up_first():
    bad = []
    for pkg in ("gradcheck", "gold_yolo"):
        for path in sorted((REPO / pkg).rglob("*.py")):
            ready = False
            for node in _top_level(ast.parse(path.read_text(), str(path))):
                ready = ready or _sets_up(node)
                if _imports_jittor(node) and not ready:
                    bad.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not bad, f"import jittor before the runtime is set up: {bad}"


def test_a_gold_yolo_module_imported_first_sets_the_runtime_up():
    out = fresh(
        """
        import gold_yolo.model
        from gradcheck import runtime
        ch = changes(env0, libs0)
        ch.update(set_up=runtime._state is not None, device=runtime.state().device)
        print("RESULT", json.dumps(ch))
    """,
        timeout=600,
    )
    assert out["jittor"] and out["set_up"] and "log_silent" in out["env"], out


# --------------------------------------------------------------------------- no circles
def module_graph(package: str) -> tuple:
    """``({module: {imported at its top}}, {module: {imported inside functions}})`` for the
    modules of ``package``, from their ``import``/``from`` statements (those under ``if
    TYPE_CHECKING`` never run and are left out)."""
    root = REPO / package
    mods = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)

    def targets(mod: str, is_pkg: bool, node) -> list:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        base = mod.split(".") if is_pkg else mod.split(".")[:-1]
        if node.level:
            base = base[: len(base) - node.level + 1]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module
        return [prefix] + [f"{prefix}.{a.name}" for a in node.names]

    top, inner = {}, {}
    for mod, (path, is_pkg) in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        at_top = {id(n) for n in _top_level(tree)}
        for_types = {
            id(n)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
            for stmt in block.body
            for n in ast.walk(stmt)
        }  # never run
        top[mod], inner[mod] = set(), set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in for_types:
                found = {t for t in targets(mod, is_pkg, node) if t in mods and t != mod}
                (top if id(node) in at_top else inner)[mod] |= found
    return top, inner


def cycles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("package", ["gradcheck", "gold_yolo"])
def test_no_import_circle_among_top_level_imports(package):
    top, _ = module_graph(package)
    assert cycles(top) == []


def test_summary_does_not_import_report():
    """The circle this replaced: report derives its totals from summary, so summary takes
    Report for its annotations only."""
    top, inner = module_graph("gradcheck")
    assert "gradcheck.summary" in top["gradcheck.report"]
    assert "gradcheck.report" not in top["gradcheck.summary"] | inner["gradcheck.summary"]
