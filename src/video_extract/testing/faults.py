"""Fault injection: damage a random cached file or kill a random process mid-run, run again,
and compare every output with a reference run.

A trial passes when the run after the fault succeeds and its output folders hold exactly the
reference's files, byte for byte (``summary.json`` aside, which records timings). Used by
``benchmarks/fault_injection.py`` (many trials, a table of counts) and by a test (a few).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from video_extract.testing import media

#: Operations whose cached entries hold JSON, WAV and JPEG files; fast on a 3 s clip.
OPS = ["metadata", "audio", "frames", "keyframes", "scenes", "scene_frames"]
DAMAGES = ("truncate", "delete", "empty", "append", "flip", "zero-block")
VICTIMS = ("debug", "bulk-parent", "bulk-worker", "bulk-group")
IGNORED = {"summary.json", ".input"}


@dataclass
class Tally:
    """Counts per kind of fault, and a line for every trial whose outputs were wrong."""

    trials: int = 0
    corruptions: int = 0
    detected: int = 0  # the damaged stage was recomputed (not served from the damaged entry)
    undetectable: int = 0  # same-size changes in a binary file, which the size policy trusts
    kills: int = 0
    wrong: int = 0
    notes: list[str] = field(default_factory=list)


def snapshot(out_dir: Path) -> dict[str, bytes]:
    """Every output file under ``out_dir``, by relative path (what a user would diff)."""
    return {p.relative_to(out_dir).as_posix(): p.read_bytes() for p in sorted(out_dir.rglob("*")) if p.is_file() and p.name not in IGNORED}


def make_inputs(folder: Path) -> list[Path]:
    """Three short clips with cuts and sound (different content, so different cache keys)."""
    folder.mkdir(parents=True, exist_ok=True)
    specs = [((20, 50), 70, 440.0), ((30,), 60, 660.0), ((15, 40, 55), 75, 550.0)]
    return [media.scene_clip(folder / f"clip{i}.mp4", cuts=cuts, frames=n, tone_hz=hz).path for i, (cuts, n, hz) in enumerate(specs)]


class Harness:
    """One cache, one output folder and the reference outputs, shared by the trials."""

    def __init__(self, work: Path, rng: random.Random, log: Callable[[str], None] = lambda line: None):
        from video_extract import Client

        self.work, self.rng, self.log = work, rng, log
        self.inputs = make_inputs(work / "inputs")
        self.cache = work / "cache"
        self.out = work / "out"
        reference = Client(cache_dir=work / "reference-cache", output_dir=work / "reference").run_many(self.inputs, OPS)
        self.reference = {}
        for result in reference:
            assert result.ok, result.errors
            self.reference[result.output_dir.name] = snapshot(result.output_dir)
        self.tally = Tally()
        self.durations = {command: self._timed(command) for command in ("debug", "bulk")}
        log(f"an undisturbed run takes {self.durations['debug']:.1f} s (debug, one clip), {self.durations['bulk']:.1f} s (bulk, three)")

    def _command(self, command: str, inputs: list[str]) -> list[str]:
        args = [sys.executable, "-m", "video_extract", command, *inputs, "--ops", ",".join(OPS), "-o", str(self.out), "--cache-dir", str(self.cache), "-q"]
        return args + ["--workers", "2", "--progress", "none"] if command == "bulk" else args

    def _timed(self, command: str) -> float:
        """How long a cold run takes, so that kills can be spread over its whole length."""
        shutil.rmtree(self.cache, ignore_errors=True)
        shutil.rmtree(self.out, ignore_errors=True)
        started = time.perf_counter()
        subprocess.run(self._command(command, [str(self.inputs[0])] if command == "debug" else [str(p) for p in self.inputs]), check=True, capture_output=True)
        return time.perf_counter() - started

    # -- checks ---------------------------------------------------------------------------------

    def _check(self, trial: str, results) -> bool:
        wrong = []
        for result in results:
            if not result.ok:
                wrong.append(f"{Path(result.result.input).name}: {result.errors}")
                continue
            got = snapshot(result.output_dir)
            want = self.reference[result.output_dir.name]
            if got != want:
                differing = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
                wrong.append(f"{result.output_dir.name}: {len(differing)} files differ ({', '.join(differing[:3])})")
        if wrong:
            self.tally.wrong += 1
            self.tally.notes.append(f"{trial}: {'; '.join(wrong)}")
        return not wrong

    def _run(self, inputs: list[Path], verify: str = "size"):
        from video_extract import Client

        return list(Client(cache_dir=self.cache, output_dir=self.out, cache_verify=verify).run_many(inputs, OPS))

    # -- corruption -----------------------------------------------------------------------------

    def corrupt_trial(self, n: int, verify: str) -> None:
        """Damage one file of one cached entry at random, run again, compare."""
        from video_extract.cache import ENTRY_FILE, Cache

        target_input = self.rng.choice(self.inputs)
        self._run([target_input], verify)  # make sure its entries exist
        cache = Cache(self.cache)
        rows = [r for r in cache._scan() if r[3].get("input") and r[3]["plugin"] in OPS]
        rows = [r for r in rows if r[3]["input"] == _digest(target_input)]
        _, _, entry, meta = self.rng.choice(rows)
        files = sorted(p for p in entry.rglob("*") if p.is_file())
        victim = self.rng.choice(files)
        how = self.rng.choice(DAMAGES)
        same_size = _damage(victim, how, self.rng)
        binary = victim.suffix in (".jpg", ".wav", ".npy")
        if same_size and binary and verify == "size":
            self.tally.undetectable += 1
        self.tally.trials += 1
        self.tally.corruptions += 1
        trial = f"trial {n}: {how} {meta['plugin']}/{victim.relative_to(entry).as_posix()} (verify={verify})"
        self.log(trial)
        results = self._run([target_input], verify)
        stage_ran = {s.plugin: s.cached for s in results[0].result.stages}
        if stage_ran.get(meta["plugin"]) is False or victim.name == ENTRY_FILE:
            self.tally.detected += 1
        ok = self._check(trial, results)
        if not ok and same_size and binary and verify == "size":
            self.tally.notes[-1] += " [same-size change in a binary file: only verify=full sees it]"

    # -- kills ----------------------------------------------------------------------------------

    def kill_trial(self, n: int) -> None:
        """Start a run in another process, SIGKILL one of its processes mid-run, run again, compare."""
        victim = self.rng.choice(VICTIMS)
        command = "debug" if victim == "debug" else "bulk"
        delay = self.rng.uniform(0.05, 1.0) * self.durations[command]
        # From a cold cache, so that the kill lands while entries and outputs are being written.
        # Bulk would skip inputs already finished, so its outputs go too; debug keeps them, so a
        # killed re-run over an earlier run's outputs is tried as well.
        shutil.rmtree(self.cache, ignore_errors=True)
        if command == "bulk":
            shutil.rmtree(self.out, ignore_errors=True)
        inputs = [str(self.rng.choice(self.inputs))] if command == "debug" else [str(p) for p in self.inputs]
        proc = subprocess.Popen(self._command(command, inputs), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        killed = "nothing (already finished)"
        if proc.poll() is None:
            if victim == "bulk-group":
                os.killpg(proc.pid, signal.SIGKILL)
                killed = "the process group"
            elif victim == "bulk-worker":
                workers = _children(proc.pid)
                if workers:
                    os.kill(self.rng.choice(workers), signal.SIGKILL)
                    killed = "a worker"
            else:
                proc.kill()
                killed = "the parent" if command == "bulk" else "the process"
        if victim == "bulk-worker" and killed == "a worker":
            proc.wait(timeout=300)  # the batch goes on without that worker (retries its file)
        else:
            _reap_group(proc)
        self.tally.trials += 1
        self.tally.kills += killed != "nothing (already finished)"
        trial = f"trial {n}: {command}, killed {killed} after {delay:.1f} s"
        self.log(trial)
        self._check(trial, self._run([Path(p) for p in inputs]))


def run_trials(work: Path, trials: int, seed: int = 0, verify: str = "both", log: Callable[[str], None] = lambda line: None) -> dict[str, Tally]:
    """``trials`` faults, each followed by a run compared with the reference; tallies per kind."""
    rng = random.Random(seed)
    harness = Harness(work, rng, log)
    policies = ["size", "full"] if verify == "both" else [verify]
    tallies: dict[str, Tally] = {}
    for n in range(trials):
        if rng.random() < 0.6:
            policy = policies[n % len(policies)]
            harness.tally = tallies.setdefault(f"corrupt, verify={policy}", Tally())
            harness.corrupt_trial(n, policy)
        else:
            harness.tally = tallies.setdefault("kill", Tally())
            harness.kill_trial(n)
    return tallies


def _digest(path: Path) -> str:
    from video_extract.cache import file_digest

    return file_digest(path)


def _damage(path: Path, how: str, rng: random.Random) -> bool:
    """Damage ``path``; True when its size is unchanged (what only a digest can see)."""
    data = path.read_bytes()
    if how == "delete":
        path.unlink()
        return False
    if how == "truncate":
        path.write_bytes(data[: rng.randrange(0, max(1, len(data)))])
        return False
    if how == "empty":
        path.write_bytes(b"")
        return not data
    if how == "append":
        path.write_bytes(data + os.urandom(rng.randint(1, 64)))
        return False
    changed = bytearray(data)
    if not changed:
        path.write_bytes(b"x")
        return False
    if how == "flip":
        at = rng.randrange(len(changed))
        changed[at] ^= 1 << rng.randrange(8)
    else:  # a block of zeros, as a bad sector reads back
        start = rng.randrange(len(changed))
        changed[start : start + 512] = bytes(len(changed[start : start + 512]))
        if bytes(changed) == data:
            changed[start] ^= 0xFF
    path.write_bytes(bytes(changed))
    return True


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _reap_group(proc: subprocess.Popen) -> None:
    """Whatever is left of a killed run's process group goes too, as a crashed machine's would."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
