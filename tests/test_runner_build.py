"""Parallel simulations that share a build folder (:func:`spikeforge.verif.runner.run_testbench`):
one process compiles at a time, and a simulator executable the kernel calls busy right after
linking is started again instead of failing the run."""

import errno
import threading
import time

import pytest

from spikeforge.verif import runner


def test_a_second_build_waits_for_the_first(tmp_path):
    order = []
    first_holds = threading.Event()

    def first():
        with runner._locked(tmp_path):
            first_holds.set()
            time.sleep(0.3)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    first_holds.wait()
    with runner._locked(tmp_path):
        order.append("second in")
    thread.join()
    assert order == ["first done", "second in"]


class BusyRunner:
    """A cocotb runner whose executable is busy ``busy`` times before it starts."""

    def __init__(self, busy, error=errno.ETXTBSY):
        self.busy, self.error, self.calls = busy, error, 0

    def test(self, **kwargs):
        self.calls += 1
        if self.calls <= self.busy:
            raise OSError(self.error, "Text file busy")
        return kwargs["results"]


def test_a_busy_executable_is_started_again(monkeypatch):
    monkeypatch.setattr(runner.time, "sleep", lambda seconds: None)
    busy = BusyRunner(2)
    assert runner._run_test(busy, results="results.xml") == "results.xml"
    assert busy.calls == 3


def test_busy_for_good_or_another_error_raises(monkeypatch):
    monkeypatch.setattr(runner.time, "sleep", lambda seconds: None)
    busy = BusyRunner(runner.BUSY_RETRIES + 1)
    with pytest.raises(OSError):
        runner._run_test(busy, results="results.xml")
    assert busy.calls == runner.BUSY_RETRIES + 1
    missing = BusyRunner(1, errno.ENOENT)
    with pytest.raises(OSError):
        runner._run_test(missing, results="results.xml")
    assert missing.calls == 1
