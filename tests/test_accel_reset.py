"""RESET in the middle of a layer, in Amaranth's simulator: each executor is reset at random
cycles into every layer of its own of the small shipped model on ``sim-small`` (its data
registers are reset-less, so they keep what the layer had put there), the memories are put back,
and the run that follows must write exactly what the golden model does, in the cycles of an
uninterrupted run. The whole design gets the same check through its host port in
``verif/tb_accelerator.py``."""

import random

import numpy as np
import pytest

from spikeforge.contract.configs import get_config
from spikeforge.hdl.accelerator.core import EXECUTORS
from spikeforge.hdl.accelerator.sequencer import EXECUTOR_OPS
from spikeforge.verif.accel_cases import layer_cases
from spikeforge.verif.accel_harness import run_case

SIM = get_config("sim-small")
#: Interrupted runs per layer (each at a random cycle of an uninterrupted run).
INTERRUPTS = 2
# The memories a layer's result is in (the others are parameters or scratch).
_RESULTS = ("spikes", "values", "scores")


@pytest.mark.parametrize("name", list(EXECUTORS))
def test_reset_mid_layer(name):
    cases = layer_cases("spikformer", SIM, ops=set(EXECUTOR_OPS[name]))
    assert cases, f"the model has no layer for the {name} executor"
    rng = random.Random(f"reset-{name}")
    failures = []
    for case in cases:
        _, cycles = run_case(EXECUTORS[name](SIM), case)
        points = sorted(rng.randrange(1, cycles) for _ in range(INTERRUPTS))
        got, again = run_case(EXECUTORS[name](SIM), case, interrupt=points)
        print(f"{name} {case.name}: reset at {points} of {cycles} cycles, then {again}")
        if again != cycles:
            failures.append(f"{case.name}: {again} cycles after the resets, {cycles} without")
        for memory in _RESULTS:
            if memory in got and memory in case.after:
                bad = np.flatnonzero(got[memory] != case.after[memory])
                if len(bad):
                    failures.append(f"{case.name}: {len(bad)} {memory} rows differ after resets "
                                    f"at {points}, first at {bad[0]}")
    assert not failures, "\n".join(failures)
