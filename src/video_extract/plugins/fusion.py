"""fusion: the other outputs of a request on one timeline, what happens in each scene, the
entities that persist over time and how they relate.

Per-frame detections become spans (a label seen in consecutive analysed frames is one event
from its first frame to the next analysed frame after its last), so the timeline reads as a
list of things that happen, not a list of samples. Entities follow one face or object across
analysed frames (``vision.tracks``), each with a JPEG crop of its most confident detection
under ``entities/``; speakers, on-screen texts and keywords come from their records
(``entities``).

``align_modalities=false`` leaves the timeline and the scene digests empty (entities still
come); ``extract_entities=false`` leaves entities and relationships out, whatever
``build_relationships`` says (relationships link entities).
"""

from __future__ import annotations

from video_extract.entities import extract
from video_extract.entities.keywords import import_keywords
from video_extract.entities.relationships import build_relationships
from video_extract.entities.spans import length, merge
from video_extract.errors import OperationError
from video_extract.plugins.base import Inputs, Plugin, StageContext
from video_extract.results import (
    DetectionsResult,
    DiarizationResult,
    Entity,
    FacesResult,
    FusionResult,
    MediaInfo,
    ObjectsResult,
    OcrResult,
    Scene,
    SceneDigest,
    ScenesResult,
    TimelineEvent,
    TranscriptionResult,
    VadResult,
    Word,
)
from video_extract.spec import Fusion, canonical_name
from video_extract.speech.words import join_spelled, spelled_words
from video_extract.vision.crops import save_crops
from video_extract.vision.runs import coverage_ends, timed_runs
from video_extract.vision.tracks import Track, import_norfair, track_detections

#: Where track crops go, in the output directory (``Entity.crop`` is relative to it).
CROPS = "entities"
#: Tracks that get a crop, the longest seen first.
MAX_CROPS = 500

#: Events that start together are listed in this order.
ORDER = {"scene": 0, "speaker": 1, "speech": 2, "voice": 3, "object": 4, "face": 5, "text": 6}


def _scene_end(scenes: list[Scene], time: float) -> float:
    """End of the scene that contains ``time`` (infinity without scenes)."""
    for scene in scenes:
        if scene.start <= time < scene.end:
            return scene.end
    return float("inf")


def detection_spans(kind: str, record: DetectionsResult, scenes: list[Scene], video_end: float | None) -> list[TimelineEvent]:
    """A label seen in consecutive analysed frames as one span; sampled frames say nothing about
    what follows a cut, so a span ends with its scene."""
    frames = record.frames
    time_of = {f.frame: f.time for f in frames}
    events = []
    for run in timed_runs(frames, coverage_ends(frames, video_end), key=lambda d: d.label):
        end = min(run.end, _scene_end(scenes, time_of[run.last_frame]))
        events.append(
            TimelineEvent(
                type=kind,
                label=run.key,
                start=run.start,
                end=end,
                frames=run.frames,
                max_count=run.max_count,
                confidence=round(max(d.confidence for d in run.detections), 4),
            )
        )
    return events


