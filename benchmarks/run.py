"""Benchmarks: `make bench` (or `python benchmarks/run.py [section ...]`).

Every row times our code and a baseline measured in the same run on the same machine, and
prints the ratio next to its target. Results are also written to benchmarks/results/latest.json.
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import Row  # noqa: E402

SECTIONS = ["foundation", "speech", "vision", "modes", "service", "latency", "accuracy", "memory"]


def print_table(rows: list[Row]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"video-extract benchmarks ({platform.machine()}, {_cpus()} CPUs)", title_justify="left")
    for column in ("section", "benchmark", "ours", "baseline", "ratio", "target", "ok", "note"):
        table.add_column(column, justify="right" if column in ("ours", "baseline", "ratio") else "left", overflow="fold")
    for row in rows:
        fmt = (lambda v, unit=row.unit: f"{v:.3f} {unit}") if row.unit == "s" else (lambda v, unit=row.unit: f"{v:.3g} {unit}")
        table.add_row(
            row.section,
            row.name,
            fmt(row.ours),
            fmt(row.baseline) if row.baseline is not None else "-",
            f"{row.ratio:.3f}x" if row.ratio is not None else "-",
            row.target,
            {True: "yes", False: "NO", None: "-"}[row.passed],
            row.note,
        )
    Console(width=200).print(table)


def _plain(value):
    """numpy scalars (a count or a DER computed with numpy) as the JSON numbers they are."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def main(argv: list[str]) -> int:
    wanted = argv or SECTIONS
    rows: list[Row] = []
    for name in wanted:
        started = time.perf_counter()
        module = importlib.import_module(name)
        rows.extend(module.run())
        print(f"[{name}] {time.perf_counter() - started:.1f} s", file=sys.stderr)
    print_table(rows)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps([{**r.__dict__, "ratio": r.ratio} for r in rows], indent=2, default=_plain))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
