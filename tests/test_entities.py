"""fusion's entities and relationships on generated media where the truth is known: tracks of
boxes that cross, two voices each shown with its own face, a phrase said and shown."""

from __future__ import annotations

import json

import numpy as np
import pytest

from video_extract import Client
from video_extract.results import Detection, FrameDetections
from video_extract.testing import media
from video_extract.vision.tracks import track_detections

from .conftest import SHARED_MODELS, needs_espeak, needs_shared_models

# -- tracks ----------------------------------------------------------------------------------


def crossing_squares(step: float, seed: int, size: float = 60.0, drop: float = 0.1, fps: float = 2.0):
    """Detections of two squares crossing paths (left to right at y=180, right to left at y=200),
    ``step`` px apart between analysed frames, with a tenth of the detections missed after the
    first two (from which a track learns its speed); and each square's true centre per analysed
    frame."""
    rng = np.random.default_rng(seed)
    count = int(np.ceil((640 - 2 * size) / step)) + 1
    frames, truth = [], []
    for i in range(count):
        centres = [(size / 2 + i * step, 180.0), (640 - size / 2 - i * step, 200.0)]
        detections = []
        for cx, cy in centres:
            if 1 < i < count - 1 and rng.random() < drop:
                continue
            j = rng.normal(0, 2, 4)
            box = [cx - size / 2 + j[0], cy - size / 2 + j[1], cx + size / 2 + j[2], cy + size / 2 + j[3]]
            detections.append(Detection(label="sports ball", confidence=0.9, box=box))
        frames.append(FrameDetections(frame=i * 15, time=i / fps, detections=detections))
        truth.append(centres)
    return frames, truth, count / fps


def _square_of(sighting, truth, frames) -> int:
    """Which square a tracked box is: the one whose true centre is nearest."""
    i = next(n for n, f in enumerate(frames) if f.frame == sighting.frame)
    box = sighting.detection.box
    centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    return int(np.argmin([np.hypot(centre[0] - x, centre[1] - y) for x, y in truth[i]]))


@pytest.mark.parametrize("step", [10, 20, 30])
def test_two_squares_crossing_are_two_tracks_without_an_id_switch(step):
    for seed in range(20):
        frames, truth, end = crossing_squares(step, seed)
        tracks = track_detections(frames, video_end=end)
        assert len(tracks) == 2, (seed, [len(t.sightings) for t in tracks])
        assert sum(len(t.sightings) for t in tracks) == sum(len(f.detections) for f in frames)  # every detection is in one track
        for track in tracks:
            assert len({_square_of(s, truth, frames) for s in track.sightings}) == 1, (seed, step)  # no ID switch
            assert track.spans[0][0] == 0.0 and track.spans[-1][1] == pytest.approx(end)


def test_a_track_ends_at_a_cut_and_its_spans_follow_the_analysed_frames():
    box = [100.0, 100.0, 160.0, 160.0]
    seen = [0, 1, 2, 4, 5, 6, 7]  # frame 3 (1.5 s) misses it; a cut at 2.5 s
    frames = [FrameDetections(frame=n * 15, time=n * 0.5, detections=[Detection(label="face", confidence=0.8, box=box)] if n in seen else []) for n in range(8)]
    tracks = track_detections(frames, scenes=[(0.0, 2.5), (2.5, 4.0)], video_end=4.0)
    assert [t.scene for t in tracks] == [0, 1]  # the same place after a cut is another track
    assert tracks[0].spans == [(0.0, 1.5), (2.0, 2.5)]  # seen until the missed frame, then to the cut
    assert tracks[1].spans == [(2.5, 4.0)]


