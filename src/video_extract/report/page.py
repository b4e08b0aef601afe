"""What the page shows, as compact JSON, and the page itself.

Events go in as ``[start, end, label]`` rows (speech adds its speaker) (a one-hour input has thousands): the page draws
them on canvases, so its size and drawing time grow with the events, not with DOM nodes.
"""

from __future__ import annotations

import html
import json
import os
import re
from functools import cache
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from video_extract.results import FusionResult, MediaInfo, TimelineEvent

#: Lanes in page order: id, title, the timeline event types drawn in it.
LANES = (
    ("scenes", "Scenes", ("scene",)),
    ("speakers", "Speakers", ("speaker",)),
    ("transcript", "Transcript", ("speech",)),
    ("voice", "Voice", ("voice",)),
    ("objects", "Objects", ("object",)),
    ("faces", "Faces", ("face",)),
    ("text", "On-screen text", ("text",)),
)

_MEDIA_BLOCK = re.compile(r'(<script type="application/json" id="ve-media">)(.*?)(</script>)', re.S)
_TITLE = re.compile(r"(<title>)(.*?)(</title>)", re.S)
_SLOT = re.compile(r"\{\{(\w+)\}\}")


def _label(event: TimelineEvent) -> str:
    if event.type == "scene":
        return f"Scene {event.scene + 1}" if event.scene is not None else "Scene"
    if event.type == "face":
        return "face" if (event.max_count or 1) <= 1 else f"{event.max_count} faces"
    if event.type == "voice":
        return "speech"
    if event.type == "speech":
        return (event.text or "").strip()
    return event.label or event.speaker or event.text or event.type


def _time(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def media_kind(info: MediaInfo) -> str:
    """What the player is: a picture for a still image, a video player, or an audio one."""
    return "image" if info.is_image else "video" if info.video is not None else "audio"


def page_data(fusion: FusionResult, *, title: str, thumbnails: dict[int, str] | None = None, kind: str = "video") -> dict:
    """The page's JSON: lanes of ``[start, end, label]``, the transcript, entities, relationships.

    ``thumbnails``: scene index -> JPEG data URI; ``kind``: what the player shows (video, audio, image)."""
    events = fusion.timeline
    end = max((e.end or e.start for e in events), default=0.0)
    lanes = []
    for lane, name, types in LANES:
        rows = [
            [_time(e.start), _time(e.end if e.end is not None else e.start), _label(e)] + ([e.speaker] if e.speaker and e.type == "speech" else [])
            for e in events
            if e.type in types
        ]
        if rows or lane in ("scenes", "transcript"):
            lanes.append({"id": lane, "name": name, "events": rows})
    speakers: list[str] = []
    for e in events:
        if e.speaker and e.speaker not in speakers and e.type in ("speaker", "speech"):
            speakers.append(e.speaker)
    transcript = [[_time(e.start), _time(e.end), e.speaker or "", e.text or ""] for e in events if e.type == "speech"]
    entities = [
        {
            "id": x.id,
            "kind": x.kind,
            "label": x.label,
            "seconds": round(x.seconds, 3),
            "spans": [[_time(s.start), _time(s.end)] for s in x.spans],
            "evidence": x.evidence,
            **({"turns": x.turns} if x.turns is not None else {}),
            **({"score": round(x.score, 4)} if x.score is not None else {}),
            **({"confidence": round(x.confidence, 4)} if x.confidence is not None else {}),
            **({"crop": x.crop} if x.crop else {}),  # a track's picture, beside the page (linked)
        }
        for x in fusion.entities or []
    ]
    relationships = [
        {"type": r.type, "source": r.source, "target": r.target, "score": round(r.score, 4), "spans": [[_time(s.start), _time(s.end)] for s in r.spans]}
        for r in sorted(fusion.relationships or [], key=lambda r: -r.score)
    ]
    return {
        "title": title,
        "duration": _time(fusion.duration or end),
        "kind": kind,
        "lanes": lanes,
        "speakers": speakers,
        "transcript": transcript,
        "entities": entities if fusion.entities is not None else None,
        "relationships": relationships if fusion.relationships is not None else None,
        "thumbnails": {str(k): v for k, v in sorted((thumbnails or {}).items())},
    }


def _script_json(value: object) -> str:
    """JSON that cannot end its ``<script>`` block or open a comment, whatever the text in it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


@cache
def _asset(name: str) -> str:
    return resources.files("video_extract.report").joinpath("assets", name).read_text(encoding="utf-8")


def render_report(data: dict, media: str | None = None) -> str:
    """The page: the template with its style, script and data in place (one pass: text in the
    data is never read as a slot)."""
    title = data.get("title") or "video-extract report"
    values = {
        "TITLE": html.escape(title),
        "STYLE": _asset("page.css"),
        "SCRIPT": _asset("page.js"),
        "MEDIA": _script_json({"src": media, "title": title}),
        "DATA": _script_json(data),
    }
    return _SLOT.sub(lambda m: values[m.group(1)], _asset("page.html"))


def link_media(page: str, media: str | None, title: str) -> str:
    """The same page with its player pointing at ``media`` and named ``title`` (set when the page
    is published: the page in the cache stands for any file with the same content, wherever it is)."""
    page = _TITLE.sub(lambda m: m.group(1) + html.escape(title) + m.group(3), page, count=1)
    return _MEDIA_BLOCK.sub(lambda m: m.group(1) + _script_json({"src": media, "title": title}) + m.group(3), page, count=1)


def media_link(source: str | Path | None, page_dir: Path) -> str | None:
    """How the page's player names the source: an http(s) URL as it is, a local file by its path
    relative to the page (the folder and the media can move together), or None (bytes, s3://)."""
    if source is None:
        return None
    text = str(source)
    if re.match(r"^https?://", text, re.I):
        return text
    if "://" in text or text.startswith("<"):
        return None
    path = Path(text).expanduser().absolute()
    try:
        relative = os.path.relpath(path, page_dir.absolute())
    except ValueError:  # another drive (Windows)
        return path.as_uri()
    return quote(Path(relative).as_posix())
