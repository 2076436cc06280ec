"""``GET /metrics``: the desk's figures for Prometheus (docs/metrics.md lists every metric).

Two kinds of figures, for a desk that runs as several processes on several hosts:

- The desk's own (mail in and out, the queue, processing latency, SLA breaches, open tickets)
  are read from the shared database at scrape time by :class:`DeskCollector`
  (``core.reports.metrics``), so every web process answers the same for the whole desk, whichever
  process or host did the work. Scrape any one of them (through the load balancer is fine).
- HTTP request latency is kept in the process that served the request (the
  :meth:`Metrics.middleware`): each web process exposes its own, and Prometheus scrapes
  every instance (``instance`` label), as with any multi-process web service.

Access (a Prometheus operator's usual ``authorization`` of a scrape config): with
``PULPIT_METRICS_TOKEN`` empty (the default) ``/metrics`` answers 404, as if it did not exist;
with it set, the scrape must send ``Authorization: Bearer <token>``: without it 401 (with
``WWW-Authenticate: Bearer``), with another token 403. No address-based exception: a
loopback peer behind a reverse proxy is every visitor.

Each app has its own :class:`~prometheus_client.CollectorRegistry` (never the process-global
one), so apps built in tests do not collide.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import time
from collections.abc import Iterator
from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from core.clock import utcnow
from core.reports.metrics import desk_figures

log = logging.getLogger(__name__)

# Seconds from a mail's arrival to the end of its processing.
MAIL_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
# The classic text format (what generate_latest writes), understood by every Prometheus since
# 2.0; Litestar appends "; charset=utf-8".
EXPOSITION = "text/plain; version=0.0.4"
HTTP_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class DeskCollector(Collector):
    """The database's figures, queried afresh at every scrape (``core.reports.metrics``)."""

    def __init__(self, session_factory: Any) -> None:
        self.session_factory = session_factory

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        session = None
        try:
            session = self.session_factory()
            f = desk_figures(session, utcnow())
        except Exception:
            log.warning("metrics: the database did not answer", exc_info=True)
            yield GaugeMetricFamily(
                "pulpit_database_up", "1 when the last scrape read the database", value=0
            )
            return
        finally:
            if session is not None:
                with contextlib.suppress(Exception):  # read only: nothing to keep
                    session.rollback()
                session.close()
        yield GaugeMetricFamily(
            "pulpit_database_up", "1 when the last scrape read the database", value=1
        )
        yield CounterMetricFamily(
            "pulpit_mail_received",
            "Inbound mails stored since the start (SMTP, LMTP, IMAP, API)",
            value=f.mails_stored,
        )
        yield CounterMetricFamily(
            "pulpit_mail_processed",
            "Inbound mails that left the queue processed (stored minus received, quarantined "
            "and ignored ones)",
            value=f.mails_processed,
        )
        inbound = GaugeMetricFamily(
            "pulpit_inbound_messages",
            "Inbound mails now in each state other than processed",
            labels=["state"],
        )
        for state, count in f.inbound_by_state.items():
            inbound.add_metric([state], count)
        yield inbound
        depth = GaugeMetricFamily(
            "pulpit_queue_depth",
            "Work waiting: inbound mails not yet processed, outgoing mails not yet sent",
            labels=["queue"],
        )
        depth.add_metric(["inbound"], f.inbound_by_state.get("received", 0))
        depth.add_metric(
            ["outbound"],
            f.outbound_by_state.get("pending", 0) + f.outbound_by_state.get("sending", 0),
        )
        yield depth
        yield GaugeMetricFamily(
            "pulpit_inbound_oldest_waiting_seconds",
            "Age of the oldest inbound mail not yet processed (0 when none waits)",
            value=f.oldest_waiting_seconds,
        )
        yield _latency_histogram(f.latencies)
        yield CounterMetricFamily(
            "pulpit_outbound_mail_queued",
            "Outgoing mails queued since the start (one per recipient)",
            value=f.outbound_queued,
        )
        yield CounterMetricFamily(
            "pulpit_outbound_mail_sent",
            "Outgoing mails sent (queued minus pending, sending and failed ones)",
            value=f.mails_sent,
        )
        outbound = GaugeMetricFamily(
            "pulpit_outbound_mail",
            "Outgoing mails now in each state other than sent",
            labels=["state"],
        )
        for state, count in f.outbound_by_state.items():
            outbound.add_metric([state], count)
        yield outbound
        yield GaugeMetricFamily(
            "pulpit_outbound_oldest_pending_seconds",
            "Age of the oldest outgoing mail not yet sent (0 when none waits)",
            value=f.oldest_pending_outbound_seconds,
        )
        breaches = GaugeMetricFamily(
            "pulpit_sla_breaches_24h",
            "Tickets whose reaction or resolution target was breached in the last 24 hours",
            labels=["clock"],
        )
        for clock, count in f.breaches.items():
            breaches.add_metric([clock], count)
        yield breaches
        yield GaugeMetricFamily(
            "pulpit_tickets_overdue",
            "Open tickets past their reaction or resolution deadline now (not paused)",
            value=f.overdue,
        )
        open_tickets = GaugeMetricFamily(
            "pulpit_tickets_open",
            "Tickets not closed, by status category",
            labels=["category"],
        )
        for category, count in f.open_by_category.items():
            open_tickets.add_metric([category], count)
        yield open_tickets
        yield GaugeMetricFamily(
            "pulpit_metrics_query_seconds",
            "How long this scrape's database queries took",
            value=time.perf_counter() - started,
        )


