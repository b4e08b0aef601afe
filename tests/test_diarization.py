"""Diarization and speaker-attributed transcripts on two espeak-ng voices taking turns."""

from __future__ import annotations

import json

import pytest

from video_extract import Client

from .conftest import needs_espeak

pytestmark = needs_espeak


def _boundaries(turns):
    return [t["end"] for t in turns[:-1]] + [t["start"] for t in turns[1:]]


def _check_turns(turns, truth):
    speakers_in_order = [t["speaker"] for t in turns]
    assert len(turns) == len(truth), turns
    assert speakers_in_order[::2] == [speakers_in_order[0]] * len(speakers_in_order[::2])
    assert speakers_in_order[1::2] == [speakers_in_order[1]] * len(speakers_in_order[1::2])
    assert speakers_in_order[0] != speakers_in_order[1]
    for found, (start, end, _, _) in zip(turns, truth):
        assert abs(found["start"] - start) <= 0.5 and abs(found["end"] - end) <= 0.5, (found, start, end)


@pytest.fixture(scope="module")
def diarized(dialogue_clip, tmp_path_factory):
    path, truth = dialogue_clip
    out = tmp_path_factory.mktemp("diar")
    result = Client(cache_dir=out / "cache", output_dir=out).run(path, ["transcription", "diarization"])
    assert result.ok, result.errors
    return result, truth


def test_two_voices_are_found_with_turns_within_half_a_second(diarized):
    result, truth = diarized
    data = json.loads((result.output_dir / "diarization.json").read_text())
    assert data["num_speakers"] == 2
    _check_turns(data["segments"], truth)


def test_rttm_has_one_line_per_turn(diarized):
    result, truth = diarized
    lines = (result.output_dir / "diarization.rttm").read_text().splitlines()
    assert len(lines) == len(truth)
    fields = lines[0].split()
    assert fields[0] == "SPEAKER" and fields[1] == "dialogue" and float(fields[4]) > 1.0 and fields[7].startswith("SPEAKER_")


def test_forcing_two_speakers_works(dialogue_clip, tmp_path):
    path, truth = dialogue_clip
    result = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o").run(path, ["diarization:num_speakers=2"])
    data = json.loads((result.output_dir / "diarization.json").read_text())
    assert data["num_speakers"] == 2
    _check_turns(data["segments"], truth)


def test_each_sentence_is_attributed_to_its_voice(diarized):
    result, truth = diarized
    transcript = json.loads((result.output_dir / "transcription.json").read_text())
    turns = json.loads((result.output_dir / "diarization.json").read_text())["segments"]
    voice_of = {}
    for (_, _, voice, _), turn in zip(truth, turns):
        voice_of.setdefault(voice, turn["speaker"])
    for segment in transcript["segments"]:
        middle = (segment["start"] + segment["end"]) / 2
        start, end, voice, text = min(truth, key=lambda t: 0 if t[0] <= middle <= t[1] else min(abs(t[0] - middle), abs(t[1] - middle)))
        assert segment["speaker"] == voice_of[voice], (segment["text"], text)
        assert all(w["speaker"] == segment["speaker"] for w in segment["words"])
    srt = (result.output_dir / "transcription.srt").read_text()
    assert "[SPEAKER_00]" in srt and "[SPEAKER_01]" in srt
    assert "<v SPEAKER_01>" in (result.output_dir / "transcription.vtt").read_text()


def test_attribution_splits_a_segment_whose_words_change_speaker():
    from video_extract.results import SpeakerTurn, TranscriptSegment
    from video_extract.speech.attribution import attribute_speakers

    segment = TranscriptSegment.model_validate(
        {
            "start": 0.0,
            "end": 4.0,
            "text": "yes no",
            "words": [
                {"start": 0.1, "end": 0.5, "word": "Yes,", "probability": 0.9},
                {"start": 0.6, "end": 1.0, "word": "indeed.", "probability": 0.9},
                {"start": 2.2, "end": 2.6, "word": "No", "probability": 0.9},
                {"start": 2.7, "end": 3.2, "word": "way.", "probability": 0.9},
            ],
        }
    )
    turns = [SpeakerTurn(start=0.0, end=1.5, speaker="SPEAKER_00"), SpeakerTurn(start=2.0, end=3.5, speaker="SPEAKER_01")]
    out = attribute_speakers([segment], turns)
    assert [(s.text, s.speaker, s.start, s.end) for s in out] == [("Yes, indeed.", "SPEAKER_00", 0.1, 1.0), ("No way.", "SPEAKER_01", 2.2, 3.2)]
    assert [w.speaker for s in out for w in s.words] == ["SPEAKER_00", "SPEAKER_00", "SPEAKER_01", "SPEAKER_01"]


def test_single_voice_is_one_speaker(speech_clip, tmp_path):
    result = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o").run(speech_clip[0], ["diarization"])
    assert json.loads((result.output_dir / "diarization.json").read_text())["num_speakers"] == 1


def test_text_embeddings_of_a_diarized_transcript_carry_speakers(dialogue_clip, tmp_path):
    result = Client(cache_dir=tmp_path / "c", output_dir=tmp_path / "o").run(dialogue_clip[0], ["transcription", "diarization", "text_embeddings"])
    rows = result.text_embeddings.rows
    assert rows and all(r.speaker.startswith("SPEAKER_") for r in rows)
    assert {r.speaker for r in rows} == {"SPEAKER_00", "SPEAKER_01"}
