"""Known sentences spoken by espeak-ng (a Debian package; `make install` puts it there)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

#: Two espeak-ng voices (a male and a female variant, which Resemblyzer tells apart well)
#: taking turns with sentences tiny.en transcribes reliably.
DIALOGUE = [
    ("en-us", "Please open the window and turn on the light."),
    ("en-us+f3", "My favourite colour is green and I like music."),
    ("en-us", "The meeting starts at nine in the morning on Monday."),
    ("en-us+f3", "We should bring the reports and a few extra chairs."),
    ("en-us", "After lunch the team will review the new design together."),
    ("en-us+f3", "Remember to send the summary to everyone before Friday."),
]


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(text: str, voice: str = "en-us", speed: int = 150, pitch: int = 50, sample_rate: int = 16000, trim: bool = False) -> np.ndarray:
    """``text`` spoken by ``voice``, as float32 mono at ``sample_rate``.

    ``trim`` cuts espeak-ng's own leading and trailing silence, so that where the samples are
    placed is where the speech is (ground truth to ~10 ms).
    """
    from video_extract.media import decode_audio

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), text],
            check=True,
            capture_output=True,
        )
        samples = decode_audio(wav, sample_rate=sample_rate, channels=1).samples.copy()
    if trim:
        loud = np.flatnonzero(np.abs(samples) > 0.01)
        if loud.size:
            samples = samples[loud[0] : loud[-1] + 1]
    return samples


def silence(seconds: float, sample_rate: int = 16000) -> np.ndarray:
    return np.zeros(int(round(seconds * sample_rate)), np.float32)


def conversation(
    turns: list[tuple[str, str]], pauses: list[float], lead: float = 0.5, sample_rate: int = 16000, speed: int = 150
) -> tuple[np.ndarray, list[tuple[float, float, str, str]]]:
    """Voices taking turns: ``turns`` = [(voice, text)], ``pauses`` between them (seconds).

    Returns the samples and the truth: [(start, end, voice, text)] of each turn.
    """
    parts, truth, t = [silence(lead, sample_rate)], [], lead
    for n, (voice, text) in enumerate(turns):
        samples = speak(text, voice=voice, speed=speed, sample_rate=sample_rate, trim=True)
        truth.append((round(t, 3), round(t + len(samples) / sample_rate, 3), voice, text))
        parts.append(samples)
        t += len(samples) / sample_rate
        pause = pauses[n % len(pauses)] if n < len(turns) - 1 else lead
        parts.append(silence(pause, sample_rate))
        t += pause
    return np.concatenate(parts), truth
