"""The simulated board behind a socket (``spikeforge run --backend uart --port sim``): the
``board`` unit (:class:`spikeforge.hdl.board.AcceleratorLink`, UART pins included) simulated by
its testbench in serve mode (:mod:`.tb_board`), which bridges one TCP connection to the pins.

:func:`board_sim` starts the simulation in a thread (building it first if needed) and yields
the ``socket://`` URL a pyserial port opens; leaving the ``with`` block waits for the simulation
to end, which it does once the driver closes its connection.
"""

import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from . import runner
from .toolchain import BUILD_ROOT

__all__ = ["board_sim", "BoardSimFailed", "SIM_DIVISOR"]

#: Clock cycles per UART bit in the simulated board (the receiver's minimum is 4).
SIM_DIVISOR = 4


class BoardSimFailed(RuntimeError):
    """The simulated board did not start, or failed."""


@contextmanager
def board_sim(config, *, simulator="verilator", divisor=SIM_DIVISOR, seed=None,
              start_timeout=3600):
    """Yield the URL of a simulated board of configuration ``config`` (a name). Raises
    :class:`BoardSimFailed` if it is not listening within ``start_timeout`` seconds (the build
    included) or its simulation fails."""
    folder = BUILD_ROOT / "cases"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        port_file = Path(tmp) / "port"
        outcome = {}

        def simulate():
            try:
                outcome["result"] = runner.simulate(
                    "board", params={"config": config, "divisor": divisor},
                    stimulus={"serve": str(port_file)}, simulator=simulator, seed=seed)
            except Exception as exc:            # reported to the caller below
                outcome["error"] = exc

        thread = threading.Thread(target=simulate, name="board-sim", daemon=True)
        thread.start()
        deadline = time.monotonic() + start_timeout
        while not port_file.exists():
            if not thread.is_alive():
                raise BoardSimFailed(f"the simulated board did not start: "
                                     f"{_first_line(outcome.get('error'))}")
            if time.monotonic() > deadline:
                raise BoardSimFailed(f"the simulated board did not start within "
                                     f"{start_timeout} s")
            time.sleep(0.1)
        yield f"socket://127.0.0.1:{int(port_file.read_text())}"
        thread.join()
        if "error" in outcome:
            raise BoardSimFailed(f"the simulated board failed: "
                                 f"{_first_line(outcome['error'])}")


def _first_line(exc):
    return str(exc).strip().splitlines()[0] if exc else "unknown reason"
