"""The resource figures the project has recorded, read without running the tools (the
``report`` page): the table ``spikeforge synth table`` writes (``docs/resources.md``, every
unit and the accelerator at their defaults per device) and the QoR baselines
(``synth/baselines/*.json``, small configurations per device and tool versions)."""

import json

from .qor import BASELINE_DIR

__all__ = ["read_table", "read_baselines"]


def _cells(line):
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def read_table(path):
    """The first table of a ``docs/resources.md`` written by :func:`.table.render`:
    ``{"source", "about"`` (the paragraph naming tools, seed, date and devices), ``"header"``
    (its column names), ``"rows"`` (lists of cell strings, markdown emphasis removed)``}``;
    ``None`` when ``path`` does not exist or holds no table."""
    if not path.exists():
        return None
    lines = path.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("| unit")), None)
    if start is None:
        return None
    about = next((line for line in lines[:start] if line.startswith("Every registered unit")),
                 "")
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.replace("**", "") for cell in _cells(line)])
    return {"source": str(path), "about": about.replace("`", ""), "header": _cells(lines[start]), "rows": rows}


def read_baselines(folder=BASELINE_DIR):
    """Every stored baseline (``{"source", "device", "part", "speed_grade", "tools", "seed",
    "cases"}``, as ``spikeforge synth baseline`` writes them), in file name order."""
    out = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        out.append({"source": str(path), **{key: data[key] for key in (
            "device", "part", "speed_grade", "tools", "seed", "cases")}})
    return out
