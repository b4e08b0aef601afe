"""The previous speaker diarization (``method="resemblyzer"``), kept as the baseline that
``benchmarks/diarization_accuracy.py`` measures the default (``diarize.py``) against.

On real meetings (12 AMI excerpts) it reaches a mean DER of 0.48: Silero VAD hears nothing in
quiet far-field audio, and a threshold tuned on generated voices under-counts real speakers.

Pipeline (each step is a separate, testable helper):

1. speech segments      from the shared ``vad`` stage (Silero VAD v6), whose defaults use a
                         short minimum silence (200 ms) so that the pause between two
                         speakers (typically >= 0.3 s) splits segments: VAD edges then give
                         turn boundaries with ~50 ms precision for free.
2. ``embed_windows``     Resemblyzer ``VoiceEncoder`` d-vectors on 1.5 s sliding windows (step
                         0.75 s) laid over the speech frames of "islands" (VAD segments joined
                         across gaps < 0.25 s, e.g. commas); windows never straddle a real
                         pause, so a window rarely mixes two speakers.
3. ``cluster_embeddings`` Average-linkage agglomerative clustering (cosine) of the reliable
                         (>= 1 s) windows; the speaker count is where the merge distance first
                         exceeds ``DEFAULT_DISTANCE_THRESHOLD`` (tuned on generated data), or
                         is forced by ``num_speakers``. Then centroid re-assignment; short
                         windows are assigned to the nearest centroid.
4. ``smooth_labels``      Frame-level (10 ms) Hann-weighted voting of overlapping windows,
                         absorption of runs < 0.5 s inside a VAD segment, merge of same-speaker
                         neighbours.

Cost (2 CPU cores): ~0.005 x real time once warm. The first call pays librosa's numba JIT
(~16 s cold; ~1.3 s when numba's on-disk cache is warm; see ``load_encoder``).

Parameters were tuned on espeak-ng conversations (1, 2 and 3 voices, pauses of 0.3-1 s) and
checked on 24 held-out random ones (22 correct: the misses were voices Resemblyzer itself can
barely tell apart). Check the threshold on real recordings of your domain.

Dependencies: numpy, scikit-learn, resemblyzer (+torch, librosa), onnxruntime (via the
faster-whisper VAD wrapper).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SR = 16000
HOP = 160  # Resemblyzer mel hop (10 ms) -> one frame = 10 ms
FRAME_SEC = HOP / SR

#: Cosine-distance threshold (1 - mean cosine similarity) between average-linkage clusters at
#: which agglomeration stops. ``evaluate.py --sweep`` gives, per generated conversation, the
#: interval of thresholds yielding the true count; the intersection over the 14 tuning cases
#: (1, 2 and 3 voices) was [0.324, 0.353); 0.34 is inside it. Within-voice merges top out at
#: ~0.28 for one voice (0.32 worst case), different voices merge at >= 0.35 unless they are
#: near-identical to Resemblyzer (cosine of utterance d-vectors > ~0.7).
DEFAULT_DISTANCE_THRESHOLD = 0.34


# ---------------------------------------------------------------------------------- encoder
def load_encoder(weights: str | None = None, device: str = "cpu"):
    """Resemblyzer's VoiceEncoder (its weights ship inside the wheel, ~17 MB).

    librosa (which resemblyzer imports) JIT-compiles with numba and caches the result beside
    its own sources unless NUMBA_CACHE_DIR says otherwise: point it at our cache so a
    read-only site-packages still works and later processes start warm.
    """
    import os
    import warnings

    from video_extract.cache import default_cache_dir

    os.environ.setdefault("NUMBA_CACHE_DIR", str(default_cache_dir() / "numba"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # resemblyzer imports scipy.ndimage.morphology
        from resemblyzer import VoiceEncoder
    from pathlib import Path

    return VoiceEncoder(device, verbose=False, weights_fpath=Path(weights) if weights else None)


def normalize_volume(samples: np.ndarray, segments: Sequence[tuple[float, float]], target_dbfs: float = -30.0) -> np.ndarray:
    """Scale so that the RMS *of the speech regions* is ``target_dbfs``.

    Resemblyzer's encoder consumes a linear (not log) mel spectrogram and was trained on audio
    normalised to -30 dBFS (``preprocess_wav``), so input level matters. We do not call
    ``preprocess_wav`` itself: its webrtcvad silence trimming would shift time stamps, and
    VAD already tells us where the speech is. RMS is measured on speech only so that long
    silences do not inflate the gain.
    """
    x = np.asarray(samples, dtype=np.float32)
    if segments:
        parts = [x[int(s * SR) : int(e * SR)] for s, e in segments]
        speech = np.concatenate(parts) if parts else x
    else:
        speech = x
    rms = float(np.sqrt(np.mean(np.square(speech, dtype=np.float64)))) if speech.size else 0.0
    if rms <= 1e-8:
        return x
    gain = 10 ** (target_dbfs / 20) / rms
    return (x * gain).astype(np.float32)


def speech_islands(segments: Sequence[tuple[float, float]], n_frames: int, join_gap_sec: float = 0.25) -> list[np.ndarray]:
    """Group VAD segments separated by < ``join_gap_sec`` into "islands" of speech frames.

    Silero splits an utterance at commas ("No, | not really." -> 0.5 s + 0.8 s pieces). Such
    pieces are too short for a reliable d-vector on their own (measured: a 0.5 s piece was
    given the wrong voice and produced a 1.2 s boundary error), but a pause that short is
    almost never a change of speaker. Windows are therefore laid over the *speech frames* of
    an island (the silent gap frames are dropped, not embedded). Returns one array of mel
    frame indices per island.
    """
    islands: list[list[np.ndarray]] = []
    prev_end = None
    gap = int(round(join_gap_sec / FRAME_SEC))
    for s, e in sorted(segments):
        a, b = max(0, int(round(s / FRAME_SEC))), min(n_frames, int(round(e / FRAME_SEC)))
        if b <= a:
            continue
        if prev_end is not None and a - prev_end < gap:
            islands[-1].append(np.arange(a, b))
        else:
            islands.append([np.arange(a, b)])
        prev_end = b
    return [np.concatenate(p) for p in islands]


def window_spans(
    segments: Sequence[tuple[float, float]], n_frames: int, window_sec: float, step_sec: float, min_window_sec: float = 0.4, join_gap_sec: float = 0.25
) -> list[np.ndarray]:
    """Sliding windows (arrays of mel-frame indices) over the speech frames of each island.

    An island shorter than the window yields one window covering all of it (the LSTM accepts
    any length), unless it has less than ``min_window_sec`` of speech (too little for a
    d-vector; such frames are labelled later from their neighbours). For longer islands the
    last window is aligned to the island end so every speech frame is covered.
    """
    w = max(1, int(round(window_sec / FRAME_SEC)))
    st = max(1, int(round(step_sec / FRAME_SEC)))
    mn = int(round(min_window_sec / FRAME_SEC))
    spans: list[np.ndarray] = []
    for fr in speech_islands(segments, n_frames, join_gap_sec):
        n = len(fr)
        if n < mn:
            continue
        if n <= w:
            spans.append(fr)
            continue
        starts = list(range(0, n - w + 1, st))
        if starts[-1] + w < n:
            starts.append(n - w)
        spans.extend(fr[p : p + w] for p in starts)
    return spans


def embed_windows(
    samples: np.ndarray, segments: Sequence[tuple[float, float]], window_sec: float = 1.5, step_sec: float = 0.75, encoder=None, min_window_sec: float = 0.4
):
    """d-vectors (L2-normalised, 256-d) for sliding windows inside speech segments.

    Returns ``(embeddings [n, 256], spans [array of mel-frame indices])``. The mel spectrogram of
    the whole (volume-normalised) recording is computed once and sliced, instead of calling
    ``embed_utterance`` per window (which would recompute mels and impose its own fixed
    1.6 s partials). Windows of equal length are batched through the LSTM.
    """
    import torch
    from resemblyzer.audio import wav_to_mel_spectrogram

    enc = encoder if encoder is not None else load_encoder()
    x = normalize_volume(samples, segments)
    mel = wav_to_mel_spectrogram(x)  # [n_frames, 40]
    spans = window_spans(segments, len(mel), window_sec, step_sec, min_window_sec)
    if not spans:
        return np.zeros((0, 256), np.float32), []
    out = np.zeros((len(spans), 256), np.float32)
    by_len: dict[int, list[int]] = {}
    for i, fr in enumerate(spans):
        by_len.setdefault(len(fr), []).append(i)
    with torch.no_grad():
        for _, idx in by_len.items():
            batch = np.stack([mel[spans[i]] for i in idx])
            emb = enc(torch.from_numpy(batch).to(enc.device)).cpu().numpy()
            out[idx] = emb
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-8)
    return out, spans


# ------------------------------------------------------------------------------- clustering
def _relabel_by_first_appearance(labels: np.ndarray) -> np.ndarray:
    order = {}
    for lab in labels:
        if lab not in order:
            order[lab] = len(order)
    return np.array([order[lab] for lab in labels], dtype=int)


def _centroids(emb: np.ndarray, labels: np.ndarray) -> np.ndarray:
    cs = np.stack([emb[labels == k].mean(0) for k in range(labels.max() + 1)])
    return cs / np.maximum(np.linalg.norm(cs, axis=1, keepdims=True), 1e-8)


def estimate_num_speakers_eigengap(emb: np.ndarray, max_speakers: int = 8) -> int:
    """Alternative count estimator (kept for comparison; see evaluate.py ``--method``).

    Affinity = cosine similarity, sharpened by keeping each row's top-p neighbours (p chosen
    by the NME-SC criterion of Park et al. 2019: minimise p / max-normalised-eigengap), then
    the eigengap of the symmetric normalised Laplacian.
    Measured on the 14 tuning conversations: correct count in only 4/14 (over-splits single
    voices, under-splits some pairs) versus 14/14 for the AHC threshold -> not the default.
    """
    n = len(emb)
    if n < 3:
        return 1
    S = np.clip(emb @ emb.T, 0, 1)
    best = None
    for p in range(max(2, n // 20), max(3, n // 2) + 1, max(1, n // 40)):
        A = S.copy()
        thr = -np.sort(-A, axis=1)[:, p - 1 : p]
        A[A < thr] = 0
        A = 0.5 * (A + A.T)
        d = A.sum(1)
        L = np.eye(n) - A / np.sqrt(np.outer(d, d))
        ev = np.sort(np.linalg.eigvalsh(L))[: max_speakers + 1]
        gaps = np.diff(ev)
        k = int(np.argmax(gaps)) + 1
        ratio = p / (gaps.max() / max(ev[-1], 1e-8) + 1e-10)
        if best is None or ratio < best[0]:
            best = (ratio, k)
    return best[1]


def cluster_embeddings(
    emb: np.ndarray,
    num_speakers: int | None = None,
    min_speakers: int = 1,
    max_speakers: int = 8,
    distance_threshold: float = DEFAULT_DISTANCE_THRESHOLD,
    method: str = "ahc",
    refine_iters: int = 2,
    reliable: np.ndarray | None = None,
) -> np.ndarray:
    """Cluster L2-normalised d-vectors; returns labels 0..k-1 (ordered by first appearance).

    Speaker count:
      * ``num_speakers`` given -> forced (clipped to the number of windows).
      * ``method="ahc"`` (default): average-linkage agglomerative clustering stops when the
        mean cosine distance between the two closest clusters exceeds
        ``distance_threshold``. This is a direct statement "two groups of windows whose average
        similarity is below 1-threshold are different voices"; it naturally yields 1 speaker
        for a single voice (where eigengap methods are ill-posed) and needs no k search.
      * ``method="eigengap"``: NME-SC style eigengap estimate, then AHC with that k.
      The result is clipped to ``[min_speakers, max_speakers]``.

    Refinement: ``refine_iters`` rounds of re-assigning every window to its most similar
    cluster centroid (spherical k-means steps); this fixes windows that average linkage merged
    early into the wrong branch. Empty clusters are dropped.

    ``reliable`` (bool mask): only these windows take part in counting and clustering; the
    others are then assigned to the nearest centroid. Used to keep short windows (< 1 s, from
    short replies) out: their d-vectors are noisy and, with average linkage, a couple of them
    form a spurious "speaker" (observed: 0.55 s windows merging only at distance 0.39 while two
    real male voices merged at 0.37).
    """
    if reliable is not None and 0 < int(np.sum(reliable)) < len(emb):
        rel = np.asarray(reliable, bool)
        lab_rel = cluster_embeddings(emb[rel], num_speakers, min_speakers, max_speakers, distance_threshold, method, refine_iters)
        labels = np.argmax(emb @ _centroids(emb[rel], lab_rel).T, axis=1)
        labels[rel] = lab_rel
        return _relabel_by_first_appearance(labels)
    from sklearn.cluster import AgglomerativeClustering

    n = len(emb)
    if n == 0:
        return np.zeros(0, dtype=int)
    if n == 1:
        return np.zeros(1, dtype=int)
    if num_speakers is not None:
        k = int(min(max(1, num_speakers), n))
    elif method == "eigengap":
        k = int(min(max(estimate_num_speakers_eigengap(emb, max_speakers), min_speakers), n))
    else:
        ahc = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average", distance_threshold=distance_threshold).fit(emb)
        k = int(ahc.n_clusters_)
        k = int(min(max(k, min_speakers), max_speakers, n))
    if k == 1:
        return np.zeros(n, dtype=int)
    labels = AgglomerativeClustering(n_clusters=k, metric="cosine", linkage="average").fit_predict(emb)
    for _ in range(refine_iters):
        new = np.argmax(emb @ _centroids(emb, labels).T, axis=1)
        if num_speakers is not None and len(np.unique(new)) < k:
            break  # keep the forced count
        new = np.unique(new, return_inverse=True)[1]  # drop emptied clusters
        if np.array_equal(new, labels):
            break
        labels = new
    return _relabel_by_first_appearance(labels)


# -------------------------------------------------------------------------------- smoothing
def smooth_labels(
    spans: Sequence[np.ndarray],
    labels: np.ndarray,
    segments: Sequence[tuple[float, float]],
    n_speakers: int,
    min_turn_sec: float = 0.5,
    merge_gap_sec: float = 2.0,
) -> list[dict]:
    """Window labels -> speaker turns.

    * Frame-level (10 ms) voting: each window adds a Hann-shaped weight to its label over its
      frames, so a frame is decided mostly by windows centred on it; with step = window/2
      every interior frame gets >= 2 votes, which resolves a change point to ~ the middle of
      the overlap rather than to a window edge.
    * Speech frames with no window (segments shorter than ``min_window_sec``) take the label
      of the nearest voted frame.
    * Within one VAD segment, runs shorter than ``min_turn_sec`` are absorbed by the longer
      neighbouring run (a speaker change with no pause and < 0.5 s of speech is implausible;
      windows straddling a real change produce exactly such blips). Runs are *not* smoothed
      across VAD pauses, so a genuinely short reply in its own segment survives.
    * Consecutive turns of the same speaker separated by less than ``merge_gap_sec`` of
      silence are merged.
    """
    if not segments:
        return []
    last = max(int(round(e / FRAME_SEC)) for _, e in segments)
    if spans:
        last = max(last, max(int(fr[-1]) + 1 for fr in spans))
    votes = np.zeros((last + 1, max(1, n_speakers)), np.float64)
    for fr, lab in zip(spans, labels):
        votes[fr, lab] += np.hanning(len(fr) + 2)[1:-1]
    voted = votes.sum(1) > 0
    frame_lab = np.argmax(votes, axis=1)
    if voted.any() and not voted.all():
        idx = np.flatnonzero(voted)
        pos = np.searchsorted(idx, np.arange(len(frame_lab)))
        left = idx[np.clip(pos - 1, 0, len(idx) - 1)]
        right = idx[np.clip(pos, 0, len(idx) - 1)]
        ar = np.arange(len(frame_lab))
        nearest = np.where(np.abs(ar - left) <= np.abs(right - ar), left, right)
        frame_lab = np.where(voted, frame_lab, frame_lab[nearest])
    elif not voted.any():
        frame_lab[:] = 0

    min_run = int(round(min_turn_sec / FRAME_SEC))
    turns: list[dict] = []
    for s, e in segments:
        a, b = int(round(s / FRAME_SEC)), int(round(e / FRAME_SEC))
        if b <= a:
            continue
        seg = frame_lab[a:b].copy()
        while True:  # absorb short runs
            ch = np.flatnonzero(np.diff(seg)) + 1
            bounds = np.concatenate([[0], ch, [len(seg)]])
            runs = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
            if len(runs) == 1:
                break
            lens = [r[1] - r[0] for r in runs]
            i = int(np.argmin(lens))
            if lens[i] >= min_run:
                break
            if i == 0:
                nb = 1
            elif i == len(runs) - 1:
                nb = i - 1
            else:
                nb = i - 1 if lens[i - 1] >= lens[i + 1] else i + 1
            seg[runs[i][0] : runs[i][1]] = seg[runs[nb][0]]
        ch = np.flatnonzero(np.diff(seg)) + 1
        bounds = np.concatenate([[0], ch, [len(seg)]])
        for i in range(len(bounds) - 1):
            turns.append(dict(start=round((a + bounds[i]) * FRAME_SEC, 3), end=round((a + bounds[i + 1]) * FRAME_SEC, 3), speaker=int(seg[bounds[i]])))
    merged: list[dict] = []
    for t in turns:
        if merged and merged[-1]["speaker"] == t["speaker"] and t["start"] - merged[-1]["end"] <= merge_gap_sec:
            merged[-1]["end"] = t["end"]
        else:
            merged.append(dict(t))
    # renumber speakers by first appearance in the output
    order: dict[int, int] = {}
    for t in merged:
        t["speaker"] = order.setdefault(t["speaker"], len(order))
    return merged


# --------------------------------------------------------------------------------- pipeline
def diarize(
    samples: np.ndarray,
    speech_segments: list[tuple[float, float]] | None = None,
    num_speakers: int | None = None,
    min_speakers: int = 1,
    max_speakers: int = 8,
    window_sec: float = 1.5,
    step_sec: float = 0.75,
    encoder=None,
    distance_threshold: float = DEFAULT_DISTANCE_THRESHOLD,
    method: str = "ahc",
    min_turn_sec: float = 0.5,
    merge_gap_sec: float = 2.0,
    min_cluster_window_sec: float = 1.0,
) -> list[dict]:
    """Who spoke when. ``samples``: float32 mono 16 kHz.

    ``speech_segments`` (seconds) may be passed to reuse an existing VAD pass; otherwise Silero
    VAD is run with turn-friendly settings (200 ms minimum silence, 30 ms padding). ``num_speakers`` forces the
    count; otherwise it is estimated (see ``cluster_embeddings``) within
    ``[min_speakers, max_speakers]``. Returns ``[{"start", "end", "speaker"}]`` sorted by time,
    speakers numbered 0.. by first appearance. Windows of 1.5 s / step 0.75 s: Resemblyzer was
    trained on 1.6 s partials, so ~1.5 s gives stable d-vectors while still resolving turns of
    ~1.5 s; 50 % overlap gives every frame two votes.
    """
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if x.size == 0:
        return []
    if speech_segments is None:
        from video_extract.speech.vad import speech_segments as find_speech

        speech_segments = [(s.start, s.end) for s in find_speech(x, SR)]
    segs = [(float(s), float(e)) for s, e in speech_segments if e > s]
    if not segs:
        return []
    emb, spans = embed_windows(x, segs, window_sec, step_sec, encoder)
    if len(spans) == 0:
        return [dict(start=round(s, 3), end=round(e, 3), speaker=0) for s, e in segs]
    lengths = np.array([len(fr) * FRAME_SEC for fr in spans])
    labels = cluster_embeddings(
        emb, num_speakers, min_speakers, max_speakers, distance_threshold, method, reliable=lengths >= min(min_cluster_window_sec, window_sec)
    )
    n_spk = int(labels.max()) + 1
    return smooth_labels(spans, labels, segs, n_spk, min_turn_sec, merge_gap_sec)
