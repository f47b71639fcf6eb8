"""``spikeforge synth``: a unit through Yosys/nextpnr, the resource table, QoR baselines, board
bitstreams."""

import json
import sys

import click

from ..errors import UserError, as_user_error
from ..progress import progress_bar
from .common import (SEED, Integer, Number, OutputFile, atomic_output, check_unit, echo_table,
                     emit, json_option, literal_value, param_option)
from .compile import config_option

DEVICE_NAMES = ("ecp5-25k", "ecp5-45k", "ecp5-85k", "ice40-up5k")
BOARD_NAMES = ("ulx3s-85f", "icebreaker")
#: ``--freq``: a nextpnr target in MHz (no FPGA these flows target clocks a unit at 1 GHz).
FREQUENCY = Number(0, 1000, positive=True)
#: ``--baud``: up to the FT2232H's 12 Mbaud.
BAUD = Integer(300, 12_000_000)
# The fields every synthesis result prints first, in this order.
FIGURES = ("device", "speed_grade", "lut", "ff", "bram", "dsp", "fmax_mhz", "critical_path",
           "seconds")


class _SynthGroup(click.Group):
    """``spikeforge synth UNIT …`` runs the ``unit`` subcommand; other names are subcommands."""

    def parse_args(self, ctx, args):
        if not args:
            click.echo(ctx.get_help())
            ctx.exit(0)
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["unit", *args]
        return super().parse_args(ctx, args)


@click.group("synth", cls=_SynthGroup)
def command():
    """Synthesize for ECP5/iCE40 with yowasp Yosys and nextpnr.

    \b
    spikeforge synth UNIT --device ecp5-85k [--param N=V] [--freq MHZ] [--seed S] [--json]
    spikeforge synth parts [--config NAME]   each part of the accelerator alone
    spikeforge synth table        regenerate docs/resources.md (every unit, ECP5-85 and iCE40)
    spikeforge synth baseline     compare with the stored QoR baselines (--update to store)
    spikeforge synth sweep UNIT --over lanes=4,8,16   how the figures scale
    spikeforge synth board --board ulx3s-85f|icebreaker   the accelerator's bitstream
    """


def _progress(as_json):
    if as_json:
        return None
    return lambda text: click.echo(f"  {text}", err=True)


def _figures(result):
    data = result.as_dict()
    data["device"] = result.part
    data["device_name"] = result.device
    return {**{key: data[key] for key in FIGURES},
            **{key: value for key, value in data.items() if key not in FIGURES}}


def _synthesize(unit, device, params, freq, seed, cache, log):
    from spikeforge.synth.flow import synthesize, SynthesisError, DoesNotFit
    try:
        with as_user_error():
            return synthesize(unit, device=device, params=params, freq=freq, seed=seed,
                              cache=cache, log=log)
    except SynthesisError as exc:
        lines = str(exc).splitlines()
        hint = (" (the count includes the out-of-context wrapper: one flip-flop per input bit, "
                "two flip-flops and a LUT per output bit)") if isinstance(exc, DoesNotFit) else ""
        raise UserError(f"{lines[0]} {lines[-1].strip()}{hint}")


@command.command("unit")
@click.argument("unit")
@click.option("--device", "-d", type=click.Choice(DEVICE_NAMES), default="ecp5-85k",
              show_default=True, help="Target device (ECP5 parts are speed grade 6, CABGA381).")
@param_option
@click.option("--freq", type=FREQUENCY, default=None,
              help="nextpnr target frequency in MHz, more than 0 and at most 1000 "
                   "[default: 150 on ECP5, 48 on iCE40].")
@click.option("--seed", type=SEED, default=1, show_default=True, help="nextpnr placement seed.")
@click.option("--no-cache", is_flag=True, help="Run the tools even if an identical run exists.")
@json_option
def unit_command(unit, device, params, freq, seed, no_cache, as_json):
    """Synthesize UNIT (out of context, behind a 5-pin wrapper) and place and route it.

    Prints device, speed grade, the unit's LUT/FF/BRAM/DSP, nextpnr's Fmax, the critical path
    and the wall time.
    """
    from spikeforge.synth.report import describe_path
    check_unit(unit, params)
    result = _synthesize(unit, device, params, freq, seed, not no_cache, _progress(as_json))
    figures = _figures(result)
    if as_json:
        emit(figures, True)
    else:
        for key in FIGURES:
            value = describe_path(result.critical_path) if key == "critical_path" \
                else figures[key]
            click.echo(f"{key}: {value}")
        click.echo(f"target: {result.freq_target_mhz:g} MHz "
                   f"({'met' if result.meets else 'NOT met'}), seed {result.seed}")
        click.echo(f"whole design placed (unit + wrapper): {result.placed}")
    for warning in result.warnings:
        click.echo(f"spikeforge: warning: {warning}", err=True)


@command.command("parts")
@config_option
@click.option("--part", "-p", "parts", multiple=True,
              help="Parts (repeatable) [default: host, sequencer and every executor].")
