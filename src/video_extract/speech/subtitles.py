"""Subtitles (SubRip, WebVTT) and plain transcripts (text, TSV) from transcript segments.

Cues are laid out the way Whisper's own writers do with ``max_line_width`` and
``max_line_count`` (words fill a line until the next would overflow it; a cue holds at most
``max_line_count`` lines), with the breaks subtitle guidelines add: a new cue at a change of
speaker, at a pause, after a sentence end, and before a cue would stay on screen longer than
``MAX_CUE_SECONDS``. Words keep Whisper's spelling (``speech.words``). Text and TSV follow
Whisper's ``txt`` and ``tsv`` writers: one segment per line, TSV times in milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from video_extract.results import TranscriptSegment
from video_extract.speech.words import spelled_words

#: Longest time a cue stays on screen (subtitle guidelines: 6-7 s for a full two-line cue).
MAX_CUE_SECONDS = 7.0
#: Silence between two words that starts a new cue.
PAUSE_SECONDS = 1.0
SENTENCE_ENDS = (".", "?", "!", "…", "。", "？", "！")


@dataclass
class Cue:
    start: float
    end: float
    speaker: str | None
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Token:
    piece: str  # the word with the whitespace before it, as Whisper spelled it
    start: float
    end: float
    speaker: str | None


def _tokens(segments: Iterable[TranscriptSegment]) -> Iterator[_Token]:
    """Unbreakable units: a word glued to the one before it ("-starter" after "self") joins it."""
    for seg in segments:
        if seg.words:
            unit: _Token | None = None
            for word, piece in zip(seg.words, spelled_words(seg)):
                token = _Token(piece, word.start, word.end, word.speaker or seg.speaker)
                if unit is not None and piece[:1].isspace():
                    yield unit
                    unit = None
                unit = token if unit is None else _Token(unit.piece + piece, unit.start, token.end, unit.speaker)
            if unit is not None:
                yield unit
            continue
        # No word times: share the segment's time among its words by length.
        words = seg.text.split()
        total = sum(len(w) + 1 for w in words) or 1
        at = seg.start
        for word in words:
            end = at + (seg.end - seg.start) * (len(word) + 1) / total
            yield _Token(f" {word}", at, end, seg.speaker)
            at = end


def speaker_label(speaker: str | None) -> str:
    return f"[{speaker}] " if speaker else ""


def cues(segments: Iterable[TranscriptSegment], max_line_width: int = 42, max_line_count: int = 2) -> list[Cue]:
    """Subtitle cues whose lines (the speaker label included) fit ``max_line_width`` characters.

    A single word longer than a line gets a line of its own rather than being cut.
    """
    out: list[Cue] = []
    cue: Cue | None = None
    for token in _tokens(segments):
        word = token.piece.strip()
        if not word:
            continue
        if cue is not None:
            last_line = cue.lines[-1]
            budget = max_line_width - (len(speaker_label(cue.speaker)) if len(cue.lines) == 1 else 0)
            if (
                token.speaker != cue.speaker
                or token.start - cue.end >= PAUSE_SECONDS
                or token.end - cue.start > MAX_CUE_SECONDS
                or last_line.endswith(SENTENCE_ENDS)
            ):
                cue = None
            elif len(last_line) + len(token.piece) <= budget:
                cue.lines[-1] = last_line + token.piece
            elif len(cue.lines) < max_line_count:
                cue.lines.append(word)
            else:
                cue = None
        if cue is None:
            cue = Cue(token.start, token.end, token.speaker, [word])
            out.append(cue)
        cue.end = max(cue.end, token.end)
    return out


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, int(round(seconds * 1000)))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def to_srt(cue_list: Sequence[Cue]) -> str:
    blocks = []
    for n, cue in enumerate(cue_list, 1):
        text = speaker_label(cue.speaker) + "\n".join(cue.lines)
        blocks.append(f"{n}\n{_clock(cue.start, ',')} --> {_clock(cue.end, ',')}\n{text}\n")
    return "\n".join(blocks)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(cue_list: Sequence[Cue]) -> str:
    """WebVTT; the speaker is a voice span (``<v SPEAKER_00>``), which players may show as a label."""
    lines = ["WEBVTT", ""]
    for cue in cue_list:
        text = "\n".join(_vtt_escape(line) for line in cue.lines)
        if cue.speaker:
            text = f"<v {_vtt_escape(cue.speaker)}>{text}"
        lines += [f"{_clock(cue.start, '.')} --> {_clock(cue.end, '.')}", text, ""]
    return "\n".join(lines)


def to_txt(segments: Iterable[TranscriptSegment]) -> str:
    return "".join(f"{speaker_label(seg.speaker)}{seg.text.strip()}\n" for seg in segments)


def to_tsv(segments: Sequence[TranscriptSegment]) -> str:
    """Start and end in integer milliseconds, as Whisper's tsv writer; a speaker column when known."""
    with_speaker = any(seg.speaker for seg in segments)
    rows = ["start\tend\tspeaker\ttext" if with_speaker else "start\tend\ttext"]
    for seg in segments:
        text = seg.text.strip().replace("\t", " ").replace("\n", " ")
        cells = [str(round(1000 * seg.start)), str(round(1000 * seg.end))] + ([seg.speaker or ""] if with_speaker else []) + [text]
        rows.append("\t".join(cells))
    return "\n".join(rows) + "\n"
