"""A Plan: the stages one input needs, merged and in dependency order.

Stages are identified by what they compute (plugin, version, parameters, upstream stages), so
two requests that need the same thing (transcription and diarization both needing 16 kHz mono
audio) share one stage. Executors walk ``stages`` in order, or run independent ones at once.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field, fields

import blake3

from video_extract.spec import Operation

SOURCE = "source"  # the upstream id of an input the file itself provides


@dataclass(frozen=True)
class Stage:
    id: str
    plugin: str
    version: str
    operation: Operation
    output_type: str
    inputs: tuple[tuple[str, str], ...]  # (type, upstream stage id or SOURCE)

    @property
    def upstream(self) -> list[str]:
        return [sid for _, sid in self.inputs if sid != SOURCE]

    @staticmethod
    def make_id(plugin: str, version: str, operation: Operation, inputs: tuple[tuple[str, str], ...]) -> str:
        text = json.dumps([plugin, version, operation.canonical(), inputs], separators=(",", ":"))
        return blake3.blake3(text.encode()).hexdigest()[:12]

    def label(self) -> str:
        return self._label

    @functools.cached_property
    def _label(self) -> str:  # the operation is frozen: worked out once (logs and records ask often)
        return str(self.operation)


@dataclass
class Plan:
    stages: dict[str, Stage] = field(default_factory=dict)  # topological order
    outputs: dict[str, str] = field(default_factory=dict)  # requested operation -> stage id
    errors: dict[str, str] = field(default_factory=dict)  # requested operation -> why it cannot run
    skipped: dict[str, str] = field(default_factory=dict)  # requested operation -> why it does not apply
    enriched: dict[str, str] = field(default_factory=dict)  # stage an enrichment replaced -> its operation

    def copy(self) -> Plan:
        """A plan of its own, with the same (frozen) stages: a reused plan is handed out as a copy."""
        return Plan(**{f.name: dict(getattr(self, f.name)) for f in fields(self)})

    def add(self, stage: Stage) -> str:
        """Insert a stage whose upstream stages are already present; identical stages merge."""
        self.stages.setdefault(stage.id, stage)
        return stage.id

    def requested(self, stage_id: str) -> list[str]:
        return [op for op, sid in self.outputs.items() if sid == stage_id]

    def dependents_of(self, stage_id: str) -> list[str]:
        return [s.id for s in self.stages.values() if stage_id in s.upstream]

    def streams_for(self, stage_id: str) -> list[str]:
        """Operations whose partial results this stage yields: its own, or the one it is the base of
        (the transcription segments stream while speaker attribution waits for diarization)."""
        return self.requested(stage_id) or ([self.enriched[stage_id]] if stage_id in self.enriched else [])

    def describe(self) -> list[str]:
        lines = []
        position = {sid: n for n, sid in enumerate(self.stages, 1)}
        for n, stage in enumerate(self.stages.values(), 1):
            ups = ", ".join(f"{t}<-#{position[s]}" if s != SOURCE else t for t, s in stage.inputs)
            wanted = self.requested(stage.id)
            tag = f"  => {', '.join(wanted)}" if wanted else "  (intermediate)"
            lines.append(f"#{n} {stage.label()} [{stage.plugin} v{stage.version}] from {ups}{tag}")
        for op, why in self.skipped.items():
            lines.append(f"- {op}: skipped, {why}")
        for op, why in self.errors.items():
            lines.append(f"x {op}: {why}")
        return lines
