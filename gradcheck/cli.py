"""The ``gradcheck`` command line: a thin layer over the library.

Exit codes (see :mod:`gradcheck.errors`, their one home): 0 pass / no regression, 1 coverage
fail / regression, 2 bad input, 3 internal or environment error (Jittor failed), 130/143
interrupted by SIGINT/SIGTERM.
"""

from __future__ import annotations

import functools
import gc
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import click

from gradcheck import errors, options, supervise
from gradcheck.enums import Float64Mode
from gradcheck.errors import EXIT_FAIL, EXIT_PASS, EXIT_USAGE


def fail_usage(message: str) -> NoReturn:
    click.echo(f"gradcheck: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def exit_codes(fn):
    """Every failure becomes its message and exit code from :func:`gradcheck.errors.classify`
    (bad input: one line and 2; Jittor failed: one paragraph and 3; a signal: 130/143);
    Python's SIGINT/SIGTERM handlers are in place for the command, not Jittor's quick exit."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with errors.handling_signals():
            try:
                return fn(*args, **kwargs)
            except (SystemExit, click.exceptions.ClickException, click.exceptions.Exit):
                raise
            except BaseException as exc:  # mapped to an exit code right here
                if supervise.rerun_instead(exc):  # a transient Jittor fault: the parent reruns
                    sys.exit(supervise.EXIT_RERUN)
                code, message = errors.classify(exc)
                if code == errors.EXIT_INTERNAL and os.environ.get(errors.TRACEBACK_ENV):
                    raise
                click.echo(message, err=True)
                if code in (errors.EXIT_SIGINT, errors.EXIT_SIGTERM) and supervise.command_line():
                    # nothing to save, and Jittor's compile pool can hang for ever in its
                    # exit handler once a Ctrl-C to the process group killed its workers
                    supervise.exit_at_once(code)
                sys.exit(code)

    return wrapper


user_errors_exit_2 = exit_codes  # the name the commands (and branches adding commands) use


class _ReaderMayLeave:
    """stdout for a reader that may stop reading (``gradcheck show R | head``): once the pipe
    is closed, the rest of the output goes to /dev/null and the command ends as it would have,
    with its verdict's exit code.  Before, rich's console exited with status 1 (a coverage
    failure's), and the markdown and JUnit renderers ended in "internal error", exit 3."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self):
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_devnull()
            self._stream.flush()  # what was left in the buffer, now to /dev/null

    def _to_devnull(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)

    def __getattr__(self, name):
        return getattr(self._stream, name)


class _Main(click.Group):
    def main(self, args=None, *rest, **kwargs):
        if args is None:  # the process's own command line: run and align may be supervised
            supervise.from_command_line()
            if not isinstance(sys.stdout, _ReaderMayLeave):
                sys.stdout = _ReaderMayLeave(sys.stdout)
        return super().main(args, *rest, **kwargs)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gradcheck", prog_name="gradcheck")
def main():
    """Which parameters of a Jittor model get no gradient, and why."""


def _defaults_help(key: str, other_models: bool = False) -> str:
    """The effective default of a run setting, as --help shows it."""
    import os

    from gradcheck import registry
    from gradcheck.settings import TOOL_DEFAULTS

    by_value: dict = {}
    for name in registry.names():
        value = getattr(registry.recommended(name), key)
        if value is not None:
            by_value.setdefault(value, []).append(name)
    own = ", ".join(
        f"{os.path.commonprefix(names) + '*' if len(names) > 1 else names[0]}: {value}"
        for value, names in by_value.items()
    )
    tail = f", else {TOOL_DEFAULTS[key]}" if other_models else ""
    return f"  [default: config, else the model's own ({own}){tail}]"


@main.command()
@click.option(
    "--model",
    "-m",
    default=None,
    help="gold_yolo_n|s|m|l, package.module:factory or path/to/file.py:factory.",
)
@click.option(
    "--steps",
    type=int,
    default=None,
    help="Real optimizer steps to run." + _defaults_help("steps", other_models=True),
)
@click.option(
    "--img-size",
    type=int,
    default=None,
    help="Image size for bundled models." + _defaults_help("img_size"),
)
@click.option(
    "--batch-size",
    type=int,
    default=None,
    help="Batch size for bundled models." + _defaults_help("batch_size"),
)
@click.option(
    "--seed", type=int, default=None, help="Seed for Jittor, numpy and random.  [default: 0]"
)
@click.option(
    "--data",
    type=click.Path(),
    default=None,
    help="A YOLO-format dataset folder (images/, labels/) for a bundled model.",
)
@options.output_option("report")
@options.html_option
@click.option("--strict", is_flag=True, default=None, help="Warnings fail the run too.")
@click.option(
    "--train-mode",
    is_flag=True,
    default=False,
    help="Call model.train() before probing (default: the model as handed over).",
)
@click.option(
    "--nproc",
    type=click.IntRange(min=1),
    default=None,
    help="Run data-parallel on N MPI ranks (starts OpenMPI's mpirun -np N).",
)
@options.format_option
@options.quiet_option
@options.verbose_option
@options.config_option
@options.device_option
@click.option(
    "--continue",
    "keep_going",
    is_flag=True,
    default=False,
    help="With a script: let it run on to its end after the probed steps, unobserved.",
)
@options.depth_option
@click.argument("script", nargs=-1, type=click.UNPROCESSED)
@supervise.supervised
@user_errors_exit_2
def run(**params):
    """Run real training steps and report every parameter's gradient coverage.

    Each setting comes from its flag, else the [gradcheck] config section, else the bundled
    model's recommended settings, else gradcheck's default; the first line says which.

    Or check your own training script, unmodified: gradcheck run [OPTIONS] -- python
    train.py ARGS (also -- python -m pkg.train ARGS): its first --steps optimizer steps.
    """
    from gradcheck.policy import load_config

    o = _RunOptions(**params)
    config = load_config(o.config_path)
    if o.script:
        _run_script(o, config)
    if o.keep_going:
        fail_usage("--continue needs a script after --")
    settings = _model_settings(o, config)
    policy = config.policy.with_overrides(strict=o.strict)
    _check_outputs(o.output, o.html_path)

    from gradcheck.distributed.launch import finish, launch, mpi_world

    quiet = o.quiet or o.fmt != "table"
    if mpi_world() is not None:  # one rank of an MPI run (ours or the user's)
        from gradcheck.distributed.rank import run_rank

        report = run_rank(settings, policy, quiet=quiet, nproc=o.nproc, train_mode=o.train_mode)
        if report is None:  # not rank 0: rank 0 reports for everyone
            sys.exit(finish(EXIT_PASS))
    elif o.nproc is not None and o.nproc > 1:
        sys.exit(launch(o.nproc, sys.argv[1:]))
    else:
        from gradcheck import api

        report = api.run(settings, policy, quiet=quiet, train_mode=o.train_mode)
    _write_and_emit(report, o.output, o.html_path, o.fmt, o.quiet, o.table_depth)
    supervise.leave(finish(EXIT_PASS if report.verdict.passed else EXIT_FAIL))


@dataclass(frozen=True)
class _RunOptions:
    """``gradcheck run``'s options, as click hands them over."""

    model: str | None
    steps: int | None
    img_size: int | None
    batch_size: int | None
    seed: int | None
    data: str | None
    output: str | None
    html_path: str | None
    strict: bool | None
    train_mode: bool
    nproc: int | None
    fmt: str
    quiet: bool
    verbose: bool
    config_path: str | None
    device: str | None
    depth: int | None
    keep_going: bool
    script: tuple

    @property
    def table_depth(self) -> int | None:
        """How deep the table's module tree goes (``--verbose`` and ``--depth``)."""
        return options.table_depth(self.verbose, self.depth)


def _model_settings(o: _RunOptions, config):
    """The settings of a bundled or named model's run, resolved and checked (exit 2)."""
    from gradcheck.settings import resolve_settings

    settings = resolve_settings(
        dict(
            model=o.model,
            steps=o.steps,
            img_size=o.img_size,
            batch_size=o.batch_size,
            seed=o.seed,
            device=o.device,
            data=o.data,
        ),
        config.settings,
    )
    if not settings.model:
        fail_usage("no model: pass --model NAME or set model in the [gradcheck] config section")
    if settings.steps < 1:
        fail_usage(f"--steps must be at least 1, got {settings.steps}")
    for key in ("img_size", "batch_size"):
        value = getattr(settings, key)
        if value is not None and value < 1:
            fail_usage(f"--{key.replace('_', '-')} must be positive, got {value}")
    if settings.data is not None and not Path(settings.data).is_dir():
        fail_usage(f"--data {settings.data}: no such folder")
    return settings


def _run_script(o: _RunOptions, config):
    """``gradcheck run -- python train.py``: the script's first steps, checked and reported."""
    from gradcheck import api
    from gradcheck.script import ScriptError
    from gradcheck.settings import resolve_settings

    for flag, value in (
        ("--model", o.model),
        ("--img-size", o.img_size),
        ("--batch-size", o.batch_size),
        ("--seed", o.seed),
        ("--data", o.data),
        ("--train-mode", o.train_mode or None),
    ):
        if value is not None:
            fail_usage(f"{flag} does not apply to a script: pass the script its own arguments")
    settings = resolve_settings(
        dict(steps=o.steps, device=o.device),
        {k: v for k, v in config.settings.items() if k in ("steps", "device")},
    )
    if settings.steps < 1:
        fail_usage(f"--steps must be at least 1, got {settings.steps}")
    _check_outputs(o.output, o.html_path)
    policy = config.policy.with_overrides(strict=o.strict)
    from gradcheck.distributed.launch import finish, launch, mpi_world

    world, nproc = mpi_world(), o.nproc
    if world is None and nproc is not None and nproc > 1:
        from gradcheck.script import parse_command

        parse_command(o.script)  # a missing script fails here, not N times
        sys.exit(launch(nproc, sys.argv[1:]))
    if world is not None and nproc is not None and nproc != world[1]:
        fail_usage(f"--nproc {nproc}, but this mpirun started {world[1]} ranks")
    try:
        result = api.run_script(
            o.script, settings, policy, quiet=o.quiet or o.fmt != "table", keep_going=o.keep_going
        )
    except ScriptError as exc:
        if exc.script_traceback and (world is None or world[0] == 0):
            click.echo(exc.script_traceback.rstrip(), err=True)
        raise
    if world is not None and world[0] != 0:  # rank 0 reports for every rank
        sys.exit(finish(EXIT_PASS))
    if result.script_traceback:
        click.echo(result.script_traceback.rstrip(), err=True)
    _write_and_emit(result.report, o.output, o.html_path, o.fmt, o.quiet, o.table_depth)
    supervise.leave(finish(EXIT_PASS if result.report.verdict.passed else EXIT_FAIL))


def _check_outputs(*paths) -> None:
    """Report paths that cannot be written fail now (exit 2), not after the run."""
    from gradcheck.report import check_writable

    for path in paths:
        if path and not Path(path).resolve().parent.is_dir():
            fail_usage(f"cannot write {path}: its folder does not exist")
        if path:  # a folder, a FIFO, a read-only folder
            check_writable(path)


def _no_collections() -> None:
    """On the CLI's own command line, where the process ends after the command: no cyclic
    collections over the records it holds, which have no cycles (writing a Gold-YOLO report:
    0.1 s; after loading two 9,000-parameter reports, one walk of every record)."""
    if supervise.command_line():
        gc.disable()


def _write_and_emit(report, output, html_path, fmt, quiet, depth):
    _no_collections()
    # from here a crash is not rerun: the verdict (with a retry's warning) is being written
    supervise.verdict_begins(
        EXIT_PASS if report.verdict.passed else EXIT_FAIL, report.verdict.warnings
    )
    # files first: a closed stdout (`| head`) must not cost the report
    if output:
        from gradcheck.report import save_report

        save_report(report, output)
    if html_path:
        from gradcheck.render import write_file

        write_file("html", report, html_path)
    _emit_report(report, fmt, quiet, depth)


def _emit_report(report, fmt, quiet, depth):
    from gradcheck.render import get_renderer
    from gradcheck.render.common import headline

    if quiet and fmt == "table":
        click.echo(f"{headline(report)}")
        return
    get_renderer(fmt).report(report, sys.stdout, depth=depth)


@main.command()
@click.argument("report_path", type=click.Path())
@options.format_option
@options.verbose_option
@options.depth_option
@user_errors_exit_2
def show(report_path, fmt, verbose, depth):
    """Render a saved report again (exit 1 if its verdict was fail)."""
    from gradcheck.render import get_renderer
    from gradcheck.report import load_report

    _no_collections()
    report = load_report(report_path)
    get_renderer(fmt).report(report, sys.stdout, depth=options.table_depth(verbose, depth))
    supervise.leave(EXIT_PASS if report.verdict.passed else EXIT_FAIL, ours_only=True)


@main.command()
@click.argument("before", type=click.Path())
@click.argument("after", type=click.Path())
@click.option(
    "--allow",
    multiple=True,
    metavar="GLOB",
    help="Accept regressions of parameters matching GLOB (repeatable).",
)
@click.option(
    "--across",
    is_flag=True,
    help="BEFORE is a port's report, AFTER its original's (e.g. Jittor vs torch): "
    "pair by name, exit 1 on any coverage difference.",
)
@click.option(
    "--map",
    "map_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="With --across: rename rules 'PATTERN -> REPLACEMENT' (original -> port).",
)
@options.format_option
@options.quiet_option
@user_errors_exit_2
def compare(before, after, allow, across, map_path, fmt, quiet):
    """Diff two reports; exit 1 on any regression (a CI gate)."""
    if across:
        _compare_across(before, after, map_path, fmt, quiet)
    from gradcheck.compare import compare as compare_reports
    from gradcheck.render import get_renderer
    from gradcheck.report import load_report

    _format_shows(fmt, "comparison")
    _no_collections()
    old, new = (load_report(path, totals=False) for path in (before, after))  # records only
    cmp = compare_reports(old, new, allow=tuple(allow))
    if quiet:
        click.echo("compare: " + ("ok" if cmp.ok else f"{len(cmp.regressions)} regression(s)"))
    else:
        get_renderer(fmt).comparison(cmp, sys.stdout)
    supervise.leave(EXIT_PASS if cmp.ok else EXIT_FAIL, ours_only=True)


def _format_shows(fmt: str, what: str) -> None:
    """Exit 2 in one line when ``--format fmt`` cannot show ``what``, before any work."""
    from gradcheck.render import can_render, renderers_for
    from gradcheck.render.interface import DESCRIBED

    if not can_render(fmt, what):
        fail_usage(
            f"--format {fmt} cannot show {DESCRIBED[what]}; choose one of "
            f"{', '.join(renderers_for(what))}"
        )


def _compare_across(port, original, map_path, fmt, quiet):
    from gradcheck.parity.across import compare_across, load_name_map
    from gradcheck.render import get_renderer
    from gradcheck.render.parity import across_headline
    from gradcheck.report import load_report

    _format_shows(fmt, "across")
    cmp = compare_across(load_report(port), load_report(original), load_name_map(map_path))
    if quiet:
        click.echo(across_headline(cmp))
    else:
        get_renderer(fmt).across(cmp, sys.stdout)
    sys.exit(EXIT_PASS if cmp.ok else EXIT_FAIL)


@main.command()
@click.option(
    "--port",
    "port_spec",
    required=True,
    metavar="MOD:FACTORY",
    help="Factory of the Jittor port's Workload (or a bundled model name).",
)
@click.option(
    "--original",
    "original_spec",
    required=True,
    metavar="MOD:FACTORY",
    help="Factory of the PyTorch original's Workload.",
)
@click.option(
    "--map",
    "map_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Rename rules 'PATTERN -> REPLACEMENT' (original -> port names).",
)
@click.option(
    "--steps",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Optimizer steps on both sides before the parameter values are compared.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--float64",
    "float64_mode",
    type=click.Choice([m.value for m in Float64Mode]),
    default=None,
    help="Rerun the port in float64 to tell float32 noise from a port "
    "difference: auto (only when float32 leaves a row beyond tolerance; the "
    "default, or align_float64 in the config), always, never.",
)
@options.output_option("result")
@options.html_option
@options.format_option
@options.quiet_option
@options.config_option
@supervise.supervised
@user_errors_exit_2
def align(
    port_spec,
    original_spec,
    map_path,
    steps,
    seed,
    float64_mode,
    output,
    html_path,
    fmt,
    quiet,
    config_path,
):
    """Align a Jittor port with its PyTorch original: outputs, loss, gradients, values.

    Exit 0 aligned within tolerance, 1 not aligned, 2 bad input, 3 internal error."""
    from gradcheck.parity import align as align_mod
    from gradcheck.render import get_renderer, write_file
    from gradcheck.render.parity import align_headline
    from gradcheck.report import write_atomic

    _check_outputs(output, html_path)
    _format_shows(fmt, "align")
    # bad input -> 2, a failure inside Jittor or torch -> 3, both without a traceback: exit_codes
    res = align_mod.run(port_spec, original_spec, map_path, config_path, steps, seed, float64_mode)
    supervise.verdict_begins(EXIT_PASS if res.aligned else EXIT_FAIL, res.verdict.warnings)
    if output:
        write_atomic(output, res.to_json())
    if html_path:
        write_file("html", res, html_path, what="align")
    if quiet:
        click.echo(align_headline(res))
    else:
        get_renderer(fmt).align(res, sys.stdout)
    sys.exit(EXIT_PASS if res.aligned else EXIT_FAIL)


@main.command()
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@options.device_option
@user_errors_exit_2
def doctor(fmt, device):
    """Check the Jittor set-up: version, compiler, cache, oneDNN, device, a conv self-test."""
    import json

    from gradcheck import runtime
    from gradcheck.doctor import render_doctor, run_doctor

    runtime.setup(device=device)
    report = run_doctor()
    if fmt == "json":
        click.echo(json.dumps(report.to_dict(), indent=1))
    else:
        from rich.console import Console

        render_doctor(report, Console())
    sys.exit(EXIT_PASS if report.ok else EXIT_FAIL)


if __name__ == "__main__":  # pragma: no cover
    main()
