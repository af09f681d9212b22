"""Click options shared by several commands, each declared once."""

from __future__ import annotations

import click

from gradcheck.render import FORMATS
from gradcheck.runtime import DEVICES

format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="What to print on stdout: a table for people, json for machines, markdown for PRs, "
    "junit for CI test reports, html for the page.",
)
quiet_option = click.option(
    "--quiet", "-q", is_flag=True, help="Print only the verdict line; no progress display."
)
config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Read the [gradcheck] section from this file instead of ./setup.cfg.",
)
device_option = click.option(
    "--device",
    type=click.Choice(DEVICES),
    default=None,
    help="auto: CUDA only where a working CUDA driver exists.  [default: auto]",
)
depth_option = click.option(
    "--depth",
    type=click.IntRange(0, 20),
    default=None,
    help="Depth of the coverage-by-module tree; implies --verbose.  [default: 2]",
)
verbose_option = click.option(
    "--verbose",
    "-v",
    is_flag=True,
    help="Print every table (needs attention, loss terms, status over steps, module tree), "
    "not just the one-screen summary.",
)


html_option = click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write a self-contained HTML page here.",
)


def output_option(what: str):
    """``--output/-o FILE``: where the command writes its JSON ``what`` (atomically)."""
    return click.option(
        "--output",
        "-o",
        type=click.Path(dir_okay=False),
        default=None,
        help=f"Write the JSON {what} here (atomically).",
    )


def table_depth(verbose: bool, depth):
    """The renderers' ``depth``: None is the one-screen summary, a number the full tables."""
    return depth if depth is not None else (2 if verbose else None)