@needs_shared_models
def test_two_cats_crossing_through_the_objects_pipeline_are_two_tracks(tmp_path):
    from skimage import data

    clip = media.crossing_clip(tmp_path / "cross.mp4", data.chelsea())
    result = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", models_dir=SHARED_MODELS).run(clip.path, ["objects:fps=5", "fusion"])
    assert result.ok, result.errors
    cats = [e for e in result.fusion.entities if e.kind == "object" and e.label == "cat"]
    analysed = len(result.objects.frames)
    assert len(cats) == 2 and all(c.frames >= analysed - 2 for c in cats)  # each seen in (nearly) every analysed frame
    assert all(c.spans[0].start == 0.0 and c.spans[-1].end == pytest.approx(clip.duration) for c in cats)
    rows = {c.box[1] < clip.height / 2 for c in cats}
    assert rows == {True, False}  # one crop from the top row, one from the bottom
    for track in track_detections(result.objects.frames, video_end=clip.duration):  # the same tracks, with every box
        tops = {s.detection.box[1] < clip.height / 2 for s in track.sightings}
        assert len(tops) == 1, "a track jumped from one cat to the other where they cross"
        xs = [s.detection.box[0] for s in track.sightings]
        assert xs == sorted(xs, reverse=not tops.pop())  # the top one goes right, the bottom one left


# -- speakers and faces ----------------------------------------------------------------------

VOICES = {"en-us": "astronaut", "en-us+f3": "camera"}  # who is shown while each voice speaks


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    """Two espeak-ng voices taking four turns; while each voice speaks, its own still portrait
    is shown (scikit-image's astronaut in colour, the grey cameraman), cut at the middle of the
    pauses."""
    from skimage import data

    from video_extract.testing.speech import DIALOGUE, conversation

    if not __import__("shutil").which("espeak-ng"):
        pytest.skip("espeak-ng is not installed (make install puts it there)")
    audio, truth = conversation(DIALOGUE[:4], pauses=[0.8])
    seconds = len(audio) / 16000
    edges = [0.0] + [(a[1] + b[0]) / 2 for a, b in zip(truth, truth[1:])] + [seconds]
    portraits = {"astronaut": data.astronaut(), "camera": np.stack([data.camera()] * 3, axis=-1)}
    images = [portraits[VOICES[voice]] for _, _, voice, _ in truth]
    path = tmp_path_factory.mktemp("talk") / "talk.mp4"
    media.slideshow_clip(path, images, seconds_each=np.diff(edges).tolist(), fps=10, width=640, height=360, audio=audio, motion=False)
    return path, truth


def _voice_of(speaker, truth) -> str:
    """The voice whose true turns a speaker entity's spans overlap most."""
    overlap: dict[str, float] = {}
    for start, end, voice, _ in truth:
        for span in speaker["spans"]:
            overlap[voice] = overlap.get(voice, 0.0) + max(0.0, min(end, span["end"]) - max(start, span["start"]))
    return max(overlap, key=overlap.get)


def _is_grey(path) -> bool:
    from PIL import Image

    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return float(np.abs(rgb[..., 0] - rgb[..., 2]).mean()) < 4


@needs_shared_models
@needs_espeak
def test_each_speaker_is_linked_to_its_own_face_with_the_top_score(talk, tmp_path):
    path, truth = talk
    result = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", models_dir=SHARED_MODELS).run(path, ["scenes", "faces:fps=2", "diarization", "fusion"])
    assert result.ok, result.errors
    fusion = json.loads((result.output_dir / "fusion.json").read_text())
    assert fusion == result.fusion.model_dump(mode="json")
    entities = {e["id"]: e for e in fusion["entities"]}
    speakers = [e for e in entities.values() if e["kind"] == "speaker"]
    faces = [e for e in entities.values() if e["kind"] == "face"]
    assert len(speakers) == 2 and {_voice_of(s, truth) for s in speakers} == set(VOICES)
    assert len(faces) == len(truth)  # one track per shown portrait (a track does not cross a cut)
    for face in faces:
        crop = result.output_dir / face["crop"]
        assert crop.read_bytes()[:2] == b"\xff\xd8" and face["confidence"] > 0.6 and face["frames"] >= 2
    assert result.result.ops["fusion"].files == ["fusion.json", "entities/"]  # published with fusion.json

    links = [r for r in fusion["relationships"] if r["type"] == "speaker_face"]
    for speaker in speakers:
        mine = sorted((r for r in links if r["source"] == speaker["id"]), key=lambda r: -r["score"])
        assert mine, speaker["id"]
        top = entities[mine[0]["target"]]
        shown = VOICES[_voice_of(speaker, truth)]
        assert _is_grey(result.output_dir / top["crop"]) == (shown == "camera"), (speaker["id"], shown, mine[:2])
        others = [r for r in mine if _is_grey(result.output_dir / entities[r["target"]]["crop"]) != (shown == "camera")]
        assert all(r["score"] < mine[0]["score"] for r in others)
        assert sum(r["score"] for r in mine if r not in others) > 0.8  # its own face is on screen nearly all the time it speaks

    in_scene = [r for r in fusion["relationships"] if r["type"] == "in_scene"]
    assert {r["source"] for r in in_scene} >= {f["id"] for f in faces} and all(r["target"].startswith("scene:") for r in in_scene)
    frame = result.fusion.to_pandas("entities")
    assert set(frame["kind"]) == {"speaker", "face"} and list(frame["id"]) == [e["id"] for e in fusion["entities"]]


