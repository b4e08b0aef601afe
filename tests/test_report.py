"""report: report.html, one self-contained page opened in a real browser (headless Chromium)."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from video_extract import Client
from video_extract.report import page_data, render_report
from video_extract.results import Entity, FusionResult, Relationship, SceneDigest, Span, TimelineEvent
from video_extract.testing import media
from video_extract.testing.browser import chromium, dump_dom, screenshot

from .conftest import SHARED_MODELS, needs_shared_models, run_cli

needs_chromium = pytest.mark.skipif(chromium() is None, reason="Chromium is not installed (make install puts Debian's chromium there)")

HOSTILE = '</script><script>document.title="owned"</script><img src=x onerror="alert(1)"> {{DATA}} \u2028 & <!--'


def data_block(page: str) -> dict:
    block = re.search(r'<script type="application/json" id="ve-data">(.*?)</script>', page, re.S)
    return json.loads(block.group(1))


def lanes_of(dom: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r'<div class="lane" data-lane="(\w+)" data-count="(\d+)"', dom)}


def fusion_record(entities: bool = True) -> FusionResult:
    """A small fused output written by hand: two scenes, two speakers, a cat, a face, a text."""
    timeline = [
        TimelineEvent(type="scene", start=0.0, end=4.0, scene=0),
        TimelineEvent(type="speaker", start=0.5, end=2.0, speaker="SPEAKER_00"),
        TimelineEvent(type="speech", start=0.5, end=2.0, text=" Hello there.", speaker="SPEAKER_00"),
        TimelineEvent(type="object", start=0.0, end=4.0, label="cat", frames=4, max_count=1, confidence=0.9),
        TimelineEvent(type="face", start=1.0, end=3.0, label="face", frames=2, max_count=1, confidence=0.8),
        TimelineEvent(type="speaker", start=2.5, end=5.0, speaker="SPEAKER_01"),
        TimelineEvent(type="speech", start=2.5, end=5.0, text=" " + HOSTILE, speaker="SPEAKER_01"),
        TimelineEvent(type="scene", start=4.0, end=8.0, scene=1),
        TimelineEvent(type="text", start=4.0, end=8.0, text="OPEN SALE"),
    ]
    scenes = [
        SceneDigest(scene=0, start=0, end=4, speech="Hello there.", speakers=["SPEAKER_00"], objects=["cat"], faces=1, texts=[]),
        SceneDigest(scene=1, start=4, end=8, speech="", speakers=[], objects=[], faces=0, texts=["OPEN SALE"]),
    ]
    found = [
        Entity(id="speaker:SPEAKER_00", kind="speaker", label="SPEAKER_00", spans=[Span(start=0.5, end=2.0)], evidence=["diarization"], seconds=1.5, turns=1),
        Entity(id="speaker:SPEAKER_01", kind="speaker", label="SPEAKER_01", spans=[Span(start=2.5, end=5.0)], evidence=["diarization"], seconds=2.5, turns=1),
        Entity(
            id="face:0",
            kind="face",
            label="face",
            spans=[Span(start=1.0, end=3.0)],
            evidence=["faces"],
            seconds=2.0,
            frames=2,
            confidence=0.8,
            crop="crops/face_0.jpg",
        ),
        Entity(id="text:0", kind="text", label="OPEN SALE", spans=[Span(start=4.0, end=8.0)], evidence=["ocr"], seconds=4.0, confidence=0.95),
        Entity(id="keyword:0", kind="keyword", label="open sale", spans=[Span(start=2.6, end=3.1)], evidence=["transcription", "ocr"], seconds=0.5, score=0.7),
    ]
    links = [
        Relationship(type="speaker_face", source="speaker:SPEAKER_00", target="face:0", score=0.83, spans=[Span(start=1.0, end=2.0)]),
        Relationship(type="keyword_text", source="keyword:0", target="text:0", score=0.61, spans=[Span(start=2.6, end=3.1), Span(start=4.0, end=8.0)]),
        Relationship(type="in_scene", source="text:0", target="scene:1", score=1.0, spans=[Span(start=4.0, end=8.0)]),
    ]
    return FusionResult(
        duration=8.0,
        sources=["Diarization", "Faces", "OCR", "Objects", "Scenes", "Transcription"],
        timeline=timeline,
        scenes=scenes,
        entities=found if entities else None,
        relationships=links if entities else None,
    )


def test_untrusted_text_cannot_leave_the_data_block():
    data = page_data(fusion_record(), title=HOSTILE)
    page = render_report(data, media="clip.mp4")
    assert page.count("</script>") == 3  # the media block, the data block, the page's script: nothing from the media
    assert "<img" not in page and "<script>document" not in page  # the title is escaped text
    assert f"<title>{html.escape(HOSTILE)}</title>" in page
    assert data_block(page) == json.loads(json.dumps(data))  # the JSON reads back whole, hostile text included
    assert HOSTILE in data_block(page)["transcript"][1][3]
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched from a network
    assert "@import" not in page and "url(" not in page


def test_page_data_carries_entities_and_relationships_or_says_they_are_absent():
    data = page_data(fusion_record(), title="clip.mp4")
    assert [e["id"] for e in data["entities"]] == ["speaker:SPEAKER_00", "speaker:SPEAKER_01", "face:0", "text:0", "keyword:0"]
    assert [r["score"] for r in data["relationships"]] == [1.0, 0.83, 0.61]  # strongest first
    assert {lane["id"]: len(lane["events"]) for lane in data["lanes"]} == {"scenes": 2, "speakers": 2, "transcript": 2, "objects": 1, "faces": 1, "text": 1}
    bare = page_data(fusion_record(entities=False), title="clip.mp4")
    assert bare["entities"] is None and bare["relationships"] is None


@needs_chromium
def test_entities_and_relationships_render_in_the_browser(tmp_path):
    from PIL import Image

    page = tmp_path / "report.html"
    page.write_text(render_report(page_data(fusion_record(), title="clip.mp4")))
    (tmp_path / "crops").mkdir()
    Image.new("RGB", (24, 32), (200, 150, 120)).save(tmp_path / "crops" / "face_0.jpg")
    dom, _ = dump_dom(page)
    assert 'data-rendered="6"' in dom  # the script ran to its end: six lanes drawn
    assert lanes_of(dom) == {"scenes": 2, "speakers": 2, "transcript": 2, "objects": 1, "faces": 1, "text": 1}
    entities = re.search(r'<table id="entity-table"[^>]*>(.*?)</table>', dom, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", entities, re.S)[1:]
    assert len(rows) == 5
    assert '<img class="crop" src="crops/face_0.jpg"' in rows[2]  # the track's crop, linked beside the page
    assert "OPEN SALE" in rows[3] and "ocr" in rows[3] and "0.95" in rows[3]
    assert "open sale" in rows[4] and "transcription, ocr" in rows[4] and "0.70" in rows[4]
    relationships = re.search(r'<table id="relationship-table"[^>]*>(.*?)</table>', dom, re.S).group(1)
    rows = [re.sub(r"<[^>]+>", "|", r) for r in re.findall(r"<tr>(.*?)</tr>", relationships, re.S)[1:]]
    assert len(rows) == 3
    assert "in_scene" in rows[0] and "OPEN SALE (text)" in rows[0] and "Scene 2" in rows[0]
    assert "speaker_face" in rows[1] and "SPEAKER_00 (speaker)" in rows[1] and "face (face)" in rows[1] and "0.83" in rows[1]
    assert "keyword_text" in rows[2] and "open sale (keyword)" in rows[2] and "0.61" in rows[2]
    assert "owned" not in re.search(r"<title>(.*?)</title>", dom, re.S).group(1)  # the hostile transcript stayed text
    assert '<img src="x"' not in dom and "&lt;/script&gt;&lt;script&gt;" in dom
    (tmp_path / "crops" / "face_0.jpg").unlink()  # a crop that is not there is left out, not shown broken
    assert '<img class="crop"' not in dump_dom(page)[0]
    # Without entities (fusion:extract_entities=false) the page says so instead of an empty table.
    page.write_text(render_report(page_data(fusion_record(entities=False), title="clip.mp4")))
    dom, _ = dump_dom(page)
    assert "fusion.json has no entities" in dom and '<table id="entity-table"' not in dom


@pytest.fixture(scope="module")
def report_clip(tmp_path_factory):
    """Four shots (astronaut, cat, coffee, a text card) while two espeak-ng voices take turns."""
    from skimage import data

    from video_extract.testing.speech import DIALOGUE, conversation

    if not __import__("shutil").which("espeak-ng"):
        pytest.skip("espeak-ng is not installed (make install puts it there)")
    audio, truth = conversation(DIALOGUE[:4], pauses=[0.6, 0.5, 0.7])
    images = [data.astronaut(), data.chelsea(), data.coffee(), media.text_image(["Quarterly review", "Monday 9:00"], 640, 360, size=40)]
    path = tmp_path_factory.mktemp("report") / "meeting clip.mp4"
    media.slideshow_clip(path, images, seconds_each=len(audio) / 16000 / 4, fps=10, width=640, height=360, audio=audio)
    return path, truth


@needs_shared_models
@needs_chromium
def test_report_of_a_clip_opens_in_chromium(report_clip, tmp_path):
    path, truth = report_clip
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o", models_dir=SHARED_MODELS)
    result = client.run(path, ["scenes", "transcription", "diarization", "objects", "faces", "ocr", "report"])
    assert result.ok, result.errors
    assert result.result.ops["fusion"].status == "ok"  # the report's data is published beside it
    page = result.output_dir / "report.html"
    assert result.report.path == page and result.report.thumbnails == 4 and result.report.segments >= 3
    text = page.read_text()
    # The player links the source (not embedded): its src leads from the page's folder to the clip.
    src = json.loads(re.search(r'id="ve-media">(.*?)</script>', text).group(1))["src"]
    assert (page.parent / unquote(src)).resolve() == path.resolve()
    assert "base64" not in text.replace("data:image/jpeg;base64,", "")  # only the scene pictures are inline

    dom, _ = dump_dom(page, "#t=2.5")
    lanes = lanes_of(dom)
    assert lanes["scenes"] == 4 and lanes["speakers"] >= 2 and lanes["transcript"] >= 3 and lanes["objects"] >= 3 and lanes["faces"] >= 1 and lanes["text"] >= 1
    assert '<video id="player"' in dom
    assert 'data-time="2.500"' in dom  # the link to a moment seeks the player (the code every click runs)
    segments = re.findall(r'<div class="seg[^"]*" role="listitem" data-start="[\d.]+" style="border-left-color: (rgb\([^)]*\))', dom)
    assert len(segments) == lanes["transcript"] and len(set(segments)) == 2  # two speakers, two colours
    transcript = html.unescape(re.sub(r"<[^>]+>", " ", re.search(r'<div id="transcript".*?</section>', dom, re.S).group(0))).lower()
    assert "window" in transcript and "green" in transcript and "meeting" in transcript

    png = screenshot(page, tmp_path / "report.png")
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("L"), dtype=np.float32)
    assert pixels.shape == (900, 1280) and pixels.std() > 20  # not a blank page
    timeline = pixels[500:720, 170:1230]  # the lanes: drawn, not empty
    assert (timeline < 200).mean() > 0.1


@needs_shared_models
def test_report_rebuilds_from_the_output_folder(report_clip, tmp_path):
    path, _ = report_clip
    out = tmp_path / "o"
    result = Client(cache_dir=tmp_path / "c", output_dir=out, models_dir=SHARED_MODELS).run(path, ["scenes", "objects", "report"])
    assert result.ok, result.errors
    folder = result.output_dir
    first = (folder / "report.html").read_text()
    (folder / "report.html").unlink()
    done = run_cli("report", str(folder))
    assert done.returncode == 0, done.stderr
    assert (folder / "report.html").read_text() == first  # the same page as the run wrote
    (folder / "fusion.json").unlink()
    done = run_cli("report", str(folder))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {folder}: no fusion.json here to build a report from; run fusion first (for example --ops scenes,transcription,objects,fusion)"
    ]


def test_report_alone_has_nothing_to_show(tmp_path):
    still = media.still_image(tmp_path / "still.png")
    result = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o").run(still, ["report"])
    assert "nothing to gather" in result.errors["report"]
    assert "fusion" not in result.result.ops


@needs_chromium
def test_an_hour_of_events_renders_fast(tmp_path):
    """A one-hour input's worth of events (thousands per lane, 12,000 in all; 1,000 entities,
    5,000 relationships) is drawn in well under a second."""
    rng = np.random.default_rng(0)
    timeline = [TimelineEvent(type="scene", start=s, end=s + 6.0, scene=n) for n, s in enumerate(np.arange(0, 3600, 6.0))]
    for n, s in enumerate(np.arange(0, 3600, 1.8)):
        speaker = f"SPEAKER_0{n % 3}"
        timeline.append(TimelineEvent(type="speaker", start=float(s), end=float(s) + 1.6, speaker=speaker))
        timeline.append(TimelineEvent(type="speech", start=float(s), end=float(s) + 1.6, text=f"segment {n} " + "word " * 12, speaker=speaker))
    labels = ["person", "car", "dog", "chair", "cup"]
    for s in rng.uniform(0, 3590, 4000):
        timeline.append(TimelineEvent(type="object", start=float(s), end=float(s) + 2.0, label=str(rng.choice(labels)), frames=2, max_count=1, confidence=0.5))
    timeline += [TimelineEvent(type="face", start=float(s), end=float(s) + 3.0, label="face", frames=3, max_count=1) for s in rng.uniform(0, 3590, 1500)]
    timeline += [TimelineEvent(type="text", start=float(s), end=float(s) + 4.0, text=f"caption {s:.0f}") for s in rng.uniform(0, 3590, 1000)]
    timeline.sort(key=lambda e: e.start)
    tracks = [
        Entity(id=f"object:{n}", kind="object", label=labels[n % 5], spans=[Span(start=float(s), end=float(s) + 2)], evidence=["objects"], seconds=2.0)
        for n, s in enumerate(rng.uniform(0, 3590, 1000))
    ]
    links = [
        Relationship(type="co_occurs", source=f"object:{n % 1000}", target=f"object:{(n * 7) % 1000}", score=float(s), spans=[Span(start=1.0, end=2.0)])
        for n, s in enumerate(rng.uniform(0, 1, 5000))
    ]
    fusion = FusionResult(duration=3600.0, sources=["Scenes"], timeline=timeline, scenes=[], entities=tracks, relationships=links)
    page = tmp_path / "report.html"
    page.write_text(render_report(page_data(fusion, title="hour.mp4")))
    dom, _ = dump_dom(page)
    lanes = lanes_of(dom)
    assert lanes == {"scenes": 600, "speakers": 2000, "transcript": 2000, "objects": 4000, "faces": 1500, "text": 1000}
    assert dom.count('role="listitem"') == 2000  # every line of the transcript
    assert 'data-rows="1000"' in dom and 'data-rows="5000"' in dom and "Show 200 more (200 of 5000 shown)" in dom  # long tables grow on demand
    assert float(re.search(r'data-render-ms="([\d.]+)"', dom).group(1)) < 1000  # about 200-400 ms on 2 shared cores


@needs_chromium
@pytest.mark.parametrize(("kind", "ops", "element"), [("still", ["scenes", "report"], "img"), ("tone", ["vad", "report"], "audio")])
def test_the_player_fits_the_input(kind, ops, element, tmp_path):
    path = media.still_image(tmp_path / "still.png", 320, 240) if kind == "still" else media.tone_file(tmp_path / "tone.mp3", seconds=2).path
    result = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o").run(path, ops)
    assert result.ok, result.errors
    dom, _ = dump_dom(result.report.path)
    src = re.search(rf'<{element} id="\w+"[^>]* src="([^"]+)"', dom).group(1)
    assert (result.output_dir / unquote(src)).resolve() == path.resolve()
    assert "<video" not in dom


def test_the_report_reads_the_fusion_that_was_asked_for(scene_clip, tmp_path):
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o")
    plan = client.plan(scene_clip.path, ["report", "scenes", "fusion:include=scenes"])  # report named first
    report = plan.stages[plan.outputs["report"]]
    assert ("Fusion", plan.outputs["fusion"]) in report.inputs
    assert str(plan.stages[plan.outputs["fusion"]].operation) == "fusion:include=scenes"
    plan = client.plan(scene_clip.path, ["scenes", "report"])  # fusion not named: planned, and published with it
    assert str(plan.stages[plan.outputs["fusion"]].operation) == "fusion"
    assert ("Fusion", plan.outputs["fusion"]) in plan.stages[plan.outputs["report"]].inputs


CLICKS = """<script>
const player = document.getElementById("player");
function click(target, x, y) {
  target.dispatchEvent(new MouseEvent("mousedown", { clientX: x, clientY: y, bubbles: true }));
  window.dispatchEvent(new MouseEvent("mouseup", { clientX: x, clientY: y, bubbles: true }));
}
function lane(id, time, row) {
  const canvas = document.querySelector('[data-lane="' + id + '"] canvas');
  const box = canvas.getBoundingClientRect();
  click(canvas, box.left + (box.width * time) / 8, box.top + (row === undefined ? box.height / 2 : row));
  return player.currentTime.toFixed(3);
}
const seen = [lane("speakers", 3.0), lane("axis", 6.0), lane("text", 7.0)];
document.querySelectorAll("#transcript .seg")[1].click();
seen.push(player.currentTime.toFixed(3));
document.body.setAttribute("data-seeks", seen.join(" "));
</script>
</body>"""


@needs_chromium
def test_clicks_seek_the_player(tmp_path):
    """A click on an event seeks the player to its start, a click between events to the time
    under the pointer, a click on a transcript line to that line (the page's own handlers)."""
    page = tmp_path / "report.html"
    page.write_text(render_report(page_data(fusion_record(), title="clip.mp4"), media="clip.mp4").replace("</body>", CLICKS))
    dom, _ = dump_dom(page)
    seeks = [float(t) for t in re.search(r'data-seeks="([^"]*)"', dom).group(1).split()]
    # SPEAKER_01's turn, 6 s on the axis (to the pixel: a MouseEvent's position is whole pixels), the text's start, line 2
    assert seeks == [2.5, pytest.approx(6.0, abs=0.03), 4.0, 2.501]


def test_a_cached_page_links_the_file_of_this_run(tmp_path):
    """The cache knows a page by the media's content; where the media is, only this run knows."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = media.still_image(tmp_path / "a" / "one.png", 320, 240)
    second = Path(shutil.copyfile(first, tmp_path / "b" / "two.png"))
    client = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o")
    assert client.run(first, ["scenes", "report"]).ok
    result = client.run(second, ["scenes", "report"])
    assert result.result.ops["report"].cached
    page = result.report.path.read_text()
    src = json.loads(re.search(r'id="ve-media">(.*?)</script>', page).group(1))["src"]
    assert (result.output_dir / unquote(src)).resolve() == second.resolve()
    assert "<title>two.png</title>" in page and '"title":"two.png"' in page  # named for this run's file too


def test_a_rebuilt_page_links_a_relative_input_from_anywhere(tmp_path):
    """An input named relative to where its run started is still found when the page is
    rebuilt from another directory."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    media.still_image(work / "photo.png", 320, 240)
    done = run_cli("debug", "photo.png", "--ops", "scenes,report", "-o", "out", "--no-cache", "-q", cwd=work)
    assert done.returncode == 0, done.stderr
    page = work / "out" / "photo" / "report.html"
    first = page.read_text()
    done = run_cli("report", str(page.parent), cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert page.read_text() == first
    src = json.loads(re.search(r'id="ve-media">(.*?)</script>', first).group(1))["src"]
    assert src == "../../photo.png"