@click.option("--device", "-d", type=click.Choice(DEVICE_NAMES), default="ecp5-85k",
              show_default=True, help="Target device.")
@click.option("--freq", type=FREQUENCY, default=None, help="nextpnr target frequency in MHz.")
@click.option("--seed", type=SEED, default=1, show_default=True, help="nextpnr placement seed.")
@click.option("--no-cache", is_flag=True, help="Run the tools even where identical runs exist.")
@json_option
def parts_command(config_name, parts, device, freq, seed, no_cache, as_json):
    """Synthesize each part of the accelerator alone (host port, sequencer, executors; no
    memories), out of context like a unit: where its LUTs go and which part limits Fmax."""
    from spikeforge.hdl.accelerator.core import PARTS, build_part
    from spikeforge.synth.flow import synthesize_component, SynthesisError
    from spikeforge.synth.report import describe_path
    unknown = [name for name in parts if name not in PARTS]
    if unknown:
        raise UserError(f"unknown part {unknown[0]!r} (parts: {', '.join(PARTS)})")
    rows = []
    bar = progress_bar(total=len(parts or PARTS), show=not as_json, unit="part")
    try:
        for name in parts or PARTS:
            bar.set_postfix_str(name)
            with as_user_error():
                result = synthesize_component(
                    f"accelerator-{name}", lambda: build_part(config_name, name),
                    params={"config": config_name, "part": name}, device=device, freq=freq,
                    seed=seed, cache=not no_cache)
            figures = _figures(result)          # its "device" is the device's part number
            rows.append({"part": name, **{k: v for k, v in figures.items() if k != "part"}})
            bar.update()
    except SynthesisError as exc:
        raise UserError(str(exc).splitlines()[0])
    finally:
        bar.close()
    if as_json:
        emit({"config": config_name, "device": device, "parts": rows}, True)
        return
    echo_table(["part", "LUT", "FF", "EBR", "DSP", "Fmax MHz", "critical path"],
               [[r["part"], r["lut"], r["ff"], r["bram"], r["dsp"], r["fmax_mhz"],
                 describe_path(r["critical_path"])] for r in rows], align="lrrrrrl")


@command.command("table")
@click.option("--output", "-o", type=OutputFile(), default=None,
              help="Markdown file to write [default: docs/resources.md].")
@click.option("--device", "-d", "devices", type=click.Choice(DEVICE_NAMES), multiple=True,
              help="Devices (repeatable) [default: ecp5-85k and ice40-up5k].")
@click.option("--unit", "-u", "units", multiple=True,
              help="Units (repeatable) [default: every registered unit].")
@click.option("--no-cache", is_flag=True, help="Run the tools even where identical runs exist.")
@json_option
def table_command(output, devices, units, no_cache, as_json):
    """Regenerate the resource table of every unit at its default parameters."""
    from spikeforge.verif.toolchain import PROJECT_ROOT
    from spikeforge.verif.units import UNITS, get_unit
    from spikeforge.synth.table import TABLE_DEVICES, measure_units, render, describe
    with as_user_error():
        units = [get_unit(name).name for name in units] or list(UNITS)
    devices = list(devices) or list(TABLE_DEVICES)
    bar = progress_bar(total=len(units) * len(devices), show=not as_json, unit="run")

    def step(unit, device):
        bar.set_postfix_str(f"{unit} on {device}")
        bar.update()

    from spikeforge.synth.flow import SynthesisError
    try:
        rows = measure_units(units, devices, cache=not no_cache, progress=step)
    except SynthesisError as exc:
        raise UserError(str(exc).splitlines()[0])
    finally:
        bar.close()
    path = output or (PROJECT_ROOT / "docs" / "resources.md")
    with atomic_output(path) as part:
        part.write_text(render(rows))
    if as_json:
        emit({"output": str(path), "rows": rows}, True)
    else:
        for row in rows:
            click.echo(describe(row))
        click.echo(f"wrote {path}")


@command.command("baseline")
@click.option("--device", "-d", "devices", type=click.Choice(DEVICE_NAMES), multiple=True,
              help="Devices (repeatable) [default: ecp5-85k and ice40-up5k].")
@click.option("--update", is_flag=True, help="Store the figures as the new baseline.")
@json_option
def baseline_command(devices, update, as_json):
    """Compare the QoR baseline cases with synth/baselines/ (exit 1 outside tolerance)."""
    from spikeforge.synth import qor
    from spikeforge.synth.table import TABLE_DEVICES
    out, failed = {}, False
    for device in devices or TABLE_DEVICES:
        measured = qor.measure(device)
        if update:
            out[device] = {"written": str(qor.update(device, measured))}
            continue
        baseline = qor.load_baseline(device)
        if baseline is None:
            out[device] = {"problems": [], "note": f"no baseline {qor.baseline_path(device).name}"}
            continue
        problems = qor.compare(device, measured, baseline)
        failed |= bool(problems)
        out[device] = {"problems": problems, "cases": len(measured)}
    if as_json:
        emit(out, True)
    else:
        for device, info in out.items():
            if "written" in info:
                click.echo(f"{device}: wrote {info['written']}")
            elif "note" in info:
                click.echo(f"{device}: {info['note']}")
            elif info["problems"]:
                click.echo("\n".join(info["problems"]))
            else:
                click.echo(f"{device}: {info['cases']} cases within tolerance")
    if failed:
        sys.exit(1)


