"""Inference sessions sized for a machine that runs several stages at once."""

from __future__ import annotations

import os


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


def onnx_session(path: str, threads: int | None = None, arena: bool = True):
    """``arena=False``: activations go back to the allocator after each run instead of being
    kept by ONNX Runtime for the next (big models run on long inputs)."""
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
    return ort.InferenceSession(path, options, providers=providers)
