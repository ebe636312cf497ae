"""Prometheus metrics of one API process (its own registry, so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram("nbo_offer_latency_seconds", "offer decision latency", ["channel"],
                                 buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
                                 registry=self.registry)
        self.decisions = Counter("nbo_decisions_total", "offer decisions", ["channel", "degraded"], registry=self.registry)
        self.fallbacks = Counter("nbo_fallbacks_total", "degraded fallback decisions", ["channel"], registry=self.registry)
        self.outcomes = Counter("nbo_outcomes_total", "outcomes recorded", ["channel", "outcome"], registry=self.registry)
        self.redis_errors = Counter("nbo_redis_errors_total", "state reads that failed or timed out", registry=self.registry)
        self.decision_log_dropped = Gauge("nbo_decision_log_dropped", "decision records dropped (buffer full)",
                                          registry=self.registry)
        self.decision_log_sent = Gauge("nbo_decision_log_sent", "decision records the broker acknowledged",
                                       registry=self.registry)
        self.policy_file_refused = Gauge("nbo_policy_file_refused", "1 while the levers file on disk failed "
                                         "validation and the policy loaded before it keeps serving",
                                         registry=self.registry)
        self.catalog_file_refused = Gauge("nbo_catalog_file_refused", "1 while the latest edit of the catalog file "
                                          "failed validation and the catalog loaded before it keeps serving",
                                          registry=self.registry)
        self.evidence_read_failures = Gauge("nbo_online_evidence_read_failures", "reads of the online evidence "
                                            "that failed since start (the evidence read before kept serving)",
                                            registry=self.registry)
        self.evidence_age = Gauge("nbo_online_evidence_age_seconds", "seconds since the online evidence served was "
                                  "read (-1 before the first read)", registry=self.registry)
        self._labelled: dict[tuple[str, str], tuple[Histogram, Counter]] = {}
        self.stream = Gauge("nbo_stream_events", "stream worker counters (applied, duplicates, dead_letters)",
                            ["counter"], registry=self.registry)

    def observe_decision(self, channel: str, degraded: bool, latency_s: float) -> None:
        """Latency and count of one decision (the labelled series are looked up once per channel)."""
        key = (channel, "true" if degraded else "false")
        series = self._labelled.get(key)
        if series is None:
            series = self._labelled[key] = (self.latency.labels(channel), self.decisions.labels(*key))
        series[0].observe(latency_s)
        series[1].inc()
