"""accuracy: right answers on real media, ours beside a baseline measured in the same run.

- diarization on the 12 real AMI meeting excerpts of ``../shared/media/ami-debug`` (DER with
  pyannote.metrics, no collar, inside the UEM), ours vs the method before issue 9;
- scene cuts vs ``scenedetect.detect()`` on generated and real clips: how many differ, and the
  time ratio.
"""

from __future__ import annotations

from common import Row


def run() -> list[Row]:
    import diarization_accuracy
    import scenes_parity

    return diarization_accuracy.run() + scenes_parity.run()
