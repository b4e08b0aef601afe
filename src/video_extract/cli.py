"""The ``video-extract`` command.

Exit status: 0 when every requested operation succeeded, 1 when an input or an operation
failed (each failure is one line on stderr naming the file), 2 for a malformed command line.
Logs and tables go to stderr; stdout carries results only.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from video_extract.errors import UsageError, VideoExtractError, show_path
from video_extract.exiting import Terminated, exit_now, stop_on_sigterm
from video_extract.fsutil import human_size
from video_extract.outputs import ensure_output_root

log = logging.getLogger("video_extract")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own usage errors: one line, exit 2
        self.print_usage(sys.stderr)
        raise UsageError(message)


def _add_request_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="video, audio or image files, http(s):// or s3:// URLs (bulk: also folders and s3:// prefixes); default: the --spec file's inputs",
    )
    p.add_argument("--ops", action="append", default=[], help="comma-separated operations, or 'all' (see `video-extract ops`)")
    p.add_argument(
        "--op",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE,...",
        help='one operation with parameters, e.g. "keyframes:max_frames=20,min_interval_sec=1.5"',
    )
    p.add_argument("--spec", type=Path, help="YAML or JSON file of outputs (with parameters and sources) and, optionally, inputs")
    p.add_argument("-o", "--output-dir", type=Path, default=Path("video_extract_output"), help="where {stem}/ folders go (default: ./video_extract_output)")
    _add_cache_args(p)
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--models-dir", type=Path, help="directory of model files (else $VIDEO_EXTRACT_MODELS, installed packages, download)")
    _add_max_pixels(p)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging, with tracebacks of failing stages")
    p.add_argument("-q", "--quiet", action="store_true", help="errors only")


def _add_max_pixels(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-pixels",
        type=int,
        metavar="N",
        help="largest frame decoded, width x height (default: $VIDEO_EXTRACT_MAX_PIXELS or 89478485, Pillow's limit; 0: no limit)",
    )


def _add_cache_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", type=Path, help="cache location (default: $VIDEO_EXTRACT_CACHE or the user cache dir)")
    p.add_argument(
        "--cache-max-size",
        metavar="SIZE",
        help="evict least-recently-used entries above this size, e.g. 500M, 50G, none (default: $VIDEO_EXTRACT_CACHE_MAX_SIZE or 20G)",
    )
    p.add_argument(
        "--cache-verify",
        choices=["size", "full"],
        help="what a cache hit checks: file sizes, or sizes and BLAKE3 digests (default: $VIDEO_EXTRACT_CACHE_VERIFY or size)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="video-extract", description="Turn video and audio into structured data.")
    parser.add_argument("--version", action="version", version=f"video-extract {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    debug = sub.add_parser("debug", help="run stage by stage with timings and cache status (one file or a few)")
    _add_request_args(debug)
    debug.add_argument("--save-intermediates", action="store_true", help="also keep the outputs of internal stages under {stem}/intermediates/")

    perf = sub.add_parser("perf", help="one file at minimum latency: stages run side by side, results streamed as they exist")
    _add_request_args(perf)
    perf.add_argument("--stream", action="store_true", help="write events as JSON Lines (partial, complete, error, done) to stdout or --output")
    perf.add_argument("--output", type=Path, help="write the JSON Lines events to this file instead of stdout")
    perf.add_argument("--threads", type=int, help="stages run at once (default: cores + 1, at most 8)")

    bulk = sub.add_parser("bulk", help="many files at maximum throughput: worker pool (or Ray), progress, resume")
    _add_request_args(bulk)
    bulk.add_argument("--input-list", type=Path, help="text file of input paths or URLs, one per line (# comments); - reads them from stdin")
    bulk.add_argument("--workers", type=int, help="worker processes or Ray actors (default: number of cores)")
    bulk.add_argument("--engine", choices=["local", "ray"], default="local", help="local processes, or Ray (one machine or a cluster)")
    bulk.add_argument("--ray-address", help="join this Ray cluster (e.g. 10.0.0.5:6379) instead of starting a local Ray")
    bulk.add_argument(
        "--ray-keep-workers",
        type=float,
        metavar="MINUTES",
        help="leave the Ray actors (models loaded) on the cluster for the next command with the same settings; each ends after MINUTES idle",
    )
    bulk.add_argument("--retries", type=int, default=1, help="times a file is retried after its worker crashed or timed out (default 1)")
    bulk.add_argument("--timeout", type=float, help="seconds one file may take before its worker is killed (a worker's first file includes loading its models)")
    bulk.add_argument("--progress", choices=["auto", "rich", "jsonl", "none"], default="auto", help="auto: a bar on a terminal, nothing otherwise")
    bulk.add_argument(
        "--export",
        action="append",
        default=[],
        metavar="FORMAT",
        help="after the batch, also write the outputs as datasets under OUT/export/: parquet (a table per kind), webdataset (tar shards); comma-separated or repeated",
    )
    bulk.add_argument("--shard-size", type=int, default=1000, metavar="N", help="samples per WebDataset shard (default 1000)")
    bulk.add_argument("--export-audio", action="store_true", help="WebDataset samples also carry the audio track (KEY.wav; needs the audio operation)")

    serve = sub.add_parser("serve", help="HTTP service: uploads, jobs with events and results, batches (FastAPI; see /docs)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; any other needs API keys or --insecure)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free port, printed)")
    serve.add_argument("-o", "--output-dir", type=Path, default=Path("video_extract_output"), help="jobs/, batches/ and uploads/ go here, a folder per job")
    serve.add_argument("--api-keys-file", type=Path, help="bearer tokens, one per line (else $VIDEO_EXTRACT_API_KEYS, comma-separated)")
    serve.add_argument("--insecure", action="store_true", help="allow listening beyond loopback without API keys")
    serve.add_argument(
        "--allow-root", action="append", type=Path, default=[], metavar="DIR", help="path sources may be read under DIR (repeatable; default: none)"
    )
    serve.add_argument("--allow-private-networks", action="store_true", help="URL sources may reach loopback, private and link-local addresses")
    serve.add_argument("--max-upload-size", default="2G", metavar="SIZE", help="largest upload (default 2G)")
    serve.add_argument("--max-body-size", default="1M", metavar="SIZE", help="largest JSON request body (default 1M)")
    serve.add_argument("--max-ops", type=int, default=64, help="operations in one request (default 64)")
    serve.add_argument("--max-concurrent-jobs", type=int, help="jobs running at once (default: half the cores)")
    serve.add_argument("--max-queue", type=int, default=64, help="jobs waiting beyond those; more are refused with 429 (default 64)")
    serve.add_argument("--job-timeout", type=float, default=3600, metavar="SECONDS", help="a job running longer is stopped (default 3600)")
    serve.add_argument("--job-ttl", type=float, default=86400, metavar="SECONDS", help="finished jobs and their files are removed after this (default 86400)")
    serve.add_argument("--upload-ttl", type=float, default=86400, metavar="SECONDS", help="uploads no job uses are removed after this (default 86400)")
    serve.add_argument("--workers", type=int, help="worker processes of a batch (default: number of cores)")
    serve.add_argument(
        "--allow-model",
        action="append",
        default=[],
        metavar="NAME",
        help="a model name clients may ask for beyond the catalog (repeatable; default: catalog only)",
    )
    serve.add_argument(
        "--model-memory", metavar="SIZE", help="memory for models kept loaded between jobs (default: $VIDEO_EXTRACT_MODEL_MEMORY or half the RAM, at most 4G)"
    )
    serve.add_argument("--root-path", default="", help="the path prefix a reverse proxy serves this under, e.g. /video-extract")
    serve.add_argument("-v", "--verbose", action="store_true", help="debug logging and the access log")
    _add_cache_args(serve)
    serve.add_argument("--no-cache", action="store_true")
    serve.add_argument("--models-dir", type=Path)
    _add_max_pixels(serve)

    report = sub.add_parser("report", help="rebuild report.html in an output folder (OUT/STEM) from the JSON outputs there")
    report.add_argument("folder", type=Path, metavar="OUT/STEM", help="one input's output folder (it holds fusion.json)")
    report.add_argument(
        "--op", dest="overrides", action="append", default=[], metavar="report:KEY=VALUE", help="the report's parameters (report:max_thumbnails=100)"
    )

    plan = sub.add_parser("plan", help="show the stages a request needs for a file, without running them")
    _add_request_args(plan)

    ops = sub.add_parser("ops", help="list operations and their parameters")
    ops.add_argument("--json", action="store_true", help="machine-readable output")
    ops.add_argument("--markdown", action="store_true", help="the table of operations and their outputs (the README's)")

    models = sub.add_parser("models", help="list, fetch or verify the models operations use")
    models_sub = models.add_subparsers(dest="models_command", required=True, parser_class=_Parser)
    for name, text in (
        ("list", "every known model and where it is found"),
        ("fetch", "download models now (for later offline use)"),
        ("verify", "check models against their pinned sha256"),
    ):
        cmd = models_sub.add_parser(name, help=text)
        cmd.add_argument("names", nargs="*" if name != "fetch" else "+", metavar="NAME")
        cmd.add_argument("--models-dir", type=Path, help="directory of model files (else $VIDEO_EXTRACT_MODELS)")
        if name == "fetch":
            cmd.add_argument("--allow-unpinned", action="store_true", help="also download files whose checksum is not pinned")
        if name == "list":
            cmd.add_argument("--json", action="store_true")

    sizing = sub.add_parser("sizing", help="files per hour for a request on N machines, from a calibration bulk run of it on this hardware")
    sizing.add_argument("batch_dir", type=Path, metavar="BATCH_OUT", help="output folder of a bulk run of the request (with a fresh cache)")
    sizing.add_argument(
        "--duration", type=float, action="append", help="media seconds of the files to size for (repeat for a mix; default: the calibration files')"
    )
    sizing.add_argument("--nodes", type=int, default=1, help="machines like this one (Ray nodes)")
    sizing.add_argument("--workers", type=int, help="workers per machine (default: the calibration run's; calibrate with the count you will run)")
    sizing.add_argument("--json", action="store_true")

    cache = sub.add_parser("cache", help="inspect or empty the cache")
    cache_sub = cache.add_subparsers(dest="cache_command", required=True, parser_class=_Parser)
    stats = cache_sub.add_parser("stats", help="entries and bytes, per plugin")
    _add_cache_args(stats)
    stats.add_argument("--json", action="store_true")
    clear = cache_sub.add_parser("clear", help="remove entries")
    _add_cache_args(clear)
    clear.add_argument("--plugin", help="only this plugin's entries")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    on_sigterm = None
    try:
        args = build_parser().parse_args(argv)
        _setup_logging(getattr(args, "verbose", False), getattr(args, "quiet", False), args.command)
        if args.command in ("debug", "perf", "bulk") and threading.current_thread() is threading.main_thread():
            on_sigterm = stop_on_sigterm()
        commands = {
            "debug": _cmd_debug,
            "perf": _cmd_perf,
            "bulk": _cmd_bulk,
            "serve": _cmd_serve,
            "plan": _cmd_plan,
            "report": _cmd_report,
            "ops": _cmd_ops,
            "cache": _cmd_cache,
            "sizing": _cmd_sizing,
            "models": _cmd_models,
        }
        return commands[args.command](args)
    except VideoExtractError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated):
            print("terminated", file=sys.stderr)
            return 128 + signal.SIGTERM
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `video-extract ops | head`: the reader has all it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - a bug of ours: one line, the traceback only when asked
        if "-v" in argv or "--verbose" in argv:
            raise
        print(f"error: internal error: {type(exc).__name__}: {exc} (run again with -v for the traceback)", file=sys.stderr)
        return 1
    finally:
        if on_sigterm is not None:  # a program that called main() gets its own back
            signal.signal(signal.SIGTERM, on_sigterm)


#: Commands after which the process ends at once (``entry``): those that load models.
QUICK_EXIT_COMMANDS = ("debug", "perf", "bulk", "plan")


def entry() -> None:
    """The ``video-extract`` command (console script and ``python -m video_extract``).

    After a command that processed media, every output, summary and cache entry is written and
    closed when ``main`` returns; the interpreter's own shutdown would then spend a second or
    more tearing down torch, transformers and the model runtimes for nothing. So the process
    runs its exit handlers (temporary folders, child processes, Ray) and ends there. Library
    use (``main`` called in a process of its own) never takes this path.
    """
    argv = sys.argv[1:]
    code = main(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in QUICK_EXIT_COMMANDS:
        exit_now(code)
    sys.exit(code)


def _version() -> str:
    from video_extract import __version__

    return __version__


def _setup_logging(verbose: bool, quiet: bool, command: str) -> None:
    def rich_handler() -> logging.Handler:
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(console=Console(stderr=True), show_path=False, show_time=False, markup=False, rich_tracebacks=verbose)
        handler.setFormatter(logging.Formatter("%(message)s"))
        return handler

    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.INFO if command == "debug" else logging.WARNING
    log.handlers[:] = [_OnFirstRecord(rich_handler)]
    log.setLevel(level)
    log.propagate = False


class _OnFirstRecord(logging.Handler):
    """A handler made when the first record comes: importing rich took ~15 ms of every cold
    command, and a perf or quiet run usually logs nothing."""

    def __init__(self, make: Callable[[], logging.Handler]):
        super().__init__()
        self._make = make
        self._handler: logging.Handler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self._handler is None:
            self._handler = self._make()
        self._handler.handle(record)


def _client(args, executor: str = "debug", **options):
    """The one door: every command that processes media goes through a Client (``options``: the
    server's policies)."""
    from video_extract.client import Client

    return Client(
        **options,
        cache_dir=getattr(args, "cache_dir", None),
        output_dir=getattr(args, "output_dir", None) or "video_extract_output",
        use_cache=not getattr(args, "no_cache", False),
        models_dir=getattr(args, "models_dir", None),
        executor=executor,
        save_intermediates=getattr(args, "save_intermediates", False),
        threads=getattr(args, "threads", None),
        cache_max_size=_size_arg(getattr(args, "cache_max_size", None)),
        cache_verify=getattr(args, "cache_verify", None),
        max_pixels=getattr(args, "max_pixels", None),
    )


def _size_arg(text: str | None) -> int | str | None:
    if text is None:
        return "default"
    from video_extract.cache import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise UsageError(f"--cache-max-size: {exc}") from None


def _inputs(args, required: bool = True) -> list[str]:
    """The inputs named on the command line, else the spec file's ``inputs:``."""
    if args.inputs or args.spec is None:
        inputs = list(args.inputs)
    else:
        from video_extract.spec import load_spec_inputs

        inputs = load_spec_inputs(args.spec)
    if required and not inputs:
        raise UsageError("the following arguments are required: INPUT (or inputs: in the --spec file)")
    return inputs


def _cmd_debug(args) -> int:
    inputs = _inputs(args)
    client = _client(args, "debug", keep_models=len(inputs) != 1)  # one input: each model goes once no stage left needs it
    specs = client.request(args.ops, args.op, args.spec)
    results = [r.result for r in client.run_many(inputs, specs)]
    _print_timing(results)
    return _report(results)


def _cmd_perf(args) -> int:
    from video_extract.events import DoneEvent, input_failed
    from video_extract.sources import display_name

    inputs = _inputs(args)
    client = _client(args, "perf", keep_models=len(inputs) != 1)  # one input: each model goes once no stage left needs it
    specs = client.request(args.ops, args.op, args.spec)
    ensure_output_root(args.output_dir)
    try:
        sink = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    except OSError as exc:
        raise UsageError(f"cannot write the events file: {exc.strerror or exc}", args.output) from None
    failed = False
    try:
        for source in inputs:
            path = display_name(source)  # a URL without its credentials
            try:
                for event in client.execute_streaming(source, specs):
                    _show_event(event, path, args.stream, sink)
                    failed |= isinstance(event, DoneEvent) and event.status != "ok"
            except VideoExtractError as exc:
                if exc.exit_code == 2:
                    raise
                failed = True
                for event in input_failed(path, str(exc)):
                    _show_event(event, path, args.stream, sink, quiet=True)
                print(f"error: {exc}", file=sys.stderr)
    finally:
        if args.output:
            sink.close()
    return 1 if failed else 0


def _show_event(event, path, stream: bool, sink, quiet: bool = False) -> None:
    """``--stream``: every event as a JSON line; otherwise completions on stdout, problems on stderr."""
    if stream:
        sink.write(event.line() + "\n")
        sink.flush()
    elif quiet:
        return
    elif event.type == "error":
        print(f"error: {show_path(path)}: {event.op}: {event.error}", file=sys.stderr)
    elif event.type == "skipped":
        print(f"{show_path(path)}: {event.op} skipped: {event.reason}", file=sys.stderr)
    elif event.type == "complete":
        print(f"{event.elapsed:7.3f} s  {event.op:<18} -> {show_path(event.path)}")


def _cmd_bulk(args) -> int:
    inputs = _inputs(args, required=False)  # --input-list may name them instead
    client = _client(args, "debug")
    specs = client.request(args.ops, args.op, args.spec)
    batch = client.execute_bulk(
        inputs,
        specs,
        workers=args.workers,
        engine=args.engine,
        ray_address=args.ray_address,
        ray_keep_workers=args.ray_keep_workers,
        retries=args.retries,
        timeout=args.timeout,
        progress=args.progress,
        input_list=args.input_list,
        export=args.export,
        shard_size=args.shard_size,
        export_audio=args.export_audio,
    )
    totals = json.loads(batch.summary_path.read_text())["totals"]
    print(
        f"{totals['files']} files: {totals['ok']} ok, {totals['failed']} failed, {totals['skipped']} skipped "
        f"in {totals['seconds']:.1f} s ({totals['files_per_second'] or 0:.2f} files/s)"
        f"{'; ' + str(totals['not_media']) + ' not media' if totals['not_media'] else ''} -> {show_path(batch.summary_path)}",
        file=sys.stderr,
    )
    for export in batch.exports:
        left = f", {len(export.left_out)} left out (see its manifest.json)" if export.left_out else ""
        print(f"export {export.format}: {export.files} files{left} -> {show_path(export.path)}", file=sys.stderr)
    return 1 if batch.failed else 0


def _cmd_serve(args) -> int:
    try:
        import uvicorn

        from video_extract.server import ServerSettings, bind, check_settings, client_options, create_app, load_api_keys, uvicorn_config
    except ImportError as exc:
        from video_extract.errors import missing_package

        raise UsageError(missing_package(exc.name or "fastapi", "serve", "server")) from None
    settings = ServerSettings(
        host=args.host,
        port=args.port,
        output_dir=args.output_dir,
        api_keys=load_api_keys(args.api_keys_file),
        insecure=args.insecure,
        allow_roots=tuple(args.allow_root),
        allow_private_networks=args.allow_private_networks,
        max_upload_size=_size_flag(args.max_upload_size, "--max-upload-size"),
        max_body_size=_size_flag(args.max_body_size, "--max-body-size"),
        max_ops=args.max_ops,
        max_queue=args.max_queue,
        job_timeout=args.job_timeout,
        job_ttl=args.job_ttl,
        upload_ttl=args.upload_ttl,
        workers=args.workers,
        root_path=args.root_path,
        allowed_models=tuple(args.allow_model),
        model_memory_budget=_size_flag(args.model_memory, "--model-memory") if args.model_memory else None,
        **({"max_concurrent_jobs": args.max_concurrent_jobs} if args.max_concurrent_jobs else {}),
    )
    check_settings(settings)
    ensure_output_root(settings.output_dir)
    args.output_dir = settings.output_dir
    app = create_app(settings, _client(args, "perf", **client_options(settings)))
    try:
        sock = bind(settings)
    except OSError as exc:
        raise UsageError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}") from None
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    auth = f"{len(settings.api_keys)} API key(s)" if settings.api_keys else "no API keys (anyone who can connect may use it)"
    print(f"video-extract serving on http://{shown}:{port} ({auth}; API docs at /docs)", file=sys.stderr, flush=True)
    config = uvicorn_config(app, settings, log_level="info" if args.verbose else "warning")
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _size_flag(text: str, flag: str) -> int:
    from video_extract.cache import parse_size

    try:
        size = parse_size(text)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None
    if size is None:
        raise UsageError(f"{flag}: give a size (for example 500M); there is no unlimited")
    return size


