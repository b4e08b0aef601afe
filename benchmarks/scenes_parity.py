"""Scenes parity: our cut lists against ``scenedetect.detect()`` on many clips, and the time each takes.

Generated clips (hard cuts, dark fades to and from black, grain, flashes, a starved bitrate, odd
sizes, 1080 tall, display rotation, VFR) plus the real clips in ../shared/media/footage (when
present), for every detector at its defaults and a few parameter sets. A clip "differs" when any
cut differs: frame numbers and times on constant-frame-rate input (times counted, as PySceneDetect
counts them, from the stream's first pts); on VFR input PySceneDetect's frame number is
round(time x mean fps), so there ours is compared through that same rounding.

Run alone: ``python benchmarks/scenes_parity.py`` (prints the table and any differing clip).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import MEDIA, Row, best_of, clip_720p_60s  # noqa: E402

SECTION = "accuracy"
FOOTAGE = Path(__file__).resolve().parents[2] / "shared" / "media" / "footage"

#: name -> fade_clip arguments. Deterministic: the same files on every machine.
GENERATED: dict[str, dict] = {
    "cuts_320x240": dict(frames=90, cuts=(30, 60)),
    "dark_fade_grain_640x360": dict(frames=120, width=640, height=360, cuts=(30,), fades=((60, 30),), grain=6.0),
    "fade_to_black_at_end": dict(frames=90, cuts=(30,), fades=((60, 60),), grain=3.0),
    "fade_from_black_at_start": dict(frames=75, fades=((-20, 40),), cuts=(50,), grain=3.0),
    "slow_dark_fade_1280x720": dict(frames=90, width=1280, height=720, fades=((20, 50),), grain=2.0),
    "heavy_grain_no_cut": dict(frames=60, grain=14.0),
    "flashes": dict(frames=90, cuts=(45,), flashes=(20, 21, 70)),
    "starved_bitrate_1280x720": dict(frames=90, width=1280, height=720, cuts=(30,), fades=((50, 24),), crf=None, bit_rate=60_000),
    "odd_318x174": dict(frames=60, width=318, height=174, cuts=(20,), fades=((30, 20),), grain=4.0),
    "tall_608x1080": dict(frames=60, width=608, height=1080, cuts=(15,), fades=((30, 24),)),
    "fhd_1920x1080": dict(frames=60, width=1920, height=1080, cuts=(20,), fades=((30, 20),), grain=3.0),
    "rotated_90_640x360": dict(frames=60, width=640, height=360, cuts=(30,), rotation=90),
    "rotated_180_640x360": dict(frames=60, width=640, height=360, cuts=(30,), fades=((40, 16),), rotation=180),
    "ntsc_854x480_29.97": dict(frames=90, width=854, height=480, fps=30000 / 1001, cuts=(30,), fades=((50, 30),), grain=5.0),
    "vfr": dict(frames=48, cuts=(24,), times=[i * 0.04 + (0.02 if i % 3 == 1 else 0) + (0.5 if i >= 24 else 0) for i in range(48)]),
}

#: Every detector at its defaults, and a few parameter sets.
PARAMS = [
    "detector=content",
    "detector=adaptive",
    "detector=threshold",
    "detector=histogram",
    "detector=hash",
    "detector=content,threshold=15,min_scene_len=5",
    "detector=content,downscale=2",
    "detector=adaptive,threshold=2,min_scene_len=8",
    "detector=threshold,threshold=30,min_scene_len=5",
    "detector=histogram,threshold=0.1",
    "detector=hash,threshold=0.2,min_scene_len=5",
]


def generated_clips() -> list[Path]:
    from video_extract.testing import media

    folder = MEDIA / "scenes_parity"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, kwargs in GENERATED.items():
        path = folder / f"{name}.mp4"
        if not path.exists():
            tmp = path.with_suffix(".tmp.mp4")
            media.fade_clip(tmp, seed=len(paths), **kwargs)
            os.replace(tmp, path)
        paths.append(path)
    return paths


def real_clips() -> list[Path]:
    if not FOOTAGE.is_dir():
        return []
    return sorted(p for p in FOOTAGE.iterdir() if p.suffix in (".mp4", ".webm", ".mkv", ".mov"))


def timing_facts(path: Path) -> tuple[bool, float]:
    """(constant frame rate?, the stream's first pts in seconds), from packet timestamps."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None and p.size)
        origin = float((stream.start_time or 0) * stream.time_base)
    steps = {b - a for a, b in zip(pts, pts[1:])}
    return max(steps) - min(steps) <= 1 if steps else True, origin


def theirs(path: Path, params) -> list[tuple[int, float, object]]:
    """PySceneDetect's cut list: ``detect()``, or its SceneManager with a fixed downscale."""
    from scenedetect import SceneManager, detect, open_video

    from video_extract.plugins.scenes import make_detector

    if params.downscale is None:
        scenes = detect(str(path), make_detector(params))
    else:
        manager = SceneManager()
        manager.auto_downscale = False
        manager.downscale = params.downscale
        manager.add_detector(make_detector(params))
        manager.detect_scenes(open_video(str(path)))
        scenes = manager.get_scene_list()
    return [(start.frame_num, start.seconds, start.frame_rate) for start, _ in scenes[1:]]


def same_cuts(ours, their, cfr: bool, origin: float) -> bool:
    if len(ours) != len(their):
        return False
    for cut, (frame, seconds, rate) in zip(ours, their):
        if cfr and (cut.frame != frame or abs(cut.time - (origin + seconds)) > 2e-6):
            return False
        if not cfr and round((cut.time - origin) * float(rate)) != frame:
            return False
    return True


def decode_only(path: Path) -> None:
    """The floor both sides stand on: every frame decoded by FFmpeg, nothing else."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            pass


def run() -> list[Row]:
    return measure()[0]


def measure() -> tuple[list[Row], list[str]]:
    """The rows, and one line per differing (clip, parameter set)."""
    from video_extract import Client
    from video_extract.spec import Scenes, make_operation

    clips = generated_clips() + real_clips()
    out = Path(tempfile.mkdtemp(prefix="vebench-parity-"))
    client = Client(output_dir=out, use_cache=False)
    client.run(clips[0], ["scenes"])  # imports and first-use costs out of the timings
    differing: list[str] = []
    t_ours = t_theirs = t_decode = t_theirs_default = t_overhead = 0.0
    big_ours = big_theirs = 0.0
    runs = 0
    try:
        for path in clips:
            cfr, origin = timing_facts(path)
            started = time.perf_counter()
            decode_only(path)
            t_decode += time.perf_counter() - started
            started = time.perf_counter()
            client.run(path, ["metadata"])
            t_overhead += (time.perf_counter() - started) * len(PARAMS)
            for spec in PARAMS:
                params = make_operation("scenes", dict(kv.split("=") for kv in spec.split(",")))
                assert isinstance(params, Scenes)
                started = time.perf_counter()
                their = theirs(path, params)
                elapsed_theirs = time.perf_counter() - started
                started = time.perf_counter()
                result = client.run(path, [f"scenes:{spec}"])
                elapsed_ours = time.perf_counter() - started
                runs += 1
                t_ours += elapsed_ours
                t_theirs += elapsed_theirs
                if spec == "detector=content":
                    t_theirs_default += elapsed_theirs
                if _pixels(path) >= 1280 * 720:
                    big_ours += elapsed_ours
                    big_theirs += elapsed_theirs
                ours = result.scenes.cuts if result.ok else None
                if ours is None or not same_cuts(ours, their, cfr, origin):
                    got = [(c.frame, c.time) for c in ours] if ours is not None else result.errors
                    differing.append(f"{path.name} [{spec}]: ours {got} theirs {[(f, round(s, 6)) for f, s, _ in their]}")
        # A longer clip, where per-run costs (probe, plan, files) weigh less: content at defaults.
        long_clip = clip_720p_60s()
        t_long_theirs = best_of(lambda: theirs(long_clip, Scenes()), 2)
        t_long_ours = best_of(lambda: client.run(long_clip, ["scenes"]), 2)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    names = sorted({d.split(" [")[0] for d in differing})
    return [
        Row(
            SECTION,
            "scenes parity: clips",
            len(clips),
            None,
            unit="",
            note=f"{len(clips) - len(real_clips())} generated, {len(real_clips())} real; {len(PARAMS)} parameter sets, {runs} runs",
        ),
        Row(SECTION, "scenes parity: clips whose cut list differs", len(names), None, unit="", target="0", passed=not names, note=", ".join(names)),
        Row(SECTION, "scenes parity: ours vs scenedetect.detect() wall time, all runs", t_ours, t_theirs, target="<= 0.5x", passed=t_ours <= 0.5 * t_theirs),
        Row(SECTION, "scenes parity: same, clips of 1280x720 and more", big_ours, big_theirs, target="<= 0.5x", passed=big_ours <= 0.5 * big_theirs),
        Row(
            SECTION,
            "scenes parity: 60 s 720p clip, content at defaults",
            t_long_ours,
            t_long_theirs,
            target="<= 0.5x",
            passed=t_long_ours <= 0.5 * t_long_theirs,
        ),
        Row(SECTION, "scenes parity: of which probe + plan + files (a metadata-only run), all runs", t_overhead, t_theirs, note="the Client's per-run cost"),
        Row(
            SECTION,
            "scenes parity: FFmpeg decoding alone vs detect() (content)",
            t_decode,
            t_theirs_default,
            note="the floor under both: every frame must be decoded",
        ),
    ], differing


def _pixels(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.codec_context.width * stream.codec_context.height


def main() -> int:
    from run import print_table

    rows, differing = measure()
    print_table(rows)
    for line in differing:
        print("DIFFERS:", line)
    return 0 if not differing else 1


if __name__ == "__main__":
    sys.exit(main())
