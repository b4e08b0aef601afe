"""Executors: how a plan's stages are scheduled. The per-stage work lives in ``base``."""

from video_extract.executors.base import Executor, Runtime
from video_extract.executors.debug import DebugExecutor

__all__ = ["DebugExecutor", "Executor", "Runtime"]
