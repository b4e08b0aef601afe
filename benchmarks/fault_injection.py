"""Fault injection: over N randomized trials, damage a random cached file (truncate, delete,
empty, append, flip a bit, zero a block) or SIGKILL a random process mid-run (a ``debug``
process, a bulk parent, a bulk worker, a whole bulk process group), run again, and compare every
output with a reference run. Target: 0 wrong outputs (under ``verify=size``, a same-size change
inside a JPEG or WAV is trusted by design; such trials are counted as undetectable).

    python benchmarks/fault_injection.py [--trials 40] [--seed 0] [--verify both|size|full]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from video_extract.testing.faults import run_trials


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verify", choices=["both", "size", "full"], default="both", help="cache policy for the corruption trials")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each trial")
    args = parser.parse_args()
    console = Console(width=120)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="video-extract-faults-") as work:
        tallies = run_trials(Path(work), args.trials, args.seed, args.verify, log=console.print if args.verbose else lambda line: None)
    table = Table(title=f"fault injection: {args.trials} trials, seed {args.seed}, {time.perf_counter() - started:.0f} s")
    for column in ("faults", "trials", "corrupted", "detected", "undetectable", "killed", "wrong"):
        table.add_column(column, justify="left" if column == "faults" else "right")
    for kind, t in sorted(tallies.items()):
        table.add_row(kind, str(t.trials), str(t.corruptions), str(t.detected), str(t.undetectable), str(t.kills), str(t.wrong))
    console.print(table)
    notes = [note for t in tallies.values() for note in t.notes]
    for note in notes:
        console.print(f"  wrong: {note}", markup=False)
    expected = sum(1 for note in notes if "only verify=full sees it" in note)
    return 0 if len(notes) == expected else 1


if __name__ == "__main__":
    raise SystemExit(main())