class FusionPlugin(Plugin):
    def validate(self, params: Fusion) -> None:
        for op in params.include or ():
            canonical_name(op)  # raises a UsageError listing the valid names

    def preload(self, models, params: Fusion) -> None:
        """The trackers' and keywords' libraries (0.1-0.15 s to import cold, as the last stage)."""
        if params.extract_entities:
            import_norfair()
            import_keywords()

    def run(self, ctx: StageContext, inputs: Inputs, params: Fusion) -> None:
        info = ctx.source.info
        duration = inputs[MediaInfo].duration if MediaInfo in inputs else None
        duration = duration or info.duration
        video_end = (info.start_time + duration) if duration else None
        events: list[TimelineEvent] = []
        scenes = inputs[ScenesResult].scenes if ScenesResult in inputs else []
        events += [TimelineEvent(type="scene", start=s.start, end=s.end, scene=n) for n, s in enumerate(scenes)]
        speech = inputs[TranscriptionResult].segments if TranscriptionResult in inputs else []
        events += [TimelineEvent(type="speech", start=s.start, end=s.end, text=s.text, speaker=s.speaker) for s in speech]
        if DiarizationResult in inputs:
            events += [TimelineEvent(type="speaker", start=t.start, end=t.end, speaker=t.speaker) for t in inputs[DiarizationResult].segments]
        if VadResult in inputs and not speech:
            events += [TimelineEvent(type="voice", start=v.start, end=v.end) for v in inputs[VadResult].segments]
        for record_type, kind in ((ObjectsResult, "object"), (FacesResult, "face")):
            if record_type in inputs:
                events += detection_spans(kind, inputs[record_type], scenes, video_end)
        if OcrResult in inputs:
            events += [TimelineEvent(type="text", start=t.start, end=t.end, text=t.text) for t in inputs[OcrResult].texts]
        events.sort(key=lambda e: (e.start, ORDER[e.type], e.label or "", e.end or 0))
        words = [(w.model_copy(update={"speaker": w.speaker or s.speaker}), piece) for s in speech for w, piece in zip(s.words, spelled_words(s, lead=" "))]
        entities = relationships = None
        if params.extract_entities:
            entities, keyword_links = self._entities(ctx, inputs, scenes, video_end, [w for w, _ in words])
            if params.build_relationships:
                relationships = build_relationships(entities, [(s.start, s.end) for s in scenes], keyword_links)
        aligned = params.align_modalities
        ctx.write(
            FusionResult(
                duration=duration,
                sources=sorted(inputs),
                timeline=events if aligned else [],
                scenes=[self._digest(n, s, events, words) for n, s in enumerate(scenes)] if aligned else [],
                entities=entities,
                relationships=relationships,
            )
        )

    def _entities(self, ctx: StageContext, inputs: Inputs, scenes: list[Scene], video_end: float | None, words: list[Word]):
        """Speakers, face and object tracks (with crops), on-screen texts, keywords; and per
        keyword where it is said and which texts hold it."""
        entities: list[Entity] = []
        if DiarizationResult in inputs:
            entities += extract.speakers(inputs[DiarizationResult])
        bounds = [(s.start, s.end) for s in scenes]
        tracked: list[tuple[Entity, Track]] = []
        for record_type, kind in ((FacesResult, "face"), (ObjectsResult, "object")):
            if record_type in inputs:
                try:
                    tracks = track_detections(inputs[record_type].frames, bounds, video_end)
                except ImportError as exc:
                    raise OperationError("fusion", f"tracking {kind}s needs norfair ({exc}): pip install --no-deps norfair==2.3.0 filterpy==1.4.5") from None
                tracked += [(self._track_entity(kind, n, track, operation="faces" if kind == "face" else "objects"), track) for n, track in enumerate(tracks)]
        # A crop for the MAX_CROPS tracks seen longest (a long input can hold thousands of
        # one-frame tracks; their crops would cost a seek each and say little).
        cropped = sorted(tracked, key=lambda et: (-len(et[1].sightings), -et[1].best.detection.confidence))[:MAX_CROPS]
        crops: dict[float, list] = {}
        for entity, track in cropped:
            crops.setdefault(track.best.time, []).append((track.best.detection.box, ctx.path(entity.crop or "")))
        written = {p.relative_to(ctx.work_dir).as_posix() for p in save_crops(ctx.source.pixels, crops)}
        entities += [e if e.crop in written else e.model_copy(update={"crop": None}) for e, _ in tracked]
        texts = extract.texts(inputs[OcrResult].texts) if OcrResult in inputs else []
        entities += texts
        transcript = inputs[TranscriptionResult] if TranscriptionResult in inputs else None
        found, links = extract.keywords(words, transcript.text if transcript else "", texts, transcript.language if transcript else None)
        return entities + found, links

    @staticmethod
    def _track_entity(kind: str, n: int, track: Track, operation: str) -> Entity:
        spans = merge(track.spans)
        best = track.best
        return Entity(
            id=f"{kind}:{n}",
            kind=kind,  # type: ignore[arg-type]
            label=track.label,
            spans=extract.spans_of(spans),
            evidence=[operation],
            seconds=round(length(spans), 4),
            frames=len(track.sightings),
            confidence=round(max(s.detection.confidence for s in track.sightings), 4),
            time=round(best.time, 4),
            box=best.detection.box,
            crop=f"{CROPS}/{kind}_{n}.jpg",
        )

    @staticmethod
    def _digest(index: int, scene: Scene, events: list[TimelineEvent], words: list[tuple[Word, str]]) -> SceneDigest:
        """What is said, seen and read during one scene.

        ``words`` pairs each word with its spelling in its segment (a space before the first word
        of a segment), so the scene's speech reads as Whisper wrote it."""
        start, end = scene.start, scene.end

        def inside(e: TimelineEvent) -> bool:
            return e.start < end and (e.end or e.start) > start

        # Words, where there are word times: a sentence can run across a cut.
        spoken = [(w, piece) for w, piece in words if start <= (w.start + w.end) / 2 < end]
        if not words:
            spoken = [
                (Word(word=e.text or "", start=e.start, end=e.end or e.start, speaker=e.speaker), f" {e.text or ''}")
                for e in events
                if e.type == "speech" and start <= (e.start + (e.end or e.start)) / 2 < end
            ]
        return SceneDigest(
            scene=index,
            start=start,
            end=end,
            speech=join_spelled([piece for _, piece in spoken]),
            speakers=sorted({w.speaker for w, _ in spoken if w.speaker}),
            objects=sorted({e.label for e in events if e.type == "object" and inside(e) and e.label}),
            faces=max((e.max_count or 0 for e in events if e.type == "face" and inside(e)), default=0),
            texts=[e.text for e in events if e.type == "text" and inside(e) and e.text],
        )