# -- keywords said and shown -----------------------------------------------------------------

PHRASE = "Please open the window and turn on the light."


@pytest.fixture(scope="module")
def phrase_clip(tmp_path_factory):
    """PHRASE said once by espeak-ng while a card reads "Open the window" the whole time."""
    from video_extract.testing.speech import silence, speak

    if not __import__("shutil").which("espeak-ng"):
        pytest.skip("espeak-ng is not installed (make install puts it there)")
    voice = speak(PHRASE, speed=140, trim=True)
    audio = np.concatenate([silence(0.6), voice, silence(0.8)])
    path = tmp_path_factory.mktemp("phrase") / "phrase.mp4"
    card = media.text_image(["Open the window"], 640, 360, size=36)
    media.slideshow_clip(path, [card], seconds_each=len(audio) / 16000, fps=10, width=640, height=360, audio=audio, motion=False)
    return path, (0.6, 0.6 + len(voice) / 16000)


@needs_espeak
def test_a_phrase_said_and_shown_links_its_keyword_to_the_text(phrase_clip, tmp_path):
    path, (said_from, said_to) = phrase_clip
    result = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o").run(path, ["transcription", "ocr", "fusion"])
    assert result.ok, result.errors
    fusion = result.fusion
    texts = [e for e in fusion.entities if e.kind == "text"]
    assert [t.label.lower() for t in texts] == ["open the window"]
    links = [r for r in fusion.relationships if r.type == "keyword_text"]
    assert links and all(r.target == texts[0].id for r in links)
    keywords = {e.id: e for e in fusion.entities if e.kind == "keyword"}
    linked = [keywords[r.source] for r in links]
    assert any("window" in k.label for k in linked)
    for keyword, link in zip(linked, links):
        assert keyword.evidence == ["transcription", "ocr"] and 0 < keyword.score <= 1
        assert link.score == 1.0  # every time it is said, the card is on screen
    for keyword in linked:  # its spans are where it is said: within the sentence, shorter than it
        assert keyword.spans and all(said_from - 0.3 <= s.start < s.end <= said_to + 0.3 for s in keyword.spans)
        assert sum(s.end - s.start for s in keyword.spans) < 0.8 * (said_to - said_from)
    relationships = fusion.to_pandas("relationships")
    assert set(relationships["type"]) == {"keyword_text"} and {"source", "target", "score", "start", "end", "spans"} <= set(relationships.columns)


# -- the switches ----------------------------------------------------------------------------


