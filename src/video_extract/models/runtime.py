"""Inference sessions sized for a machine that runs several stages at once."""

from __future__ import annotations

import os


def model_threads() -> int:
    """Threads one model may use: half the cores (at least one), since stages run side by side.

    Measured on 2 cores: YOLOX-nano with 1 thread is 11-12 ms whatever else runs; with 2 it is
    7.5 ms alone but 20-30 ms when another stage competes. ``VIDEO_EXTRACT_MODEL_THREADS`` overrides.
    """
    env = os.environ.get("VIDEO_EXTRACT_MODEL_THREADS")
    if env:
        return max(1, int(env))
    return max(1, (os.cpu_count() or 2) // 2)


def onnx_session(path: str, threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    n = threads or model_threads()
    options.intra_op_num_threads = n
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if n > 1:
        # Spinning threads burn the cores other stages need while this one waits.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    return ort.InferenceSession(path, options, providers=providers)
