"""Alert delivery on a real Kafka broker to a real local HTTP receiver.

Each test reads its own topic, so a test sees only the alerts it produced.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson
import pytest
from aiohttp import web

from infra.kafka.broker import LocalKafka
from infra.topics import ensure_topics
from schemas.events import AlertRaised, RequestReceived
from schemas.topics import DEAD_LETTER, TopicSpec
from sinks.alerts.consumer import AlertConsumer
from sinks.alerts.webhooks import RetryPolicy, retry_after_s
from tests.harness import free_port, write_config
from tests.kafka_io import collect, produce

pytestmark = pytest.mark.integration

FAST = RetryPolicy(backoff_initial_s=0.01, backoff_max_s=0.05, max_retry_after_s=5.0)
SECRET = "Bearer s3cret-token-value"


@dataclass
class Hit:
    path: str
    at: float
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Receiver:
    """A webhook receiver that answers from a script (status, headers), then 200."""

    port: int
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)

    def url(self, path: str = "/hook/T000/B000/xyzsecretpath") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append(
            Hit(request.path, time.monotonic(), await request.json(), dict(request.headers))
        )
        status, headers = self.script.pop(0) if self.script else (200, {})
        # an error body that echoes what it got, as debugging receivers do
        echo = f"no: {request.headers.get('Authorization')} at {request.path}"
        return web.Response(status=status, headers=headers, text="ok" if status == 200 else echo)

    def alert_ids(self, path: str | None = None) -> list[str]:
        return [h.body["alert"]["id"] for h in self.hits if path is None or h.path == path]


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver(free_port())
    app = web.Application()
    app.router.add_post("/{tail:.*}", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", rec.port).start()
    try:
        yield rec
    finally:
        await runner.cleanup()


async def new_topic(bootstrap: str) -> str:
    name = f"tollgate.alerts.test-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, (TopicSpec(name, 1, retention_ms=3_600_000, key="subject"),))
    return name


def alert(kind: str = "budget.exhausted", **fields: Any) -> AlertRaised:
    values: dict[str, Any] = {
        "request_id": "",
        "tenant": "acme",
        "kind": kind,
        "severity": "critical",
        "subject": "tenant:acme/monthly",
        "message": "budget monthly for acme is spent: 500.00 of 500.00 USD",
        "value": 500.0,
        "limit": 500.0,
        "period_start": 1_767_225_600_000,
    }
    values.update(fields)
    return AlertRaised(**values)


def hook(url: str, **fields: Any) -> dict[str, Any]:
    return {"url": url, "headers": {"Authorization": SECRET}, "timeout_s": 2, **fields}


class WaitFor(Protocol):
    async def __call__(self, condition: Callable[[], bool], seconds: float = 30.0) -> None: ...


@asynccontextmanager
async def delivering(
    consumer: AlertConsumer,
) -> AsyncIterator[WaitFor]:
    """Runs ``consumer`` and hands out ``wait_for(condition, seconds)``; stops it on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))

    async def wait_for(condition: Callable[[], bool], seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert not task.done(), "the alert consumer ended early"
            assert time.monotonic() < deadline, "timed out waiting for delivery"
            await asyncio.sleep(0.05)

    try:
        yield wait_for
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


def consumer_for(
    tmp_path: Path, kafka: LocalKafka, topic: str, hooks: list[dict[str, Any]], **kw: Any
) -> AlertConsumer:
    config, _ = write_config(
        tmp_path / topic.rsplit("-", 1)[1], kafka.bootstrap_servers, alerts={"webhooks": hooks}
    )
    return AlertConsumer(config, topic=topic, policy=kw.pop("policy", FAST), **kw)


async def test_alert_is_posted_in_slack_compatible_shape(kafka: LocalKafka, tmp_path: Path) -> None:
    topic = await new_topic(kafka.bootstrap_servers)
    raised = alert(message="spent <all> & more\nof it")
    await produce(kafka.bootstrap_servers, topic, [raised])
    async with receiver() as rec:
        consumer = consumer_for(tmp_path, kafka, topic, [hook(rec.url())])
        async with delivering(consumer) as wait_for:
            await wait_for(lambda: len(rec.hits) >= 1)
    [hit] = rec.hits
    assert hit.path == "/hook/T000/B000/xyzsecretpath"
    assert hit.headers["Authorization"] == SECRET
    assert hit.headers["Content-Type"] == "application/json"
    assert hit.body["text"] == (
        "[CRITICAL] budget.exhausted tenant:acme/monthly: spent &lt;all&gt; &amp; more of it"
    )
    assert hit.body["alert"] == orjson.loads(raised.encode())
    assert consumer.stats.delivered == 1


async def test_5xx_is_retried_and_delivered_once_and_secrets_stay_out_of_logs(
    kafka: LocalKafka, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tollgate.sink.alerts")
    topic = await new_topic(kafka.bootstrap_servers)
    first, second = alert(), alert(kind="spend.spike", severity="warning")
    after = alert(kind="x.after")
    await produce(kafka.bootstrap_servers, topic, [first])
    async with receiver() as rec:
        rec.script = [(500, {}), (500, {})]
        consumer = consumer_for(tmp_path, kafka, topic, [hook(rec.url(), max_attempts=3)])
        async with delivering(consumer) as wait_for:
            await wait_for(lambda: consumer.stats.delivered == 1)
            # a receiver that never recovers: given up after max_attempts, the loop goes on
            rec.script = [(503, {})] * 3
            await produce(kafka.bootstrap_servers, topic, [second, after])
            await wait_for(lambda: consumer.stats.delivered == 2)
            await asyncio.sleep(0.5)
    assert rec.alert_ids() == [first.id] * 3 + [second.id] * 3 + [after.id]
    assert consumer.stats.gave_up == 1
    assert "giving up on alert " + second.id in caplog.text
    assert "s3cret" not in caplog.text and "xyzsecretpath" not in caplog.text
    assert "alerts.webhooks.0 (127.0.0.1)" in caplog.text


async def test_429_retry_after_is_honoured_and_capped(kafka: LocalKafka, tmp_path: Path) -> None:
    topic = await new_topic(kafka.bootstrap_servers)
    first, second = alert(subject="a"), alert(subject="b")
    await produce(kafka.bootstrap_servers, topic, [first])
    async with receiver() as rec:
        rec.script = [(429, {"Retry-After": "1"})]
        policy = RetryPolicy(backoff_initial_s=0.01, backoff_max_s=0.05, max_retry_after_s=1.5)
        consumer = consumer_for(tmp_path, kafka, topic, [hook(rec.url())], policy=policy)
        async with delivering(consumer) as wait_for:
            await wait_for(lambda: consumer.stats.delivered == 1)
            rec.script = [(429, {"Retry-After": "3600"})]  # an hour: shortened to the cap
            await produce(kafka.bootstrap_servers, topic, [second])
            await wait_for(lambda: consumer.stats.delivered == 2, 10)
    assert rec.alert_ids() == [first.id, first.id, second.id, second.id]
    assert 0.95 <= rec.hits[1].at - rec.hits[0].at < 1.5
    assert 1.45 <= rec.hits[3].at - rec.hits[2].at < 2.5


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_s("7") == 7.0
    assert retry_after_s(None) is None and retry_after_s("soon") is None
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 120))
    assert 100 < (retry_after_s(later) or 0) <= 120


