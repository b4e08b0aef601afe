"""Plugin discovery and planning.

Discovery reads YAML manifests only (the built-ins' beside their modules, third parties' via
the ``video_extract.plugins`` entry-point group), so listing operations or planning never
imports torch, onnxruntime or faster-whisper. A plugin's module is imported when it is first
planned or run, and its heavy libraries when it first runs.

Planning resolves by type: a requested operation's plugin needs inputs of some types (Audio,
Frames, ...); each is produced by the plugin whose manifest outputs it, recursively down to
what the file itself provides (File, VideoStream, AudioStream).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable
from importlib import metadata as importlib_metadata
from pathlib import Path

from video_extract.errors import NotApplicable, PlanError, UsageError, VideoExtractError, missing_package
from video_extract.models.catalog import ModelPolicy
from video_extract.plan import SOURCE, Plan, Stage
from video_extract.plugins.base import SOURCE_TYPES, Manifest, Plugin
from video_extract.results import OUTPUT_TYPES, MediaInfo
from video_extract.spec import OPERATIONS, Operation, OutputSpec, canonical_name, make_operation

ENTRY_POINT_GROUP = "video_extract.plugins"
BUILTIN_DIR = Path(__file__).parent / "plugins"

log = logging.getLogger("video_extract")


class Registry:
    def __init__(self, manifests: Iterable[Manifest]):
        self.manifests: dict[str, Manifest] = {}
        self._plugin_classes: dict[str, type[Plugin]] = {}
        self._plugins: dict[str, Plugin] = {}
        self._found: dict[str, bool] = {}  # optional module -> installed
        self._lock = threading.Lock()
        #: Plans made, by what they are made from (see ``plan``): the plan, the checks it passed,
        #: and the manifests it was made with (a manifest added or replaced since: planned afresh).
        self._plans: OrderedDict[tuple, tuple[Plan, tuple[tuple[str, Operation], ...], tuple[Manifest, ...]]] = OrderedDict()
        for manifest in manifests:
            self.add(manifest)

    # -- discovery ----------------------------------------------------------------------------

    @classmethod
    def discover(cls, entry_points: bool = True) -> Registry:
        manifests = [Manifest.load(p) for p in sorted(BUILTIN_DIR.glob("*.yaml"))]
        registry = cls(manifests)
        if entry_points:
            for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
                try:
                    registry.add_plugin_class(ep.load(), source=ep.dist.name if ep.dist else ep.value)
                except Exception as exc:  # noqa: BLE001 - a broken third-party plugin must not break the tool
                    log.warning("plugin entry point %s (%s) could not be loaded: %s", ep.name, ep.value, exc)
        return registry

    def add(self, manifest: Manifest) -> None:
        same_op = [m for m in self.manifests.values() if manifest.operation and m.operation == manifest.operation and m.name != manifest.name]
        if same_op and manifest.source != "built-in":
            log.info("operation %s: plugin %s from %s replaces %s", manifest.operation, manifest.name, manifest.source, same_op[0].name)
        if manifest.name in self.manifests:
            log.warning("plugin %s from %s replaces the one from %s", manifest.name, manifest.source, self.manifests[manifest.name].source)
        self.manifests[manifest.name] = manifest

    def add_plugin_class(self, plugin_class: type[Plugin], source: str) -> None:
        """Register a third-party plugin class; its manifest is ``plugin_class.manifest_path``."""
        path = getattr(plugin_class, "manifest_path", None)
        if path is None:
            raise VideoExtractError(f"plugin class {plugin_class.__qualname__} has no manifest_path")
        manifest = Manifest.load(Path(path), source=source)
        self.add(manifest)
        self._plugin_classes[manifest.name] = plugin_class

    # -- lookup -------------------------------------------------------------------------------

    def for_operation(self, op_name: str) -> Manifest:
        """The plugin that runs ``op_name``: an installed third-party plugin wins over the built-in."""
        candidates = [m for m in self.manifests.values() if m.operation == op_name]
        if candidates:
            manifest = sorted(candidates, key=lambda m: m.source == "built-in")[0]
            if manifest.output not in OUTPUT_TYPES:
                self.plugin_class(manifest.name)  # a third party declares its output type in its plugin's module
            if manifest.output not in OUTPUT_TYPES:
                raise PlanError(
                    f"plugin {manifest.name} produces '{manifest.output}', but no record declares that output type (subclass video_extract.results.Output)"
                )
            return manifest
        raise PlanError(f"no plugin implements the '{op_name}' operation yet (installed: {', '.join(sorted(self.operations()))})")

    def operations(self) -> list[str]:
        return sorted({m.operation for m in self.manifests.values() if m.operation})

    def producer_of(self, type_name: str) -> Manifest | None:
        for manifest in self.manifests.values():
            if manifest.output == type_name and manifest.operation:  # enrichers produce only on request
                return manifest
        return None

    def plugin_class(self, name: str) -> type[Plugin]:
        if name not in self._plugin_classes:
            module_name, _, class_name = self.manifests[name].plugin.partition(":")
            try:
                self._plugin_classes[name] = getattr(importlib.import_module(module_name), class_name)
            except (ImportError, AttributeError) as exc:
                # A missing optional dependency disables this operation, not the whole request.
                raise PlanError(f"plugin {name} cannot be loaded ({type(exc).__name__}: {exc})") from None
        return self._plugin_classes[name]

    def plugin(self, name: str) -> Plugin:
        """The process-wide instance of a plugin (set up on first run by the executor)."""
        with self._lock:
            if name not in self._plugins:
                self._plugins[name] = self.plugin_class(name)(self.manifests[name])
            return self._plugins[name]

    # -- planning -----------------------------------------------------------------------------

    def plan(self, specs: Iterable[OutputSpec | Operation | str], info: MediaInfo, policy: ModelPolicy | None = None) -> Plan:
        """Resolve requested outputs into a Plan for this input.

        An output that cannot be made from this input (keyframes from an mp3) is recorded in
        ``plan.errors`` with the gap named; the others are planned normally. So is one that
        needs frames over the pixel budget: the audio of such a file is still read. ``policy``:
        which model names may be used, checked for every requested and pinned operation before
        any plugin looks at its model (a refused name is a UsageError).

        A plan depends only on the specs, the source types the file offers (or refuses), its
        name (said in a gap) and the plugins: one made before from the same is reused (a copy)
        once the plugins' ``validate`` checks it passed pass again, in the same order (a model
        file removed since fails them: the request is then planned afresh, to fail as it would).
        """
        from video_extract.media.limits import over_budget  # here: importing media loads PyAV, which discovery need not

        available = {"File"}
        refused: dict[str, str] = {}
        if info.video is not None:
            why = over_budget(info.video.width, info.video.height, still=info.is_image)
            if why is None:
                available.add("VideoStream")
            else:
                refused["VideoStream"] = why
        if info.audio:
            available.add("AudioStream")
        specs = [OutputSpec.of(item) for item in specs]
        twice = {n for n, count in Counter(s.operation.name for s in specs).items() if count > 1}
        if twice:
            raise UsageError(f"operation '{sorted(twice)[0]}' is requested twice; give it once with the parameters you want")
        if policy is not None:
            check_models(specs, policy)
        key = (
            len(OUTPUT_TYPES),
            json.dumps([s.to_dict() for s in specs], sort_keys=True),
            frozenset(available),
            tuple(sorted(refused.items())),
            Path(info.path).name,
        )
        manifests = tuple(self.manifests.values())
        with self._lock:
            known = self._plans.get(key)
            if known is not None:
                self._plans.move_to_end(key)
        if known is not None and _same(known[2], manifests) and self._still_valid(known[1]):
            return known[0].copy()
        checks: list[tuple[str, Operation]] = []
        plan = self._plan(specs, info, available, refused, checks)
        with self._lock:
            self._plans[key] = (plan.copy(), tuple(checks), manifests)
            while len(self._plans) > _PLANS_KEPT:
                self._plans.popitem(last=False)
        return plan

    def _still_valid(self, checks: Iterable[tuple[str, Operation]]) -> bool:
        try:
            for name, operation in checks:
                self.plugin(name).validate(operation)
        except Exception:  # noqa: BLE001 - whatever it is, planning afresh says it as planning does
            return False
        return True

    def _validate(self, manifest: Manifest, operation: Operation, checks: list[tuple[str, Operation]]) -> None:
        checks.append((manifest.name, operation))
        self.plugin(manifest.name).validate(operation)

    def _plan(self, specs: list[OutputSpec], info: MediaInfo, available: set[str], refused: dict[str, str], checks: list[tuple[str, Operation]]) -> Plan:
        plan = Plan()
        gathering = [s for s in specs if self._gathers(s)]
        # An input that a consumer takes with no parameters of its own (scenes for OCR on scene
        # frames, VAD for transcription) is the one the user asked for, if they asked for it.
        requested_types: dict[str, OutputSpec] = {}
        for spec in specs:
            try:
                requested_types.setdefault(self.for_operation(spec.operation.name).output, spec)
            except PlanError:
                continue
        for spec in [s for s in specs if s not in gathering]:
            try:
                plan.outputs[spec.operation.name] = self._resolve(spec, info, available, plan, 0, requested_types, refused, checks)
            except NotApplicable as exc:
                plan.skipped[spec.operation.name] = exc.message
            except PlanError as exc:
                plan.errors[spec.operation.name] = exc.message
        self._enrich(plan)
        # Last: they take what everything else produced; a gatherer that reads another's output
        # (the report reads fusion) after the gatherers that declare no inputs.
        for spec in sorted(gathering, key=lambda s: bool(self.for_operation(s.operation.name).inputs)):
            try:
                self._gather(spec, plan, checks)
            except PlanError as exc:
                plan.errors[spec.operation.name] = exc.message
        return plan

    def _gathers(self, spec: OutputSpec) -> bool:
        try:
            return self.for_operation(spec.operation.name).gathers_requested
        except PlanError:
            return False

    def _gather(self, spec: OutputSpec, plan: Plan, checks: list[tuple[str, Operation]]) -> str | None:
        """Plan a gatherer over the requested outputs; returns its stage id. A gatherer it
        declares as an input (fusion for the report) is requested with it: the report's data
        is published beside it, so the page can be rebuilt."""
        manifest = self.for_operation(spec.operation.name)
        plugin = self.plugin(manifest.name)
        self._validate(manifest, spec.operation, checks)
        include = getattr(spec.operation, "include", None)
        if include is not None:
            include = {canonical_name(op) for op in include}
        inputs = tuple((plan.stages[sid].output_type, sid) for op, sid in plan.outputs.items() if include is None or op in include)
        if all(type_name == "Metadata" for type_name, _ in inputs):  # every input has metadata: not enough to fuse
            name = spec.operation.name
            plan.errors[name] = (
                f"nothing to {'fuse' if name == 'fusion' else 'gather'}: request other operations with it (for example --ops scenes,transcription,objects,{name})"
            )
            return None
        for need in plugin.requires(spec.operation):
            if any(type_name == need.type for type_name, _ in inputs):
                continue
            producer = self.producer_of(need.type)
            if producer is None or not producer.gathers_requested:
                raise PlanError(f"{manifest.name} reads {need.type}, which no plugin that gathers the request produces")
            sid = self._gather(OutputSpec(operation=make_operation(producer.operation, need.params)), plan, checks)
            if sid is None:  # it had nothing to gather either (said in plan.errors)
                return None
            inputs += ((need.type, sid),)
        sid = plan.add(_stage(manifest, spec.operation, inputs))
        plan.outputs[spec.operation.name] = sid
        return sid

    def _enrich(self, plan: Plan) -> None:
        """Add enrichment stages whose operations are all requested, and publish them instead."""
        for manifest in self.manifests.values():
            rule = manifest.enriches
            if rule is None or rule.operation not in plan.outputs or not all(op in plan.outputs for op in rule.when_requested):
                continue
            producers = {plan.stages[sid].output_type: sid for op, sid in plan.outputs.items()}
            missing = [need.type for need in manifest.inputs if need.type not in producers]
            if missing:
                continue
            base = plan.stages[plan.outputs[rule.operation]]
            inputs = tuple((need.type, producers[need.type]) for need in manifest.inputs)
            plan.enriched[base.id] = rule.operation
            enriched = plan.add(_stage(manifest, base.operation, inputs))
            plan.outputs[rule.operation] = enriched
            self._rewire(plan, base.id, enriched)

    @staticmethod
    def _rewire(plan: Plan, base: str, enriched: str) -> None:
        """Requested outputs that read the base stage read the enriched one instead (text
        embeddings of a diarized transcript carry speakers). Only leaves are moved: a stage
        something else reads stays where it is."""
        for op, sid in list(plan.outputs.items()):
            stage = plan.stages[sid]
            if sid == enriched or base not in stage.upstream or plan.dependents_of(sid):
                continue
            inputs = tuple((t, enriched if s == base else s) for t, s in stage.inputs)
            moved = Stage(
                Stage.make_id(stage.plugin, stage.version, stage.operation, inputs), stage.plugin, stage.version, stage.operation, stage.output_type, inputs
            )
            if not any(other == sid for other_op, other in plan.outputs.items() if other_op != op):
                del plan.stages[sid]
            plan.outputs[op] = plan.add(moved)

    def _resolve(
        self,
        spec: OutputSpec,
        info: MediaInfo,
        available: set[str],
        plan: Plan,
        depth: int,
        requested_types: dict[str, OutputSpec],
        refused: dict[str, str],
        checks: list[tuple[str, Operation]],
    ) -> str:
        if depth > 16:
            raise PlanError(f"plugin inputs form a cycle at '{spec.operation.name}'")
        manifest = self.for_operation(spec.operation.name)
        self._check_imports(manifest)
        plugin = self.plugin(manifest.name)
        self._validate(manifest, spec.operation, checks)
        inputs: list[tuple[str, str]] = []
        for need in plugin.requires(spec.operation):
            if need.type in SOURCE_TYPES:
                if need.type in refused:
                    raise PlanError(refused[need.type])
                if need.type not in available:
                    raise NotApplicable(_gap_message(info, manifest.output, need.type))
                inputs.append((need.type, SOURCE))
                continue
            pinned = [s for s in spec.sources if self.for_operation(s.operation.name).output == need.type]
            if pinned:
                upstream = pinned[0]
            elif not need.params and need.type in requested_types and requested_types[need.type] is not spec:
                upstream = requested_types[need.type]
            else:
                producer = self.producer_of(need.type)
                if producer is None:
                    raise PlanError(f"no installed plugin produces {need.type}, which {manifest.name} needs")
                upstream = OutputSpec(operation=make_operation(producer.operation, need.params))
            inputs.append((need.type, self._resolve(upstream, info, available, plan, depth + 1, requested_types, refused, checks)))
        return plan.add(_stage(manifest, spec.operation, tuple(inputs)))

    def _check_imports(self, manifest: Manifest) -> None:
        """A plugin whose optional packages are missing fails when planned, naming what to install
        (finding a module does not import it: planning stays light)."""
        for module in manifest.imports:
            if module not in self._found:
                self._found[module] = importlib.util.find_spec(module) is not None
            if not self._found[module]:
                raise PlanError(missing_package(module, manifest.operation or manifest.name, manifest.extra))

    def describe_operations(self) -> list[dict]:
        """What ``video-extract ops`` prints: every operation, whether a plugin runs it, what it
        produces (its output type, files and record, from the declarations) and its parameters."""
        rows = []
        for name, cls in OPERATIONS.items():
            manifest = next((m for m in self.manifests.values() if m.operation == name), None)
            declared = OUTPUT_TYPES.get(manifest.output) if manifest else None
            params = [
                {
                    "name": field_name,
                    "type": _type_name(field.annotation),
                    "default": field.default,
                    "description": field.description or "",
                }
                for field_name, field in cls.model_fields.items()
            ]
            rows.append(
                {
                    "name": name,
                    "aliases": list(cls.aliases),
                    "summary": cls.summary,
                    "available": manifest is not None,
                    "plugin": f"{manifest.name} v{manifest.version} ({manifest.source})" if manifest else None,
                    "output": manifest.output if manifest else None,
                    "files": list(declared.files) if declared else [],
                    "record": declared.__name__ if declared else None,
                    "params": params,
                }
            )
        return rows


def check_models(specs: Iterable[OutputSpec], policy: ModelPolicy) -> None:
    """Every model a request names, nested ``sources`` included, is one ``policy`` allows."""
    stack = list(specs)
    while stack:
        spec = stack.pop()
        policy.check(spec.operation)
        stack.extend(spec.sources)


_registry: Registry | None = None
_registry_lock = threading.Lock()


def default_registry() -> Registry:
    """The process-wide registry: plugins (and the models they hold) are reused across files."""
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = Registry.discover()
        return _registry


#: Plans a registry keeps for reuse (a service sees the same few requests over and over).
_PLANS_KEPT = 256


def _same(kept: tuple[Manifest, ...], now: tuple[Manifest, ...]) -> bool:
    return len(kept) == len(now) and all(a is b for a, b in zip(kept, now, strict=True))


def _stage(manifest: Manifest, operation: Operation, inputs: tuple[tuple[str, str], ...]) -> Stage:
    return Stage(
        id=Stage.make_id(manifest.name, manifest.version, operation, inputs),
        plugin=manifest.name,
        version=manifest.version,
        operation=operation,
        output_type=manifest.output,
        inputs=inputs,
    )


def _gap_message(info: MediaInfo, output: str, missing: str) -> str:
    what = {"VideoStream": "video stream", "AudioStream": "audio stream"}.get(missing, missing)
    return f"{Path(info.path).name} has no {what}"


def _type_name(annotation) -> str:
    from typing import Literal, get_args, get_origin

    if get_origin(annotation) is Literal:
        return "|".join(str(a) for a in get_args(annotation))
    text = str(annotation) if get_args(annotation) else getattr(annotation, "__name__", None) or str(annotation)
    return text.replace("typing.", "").replace("NoneType", "None")