@command.command("board")
@click.option("--board", "-b", type=click.Choice(BOARD_NAMES), required=True,
              help="Target board.")
@click.option("--clock", type=FREQUENCY, default=None,
              help="Core clock in MHz [default: 45 on ulx3s-85f, made by the ECP5 PLL from "
                   "the 25 MHz oscillator; 12 on icebreaker, its oscillator and its only "
                   "clock].")
@click.option("--baud", type=BAUD, default=None,
              help="UART rate [default: 3000000]; the clock must give at least 4 cycles per "
                   "bit, within 1% of the rate.")
@click.option("--plan-only", is_flag=True,
              help="Only write the build plan (RTLIL, Yosys script, pin and clock "
                   "constraints, build script); run no tool.")
@click.option("--program", is_flag=True,
              help="After the build, load the bitstream with openFPGALoader (ULX3S: into "
                   "SRAM; iCEBreaker: into its flash).")
@click.option("--seed", type=SEED, default=None,
              help="nextpnr placement seed [default: the board's: 1 on ulx3s-85f, the seed "
                   "measured fastest of those that route; 1 on icebreaker].")
@json_option
def board_command(board, clock, baud, plan_only, program, seed, as_json):
    """Build the accelerator behind a UART bridge into a bitstream for the --board.

    The bitstream holds the accelerator of the board's configuration (ulx3s-85f,
    icebreaker-up5k) on the board's USB serial port (8N1) and four LEDs: busy, done, error,
    line error. It is never programmed unless --program is given. Prints the clock, baud
    rate, Fmax (exit 1 if below the clock), LUT/FF/EBR/DSP and the bitstream's path.
    """
    from spikeforge.synth.boards import build_board, ProgrammerError
    from spikeforge.synth.flow import SynthesisError
    if program and plan_only:
        raise click.UsageError("--program needs a build, not --plan-only")
    if not as_json:
        click.echo(f"  {'planning' if plan_only else 'building'} for {board} …", err=True)
    try:
        with as_user_error():
            info = build_board(board, do_build=not plan_only, clock=clock, baud=baud,
                               seed=seed, program=program)
    except SynthesisError as exc:
        lines = str(exc).splitlines()
        raise UserError(f"{lines[0]} {lines[-1].strip()}" if len(lines) > 1 else lines[0])
    except ProgrammerError as exc:
        raise UserError(str(exc))
    emit(info, as_json, None if as_json else "\n".join(
        f"{key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}"
        for key, value in info.items()))
    if not plan_only and not info["meets"]:
        raise click.ClickException(f"Fmax {info['fmax_mhz']} MHz is below the "
                                   f"{info['clock_mhz']:g} MHz clock: rebuild with a lower "
                                   "--clock")


@command.command("sweep")
@click.argument("unit")
@click.option("--over", "over", required=True, metavar="NAME=V1,V2,…",
              help="The parameter to sweep and its values, e.g. lanes=4,8,16.")
@click.option("--device", "-d", type=click.Choice(DEVICE_NAMES), default="ecp5-85k",
              show_default=True, help="Target device.")
@param_option
@click.option("--freq", type=FREQUENCY, default=None, help="nextpnr target frequency in MHz.")
@click.option("--seed", type=SEED, default=1, show_default=True, help="nextpnr placement seed.")
@json_option
def sweep_command(unit, over, device, params, freq, seed, as_json):
    """Synthesize UNIT over the values of one parameter (how LUT/FF/Fmax scale)."""
    name, sep, values = over.partition("=")
    if not sep or not name.isidentifier() or not values:
        raise click.UsageError(f"--over wants NAME=V1,V2,…, not {over!r}")
    try:
        values = [literal_value(text) for text in values.split(",")]
    except ValueError as exc:
        raise click.UsageError(f"--over {name}: {exc}") from None
    for value in values:                   # every point checked before the first run
        check_unit(unit, {**params, name: value})
    rows = []
    for value in progress_bar(values, show=not as_json, unit="run"):
        result = _synthesize(unit, device, {**params, name: value}, freq, seed, True, None)
        rows.append({name: value, **_figures(result)})
    if as_json:
        emit({"unit": unit, "parameter": name, "rows": rows}, True)
        return
    from spikeforge.synth.report import describe_path
    for row in rows:
        click.echo(f"{name}={row[name]!s:6} LUT {row['lut']:6} FF {row['ff']:6} "
                   f"EBR {row['bram']:3} DSP {row['dsp']} Fmax {row['fmax_mhz']} MHz  "
                   f"[{describe_path(row['critical_path'])}]")
