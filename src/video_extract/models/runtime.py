"""Inference sessions sized for a machine that runs several stages at once."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from pathlib import Path

from video_extract.errors import ModelError, show_path
from video_extract.models import derived


def model_threads(side_by_side: int | None = None) -> int:
    """Threads one model may use: the cores, shared among the stages that run side by side.

    A stage that runs alone (``side_by_side=1``) takes every core: a lone OCR request capped at
    one thread was 1.2-1.4x RapidOCR's defaults. Stages side by side split them: measured on
    2 cores, YOLOX-nano with 1 thread is 11-12 ms whatever else runs; with 2 it is 7.5 ms
    alone but 20-30 ms when another stage competes. Unknown (None): half the cores, as stages
    may run side by side. ``VIDEO_EXTRACT_MODEL_THREADS`` overrides (bulk workers set their share).
    """
    env = os.environ.get("VIDEO_EXTRACT_MODEL_THREADS")
    if env:
        return max(1, int(env))
    cores = cpu_cores()
    return max(1, cores // 2 if side_by_side is None else cores // max(1, side_by_side))


def cpu_cores() -> int:
    """Cores this process may run on (its affinity, e.g. a container's cpuset), else the machine's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def blas_on_calling_thread():
    """numpy's BLAS runs on the thread that calls it, inside.

    The one product in a run large enough for OpenBLAS to share out (Whisper's mel filters,
    80 x 201 by 201 x ~3000) gains ~0.4 ms from a second thread, which then spins for more work
    (OpenBLAS's thread timeout): 0.07-0.09 s of a core per transcription, measured, taken from
    the stages beside it. Each element of a product is summed by one thread either way: the
    same bits. OpenBLAS has one setting per process; threadpoolctl lets the first thread to
    set it do so and puts it back when that thread leaves (another thread inside at the same
    time may then get the second thread back: slower, never different)."""
    try:
        limiter = _blas_pools().limit(limits=1, user_api="blas")
    except Exception:  # noqa: BLE001 - no BLAS found, or one threadpoolctl cannot set: as it is
        limiter = contextlib.nullcontext()
    with limiter:
        yield


@functools.cache
def _blas_pools():
    """The thread pools of the libraries loaded in this process (found once: ~3 ms)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def onnx_session(path: str, threads: int | None = None, arena: bool = True, cache_dir: Path | None = None, keep_optimized: bool = True):
    """``arena=False``: activations go back to the allocator after each run instead of being
    kept by ONNX Runtime for the next (big models run on long inputs).

    On the CPU the graph ONNX Runtime optimizes at load is kept in the model cache
    (``cache_dir``, default the store's) and loaded as it is the next time: the optimizations
    were most of a session's start (CAM++ 125 -> 46 ms, MiniLM 156 -> 98 ms, YOLOX-nano 20 ->
    6 ms), paid by every process that loads the model. Same graph, same kernels: the outputs
    are the same bits. ``keep_optimized=False`` for a file that is not kept (an export being
    checked)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    n = threads or model_threads()
    options.intra_op_num_threads = n
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.enable_cpu_mem_arena = arena
    if n > 1:
        # Spinning threads burn the cores other stages need while this one waits.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    try:
        if not keep_optimized or providers != ["CPUExecutionProvider"]:
            return ort.InferenceSession(path, options, providers=providers)
        return optimized_once(Path(path), options, ["CPUExecutionProvider"], cache_dir)
    except Exception as exc:
        if not type(exc).__module__.startswith("onnxruntime"):
            raise
        # "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from … failed:Protobuf parsing failed."
        why = str(exc).rsplit(" : ", 1)[-1].rsplit("failed:", 1)[-1].strip().rstrip(".")
        raise ModelError(f"cannot load the model file {show_path(path)} ({why}): is it whole, and an ONNX model?") from None


#: Initializers from this size on are kept in the graph folder's data file (``GRAPH_DATA``).
EXTERNAL_FROM_BYTES = 1024
#: The graph and its weights inside an optimized copy's folder.
GRAPH, GRAPH_DATA = "model.onnx", "model.onnx.data"
#: In each copy's version: raised when the layout of the copies changes.
LAYOUT = 2


def optimized_once(path: Path, options, providers: list, cache_dir: Path | None = None):
    """A CPU session (``options`` and ``providers`` as a library would pass them) on ``path``'s
    graph as ONNX Runtime optimizes it, optimized once per model file, runtime version and CPU
    (the "all" level lays tensors out for this CPU's vector width), kept beside the other model
    files. ``options.graph_optimization_level`` says how far (ONNX Runtime's default: all).

    A copy is a folder: the graph, and its weights in a data file of their own, which ONNX
    Runtime maps from the page cache instead of reading into the heap. Measured on MiniLM's
    87 MB: the session starts in 0.045 s instead of 0.15, with 11k page faults instead of 52k,
    and the weights' pages are shared by every process that loads them (bulk workers, Ray
    actors on one node). The same graph and weights: the outputs are the same bits."""
    import onnxruntime as ort

    if cache_dir is None:
        from video_extract.models import default_model_cache

        cache_dir = default_model_cache()
    st = path.stat()
    level = options.graph_optimization_level
    # the model's place (path, CPU, level), then its version (contents, runtime, layout)
    place = derived.place_of(Path(cache_dir) / "ort", path.stem, f"{path.resolve()}:{level}:{_cpu_identity()}", st, ort.__version__, LAYOUT, suffix=".onnx")
    optimized = place.copy
    if (optimized / GRAPH).is_file():
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            return ort.InferenceSession(str(optimized / GRAPH), options, providers=providers)
        except Exception:  # noqa: BLE001 - a damaged copy: optimize the original again (below)
            derived.remove(optimized)
            options.graph_optimization_level = level
    made = []

    def optimize(folder: Path) -> None:
        folder.mkdir()
        options.optimized_model_filepath = str(folder / GRAPH)
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", GRAPH_DATA)  # beside the graph
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", str(EXTERNAL_FROM_BYTES))
        made.append(ort.InferenceSession(str(path), options, providers=providers))

    try:
        derived.write_with_source(optimized, path, optimize)
    except Exception:  # noqa: BLE001 - a read-only cache, a graph that cannot be saved: optimize at every load
        if made:
            return made[0]
        options.optimized_model_filepath = ""
        return ort.InferenceSession(str(path), options, providers=providers)
    place.settle()  # the copy of an earlier file, runtime or layout; copies of model files no longer there
    return made[0]


@functools.cache
def _cpu_identity() -> str:
    """What the optimized graph may depend on: the machine type and the CPU's feature flags."""
    import platform

    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            flags = next((line.split(":", 1)[1] for line in info if line.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    return f"{platform.machine()}:{platform.processor()}:{hashlib.sha256(' '.join(sorted(flags.split())).encode()).hexdigest()[:12]}"
