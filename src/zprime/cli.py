"""The ``zprime`` command line: a thin layer over the Python API.

Every command parses its options, calls one API function and prints or writes its result. Errors
that a user can fix (:class:`~zprime.errors.ZprimeError`) are printed as one line and give exit
status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from zprime import __version__
from zprime.errors import ZprimeError

app = typer.Typer(
    name="zprime",
    help="Belle II search for an invisible L_mu - L_tau Z' in e+e- -> mu+ mu- Z', end to end.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Show or write the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
generate_app = typer.Typer(help="Generate event samples.", no_args_is_help=True)
app.add_typer(generate_app, name="generate")

console = Console(stderr=True)
out = Console()

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML configuration (merged over defaults)")
]


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"zprime {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print version."),
    ] = False,
) -> None:
    """Belle II search for an invisible Z' (PRL 130, 231801), end to end."""


@config_app.command("show")
def config_show(config: ConfigOpt = None) -> None:
    """Print the resolved configuration (defaults merged with CONFIG)."""
    from zprime.config import load_config

    out.print(load_config(config).to_yaml(), end="", markup=False, highlight=False)


@config_app.command("init")
def config_init(
    path: Annotated[Path, typer.Argument(help="file to write")] = Path("zprime.yaml"),
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Write the default configuration, with its comments, to PATH."""
    from importlib import resources

    from zprime._util import atomic_path

    if path.exists() and not force:
        raise ZprimeError(f"{path}: exists already (use --force to overwrite)")
    text = resources.files("zprime").joinpath("data/default.yaml").read_text()
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    console.print(f"wrote {path}")


@app.command("run")
def run_cmd(
    config: ConfigOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="output directory")] = Path(
        "results"
    ),
    quick: Annotated[bool, typer.Option(help="reduced run for smoke tests")] = False,
) -> None:
    """Run the whole analysis on CONFIG (default: the PRL's) and write results to OUT."""
    from zprime.config import load_config
    from zprime.pipeline import run

    run(load_config(config), out_dir, quick=quick, console=console)


# --- signal commands (issue 3: xsec, generate signal, run) ---

# --- background commands (issue 4: generate background) ---

# --- detector commands (issue 4: simulate) ---


@app.command("env")
def env() -> None:
    """Print versions of Python, the platform and the packages zprime uses (for bug reports)."""
    from zprime._util import provenance

    record = provenance()
    record.pop("config")
    out.print_json(json.dumps(record))


def main() -> None:
    """Entry point of the ``zprime`` script."""
    try:
        app(standalone_mode=False)
    except ZprimeError as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]: no partial output was kept; re-run to resume")
        sys.exit(130)
    except typer.Exit as ex:
        sys.exit(ex.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as err:  # click usage errors
        import click

        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(err.exit_code)
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
