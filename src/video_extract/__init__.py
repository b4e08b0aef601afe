"""video-extract: turn video and audio into structured data.

from video_extract import Client, OutputSpec, Operation
results = Client(cache_dir="~/.cache/video-extract").run("clip.mp4", ["metadata", "scenes"])
"""

from __future__ import annotations

import os
from typing import Any

# CTranslate2 (Whisper) and torch run their threads on GNU OpenMP, whose idle threads spin at
# every barrier before they sleep. With stages side by side (perf mode, the server) the spinning
# burns the cores the other stages are waiting for: the full pipeline on a 10 s clip took
# 2.8-13.7 s of CPU per warm run spinning, 2.2-2.4 s passive. Read once, when OpenMP loads, so
# set here, before any model library; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# OpenBLAS (numpy's, scipy's) is the same: its threads spin 2^28 cycles for more work before
# they sleep, at numpy's import (0.08 s of CPU, measured) and after every product they share.
# 2^4: they sleep at once, and still share a large product (Whisper's mel: 10.3 vs 9.5 ms for
# 20, against 16.3 ms on one thread). Read once, when OpenBLAS loads: before numpy.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from video_extract.errors import InputError, PlanError, UsageError, VideoExtractError
from video_extract.spec import Operation, OutputSpec

__version__ = "0.1.0"

__all__ = ["Client", "InputError", "Operation", "OutputSpec", "PlanError", "Results", "UsageError", "VideoExtractError", "__version__"]


def __getattr__(name: str) -> Any:
    # The client pulls in PyAV and the executors; keep ``import video_extract`` itself light.
    if name in ("Client", "Results"):
        from video_extract import client

        return getattr(client, name)
    raise AttributeError(name)
