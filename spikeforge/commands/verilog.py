"""``spikeforge verilog``: a unit as Verilog."""

import click

from ..errors import as_user_error
from .common import param_option, parse_params


@click.command("verilog")
@click.argument("unit")
@param_option
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write to this file (default: standard output).")
def command(unit, params, output):
    """Generate Verilog for UNIT (top module `top`, clock `clk`, synchronous reset `rst`).

    Units: see `spikeforge sim --list`.
    """
    from spikeforge.verif.runner import generate_verilog
    with as_user_error():
        text = generate_verilog(unit, parse_params(params), output)
    if output is None:
        click.echo(text, nl=False)
    else:
        click.echo(f"wrote {output}", err=True)
