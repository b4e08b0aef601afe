"""video-extract: turn video and audio into structured data.

from video_extract import Client, OutputSpec, Operation
results = Client(cache_dir="~/.cache/video-extract").run("clip.mp4", ["metadata", "scenes"])
"""

from __future__ import annotations

from typing import Any

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
