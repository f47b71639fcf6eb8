"""Options and output helpers shared by the subcommands."""

import ast
import json

import click

__all__ = ["json_option", "param_option", "parse_params", "emit", "echo_table"]

json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON object instead of text.")

param_option = click.option(
    "--param", "-p", "params", multiple=True, metavar="NAME=VALUE",
    help="Elaboration parameter over the unit's default (repeatable).")


def parse_params(pairs):
    """``["lanes=16", "mode='soft'"]`` → ``{"lanes": 16, "mode": "soft"}``; bare words stay text."""
    out = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise click.UsageError(f"--param wants NAME=VALUE, not {pair!r}")
        try:
            out[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[name] = text
    return out


def emit(obj, as_json, text=None):
    """Print ``obj`` as JSON, or ``text`` (default: ``key: value`` lines)."""
    if as_json:
        click.echo(json.dumps(obj, sort_keys=False))
    elif text is not None:
        click.echo(text)
    else:
        for key, value in obj.items():
            click.echo(f"{key}: {value}")


def echo_table(header, rows, *, align):
    """Print ``rows`` (lists of cells, ``None`` for blank) under ``header`` as columns aligned
    by ``align``, one letter per column: ``l`` left (names), ``r`` right (numbers)."""
    cells = [[("" if cell is None else str(cell)) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells if i < len(row)) for i in range(len(header))]
    for row in cells:
        text = [cell.ljust(widths[i]) if align[i] == "l" else cell.rjust(widths[i])
                for i, cell in enumerate(row)]
        click.echo("  ".join(text).rstrip())
