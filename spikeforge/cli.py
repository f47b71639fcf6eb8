"""The ``spikeforge`` command: one group, one module per subcommand under ``commands/``.

Errors a user can cause (unknown unit, parameter or simulator, a malformed model file, a bad
elaboration parameter) print one line ``spikeforge: error: …`` and exit with status 2; anything
else is a bug and keeps its traceback.
"""

import sys

import click

from . import __version__
from .errors import UserError
from .lazy import LazyGroup

__all__ = ["main", "cli"]

# Subcommand name -> "module:attribute" of its click command.
SUBCOMMANDS = {name: f"spikeforge.commands.{name}:command" for name in (
    "verilog", "sim", "demo", "bench", "train", "run", "report", "synth", "formal", "compile")}


@click.group(cls=LazyGroup, lazy=SUBCOMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spikeforge")
def cli():
    """SpikeForge: open, multiplier-free accelerator for spike-driven transformers.

    Generate Verilog, simulate units against the golden model on Icarus or Verilator, synthesize
    for ECP5/iCE40, train and run models, and report cycles, SOPs and energy.
    """


def main(argv=None):
    try:
        cli.main(args=argv, prog_name="spikeforge", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("spikeforge: aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        click.echo(f"spikeforge: error: {_one_line(exc.format_message())}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"spikeforge: error: {_one_line(exc.format_message())}", err=True)
        sys.exit(exc.exit_code)
    except UserError as exc:
        click.echo(f"spikeforge: error: {_one_line(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    sys.exit(0)


def _one_line(text):
    return " ".join(str(text).split())
