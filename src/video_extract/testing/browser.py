"""Headless Chromium for the report's tests and benchmark: the page as the browser built it
(``--dump-dom``, after its script ran) and a screenshot."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium() -> str | None:
    """The browser's command, or None when none is installed (``make install`` puts Debian's there)."""
    return next((found for name in NAMES if (found := shutil.which(name))), None)


def _run(url: str, *flags: str, timeout: float) -> tuple[str, float]:
    browser = chromium()
    if browser is None:
        raise RuntimeError("no Chromium on this machine (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="ve-chromium-") as profile:
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--mute-audio", f"--user-data-dir={profile}", *flags, url]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.stdout, seconds


def dump_dom(page: str | Path, fragment: str = "", timeout: float = 120) -> tuple[str, float]:
    """The DOM after the page's script ran, and the seconds Chromium took (start-up included)."""
    url = Path(page).absolute().as_uri() + fragment
    return _run(url, "--dump-dom", timeout=timeout)


def screenshot(page: str | Path, png: str | Path, size: tuple[int, int] = (1280, 900), timeout: float = 120) -> Path:
    """A PNG of the page once its pictures loaded (a short virtual-time budget lets them)."""
    url = Path(page).absolute().as_uri()
    _run(url, f"--screenshot={Path(png).absolute()}", f"--window-size={size[0]},{size[1]}", "--hide-scrollbars", "--virtual-time-budget=2000", timeout=timeout)
    return Path(png)