async def test_same_alert_id_twice_is_delivered_once(kafka: LocalKafka, tmp_path: Path) -> None:
    topic = await new_topic(kafka.bootstrap_servers)
    once, after = alert(), alert(subject="other")
    await produce(kafka.bootstrap_servers, topic, [once, once, after])
    async with receiver() as rec:
        consumer = consumer_for(tmp_path, kafka, topic, [hook(rec.url())])
        async with delivering(consumer) as wait_for:
            await wait_for(lambda: after.id in rec.alert_ids())
            await asyncio.sleep(0.5)
    assert rec.alert_ids() == [once.id, after.id]
    assert consumer.stats.duplicates == 1


async def test_kinds_filter_picks_the_webhooks(kafka: LocalKafka, tmp_path: Path) -> None:
    topic = await new_topic(kafka.bootstrap_servers)
    exhausted, spike, last = alert(), alert(kind="spend.spike"), alert(subject="last")
    await produce(kafka.bootstrap_servers, topic, [exhausted, spike, last])
    async with receiver() as rec:
        hooks = [
            hook(rec.url("/budgets"), kinds=["budget.exhausted", "budget.threshold"]),
            hook(rec.url("/everything")),
        ]
        consumer = consumer_for(tmp_path, kafka, topic, hooks)
        async with delivering(consumer) as wait_for:
            await wait_for(lambda: consumer.stats.delivered == 5)
            await asyncio.sleep(0.3)
    assert rec.alert_ids("/budgets") == [exhausted.id, last.id]
    assert rec.alert_ids("/everything") == [exhausted.id, spike.id, last.id]