@needs_shared_models
def test_the_switches_leave_out_what_they_turn_off(vision_clip, tmp_path):
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", models_dir=SHARED_MODELS)

    def fused(spec: str) -> dict:
        result = client.run(vision_clip.path, ["scenes", "faces", spec])
        assert result.ok, result.errors
        return json.loads((result.output_dir / "fusion.json").read_text())

    full = fused("fusion")
    assert [e["id"] for e in full["entities"]] == ["face:0"] and full["entities"][0]["spans"] == [{"start": 0.0, "end": 2.0}]
    assert {r["type"] for r in full["relationships"]} == {"in_scene"} and full["timeline"] and full["scenes"]
    without = fused("fusion:extract_entities=false")
    assert "entities" not in without and "relationships" not in without  # relationships link entities: none either
    assert without["timeline"] == full["timeline"] and without["scenes"] == full["scenes"]
    assert not (tmp_path / "o" / vision_clip.path.stem / "entities").exists()  # no crops left from the run before
    assert "relationships" not in fused("fusion:build_relationships=false") and fused("fusion:build_relationships=false")["entities"] == full["entities"]
    unaligned = fused("fusion:align_modalities=false")
    assert unaligned["timeline"] == [] and unaligned["scenes"] == [] and unaligned["entities"] == full["entities"]


# -- entities and relationships from records -------------------------------------------------


def _entity(entity_id: str, *spans: tuple[float, float]):
    from video_extract.results import Entity, Span

    kind = entity_id.split(":")[0]
    return Entity(id=entity_id, kind=kind, label=kind, spans=[Span(start=s, end=e) for s, e in spans], evidence=["test"], seconds=sum(e - s for s, e in spans))


def test_a_single_face_interview_links_both_speakers_to_that_face():
    from video_extract.entities.relationships import build_relationships

    host = _entity("speaker:A", (0.0, 4.0), (10.0, 14.0))
    guest = _entity("speaker:B", (4.5, 9.5), (14.5, 20.0))
    face = _entity("face:0", (0.0, 20.0))  # one camera on one face the whole time
    cut_away = _entity("face:1", (9.6, 10.8))  # a face seen for a moment between turns
    links = {(r.source, r.target): r.score for r in build_relationships([host, guest, face, cut_away], [], {}) if r.type == "speaker_face"}
    assert links == {("speaker:A", "face:0"): 1.0, ("speaker:B", "face:0"): 1.0, ("speaker:A", "face:1"): pytest.approx(0.1)}


def test_on_screen_texts_are_one_entity_across_scenes_whatever_their_case_and_spacing():
    from video_extract.entities.extract import texts
    from video_extract.results import TimedText

    def shown(text, start, end):
        return TimedText(text=text, start=start, end=end, first_frame=0, last_frame=0, frames=2, box=[0, 0, 10, 10], confidence=0.9)

    found = texts([shown("Breaking News", 0.0, 2.0), shown("Weather", 3.0, 4.0), shown("breaking  NEWS", 10.0, 12.0), shown("BreakingNews", 12.0, 13.0)])
    assert [(t.id, t.label, [(s.start, s.end) for s in t.spans], t.seconds) for t in found] == [
        ("text:0", "Breaking News", [(0.0, 2.0), (10.0, 13.0)], 5.0),
        ("text:1", "Weather", [(3.0, 4.0)], 1.0),
    ]


def test_keywords_carry_the_word_times_where_they_are_said_and_scores_where_higher_is_better():
    from video_extract.entities.keywords import extract_keywords
    from video_extract.results import Word

    sentence = "the red telescope points at the red telescope mount".split()
    words = [Word(word=f" {w}", start=n * 0.5, end=n * 0.5 + 0.4) for n, w in enumerate(sentence)]
    found = {k.label: k for k in extract_keywords(words, " ".join(sentence), ["RED TELESCOPE"])}
    telescope = found["red telescope"]
    assert telescope.said == [(0.5, 1.4), (3.0, 3.9)] and telescope.shown_in == [0]
    assert all(0 < k.score <= 1 for k in found.values())
    import yake

    document = " ".join(sentence) + "\nRED TELESCOPE."
    by_yake = [" ".join(k.lower().split()) for k, _ in sorted(yake.KeywordExtractor(lan="en", n=3, top=40).extract_keywords(document), key=lambda k: k[1])]
    ours = [k.label for k in sorted(found.values(), key=lambda k: -k.score)]
    assert ours == [k for k in dict.fromkeys(by_yake) if k in found][: len(ours)]  # YAKE's order (lower is better there), higher first here