def _latency_histogram(latencies: list[float]) -> GaugeHistogramMetricFamily:
    ordered = sorted(latencies)
    buckets: list[tuple[str, float]] = []
    at = 0
    for bound in MAIL_LATENCY_BUCKETS:
        while at < len(ordered) and ordered[at] <= bound:
            at += 1
        buckets.append((_le(bound), at))
    buckets.append(("+Inf", len(ordered)))
    return GaugeHistogramMetricFamily(
        "pulpit_mail_processing_seconds",
        "Seconds from a mail's arrival to its processing, over the mails processed in the "
        "last 5 minutes",
        buckets=buckets,
        gsum_value=sum(ordered),
    )


def _le(bound: float) -> str:
    return repr(float(bound))


class Metrics:
    """One app's registry: the desk collector and the HTTP latency histogram."""

    def __init__(self, session_factory: Any, token: str) -> None:
        self.token = token
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(DeskCollector(session_factory))
        self.http_latency = Histogram(
            "pulpit_http_request_duration_seconds",
            "Seconds to answer an HTTP request in this web process, by route template",
            labelnames=("method", "route", "status"),
            buckets=HTTP_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """ASGI middleware timing every routed HTTP request (unrouted 404s are not timed: their
        paths are whatever a scanner made up)."""
        histogram = self.http_latency

        async def timed(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 0

            async def watch(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                await send(message)

            try:
                await app(scope, receive, watch)
            except BaseException:
                status = status or 500
                raise
            finally:
                route = scope.get("path_template") or "unrouted"
                histogram.labels(
                    scope.get("method", "GET"), route, f"{status // 100}xx" if status else "none"
                ).observe(time.perf_counter() - started)

        return timed


@get("/metrics", sync_to_thread=True, include_in_schema=False)
def metrics_endpoint(request: Request[Any, Any, State], state: State) -> Response[bytes]:
    metrics: Metrics = state.metrics
    if not metrics.token:
        return Response(b"Not Found\n", status_code=404, media_type="text/plain")
    auth = request.headers.get("authorization", "")
    if not auth.lower().startswith("bearer "):
        return Response(
            b"a bearer token is required (PULPIT_METRICS_TOKEN)\n",
            status_code=401,
            media_type="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    if not hmac.compare_digest(auth[7:].strip().encode(), metrics.token.encode()):
        return Response(b"wrong token\n", status_code=403, media_type="text/plain")
    return Response(generate_latest(metrics.registry), media_type=EXPOSITION)