async def test_undecodable_records_are_dead_lettered_and_delivery_goes_on(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    topic = await new_topic(kafka.bootstrap_servers)
    not_an_alert = RequestReceived(
        request_id="r1", tenant="acme", key_id="k", endpoint="/", model="m"
    )
    raised = alert()
    await produce(
        kafka.bootstrap_servers,
        topic,
        [
            (b"acme", b"\x00 not json"),
            not_an_alert,
            (b"acme", b'{"v": 9, "type": "alert.raised"}'),
            raised,
        ],
    )
    async with receiver() as rec:
        consumer = consumer_for(tmp_path, kafka, topic, [hook(rec.url())])
        async with delivering(consumer) as wait_for:
            await wait_for(lambda: len(rec.hits) >= 1)
    assert rec.alert_ids() == [raised.id]
    assert consumer.stats.dead_lettered == 3
    dead = await collect(
        kafka.bootstrap_servers,
        DEAD_LETTER.name,
        lambda r: dict(r.headers).get("tollgate-source", b"").startswith(topic.encode()),
        expected=3,
        wait_s=15,
        linger=0.5,
    )
    assert len(dead) == 3 and dead[0].value == b"\x00 not json"
    assert b"expected alert.raised" in dict(dead[1].headers)["tollgate-reason"]


async def test_offset_moves_only_after_delivery(kafka: LocalKafka, tmp_path: Path) -> None:
    topic = await new_topic(kafka.bootstrap_servers)
    raised = alert()
    await produce(kafka.bootstrap_servers, topic, [raised])
    async with receiver() as rec:
        hooks = [hook(rec.url(), max_attempts=20)]
        slow = RetryPolicy(backoff_initial_s=0.2, backoff_max_s=0.2)
        rec.script = [(503, {})] * 100
        # stopped while retrying: not delivered, not given up, so not committed
        consumer = consumer_for(tmp_path, kafka, topic, hooks, policy=slow)
        async with delivering(consumer) as wait_for:
            await wait_for(lambda: len(rec.hits) >= 2)
        assert consumer.stats.delivered == consumer.stats.gave_up == 0
        rec.script = []
        again = consumer_for(tmp_path, kafka, topic, hooks)
        async with delivering(again) as wait_for:
            await wait_for(lambda: again.stats.delivered == 1)
        # committed now: a third start (with an empty memory of ids) posts nothing
        hits = len(rec.hits)
        third = consumer_for(tmp_path, kafka, topic, hooks)
        async with delivering(third):
            await asyncio.sleep(3)
    assert len(rec.hits) == hits and rec.hits[-1].body["alert"]["id"] == raised.id


async def test_old_alerts_are_not_replayed_into_a_new_webhook(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    topic = await new_topic(kafka.bootstrap_servers)
    old, fresh = alert(ts=int(time.time() * 1000) - 2 * 86_400_000), alert(subject="fresh")
    await produce(kafka.bootstrap_servers, topic, [old, fresh])
    async with receiver() as rec:
        consumer = consumer_for(tmp_path, kafka, topic, [hook(rec.url())])
        async with delivering(consumer) as wait_for:
            await wait_for(lambda: len(rec.hits) >= 1)
    assert rec.alert_ids() == [fresh.id] and consumer.stats.stale == 1
