"""Formal proofs of every unit (verif/formal/) and one mutation per unit that they must catch.

Each unit's ``suite_groups`` run here (k-induction and covers, and the bounded checks that are
cheap); ``spikeforge formal`` runs them all and ``spikeforge formal --mutations`` every
mutation.
"""

import json

import pytest

from spikeforge.cli import main
from spikeforge.verif.formal import HARNESSES, UnknownFormalUnit, get_harness
from spikeforge.verif.formal.harness import UnknownMutation
from spikeforge.verif.formal.properties import ProbeError
from spikeforge.verif.formal.runner import check_mutation, run_harness

pytestmark = pytest.mark.formal

UNITS = sorted(HARNESSES)


@pytest.mark.parametrize("unit", UNITS)
def test_properties_hold(unit, tmp_path):
    cls = get_harness(unit)
    if not cls.suite_groups:
        pytest.skip(f"{unit}: benchmark set only (spikeforge formal {unit})")
    result = run_harness(cls(), groups=list(cls.suite_groups), build_root=tmp_path)
    assert result.results, f"{unit}: no property checked"
    expected = {"prove": "proved", "cover": "proved", "bound": "bounded"}
    wrong = [(r.name, r.status) for r in result.results if r.status != expected[r.group]]
    # a `prove` property only bounded means the induction no longer closes
    assert wrong == [], f"{unit}: {wrong} (logs under {tmp_path})"


@pytest.mark.parametrize("unit", UNITS)
def test_mutation_caught(unit, tmp_path):
    cls = get_harness(unit)
    assert cls.suite_mutation in cls.mutations, f"{unit} keeps no mutation in the suite"
    # the first property it breaks (`spikeforge formal --mutations` checks them all)
    first = cls.mutations[cls.suite_mutation].caught_by[:1]
    caught = check_mutation(cls, cls.suite_mutation, properties=first, build_root=tmp_path)
    missed = [name for name, r in caught.items() if r.status != "failed"]
    assert missed == [], f"{unit}: mutation {cls.suite_mutation!r} not caught by {missed}"


def test_distributed_walker_reads_its_frame(tmp_path):
    # the LUT-RAM walker once read a window's last word from the next frame when the output
    # stalled (no_zero_taps failed at step 13); fixed, it holds to the bound (the suite keeps
    # that property, the one the bug broke: `spikeforge formal walker_distributed` checks
    # them all), and the mutation that undoes the fix fails it (test_mutation_caught)
    cls = get_harness("walker_distributed")
    result = run_harness(cls(), groups=["bound"], only={"no_zero_taps"}, build_root=tmp_path)
    assert [(r.name, r.status) for r in result.results] == [("no_zero_taps", "bounded")], \
        f"logs under {tmp_path}"


def test_every_property_named_by_a_mutation_exists():
    # each mutation names properties its harness declares (checked without running sby)
    from spikeforge.verif.formal.runner import declared_properties
    for unit in UNITS:
        cls = get_harness(unit)
        names = {p.name for p in declared_properties(cls())}
        for label, spec in cls.mutations.items():
            assert set(spec.caught_by) <= names, (unit, label, spec.caught_by)


def test_unknown_names_are_refused():
    with pytest.raises(UnknownFormalUnit, match="unknown formal unit 'nope'"):
        get_harness("nope")
    with pytest.raises(UnknownMutation, match="has no mutation 'nope'"):
        get_harness("packer")(mutation="nope")


def test_renamed_internal_signal_fails_loudly():
    from amaranth.hdl import Fragment
    from spikeforge.hdl.stream import SkidBuffer
    from spikeforge.verif.formal.properties import Internals
    internals = Internals(Fragment.get(SkidBuffer(2), None), "skid")
    assert internals("full").name == "full"
    with pytest.raises(ProbeError, match="skid has no internal signal 'nope'"):
        internals("nope")


def test_cli_json_and_errors(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SPIKEFORGE_BUILD", str(tmp_path))
    monkeypatch.setattr("spikeforge.verif.formal.runner.BUILD_ROOT", tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["formal", "stream_buffer", "--json"])
    assert exit_info.value.code == 0
    report = json.loads(capsys.readouterr().out)
    counts = ("properties", "proved", "bounded", "failed", "seconds")
    assert set(counts) <= set(report["units"]["stream_buffer"]) and set(counts) <= set(
        report["total"])
    assert report["total"]["failed"] == 0
    assert report["total"]["proved"] == report["total"]["properties"]

    with pytest.raises(SystemExit) as exit_info:
        main(["formal", "nope"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown formal unit 'nope'" in err