def _cmd_plan(args) -> int:
    from video_extract.executors.base import input_name
    from video_extract.outputs import output_dir_for
    from video_extract.sources import display_name

    inputs = _inputs(args)
    client = _client(args, "debug")
    specs = client.request(args.ops, args.op, args.spec)
    failed = False
    for source in inputs:
        path = display_name(source)
        try:
            plan = client.plan(source, specs)
        except VideoExtractError as exc:
            if exc.exit_code == 2:
                raise
            print(f"error: {exc}", file=sys.stderr)
            failed = True
            continue
        print(f"{show_path(path)}: -> {show_path(output_dir_for(args.output_dir, input_name(source) or Path(source)))}")
        for line in plan.describe():
            print(f"  {line}")
        failed |= bool(plan.errors)
    return 1 if failed else 0


def _report(results) -> int:
    """One line per failure on stderr, where outputs are on stdout; the exit status."""
    failed = False
    for result in results:
        shown = show_path(result.input)
        if result.error:
            print(f"error: {shown}: {result.error}", file=sys.stderr)
            failed = True
            continue
        for op, status in result.ops.items():
            if status.status == "failed":
                print(f"error: {shown}: {op}: {status.error}", file=sys.stderr)
                failed = True
        ok_ops = [op for op, status in result.ops.items() if status.status == "ok"]
        skipped = "; ".join(f"{op}: {why}" for op, why in result.skipped().items())
        if ok_ops:
            print(f"{shown} -> {show_path(result.output_dir)}/  ({', '.join(ok_ops)}{'; skipped ' + skipped if skipped else ''})")
    return 1 if failed else 0


