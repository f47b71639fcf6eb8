"""``spikeforge formal``: prove the units' stream contracts, beat conservation, buffer bounds and
saturation with SymbiYosys (k-induction, or bounded where induction does not close)."""

import sys

import click

from ..errors import UserError, as_user_error
from .common import echo_table, emit, json_option

COUNTS = ("properties", "proved", "bounded", "failed", "seconds")


@click.command("formal")
@click.argument("unit", required=False)
@click.option("--mutations", "mutations", is_flag=True,
              help="Run every mutation (a unit broken on purpose) instead: each must be caught.")
@click.option("--list", "list_units", is_flag=True, help="List the units and their properties.")
@json_option
def command(unit, mutations, list_units, as_json):
    """Check UNIT's formal properties (default: every unit; configurations with a known bug,
    if any, only by name).

    Prints per unit and in total the properties, how many were proved (k-induction closed, or
    a cover reached), bounded (no counterexample within the stated depth) and failed, and the
    seconds taken; exits 1 if a property fails (or, with --mutations, a mutation is not
    caught). Traces and logs are under $SPIKEFORGE_BUILD/formal/.
    """
    from spikeforge.verif.formal import HARNESSES, get_harness
    if unit is None:
        names = list(HARNESSES)
    else:
        with as_user_error():
            get_harness(unit)
        names = [unit]
    if list_units:
        _list(names)
        return
    from spikeforge.verif.formal.runner import FormalToolError
    try:
        if mutations:
            ok = _mutations(names, as_json)
        else:
            ok = _prove(names, as_json)
    except FormalToolError as exc:
        raise UserError(str(exc)) from exc
    if not ok:
        sys.exit(1)


def _list(names):
    from spikeforge.verif.formal import get_harness
    from spikeforge.verif.formal.runner import declared_properties
    for name in names:
        cls = get_harness(name)
        params = " ".join(f"{k}={v}" for k, v in cls.params.items())
        click.echo(f"{name}: {cls.component.__name__}({params})")
        for prop in declared_properties(cls()):
            click.echo(f"  {prop.group:5} {prop.name}: {prop.text}")


def _prove(names, as_json):
    from spikeforge.verif.formal import get_harness
    from spikeforge.verif.formal.runner import run_harness
    units = {}
    for name in names:
        cls = get_harness(name)
        result = run_harness(cls())
        depths = {"prove": cls.prove_depth, "bound": cls.bound_depth}
        groups = {r.group for r in result.results}
        units[name] = {**result.summary(),
                       "depth": {g: d for g, d in depths.items() if g in groups},
                       "results": [vars(r) for r in result.results]}
    total = {key: sum(u[key] for u in units.values()) for key in COUNTS}
    total["seconds"] = round(total["seconds"], 1)
    if as_json:
        emit({"units": units, "total": total}, True)
    else:
        rows = [[name, *(u[key] for key in COUNTS)] for name, u in units.items()]
        echo_table(["unit", *COUNTS], rows + [["total", *(total[k] for k in COUNTS)]],
                   align="lrrrrr")
        for name, u in units.items():
            for r in u["results"]:
                if r["status"] == "failed":
                    click.echo(f"{name}: {r['name']} FAILED at step {r['depth']}: "
                               f"{r['text']} (trace: {r['trace']})")
                elif r["status"] == "bounded" and r["trace"]:
                    click.echo(f"{name}: induction does not close at {r['name']} "
                               f"(bounded to {r['depth']})")
    return total["failed"] == 0


def _mutations(names, as_json):
    from spikeforge.verif.formal import get_harness
    from spikeforge.verif.formal.runner import check_mutation
    rows, ok = [], True
    for name in names:
        cls = get_harness(name)
        for label, spec in cls.mutations.items():
            for prop, result in check_mutation(cls, label).items():
                caught = result.status == "failed"
                ok &= caught
                rows.append({"unit": name, "mutation": label, "text": spec.text,
                             "property": prop, "caught": caught, "step": result.depth})
    if as_json:
        emit({"mutations": rows, "caught": sum(r["caught"] for r in rows),
              "total": len(rows)}, True)
    else:
        echo_table(["unit", "mutation", "property", "caught", "step"],
                   [[r["unit"], r["mutation"], r["property"], "yes" if r["caught"] else "NO",
                     r["step"]] for r in rows], align="lllrr")
    return ok
