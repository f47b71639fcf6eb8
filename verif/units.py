"""The registry of simulatable units: what ``spikeforge verilog``/``sim``/``synth`` can name.

Each unit names its Amaranth component, its default elaboration parameters, the cocotb testbench
module that checks it against its golden function, and the default stimulus of that testbench.
Components and testbenches are imported lazily so the CLI starts fast.
"""

import importlib
from dataclasses import dataclass, field

from spikeforge.contract.attention import FORMULAS, VARIANTS, VARIANT_KV_FIRST

__all__ = ["Unit", "UNITS", "get_unit", "UnknownUnit", "UnknownParameter"]


class UnknownUnit(LookupError):
    pass


class UnknownParameter(LookupError):
    pass


@dataclass(frozen=True)
class Unit:
    name: str
    summary: str
    component: str                       # "module:Class" under spikeforge.hdl
    testbench: str                       # cocotb test module
    defaults: dict = field(default_factory=dict)
    stimulus: dict = field(default_factory=dict)
    # Fills much of its device: `spikeforge synth unit` places and routes it with
    # synth.devices.CONGESTED_PLACE_ROUTE instead of nextpnr's defaults.
    congested: bool = False

    def component_class(self):
        module, cls = self.component.split(":")
        return getattr(importlib.import_module(module), cls)

    def resolve(self, overrides=None):
        """Defaults updated by ``overrides``; an unknown name raises :class:`UnknownParameter`."""
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            known = ", ".join(sorted(self.defaults)) or "none"
            raise UnknownParameter(
                f"unit {self.name!r} has no parameter {unknown[0]!r} (parameters: {known})")
        return {**self.defaults, **overrides}

    def build(self, overrides=None):
        """Construct the component; bad values raise at construction naming the parameter."""
        return self.component_class()(**self.resolve(overrides))


UNITS = {unit.name: unit for unit in [
    Unit(
        name="packer",
        summary="lane beats of spikes -> packed spike words",
        component="spikeforge.hdl.packer:SpikePacker",
        testbench="spikeforge.verif.tb_packer",
        defaults={"lanes": 8, "channels": 36, "word_bits": 16},
        stimulus={"tokens": 300, "in_idle": 0.3, "out_stall": 0.3, "rate": 0.5},
    ),
    Unit(
        name="encoder",
        summary="packed spike words -> addresses of nonzero spikes (zero skipping)",
        component="spikeforge.hdl.engine.encoder:SpikeEncoder",
        testbench="spikeforge.verif.tb_encoder",
        defaults={"word_bits": 16, "channels": 36, "planes": 2, "count": 2, "chunk": 1},
        stimulus={"tokens": 200, "in_idle": 0.3, "out_stall": 0.3},
    ),
    Unit(
        name="engine",
        summary="sparse spike-accumulate engine: spike words -> P-lane accumulator beats",
        component="spikeforge.hdl.engine:SpikeEngine",
        testbench="spikeforge.verif.tb_engine",
        defaults={"kind": "conv", "c_in": 12, "c_out": 20, "lanes": 8, "in_height": 5,
                  "in_width": 6, "kernel": 3, "stride": 2, "padding": 1, "input_bits": 2,
                  "input_signed": False, "weight_bits": 6, "bias_bits": 12, "acc_bits": 12,
                  "word_bits": 8, "ram_style": "block"},
        stimulus={"tokens": 40, "frames": 3, "rate": 0.6, "in_idle": 0.2, "out_stall": 0.3,
                  "load_idle": 0.2},
    ),
    Unit(
        name="lif",
        summary="LIF neuron array: P lanes, membranes in memory, currents -> spikes",
        component="spikeforge.hdl.lif:LIFArray",
        testbench="spikeforge.verif.tb_lif",
        defaults={"lanes": 8, "neurons": 144, "steps": 4, "lane_groups": 3, "current_bits": 8,
                  "frac_bits": 4, "tau_log2": 1, "reset": "hard", "membrane_bits": None,
                  "threshold_bits": 8, "thresholds": None},
        # 36 samples x 4 steps x 144 neurons = 20,736 checked neuron updates.
        stimulus={"samples": 36, "in_idle": 0.3, "out_stall": 0.3, "thr_idle": 0.3,
                  "extremes": 0.1},
    ),
    Unit(
        name="sdsa",
        summary="spike-driven self-attention: " + ", ".join(
            f"{variant} {FORMULAS[variant]}" for variant in VARIANTS),
        component="spikeforge.hdl.attention:SDSA",
        testbench="spikeforge.verif.tb_sdsa",
        defaults={"variant": VARIANT_KV_FIRST, "tokens": 9, "channels": 16, "heads": 4, "steps": 4,
                  "shift": 3},
        # 12 samples x 4 steps x 9 tokens = 432 checked output words.
        stimulus={"samples": 12, "kv_idle": 0.3, "q_idle": 0.3, "out_stall": 0.3,
                  "rates": None},
    ),
    Unit(
        name="residual",
        summary="residual add (membrane shortcut or SEW), saturating, on lane beats",
        component="spikeforge.hdl.residual:ResidualAdd",
        testbench="spikeforge.verif.tb_residual",
        defaults={"lanes": 4, "channels": 14, "mode": "membrane", "residual_bits": 10,
                  "branch_bits": 8, "out_bits": 10},
        stimulus={"tokens": 150, "in_idle": 0.3, "out_stall": 0.3},
    ),
    Unit(
        name="accelerator",
        summary="the programmable accelerator: host port, sequencer, memories, executors",
        component="spikeforge.hdl.accelerator.core:Accelerator",
        testbench="spikeforge.verif.tb_accelerator",
        defaults={"config": "ulx3s-85f"},
        # Without a case file (SPIKEFORGE_ACCEL_CASE or "case") the testbench checks the host
        # port only; `spikeforge run --backend rtl` writes a case and runs a model.
        stimulus={"case": None, "in_idle": 0.2, "out_stall": 0.2},
        congested=True,
    ),
    Unit(
        name="board",
        summary="the accelerator behind its UART pins (what a board runs; run --backend uart)",
        component="spikeforge.hdl.board:AcceleratorLink",
        testbench="spikeforge.verif.tb_board",
        defaults={"config": "ulx3s-85f", "divisor": 4},
        # Without "serve" the testbench checks the link over the pins; with a file name it
        # bridges a TCP connection to the pins (spikeforge.verif.board_sim).
        stimulus={"serve": None},
    ),
    Unit(
        name="uart",
        summary="UART transmitter -> line -> receiver (the host link of the board builds)",
        component="spikeforge.hdl.uart:UARTLoopback",
        testbench="spikeforge.verif.tb_uart",
        defaults={"divisor": 6},
        stimulus={"bytes": 120, "in_idle": 0.3, "out_stall": 0.3},
    ),
]}


def get_unit(name):
    try:
        return UNITS[name]
    except KeyError:
        known = ", ".join(sorted(UNITS))
        raise UnknownUnit(f"unknown unit {name!r} (units: {known})") from None
