"""Whisper's CTranslate2 weights kept in int8, quantized once per model file instead of at every load.

A float16 CTranslate2 model run at compute type int8 (transcription's default) is quantized as
it loads, at every load: whisper-tiny.en read 75 MB, faulted in 50k pages and spent 0.25 s of
CPU on it, measured, a tenth of a cold run's CPU on 2 cores. A copy of its ``model.bin`` with
those weights already in int8, as CTranslate2's own converter writes them with
``quantization="int8"`` (a float32 scale per row: 127 over the row's largest magnitude, the
products rounded to even), loads in 0.03 s with 12k faults into the same weights: the encoder's
outputs and the decoder's scores are the same bits (tested). The convolutions' weights are kept
as they are: CTranslate2 keeps those in float on the CPU (quantized, the encoder's outputs
changed), as it keeps layer norms and biases.

A copy is a folder in the model cache's ``ct2/``: the new ``model.bin`` beside copies of the
model's other files (tokenizer, configuration), named by the model folder's place and its
weights' version, with a sidecar naming its source (``derived``).
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np

from video_extract.models import derived

log = logging.getLogger("video_extract")

#: The ``model.bin`` layout read here (``ctranslate2.specs.model_spec.CURRENT_BINARY_VERSION``);
#: a file of another version is loaded as it is.
BINARY_VERSION = 6
#: Type ids of ``model.bin`` (``ctranslate2.specs.model_spec._dtype_to_type_id``).
DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
#: In each copy's version: raised when what a copy holds changes.
LAYOUT = 1
#: Copies are folders named ``<model>-<place><version>`` with this suffix.
SUFFIX = ".ct2"


class _Variable(NamedTuple):
    name: str
    shape: tuple[int, ...]
    dtype: str
    offset: int  # of its data in the file
    size: int  # bytes

    @property
    def quantized_here(self) -> bool:
        """A linear or embedding weight in float: what int8 loading quantizes (rank 2; a
        convolution's weight has rank 3 and stays in float)."""
        return self.name.endswith("/weight") and len(self.shape) == 2 and self.dtype in ("float16", "float32")


def int8_copy(model_dir: Path, cache_dir: Path) -> Path:
    """The folder to load ``model_dir`` from at compute type int8 on the CPU: its copy with the
    weights in int8, made the first time; ``model_dir`` itself where no copy is of use (no
    float weights, another binary version) or none can be made (a read-only cache: logged)."""
    import ctranslate2

    weights = model_dir / "model.bin"
    try:
        st = weights.stat()
    except OSError:
        return model_dir
    folder = Path(cache_dir) / "ct2"
    place = derived.place_of(folder, model_dir.name, str(model_dir.resolve()), st, ctranslate2.__version__, LAYOUT, suffix=SUFFIX)
    copy = place.copy
    if (copy / "model.bin").is_file():
        return copy  # made before: the model's index is not read again
    try:
        with open(weights, "rb") as f:
            variables = _read_index(f)
    except (OSError, ValueError, IndexError, struct.error) as exc:  # IndexError: a type id this does not know
        log.debug("%s: loaded as it is (%s)", weights, exc)
        return model_dir
    if variables is None or not any(v.quantized_here for v in variables[3]):
        return model_dir
    try:
        derived.write_with_source(copy, weights, lambda tmp: _write_copy(model_dir, tmp, variables))
    except Exception as exc:  # noqa: BLE001 - a read-only cache, a full disk, a file changed while read: the model as it is
        if not (copy / "model.bin").is_file():  # not another process's copy, renamed in first
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            log.info("%s: weights quantized at every load (cannot keep an int8 copy in %s: %s)", model_dir, folder, why)
            return model_dir
    place.settle()  # an earlier version's copy; copies of model files no longer there
    return copy


def _read_index(f: BinaryIO) -> tuple[int, str, int, list[_Variable], list[tuple[str, str]]] | None:
    """(version, spec name, revision, variables, aliases) of a ``model.bin``; None for another version."""
    (version,) = struct.unpack("<I", _exactly(f, 4))
    if version != BINARY_VERSION:
        return None
    name = _string(f)
    (revision, count) = struct.unpack("<II", _exactly(f, 8))
    variables = []
    for _ in range(count):
        var_name = _string(f)
        (rank,) = struct.unpack("<B", _exactly(f, 1))
        shape = struct.unpack(f"<{rank}I", _exactly(f, 4 * rank))
        dtype_id, size = struct.unpack("<BI", _exactly(f, 5))
        variables.append(_Variable(var_name, shape, DTYPES[dtype_id], f.tell(), size))
        f.seek(size, os.SEEK_CUR)
    (aliases,) = struct.unpack("<I", _exactly(f, 4))
    return version, name, revision, variables, [(_string(f), _string(f)) for _ in range(aliases)]


def _write_copy(model_dir: Path, folder: Path, index) -> None:
    version, name, revision, variables, aliases = index
    folder.mkdir()
    for other in model_dir.iterdir():
        if other.name != "model.bin" and other.is_file():
            shutil.copyfile(other, folder / other.name)
    with open(model_dir / "model.bin", "rb") as source, open(folder / "model.bin", "wb") as out:
        out.write(struct.pack("<I", version) + _pack_string(name) + struct.pack("<II", revision, len(variables) + sum(v.quantized_here for v in variables)))
        for variable in variables:
            source.seek(variable.offset)
            data = _exactly(source, variable.size)
            if not variable.quantized_here:
                _write_variable(out, variable.name, variable.shape, variable.dtype, data)
                continue
            weights, scale = quantize_rows(np.frombuffer(data, dtype=variable.dtype).reshape(variable.shape))
            _write_variable(out, variable.name, variable.shape, "int8", weights.data)
            _write_variable(out, variable.name + "_scale", scale.shape, "float32", scale.data)
        out.write(struct.pack("<I", len(aliases)))
        for alias, target in aliases:
            out.write(_pack_string(alias) + _pack_string(target))


def quantize_rows(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 2-D float weight as int8 and its float32 scale per row, as CTranslate2's converter
    quantizes (``ModelSpec._quantize``, "int8")."""
    values = weights.astype(np.float32)  # a copy: scaled in place below
    amax = np.amax(np.absolute(values), axis=1)
    amax[amax == 0] = 127.0
    amax = np.maximum(amax, np.float32(127) / np.finfo(np.float32).max)  # a scale a float32 can hold
    scale = (np.float32(127.0) / amax).astype(np.float32)
    values *= np.expand_dims(scale, 1)
    return np.rint(values).astype(np.int8), scale


def _exactly(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ValueError("model.bin ends early")
    return data


def _string(f: BinaryIO) -> str:
    (length,) = struct.unpack("<H", _exactly(f, 2))
    return _exactly(f, length)[:-1].decode("utf-8")  # stored with its terminating NUL


def _pack_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<H", len(raw) + 1) + raw + b"\0"


def _write_variable(out: BinaryIO, name: str, shape: tuple[int, ...], dtype: str, data) -> None:
    out.write(_pack_string(name) + struct.pack(f"<B{len(shape)}I", len(shape), *shape) + struct.pack("<BI", DTYPES.index(dtype), memoryview(data).nbytes))
    out.write(data)
