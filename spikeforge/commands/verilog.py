"""``spikeforge verilog``: a unit as Verilog."""

import click

from ..errors import as_user_error
from .common import OutputFile, atomic_output, check_unit, param_option


@click.command("verilog")
@click.argument("unit")
@param_option
@click.option("-o", "--output", type=OutputFile(), default=None,
              help="Write to this file (default: standard output).")
def command(unit, params, output):
    """Generate Verilog for UNIT (top module `top`, clock `clk`, synchronous reset `rst`).

    Units: see `spikeforge sim --list`.
    """
    check_unit(unit, params)
    from spikeforge.verif.runner import generate_verilog
    with as_user_error():
        text = generate_verilog(unit, params)
    if output is None:
        click.echo(text, nl=False)
        return
    with atomic_output(output) as part:
        part.write_text(text)
    click.echo(f"wrote {output}", err=True)
