"""Adds ``vpa conformance NAME`` to the ``vpa`` command (entry point group ``vpa``).

The core knows nothing of this package: the command arrives through the ``vpa_register_commands``
hook when vpa-conformance is installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from vpa.hookspecs import hookimpl


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.option("--report", type=click.Path(path_type=Path), help="write the JSON report here")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def conformance(name: str, report: Path | None, pytest_args: tuple[str, ...]) -> None:
    """Run the conformance suite against the installed store NAME."""
    from vpa.plugins import get_registry

    from vpa_conformance.runner import run

    get_registry().get("store", name)  # an unknown name fails here, listing what is installed
    sys.exit(run(name, report_path=report, extra_args=pytest_args))


@hookimpl
def vpa_register_commands(cli: click.Group) -> None:
    cli.add_command(conformance)