def _print_timing(results) -> None:
    if log.level > logging.INFO:
        return
    from rich.console import Console
    from rich.table import Table

    for result in results:
        if not result.stages:
            continue
        table = Table(title=f"{show_path(Path(result.input).name)}: {result.seconds:.2f} s", title_justify="left")
        for column in ("#", "stage", "plugin", "cache", "seconds", "status"):
            table.add_column(column, justify="right" if column in ("#", "seconds") else "left")
        for n, stage in enumerate(result.stages, 1):
            cache = "hit" if stage.cached else "-" if stage.status != "ok" else "miss"
            table.add_row(str(n), stage.label, stage.plugin, cache, f"{stage.seconds:.3f}", stage.status)
        Console(stderr=True).print(table)


def _cmd_report(args) -> int:
    from video_extract.client import Client

    path = Client(use_cache=False).report(args.folder, args.overrides or None)
    print(path)
    return 0


def _cmd_ops(args) -> int:
    from video_extract.client import Client

    rows = Client(use_cache=False).operations()
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    elif args.markdown:
        print(operations_table(rows))
    else:
        for row in rows:
            state = row["plugin"] if row["available"] else "not installed"
            aliases = f" (aliases: {', '.join(row['aliases'])})" if row["aliases"] else ""
            print(f"{row['name']}{aliases} - {row['summary']} [{state}]")
            if row["files"]:
                print(f"    -> {', '.join(row['files'])} ({row['record']})")
            for param in row["params"]:
                print(f"    {param['name']}: {param['type']} = {param['default']!r}  {param['description']}")
    return 0


