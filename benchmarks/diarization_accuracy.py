"""Diarization accuracy on real meetings: 12 AMI excerpts, our method against the previous one.

Scored with pyannote.metrics (``DiarizationErrorRate(collar=0.0)``, inside each file's UEM,
overlap included), the convention of the diarization literature. The default method
(segmentation-3.0 + CAM++) had its thresholds calibrated on the 10 ``trn`` files only; the two
``dev`` files are held out and reported on their own. Both methods run in this process on the
same audio: ours from the samples alone, the baseline (Resemblyzer) on Silero VAD segments, as
the ``diarization`` stage gives it the ``vad`` stage's output.

Section name "accuracy"; ``python benchmarks/diarization_accuracy.py`` prints the table alone.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import Row  # noqa: E402

SECTION = "accuracy"
AMI = Path(__file__).resolve().parents[2] / "shared" / "media" / "ami-debug"
FILES = [f"trn{i:02d}" for i in range(10)] + ["dev00", "dev01"]


def _annotation(turns: list[dict], uri: str):
    from pyannote.core import Annotation, Segment

    ann = Annotation(uri=uri)
    for i, t in enumerate(turns):
        ann[Segment(t["start"], t["end"]), i] = f"S{t['speaker']}"
    return ann


def _methods():
    """name -> callable(samples) -> turns, both with models loaded once (warm)."""
    from video_extract.models import ModelStore
    from video_extract.speech import diarize as ours
    from video_extract.speech import diarize_resemblyzer as old
    from video_extract.speech.vad import speech_segments

    store = ModelStore(allow_download=False)
    # as the diarization stage loads them: on ONNX Runtime, exported once into the model cache
    segmenter = ours.load_segmenter(str(store.path("pyannote-segmentation-3.0")), store.cache_dir)
    embedder = ours.load_embedder(str(store.path("campplus-sv-zh-en")), store.cache_dir)
    encoder = old.load_encoder(str(store.path("resemblyzer")))

    def baseline(x):
        return old.diarize(x, [(s.start, s.end) for s in speech_segments(x)], encoder=encoder)

    return {"ours": lambda x: ours.diarize(x, segmenter, embedder), "baseline": baseline}


def evaluate() -> dict[str, dict[str, dict]]:
    """Per method and file: DER, speaker counts (reference / found inside the UEM), speech found, seconds."""
    import warnings

    import soundfile  # float WAV (the stdlib wave module reads PCM only); arrives with librosa
    import torch
    from pyannote.database.util import load_rttm, load_uem
    from pyannote.metrics.diarization import DiarizationErrorRate

    from video_extract.models.runtime import model_threads

    torch.set_num_threads(model_threads())
    reference = {**load_rttm(AMI / "debug.train.rttm"), **load_rttm(AMI / "debug.development.rttm")}
    uems = {**load_uem(AMI / "debug.train.uem"), **load_uem(AMI / "debug.development.uem")}
    methods = _methods()
    audio = {f: soundfile.read(AMI / f"{f}.wav", dtype="float32")[0] for f in FILES}
    for run in methods.values():  # warm-up: JIT, allocator, first-call costs
        run(audio[FILES[0]][: 16000 * 12])
    out: dict[str, dict[str, dict]] = {name: {} for name in methods}
    for name, run in methods.items():
        for f in FILES:
            start = time.perf_counter()
            turns = run(audio[f])
            seconds = time.perf_counter() - start
            hyp = _annotation(turns, f)
            extent = uems[f].extent()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pyannote.metrics warns about uem/extent rounding
                der = DiarizationErrorRate(collar=0.0)(reference[f], hyp, uem=uems[f])
            out[name][f] = dict(
                der=float(der),
                ref_speakers=len(reference[f].crop(extent).labels()),
                speakers=len(hyp.crop(extent).labels()),
                speech=sum(t["end"] - t["start"] for t in turns),
                seconds=seconds,
                duration=len(audio[f]) / 16000,
            )
    return out


def run() -> list[Row]:
    try:
        import pyannote.metrics  # noqa: F401
    except ImportError:
        print("[accuracy] skipped: pyannote.metrics is not installed (pip install -e '.[test]')", file=sys.stderr)
        return []
    if not all((AMI / f"{f}.wav").exists() for f in FILES):
        print(f"[accuracy] skipped: the AMI excerpts are not in {AMI}", file=sys.stderr)
        return []
    res = evaluate()
    ours, base = res["ours"], res["baseline"]
    rows = []
    for f in FILES:
        o, b = ours[f], base[f]
        held_out = f.startswith("dev")
        rows.append(
            Row(
                SECTION,
                f"diarization DER {f}{' (held out)' if held_out else ''}",
                o["der"],
                b["der"],
                unit="DER",
                target="<= 0.30" if held_out else "",
                passed=o["der"] <= 0.30 if held_out else None,
                note=f"speakers ref {o['ref_speakers']}, ours {o['speakers']}, baseline {b['speakers']}; {o['seconds']:.2f} s vs {b['seconds']:.2f} s",
            )
        )

    def mean(method: dict, prefix: str = "") -> float:
        values = [method[f]["der"] for f in FILES if f.startswith(prefix)]
        return sum(values) / len(values)

    rows.append(Row(SECTION, "mean DER, 10 trn files (calibration)", mean(ours, "trn"), mean(base, "trn"), unit="DER", target="report"))
    rows.append(Row(SECTION, "mean DER, 2 dev files (held out)", mean(ours, "dev"), mean(base, "dev"), unit="DER", target="report"))
    rows.append(Row(SECTION, "mean DER, all 12 files", mean(ours), mean(base), unit="DER", target="<= 0.35", passed=mean(ours) <= 0.35))

    def within_one(method: dict) -> int:
        return sum(abs(method[f]["speakers"] - method[f]["ref_speakers"]) <= 1 for f in FILES)

    def exact(method: dict) -> int:
        return sum(method[f]["speakers"] == method[f]["ref_speakers"] for f in FILES)

    rows.append(
        Row(
            SECTION,
            "speaker count within +-1 of the reference (of 12)",
            within_one(ours),
            within_one(base),
            unit="files",
            target=">= 10",
            passed=within_one(ours) >= 10,
            note=f"exact: ours {exact(ours)}, baseline {exact(base)}",
        )
    )
    found = sum(ours[f]["speech"] > 0 for f in FILES)
    rows.append(
        Row(SECTION, "files where speech is found (of 12)", found, sum(base[f]["speech"] > 0 for f in FILES), unit="files", target="12", passed=found == 12)
    )

    def rtf(method: dict) -> float:
        return sum(method[f]["seconds"] for f in FILES) / sum(method[f]["duration"] for f in FILES)

    rows.append(
        Row(SECTION, "real-time factor (warm models), diarization time / audio time", rtf(ours), rtf(base), unit="x", target="<= 0.1", passed=rtf(ours) <= 0.1)
    )
    return rows


if __name__ == "__main__":
    from run import print_table

    table = run()
    if table:
        print_table(table)
