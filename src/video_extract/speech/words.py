"""Words as Whisper spelled them inside their segment.

Whisper's words are its segment text cut into pieces, each with the space before it
(" a", " self", "-starter", "."?). Records keep words stripped, which is what people search
and count; the spacing lives in the segment text. Joining stripped words with spaces turns
"self-starter" into "self -starter", so whatever re-assembles text from words (a segment split
by speaker, a subtitle line, a scene digest) takes each word's spelling from here.
"""

from __future__ import annotations

from collections.abc import Sequence

from video_extract.results import TranscriptSegment


def spelled_words(segment: TranscriptSegment, lead: str = "") -> list[str]:
    """Each word of ``segment`` with the whitespace that precedes it in ``segment.text``.

    The first word has ``lead`` instead (a space, to run segments on into one text). A word the text does not spell where expected (a record edited by
    hand) is taken as separated by one space, so the result is always usable.
    """
    text, pieces, pos = segment.text, [], 0
    for word in segment.words:
        at = text.find(word.word, pos)
        if at < 0 or text[pos:at].strip():
            pieces.append(f" {word.word}")
            continue
        pieces.append(text[pos:at] + word.word)
        pos = at + len(word.word)
    if pieces:
        pieces[0] = lead + pieces[0].lstrip()
    return pieces


def join_spelled(pieces: Sequence[str]) -> str:
    """Text of consecutive spelled words (a slice of ``spelled_words``), trimmed."""
    return "".join(pieces).strip()
