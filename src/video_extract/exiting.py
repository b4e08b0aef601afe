"""Ending a process once its work is written, without the interpreter's teardown.

The teardown of every loaded module and object (ONNX Runtime, CTranslate2, OpenCV, torch where
loaded) took 0.3 s to over a second after the last output, for nothing: every output, summary
and cache entry is written and closed by then. Exit handlers still run (temporary folders,
child processes, Ray's disconnect).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys


def exit_now(code: int) -> None:
    """End the process with ``code`` once logging, the ``atexit`` handlers, stdout and stderr
    are done."""
    logging.shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed, or a reader that went away
            pass
    os._exit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM: a service manager (systemd, Kubernetes, ``docker stop``) ending the command."""


def stop_on_sigterm():
    """Take SIGTERM as Ctrl-C is taken: the work stops, what finished is written (a bulk batch's
    summary lists it), workers are told to end. Without this, SIGTERM ended a batch on the spot,
    its summary unwritten. Returns the handler it replaced."""

    def terminated(signum, frame):
        raise Terminated()

    return signal.signal(signal.SIGTERM, terminated)
