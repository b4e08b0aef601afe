"""Transcripts and subtitles as Whisper's own writers make them, on real meeting speech.

The real recordings are AMI meeting excerpts from ``../shared/media/ami-debug`` (far-field,
overlapping, real voices); the tests that need them skip with a reason when they are absent.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from pathlib import Path

import pytest

from video_extract import Client
from video_extract.results import SpeakerTurn, TranscriptSegment, Word
from video_extract.spec import Audio, OutputSpec, Transcription
from video_extract.speech.attribution import attribute_speakers
from video_extract.speech.subtitles import cues, to_srt, to_tsv, to_vtt
from video_extract.speech.words import spelled_words

AMI = Path(__file__).resolve().parents[1].parent / "shared" / "media" / "ami-debug"
needs_ami = pytest.mark.skipif(not (AMI / "dev01.wav").exists(), reason=f"real meeting speech ({AMI}) is not on this machine")


def _segment(text: str, words: list[str], start: float = 0.0, step: float = 0.4) -> TranscriptSegment:
    timed = [Word(word=w, start=round(start + i * step, 3), end=round(start + i * step + step * 0.8, 3)) for i, w in enumerate(words)]
    return TranscriptSegment(start=start, end=timed[-1].end, text=text, words=timed)


def test_a_segment_split_by_speaker_keeps_whispers_spelling():
    seg = _segment("She's a self-starter, right? Yes.", ["She's", "a", "self", "-starter,", "right?", "Yes."])
    turns = [SpeakerTurn(start=0.0, end=1.9, speaker="SPEAKER_00"), SpeakerTurn(start=1.9, end=3.0, speaker="SPEAKER_01")]
    first, second = attribute_speakers([seg], turns)
    assert first.text == "She's a self-starter, right?" and first.speaker == "SPEAKER_00"
    assert second.text == "Yes." and second.speaker == "SPEAKER_01"


def test_a_scene_digest_reads_the_words_as_whisper_wrote_them():
    from video_extract.plugins.fusion import FusionPlugin
    from video_extract.results import Scene

    first = _segment("A self-starter, yes.", ["A", "self", "-starter,", "yes."])
    second = _segment("Well-known.", ["Well", "-known."], start=2.0)
    words = [(w, piece) for seg in (first, second) for w, piece in zip(seg.words, spelled_words(seg, lead=" "))]
    digest = FusionPlugin._digest(0, Scene(start=0.0, end=5.0, start_frame=0, end_frame=125), [], words)
    assert digest.speech == "A self-starter, yes. Well-known."


def test_subtitle_lines_never_split_a_hyphenated_word():
    seg = _segment("He is a self-starter, really.", ["He", "is", "a", "self", "-starter,", "really."])
    lines = [line for cue in cues([seg], max_line_width=12) for line in cue.lines]
    assert "self-starter," in lines and all(len(line) <= 13 for line in lines), lines


def test_cues_break_at_sentence_ends_speakers_and_pauses_and_stay_short():
    words = "This is one. And here is a second sentence that runs on and on for quite a while without stopping at all".split()
    seg = _segment(" ".join(words), words, step=0.35)
    late = _segment("Late reply.", ["Late", "reply."], start=seg.end + 2.0)
    other = late.model_copy(update={"speaker": "SPEAKER_01", "start": late.end + 0.1, "end": late.end + 1.0, "words": []})
    found = cues([seg, late, other])
    assert found[0].lines == ["This is one."]
    assert all(cue.end - cue.start <= 7.0 for cue in found)
    assert all(len(line) <= 42 for cue in found for line in cue.lines) and all(len(cue.lines) <= 2 for cue in found)
    assert [" ".join(c.lines) for c in found[-2:]] == ["Late reply.", "Late reply."]  # the pause and the speaker change
    assert found[-1].speaker == "SPEAKER_01"
    srt = to_srt(found)
    assert srt.startswith("1\n00:00:00,000 --> 00:00:00,980\nThis is one.\n\n2\n") and "[SPEAKER_01] Late reply." in srt
    vtt = to_vtt(found)
    assert vtt.startswith("WEBVTT\n\n") and "<v SPEAKER_01>Late reply." in vtt


def test_tsv_has_whispers_columns_in_milliseconds():
    seg = _segment("Tab\there.", ["Tab", "here."], start=1.25)
    assert to_tsv([seg]).splitlines() == ["start\tend\ttext", "1250\t1970\tTab here."]


def _words(result) -> list[str]:
    return [w.word for s in result.transcription.segments for w in s.words]


@pytest.fixture(scope="module")
def meeting(tmp_path_factory):
    """A real meeting excerpt transcribed alone and with speakers (one shared cache)."""
    root = tmp_path_factory.mktemp("meeting")
    client = Client(cache_dir=root / "cache", output_dir=root / "out")
    plain = client.run(AMI / "dev01.wav", ["transcription"])
    client = Client(cache_dir=root / "cache", output_dir=root / "out-speakers")
    with_speakers = client.run(AMI / "dev01.wav", ["transcription", "diarization"])
    assert plain.ok and with_speakers.ok, (plain.errors, with_speakers.errors)
    return plain, with_speakers


@needs_ami
def test_speakers_do_not_change_a_single_word_or_mark(meeting):
    plain, with_speakers = meeting
    assert len(_words(plain)) > 20
    assert _words(with_speakers) == _words(plain)
    joined = " ".join(s.text for s in with_speakers.transcription.segments)
    assert joined == " ".join(s.text for s in plain.transcription.segments)
    assert {s.speaker for s in with_speakers.transcription.segments} >= {"SPEAKER_00"}


@needs_ami
def test_every_subtitle_line_fits_the_width_on_real_speech(meeting, tmp_path):
    _, with_speakers = meeting
    srt = (with_speakers.output_dir / "transcription.srt").read_text()
    text_lines = [line for line in srt.splitlines() if line and not line.isdigit() and "-->" not in line]
    assert text_lines and all(len(line) <= 42 for line in text_lines), [line for line in text_lines if len(line) > 42]
    blocks = [b.splitlines() for b in srt.strip().split("\n\n")]
    assert all(len(b) - 2 <= 2 for b in blocks)
    for block in blocks:
        start, end = (sum(float(x) * f for x, f in zip(re.split("[:,]", t.strip())[:3], (3600, 60, 1))) for t in block[1].split("-->"))
        assert end - start <= 7.5
    narrow = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o").run(AMI / "dev01.wav", ["transcription:max_line_width=30,formats=srt"])
    lines = [line for line in (narrow.output_dir / "transcription.srt").read_text().splitlines() if line and not line.isdigit() and "-->" not in line]
    assert lines and max(len(line) for line in lines) <= 30
    assert not (narrow.output_dir / "transcription.vtt").exists() and not (narrow.output_dir / "transcription.txt").exists()


@needs_ami
def test_audio_pinned_at_8_khz_gives_the_words_of_16_khz(meeting, tmp_path):
    plain, _ = meeting
    spec = OutputSpec(operation=Transcription(), sources=[OutputSpec(operation=Audio(sample_rate=8000))])
    narrow = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o").run(AMI / "dev01.wav", [spec])
    assert narrow.ok, narrow.errors

    # The band above 4 kHz is gone, so a word or a comma may change; read as if it were 16 kHz,
    # the 8 kHz file would play twice as fast and share almost none of the words.
    def norm(result):
        return [w.lower().strip(".,?!") for w in _words(result)]

    assert SequenceMatcher(None, norm(narrow), norm(plain)).ratio() >= 0.9, (narrow.transcription.text, plain.transcription.text)
