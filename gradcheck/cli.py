"""The ``gradcheck`` command line: a thin layer over the library.

Exit codes: 0 pass / no regression, 1 fail / regression, 2 bad input or usage.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from gradcheck import options

EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _user_errors() -> tuple:
    from gradcheck.policy import ConfigError
    from gradcheck.report import ReportError
    from gradcheck.runtime import RuntimeSetupError
    from gradcheck.workload import WorkloadError

    return (ConfigError, ReportError, RuntimeSetupError, WorkloadError)


def fail_usage(message: str) -> "NoReturn":  # noqa: F821
    click.echo(f"gradcheck: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def user_errors_exit_2(fn):
    """Bad input becomes one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except _user_errors() as exc:
            fail_usage(str(exc))
        except KeyboardInterrupt:
            click.echo("gradcheck: interrupted; no report written", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gradcheck", prog_name="gradcheck")
def main():
    """Which parameters of a Jittor model get no gradient, and why."""


@main.command()
@click.option("--model", "-m", default=None,
              help="gold_yolo_n|s|m|l, package.module:factory or path/to/file.py:factory.")
@click.option("--steps", type=int, default=None, help="Real optimizer steps to run.  [default: 1]")
@click.option("--img-size", type=int, default=None, help="Image size for bundled models.  [default: 320]")
@click.option("--batch-size", type=int, default=None, help="Batch size for bundled models.  [default: 2]")
@click.option("--seed", type=int, default=None, help="Seed for Jittor, numpy and random.  [default: 0]")
@click.option("--data", type=click.Path(), default=None,
              help="A YOLO-format dataset folder (images/, labels/) for a bundled model.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Write the JSON report here (atomically).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), default=None,
              help="Also write a self-contained HTML page here.")
@click.option("--strict", is_flag=True, default=None, help="Warnings fail the run too.")
@click.option("--nproc", type=click.IntRange(min=1), default=None,
              help="Run data-parallel on N MPI ranks (starts OpenMPI's mpirun -np N).")
@options.format_option
@options.quiet_option
@options.config_option
@options.device_option
@options.depth_option
@user_errors_exit_2
def run(model, steps, img_size, batch_size, seed, data, output, html_path, strict, nproc, fmt,
        quiet, config_path, device, depth):
    """Run real training steps and report every parameter's gradient coverage."""
    from gradcheck.policy import load_policy

    policy = load_policy(config_path).with_overrides(
        model=model, steps=steps, img_size=img_size, batch_size=batch_size, seed=seed,
        device=device, strict=strict)
    if not policy.model:
        fail_usage("no model: pass --model NAME or set model in the [gradcheck] config section")
    if policy.steps < 1:
        fail_usage(f"--steps must be at least 1, got {policy.steps}")
    for key in ("img_size", "batch_size"):
        value = getattr(policy, key)
        if value is not None and value < 1:
            fail_usage(f"--{key.replace('_', '-')} must be positive, got {value}")
    if data is not None and not Path(data).is_dir():
        fail_usage(f"--data {data}: no such folder")
    for path in (output, html_path):
        if path and not Path(path).resolve().parent.is_dir():
            fail_usage(f"cannot write {path}: its folder does not exist")

    from gradcheck import distributed

    if distributed.mpi_world() is not None:    # one rank of an MPI run (ours or the user's)
        report = distributed.run_rank(policy, data=data, quiet=quiet or fmt != "table",
                                      nproc=nproc)
        if report is None:                     # not rank 0: rank 0 reports for everyone
            sys.exit(distributed.finish(EXIT_PASS))
    elif nproc is not None and nproc > 1:
        sys.exit(distributed.launch(nproc, sys.argv[1:]))
    else:
        from gradcheck import api

        report = api.run(policy, data=data, quiet=quiet or fmt != "table")
    # files first: a closed stdout (`| head`) must not cost the report
    if output:
        from gradcheck.report import save_report

        save_report(report, output)
    if html_path:
        from gradcheck.render.html import write_html

        write_html(report, html_path)
    _emit_report(report, fmt, quiet, depth)
    sys.exit(distributed.finish(EXIT_PASS if report.verdict.passed else EXIT_FAIL))


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
@options.depth_option
@user_errors_exit_2
def show(report_path, fmt, depth):
    """Render a saved report again (exit 1 if its verdict was fail)."""
    from gradcheck.render import get_renderer
    from gradcheck.report import load_report

    report = load_report(report_path)
    get_renderer(fmt).report(report, sys.stdout, depth=depth)
    sys.exit(EXIT_PASS if report.verdict.passed else EXIT_FAIL)


@main.command()
@click.argument("before", type=click.Path())
@click.argument("after", type=click.Path())
@click.option("--allow", multiple=True, metavar="GLOB",
              help="Accept regressions of parameters matching GLOB (repeatable).")
@options.format_option
@options.quiet_option
@user_errors_exit_2
def compare(before, after, allow, fmt, quiet):
    """Diff two reports; exit 1 on any regression (a CI gate)."""
    from gradcheck.compare import compare as compare_reports
    from gradcheck.render import get_renderer
    from gradcheck.report import load_report

    cmp = compare_reports(load_report(before), load_report(after), allow=tuple(allow))
    if quiet:
        click.echo("compare: " + ("ok" if cmp.ok else f"{len(cmp.regressions)} regression(s)"))
    else:
        get_renderer(fmt).comparison(cmp, sys.stdout)
    sys.exit(EXIT_PASS if cmp.ok else EXIT_FAIL)


@main.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
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
