"""SubRip (.srt) and WebVTT (.vtt) from transcript segments."""

from __future__ import annotations

from collections.abc import Iterable

from video_extract.results import TranscriptSegment


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, int(round(seconds * 1000)))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def to_srt(segments: Iterable[TranscriptSegment]) -> str:
    blocks = []
    for n, seg in enumerate(segments, 1):
        text = seg.text.strip()
        if seg.speaker:
            text = f"[{seg.speaker}] {text}"
        blocks.append(f"{n}\n{_clock(seg.start, ',')} --> {_clock(seg.end, ',')}\n{text}\n")
    return "\n".join(blocks)


def to_vtt(segments: Iterable[TranscriptSegment]) -> str:
    lines = ["WEBVTT", ""]
    for seg in segments:
        text = seg.text.strip().replace("-->", "->")
        if seg.speaker:
            text = f"<v {seg.speaker}>{text}"
        lines += [f"{_clock(seg.start, '.')} --> {_clock(seg.end, '.')}", text, ""]
    return "\n".join(lines)