def operations_table(rows: list[dict]) -> str:
    """The README's table of operations, derived from the output type declarations."""
    lines = ["| operation | aliases | output files | record (`video_extract.results`) | what it is |", "|---|---|---|---|---|"]
    for row in rows:
        if row["available"]:
            aliases = ", ".join(f"`{a}`" for a in row["aliases"])
            files = ", ".join(f"`{f}`" for f in row["files"])
            lines.append(f"| `{row['name']}` | {aliases} | {files} | `{row['record']}` | {row['summary']} |")
    return "\n".join(lines)


def _cmd_sizing(args) -> int:
    from video_extract.client import Client

    if args.nodes < 1 or (args.workers is not None and args.workers < 1):
        raise UsageError("--nodes and --workers take a count of at least 1")
    model = Client.cost_model(args.batch_dir)
    durations = args.duration or list(model.durations)
    per_hour = model.files_per_hour(durations, nodes=args.nodes, workers=args.workers)
    workers = args.workers or model.workers
    if args.json:
        stages = [{"stage": label, "seconds_per_file": fixed, "seconds_per_media_second": per_second} for label, fixed, per_second in model.table()]
        print(json.dumps({"files_per_hour": per_hour, "nodes": args.nodes, "workers": workers, "calibration_files": model.files, "costs": stages}, indent=2))
        return 0
    print(f"calibrated on {model.files} files with {model.workers} worker(s); seconds per file on one worker:")
    for label, fixed, per_second in model.table():
        print(f"  {label:<40} {fixed:8.3f} s + {per_second:.4f} s per media second")
    mean = sum(durations) / len(durations)
    print(f"{per_hour:,.0f} files/hour ({args.nodes} machine(s) x {workers} worker(s), files of {mean:.1f} s on average)")
    return 0


