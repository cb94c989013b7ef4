"""Prometheus metrics read from the gate at scrape time, so they never drift."""

from __future__ import annotations

from collections.abc import Iterator

try:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ModuleNotFoundError as exc:
    raise ModuleNotFoundError(
        f"upgrade_gate.metrics needs prometheus-client ({exc}): "
        "pip install 'helm-upgrade-gate[metrics]'"
    ) from exc

from upgrade_gate.core import Gate


class GateCollector(Collector):
    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    def collect(self) -> Iterator[Metric]:
        status = self.gate.status()
        counters = self.gate.counters
        yield GaugeMetricFamily(
            "upgrade_gate_active_operations",
            "Operations running in this pod now.",
            value=status.active,
        )
        yield GaugeMetricFamily(
            "upgrade_gate_draining",
            "1 while an upgrade fences new work in this pod.",
            value=int(status.draining),
        )
        yield GaugeMetricFamily(
            "upgrade_gate_upgradeable",
            "1 when this pod can be replaced without cutting work off.",
            value=int(status.upgradeable),
        )
        yield GaugeMetricFamily(
            "upgrade_gate_long_polls",
            "Long-polls on /upgradeable waiting in this pod now (hooks waiting on it).",
            value=self.gate.long_polls,
        )
        outcomes = CounterMetricFamily(
            "upgrade_gate_operations",
            "Operations finished or refused, by outcome.",
            labels=["outcome"],
        )
        outcomes.add_metric(["succeeded"], counters.succeeded)
        outcomes.add_metric(["failed"], counters.failed)
        outcomes.add_metric(["refused"], counters.refused)
        yield outcomes


def registry_for(gate: Gate) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(GateCollector(gate))
    return registry
