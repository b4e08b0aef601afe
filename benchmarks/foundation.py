"""Foundation benchmarks: keyframes vs a bare PyAV loop, scenes vs PySceneDetect, warm vs cold cache."""

from __future__ import annotations

from pathlib import Path

from common import Row, best_of, clean, clip_720p_60s, fresh_dir

SECTION = "foundation"


def bare_pyav_keyframes(path: Path, out: Path) -> int:
    """The floor: what anyone would write with PyAV to dump keyframes as JPEG."""
    import av

    out.mkdir(parents=True, exist_ok=True)
    n = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONKEY"
        for frame in container.decode(stream):
            frame.to_image().save(out / f"frame_{n:05d}.jpg", quality=90)
            n += 1
    return n


def ours(path: Path, ops: list[str], cache: Path | None, out: Path, verify: str | None = None):
    from video_extract import Client

    result = Client(cache_dir=cache, output_dir=out, use_cache=cache is not None, cache_verify=verify).run(path, ops)
    assert result.ok, result.errors
    return result


def pyscenedetect_cuts(path: Path) -> list[int]:
    from scenedetect import ContentDetector, detect

    scenes = detect(str(path), ContentDetector())
    return [start.frame_num for start, _ in scenes[1:]]


def run() -> list[Row]:
    clip = clip_720p_60s()
    rows: list[Row] = []

    # keyframes: cold (fresh cache every repetition) vs the bare loop
    dirs: list[Path] = []

    def ours_keyframes():
        cache, out = fresh_dir("c"), fresh_dir("o")
        dirs.extend([cache, out])
        ours(clip, ["keyframes"], cache, out)

    def floor_keyframes():
        out = fresh_dir("f")
        dirs.append(out)
        bare_pyav_keyframes(clip, out)

    ours(clip, ["keyframes"], fresh_dir("warmup"), fresh_dir("warmup"))  # imports, page cache
    t_floor = best_of(floor_keyframes, 5)
    t_ours = best_of(ours_keyframes, 5)
    rows.append(
        Row(SECTION, "keyframes, 60 s 720p (cold cache) vs bare PyAV NONKEY loop + JPEG", t_ours, t_floor, target="<= 1.2x", passed=t_ours <= 1.2 * t_floor)
    )

    # scenes vs PySceneDetect's own pipeline (OpenCV backend, default ContentDetector)
    theirs_cuts: list[int] = []
    ours_cuts: list[int] = []

    def theirs_scenes():
        theirs_cuts[:] = pyscenedetect_cuts(clip)

    def ours_scenes():
        cache, out = fresh_dir("c"), fresh_dir("o")
        dirs.extend([cache, out])
        result = ours(clip, ["scenes"], cache, out)
        ours_cuts[:] = [c.frame for c in result.scenes.cuts]

    t_theirs = best_of(theirs_scenes, 2)
    t_ours = best_of(ours_scenes, 3)
    same = ours_cuts == theirs_cuts
    rows.append(
        Row(
            SECTION,
            "scenes, 60 s 720p vs PySceneDetect detect() (OpenCV backend)",
            t_ours,
            t_theirs,
            target="<= 0.5x, same cuts",
            passed=t_ours <= 0.5 * t_theirs and same,
            note=f"{len(ours_cuts)} cuts ours, {len(theirs_cuts)} theirs, {'same' if same else 'DIFFERENT'}",
        )
    )

    # warm cache vs cold, all foundation operations
    all_ops = ["metadata", "audio", "frames", "keyframes", "scenes"]
    cache = fresh_dir("cache")
    dirs.append(cache)

    def cold():
        clean(cache)
        out = fresh_dir("o")
        dirs.append(out)
        ours(clip, all_ops, cache, out)

    def warm(verify: str | None = None):
        out = fresh_dir("o")
        dirs.append(out)
        result = ours(clip, all_ops, cache, out, verify)
        assert all(s.cached for s in result.result.stages)

    t_cold = best_of(cold, 2)
    t_warm = best_of(warm, 3)
    # What checking each hit costs: the default (sizes, and the record read back) and full
    # BLAKE3 verification, each against a run whose check is switched off (not a user option).
    from video_extract.cache import Cache
    from video_extract.executors import base
    from video_extract.plugins.base import Artifact

    def unchecked():
        real = Cache._damage, base._hit
        Cache._damage = lambda self, path, meta: None
        base._hit = lambda cache, entry, stage, lease: Artifact(stage.output_type, entry.path, entry.data, cached=True)
        try:
            warm()
        finally:
            Cache._damage, base._hit = real

    t_unchecked = best_of(unchecked, 7)
    t_default = best_of(warm, 7)
    t_full = best_of(lambda: warm("full"), 7)
    entry_bytes = Cache(cache).stats()["bytes"]
    rows.append(
        Row(
            SECTION,
            "warm-cache re-run, hits verified (default: sizes) vs unverified",
            t_default,
            t_unchecked,
            target="<= 1.10x",
            passed=t_default <= 1.10 * t_unchecked,
        )
    )
    rows.append(
        Row(
            SECTION,
            "warm-cache re-run, hits verified by BLAKE3 (verify=full) vs unverified",
            t_full,
            t_unchecked,
            note=f"hashes {entry_bytes / 1e6:.1f} MB of entries per run",
        )
    )
    rows.append(
        Row(
            SECTION,
            "warm-cache re-run vs cold run (metadata, audio, frames, keyframes, scenes)",
            t_warm,
            t_cold,
            target="<= 0.05x",
            passed=t_warm <= 0.05 * t_cold,
        )
    )
    clean(*dirs)
    return rows