def _cmd_cache(args) -> int:
    cache = _client(args).cache
    if args.cache_command == "stats":
        stats = cache.stats()
        if args.json:
            print(json.dumps(stats, indent=2))
        else:
            print(
                f"{stats['root']}: {stats['entries']} entries, {human_size(stats['bytes'])} (cap {human_size(stats['max_bytes'])}, hits verified by {stats['verify']})"
            )
            for plugin, row in stats["plugins"].items():
                print(f"  {plugin}: {row['entries']} entries, {human_size(row['bytes'])}")
        return 0
    removed, freed = cache.clear(plugin=args.plugin)
    print(f"removed {removed} entries ({human_size(freed)}) from {cache.root}")
    return 0


def _cmd_models(args) -> int:
    args.no_cache = True
    client = _client(args)
    store = client.models
    store.allow_unpinned = getattr(args, "allow_unpinned", False)
    from video_extract.models.catalog import is_hub_id, resolve

    if args.models_command == "fetch" and any(is_hub_id(n) and resolve(n) is None for n in args.names):
        for name in args.names:  # Hugging Face ids outside the catalog go to the Hub's own cache
            print(f"{name}: {store.hub_path(name) if resolve(name) is None else store.path(name, progress=_progress_printer(name))}")
        return 0
    names = [store.spec(n).name for n in args.names] or sorted(store.catalog)
    if args.models_command == "list":
        rows = []
        for name in names:
            spec, location = store.spec(name), store.locate(name)
            rows.append(
                {
                    "name": name,
                    "kind": spec.kind,
                    "license": spec.license,
                    "found": location.source if location else None,
                    "path": str(location.path) if location else None,
                    "description": spec.description,
                }
            )
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for row in rows:
                where = f"{row['found']}: {row['path']}" if row["found"] else "not present (downloaded on first use)"
                print(f"{row['name']:<24} {row['kind']:<22} {where}")
        return 0
    if args.models_command == "fetch":
        for name in names:
            path = store.path(name, progress=_progress_printer(name))
            ready = client.prepare_model(name)  # what the first run would otherwise make
            print(f"{name}: {path}" + (f" (ready: {ready})" if ready else ""))
        return 0
    failed = False
    for name in names:
        ok, detail = store.verify(name)
        if store.locate(name) is None and not args.names:
            continue  # verifying everything: skip what is simply not fetched
        print(f"{name}: {'ok' if ok else 'FAILED'} - {detail}")
        failed |= not ok
    return 1 if failed else 0


def _progress_printer(name: str):
    last = [0.0]

    def show(done: int, total: int | None) -> None:
        import time as _time

        now = _time.monotonic()
        if now - last[0] > 0.5 or (total and done >= total):
            last[0] = now
            shown = f"{done / 2**20:.1f}/{total / 2**20:.1f} MiB" if total else f"{done / 2**20:.1f} MiB"
            print(f"\r{name}: {shown}", end="", file=sys.stderr, flush=True)

    return show


if __name__ == "__main__":
    entry()
