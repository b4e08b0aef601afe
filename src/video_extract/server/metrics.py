"""``GET /metrics``: what an operator graphs and alerts on, in Prometheus' text format."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from video_extract.results import FileResult

STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class Metrics:
    """One registry per app (several apps in one process keep separate counts)."""

    def __init__(self, counts: Callable[[], dict[str, int]], queue_length: Callable[[], int]):
        self.registry = CollectorRegistry()
        self.finished_total = Counter("video_extract_tasks_finished", "Jobs and batches that reached a final state", ["kind", "state"], registry=self.registry)
        self.stage_seconds = Histogram(
            "video_extract_stage_seconds", "Seconds per executed stage, by plugin", ["plugin", "cached"], buckets=STAGE_BUCKETS, registry=self.registry
        )
        self.cache_total = Counter("video_extract_cache_lookups", "Stage cache lookups of jobs (hit or miss)", ["result"], registry=self.registry)
        self.upload_bytes = Counter("video_extract_upload_bytes", "Bytes received in completed uploads", registry=self.registry)
        self.rejected_total = Counter("video_extract_rejected_requests", "Requests refused, by status code", ["status"], registry=self.registry)
        self.registry.register(_Live(counts, queue_length))

    def finished(self, kind: str, state: str) -> None:
        self.finished_total.labels(kind, state).inc()

    def observe_result(self, result: FileResult) -> None:
        for stage in result.stages:
            if stage.status != "ok":
                continue
            self.stage_seconds.labels(stage.plugin, "true" if stage.cached else "false").observe(stage.seconds)
            self.cache_total.labels("hit" if stage.cached else "miss").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Live:
    """Gauges read at scrape time: tasks by state, queue length."""

    def __init__(self, counts: Callable[[], dict[str, int]], queue_length: Callable[[], int]):
        self.counts, self.queue_length = counts, queue_length

    def collect(self):
        states = GaugeMetricFamily("video_extract_tasks", "Jobs and batches the server knows, by state", labels=["state"])
        for state, count in self.counts().items():
            states.add_metric([state], count)
        yield states
        yield GaugeMetricFamily("video_extract_queue_length", "Tasks waiting for a worker", value=self.queue_length())
