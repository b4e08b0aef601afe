"""Known sentences spoken by espeak-ng (a Debian package; `make install` puts it there)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(text: str, voice: str = "en-us", speed: int = 150, pitch: int = 50, sample_rate: int = 16000) -> np.ndarray:
    """``text`` spoken by ``voice``, as float32 mono at ``sample_rate``."""
    from video_extract.media import decode_audio

    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), text],
            check=True,
            capture_output=True,
        )
        return decode_audio(wav, sample_rate=sample_rate, channels=1).samples.copy()


def silence(seconds: float, sample_rate: int = 16000) -> np.ndarray:
    return np.zeros(int(round(seconds * sample_rate)), np.float32)
