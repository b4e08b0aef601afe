"""fusion: the other outputs of a request on one timeline, and what happens in each scene.

Per-frame detections become spans (a label seen in consecutive analysed frames is one event
from its first frame to the next analysed frame after its last), so the timeline reads as a
list of things that happen, not a list of samples.
"""

from __future__ import annotations

import json
from typing import Any

from video_extract.plugins.base import Artifact, Plugin, StageContext, write_json
from video_extract.spec import Fusion, canonical_name
from video_extract.vision.analysis import coverage_ends, timed_runs


def _load(artifact: Artifact, name: str) -> Any:
    return json.loads(artifact.file(name).read_text())


def frames_time(frames: list[dict], frame: int) -> float:
    return next(f["time"] for f in frames if f["frame"] == frame)


def _scene_end(scenes: list[dict], time: float) -> float:
    """End of the scene that contains ``time`` (infinity without scenes)."""
    for scene in scenes:
        if scene["start"] <= time < scene["end"]:
            return scene["end"]
    return float("inf")


class FusionPlugin(Plugin):
    def validate(self, params: Fusion) -> None:
        for op in params.include or ():
            canonical_name(op)  # raises a UsageError listing the valid names

    def run(self, ctx: StageContext, inputs: dict[str, Artifact], params: Fusion) -> dict:
        info = ctx.source.info
        duration = info.duration
        if "Metadata" in inputs:
            duration = _load(inputs["Metadata"], "metadata.json").get("duration") or duration
        video_end = (info.start_time + duration) if duration else None
        events: list[dict] = []
        scenes: list[dict] = []
        if "Scenes" in inputs:
            scenes = _load(inputs["Scenes"], "scenes.json")["scenes"]
            events += [{"type": "scene", "start": s["start"], "end": s["end"], "scene": n} for n, s in enumerate(scenes)]
        transcript = inputs.get("SpeakerTranscription") or inputs.get("Transcription")
        speech = _load(transcript, "transcription.json")["segments"] if transcript else []
        events += [{"type": "speech", "start": s["start"], "end": s["end"], "text": s["text"], **({"speaker": s["speaker"]} if s.get("speaker") else {})} for s in speech]
        if "Diarization" in inputs:
            turns = _load(inputs["Diarization"], "diarization.json")["segments"]
            events += [{"type": "speaker", "start": t["start"], "end": t["end"], "speaker": t["speaker"]} for t in turns]
        if "VoiceActivity" in inputs and not speech:
            events += [{"type": "voice", "start": v["start"], "end": v["end"]} for v in _load(inputs["VoiceActivity"], "vad.json")["segments"]]
        for type_name, file, kind in (("Objects", "objects.json", "object"), ("Faces", "faces.json", "face")):
            if type_name in inputs:
                frames = _load(inputs[type_name], file)["frames"]
                for run in timed_runs(frames, coverage_ends(frames, video_end), key=lambda d: d["label"]):
                    # Sampled frames say nothing about what follows a cut: a span ends with its scene.
                    end = min(run.end, _scene_end(scenes, frames_time(frames, run.last_frame)))
                    events.append({"type": kind, "label": run.key, "start": run.start, "end": end, "frames": run.frames,
                                   "max_count": max(sum(1 for d in f["detections"] if d["label"] == run.key) for f in frames if run.first_frame <= f["frame"] <= run.last_frame),
                                   "confidence": round(max(d["confidence"] for d in run.detections), 4)})
        if "OCR" in inputs:
            events += [{"type": "text", "start": t["start"], "end": t["end"], "text": t["text"]} for t in _load(inputs["OCR"], "ocr.json")["texts"]]
        order = {"scene": 0, "speaker": 1, "speech": 2, "voice": 3, "object": 4, "face": 5, "text": 6}
        events.sort(key=lambda e: (e["start"], order.get(e["type"], 9), e.get("label", ""), e.get("end") or 0))
        words = [{**w, **({"speaker": s["speaker"]} if s.get("speaker") and "speaker" not in w else {})} for s in speech for w in s.get("words", [])]
        timeline = {"duration": duration, "sources": sorted(inputs), "events": events, "scenes": [self._digest(n, s, events, words) for n, s in enumerate(scenes)]}
        write_json(ctx.work_dir / "timeline.json", timeline)
        return {"events": len(events), "scenes": len(scenes)}

    @staticmethod
    def _digest(index: int, scene: dict, events: list[dict], words: list[dict]) -> dict:
        """What is said, seen and read during one scene."""
        start, end = scene["start"], scene["end"]

        def inside(e: dict) -> bool:
            return e["start"] < end and (e.get("end") or e["start"]) > start

        # Words, where there are word times: a sentence can run across a cut.
        spoken = [w for w in words if start <= (w["start"] + w["end"]) / 2 < end]
        if not words:
            spoken = [{"word": e["text"], **e} for e in events if e["type"] == "speech" and start <= (e["start"] + e["end"]) / 2 < end]
        return {
            "scene": index,
            "start": start,
            "end": end,
            "speech": " ".join(w["word"] for w in spoken),
            "speakers": sorted({w["speaker"] for w in spoken if w.get("speaker")}),
            "objects": sorted({e["label"] for e in events if e["type"] == "object" and inside(e)}),
            "faces": max((e["max_count"] for e in events if e["type"] == "face" and inside(e)), default=0),
            "texts": [e["text"] for e in events if e["type"] == "text" and inside(e)],
        }
