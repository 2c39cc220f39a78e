"""The steps every endpoint shares: request id, key, body, permission, route, events.

Endpoints (chat, embeddings, Anthropic messages) differ in translation only; who may call,
where the call goes and what gets recorded is decided here, once.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from starlette.requests import Request
from starlette.types import Receive

from ingress.admission.controller import NOT_METERED, Admission, Ticket
from ingress.admission.estimate import input_tokens
from ingress.auth import KeyStore, Principal
from ingress.errors import (
    BudgetExceededError,
    ClientClosedError,
    GatewayError,
    GuardBlockedError,
    PayloadTooLargeError,
    PermissionDeniedError,
)
from ingress.guards import Inspection, OutputBlocked, OutputGuard, StreamFilter, event_outputs
from ingress.log_context import request_id_var
from ingress.metrics import Metrics
from ingress.publisher import EventPublisher
from ingress.routing.router import RouteContext, Target
from ingress.routing.split import Assignment
from ingress.runtime import Runtime
from ingress.stream_outputs import StreamOutputs
from ingress.validation import parse_json_object
from schemas.events import (
    RequestReceived,
    RequestRefused,
    ResponseCompleted,
    ResponseFailed,
    new_event_id,
)
from schemas.tokens import count_text
from schemas.topics import REQUESTS

EVENT_TEXT_MAX = 512 * 1024
"""A request body or an answer's texts larger than this (in bytes) are left out of their
event (kept: ``too_large``): Kafka refuses a record past its message size (1 MB by
default), and a refused record would stop every event behind it."""
OFF_LOOP_BYTES = 256 * 1024
"""A request body larger than this is guarded and its tokens counted in a worker thread:
on the event loop a 7 MB prompt took 151 ms of inspection and 182 ms of tiktoken, and
every other request on the loop waited that long."""
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_TAG = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
EXPERIMENT_HEADER = "x-tollgate-experiment"
VARIANT_HEADER = "x-tollgate-variant"


_P = ParamSpec("_P")
_R = TypeVar("_R")


async def _cpu(call: Call, fn: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """``fn`` on the event loop for a small body, in a worker thread for a large one (the
    thread's hand-off costs more than the work below ``OFF_LOOP_BYTES``)."""
    if call.size <= OFF_LOOP_BYTES:
        return fn(*args, **kwargs)
    return await asyncio.to_thread(fn, *args, **kwargs)


def request_id_of(headers: Mapping[str, str]) -> str:
    given = headers.get("x-request-id")
    return given if given and _REQUEST_ID.match(given) else new_event_id()


def header_map(request: Request) -> dict[str, str]:
    """The request's headers as one dict (the first of a repeated name wins, as with
    Starlette's ``get``): built once, where each step reading a header through Starlette
    scanned the whole list again."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(request.scope["headers"])}


async def read_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The whole body, straight from the ASGI messages, within ``limit`` bytes."""
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(
            f"request body of {declared} bytes exceeds the {limit}-byte limit"
        )
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientClosedError("the client left while sending the request body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _utf8_size(texts: list[str]) -> int:
    return sum(len(text.encode()) for text in texts)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


@dataclass(slots=True)
class Call:
    """One request in flight."""

    rid: str
    who: Principal
    endpoint: str
    runtime: Runtime
    done: Callable[[], None]
    headers: dict[str, str]
    started: float = field(default_factory=time.perf_counter)
    size: int = 0
    """The request body's bytes."""
    model: str = ""
    stream: bool = False
    published: bool = False
    ticket: Ticket = NOT_METERED
    deployment: str = ""
    """Where routing sent the request first."""
    inspection: Inspection | None = None
    """The inline guard's findings on the request (None: guards off for this call)."""
    output: OutputGuard | None = None
    experiment: str = ""
    variant: str = ""
    """Set by a replay key's headers or a live split; on every event of the call."""
    gone: Callable[[], Awaitable[bool]] | None = None
    """Whether the client has left (the request's ``is_disconnected``)."""

    def identity(self) -> dict[str, Any]:
        """The fields every event of the call carries: whose request, and its experiment."""
        who = self.who
        return {
            "request_id": self.rid,
            "tenant": who.tenant,
            "key_id": who.key_id,
            "team": who.team,
            "user": who.user,
            "org": who.org,
            "experiment": self.experiment,
            "variant": self.variant,
        }

    def response_headers(self, target: Target | None, attempts: int = 1) -> dict[str, str]:
        headers = {"x-request-id": self.rid, **self.ticket.headers}
        if self.experiment:
            headers[EXPERIMENT_HEADER], headers[VARIANT_HEADER] = self.experiment, self.variant
        if target is not None:
            headers["x-tollgate-deployment"] = target.deployment.id
            headers["x-tollgate-attempts"] = str(attempts)
        return headers


class Gateway:
    def __init__(
        self,
        keys: KeyStore,
        publisher: EventPublisher,
        metrics: Metrics,
        runtime: Runtime,
        max_body_bytes: int,
        *,
        admission: Admission,
    ) -> None:
        self.admission = admission
        self.keys = keys
        self.publisher = publisher
        self.metrics = metrics
        self.runtime = runtime
        self.max_body_bytes = max_body_bytes
        self._counting: set[asyncio.Task[None]] = set()
        """Large answers being counted off the loop before their event is published."""

    async def open(self, request: Request, endpoint: str) -> tuple[Call, dict[str, Any]]:
        given = header_map(request)
        rid = request.state.request_id = request_id_of(given)
        request_id_var.set(rid)
        who = self.keys.authenticate_headers(given)
        raw = await read_body(request.receive, given.get("content-length"), self.max_body_bytes)
        body = parse_json_object(raw)
        runtime = self.runtime
        headers = {k: v for k, v in given.items() if k.startswith("x-")}
        call = Call(
            rid,
            who,
            endpoint,
            runtime,
            runtime.enter(),
            headers,
            size=len(raw),
            gone=request.is_disconnected,
        )
        named = body.get("model")
        call.model = named[:200] if isinstance(named, str) else ""  # for a refusal's record
        return call, body

    async def route(self, call: Call, model: str, body: dict[str, Any]) -> list[Target]:
        allowed = call.who.models
        if not call.who.may_use(model):
            raise PermissionDeniedError(
                f"your key may not use `{model}`; allowed: {', '.join(sorted(allowed))}",
                param="model",
            )
        metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        end_user = body.get("user") if isinstance(body.get("user"), str) else None
        who = call.who
        context = RouteContext(
            who.tenant, call.headers, metadata or {}, end_user or who.user, who.key_id
        )
        split = self.experiment(call, model, context)
        targets = call.runtime.router.plan(model, context, split)
        call.deployment = targets[0].deployment.id if targets else ""
        await self.admit(call, model, targets, body)
        return targets

    def experiment(self, call: Call, model: str, context: RouteContext) -> Assignment | None:
        """Tag the call: a replay key's experiment headers, else the live split it falls in.
        Only keys with ``replay: true`` may name an experiment (its budget, not theirs)."""
        named, variant = call.headers.get(EXPERIMENT_HEADER), call.headers.get(VARIANT_HEADER)
        if named is not None or variant is not None:
            if not call.who.replay:
                raise PermissionDeniedError(
                    f"only replay keys may set {EXPERIMENT_HEADER} and {VARIANT_HEADER}"
                )
            if not (named and variant and _TAG.match(named) and _TAG.match(variant)):
                raise PermissionDeniedError(
                    f"{EXPERIMENT_HEADER} and {VARIANT_HEADER} need names of letters, digits, "
                    "`_`, `.` or `-` (at most 64)"
                )
            call.experiment, call.variant = named, variant
            return None
        split = call.runtime.router.split(model, context)
        if split is not None:
            call.experiment, call.variant = split.experiment, split.variant
        return split

    async def admit(
        self, call: Call, model: str, targets: list[Target], body: dict[str, Any]
    ) -> None:
        """Budgets and rate limits, decided in memory (``ingress.admission``); raises 429."""
        admission = self.admission
        if not admission.enabled:
            return
        runtime = call.runtime
        first = targets[0].upstream_model if targets else model
        where = call.deployment
        price = runtime.price_today(first, where) or runtime.price_today(model, where)
        who, deployment, experiment = call.who, where or None, call.experiment
        prompt = None
        if call.size > OFF_LOOP_BYTES and admission.metered(who, model, deployment, experiment):
            prompt = await asyncio.to_thread(input_tokens, body, model)
        decide = admission.decision(
            who, model, deployment, body, price, experiment=experiment, prompt_tokens=prompt
        )
        call.ticket = await admission.admit(decide, call.gone)

    async def received(
        self, call: Call, model: str, stream: bool, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Guard the request (``ingress.guards``), publish ``request.received`` with what the
        body policy keeps, and return the body to send upstream. A blocked request raises
        ``GuardBlockedError`` after it is recorded, so ``failed`` records the refusal too."""
        call.model, call.stream, call.published = model, stream, True
        who, ticket = call.who, call.ticket
        entry = ticket.entry
        inspection = await _cpu(call, call.runtime.guards.inspect, who.tenant, model, body)
        call.inspection = inspection
        stored, kept, verdict = body, "full", None
        if inspection is not None:
            stored, kept, verdict = inspection.stored, inspection.body_kept, inspection.verdict
        if call.size > EVENT_TEXT_MAX and kept != "none":
            stored, kept = {}, "too_large"
        prompt = ticket.prompt_tokens
        if prompt is None and kept != "full":  # the log cannot tell what was sent: count it
            sent = body if inspection is None else inspection.forward
            prompt = await _cpu(call, input_tokens, sent, model)
        self.publisher.publish(
            REQUESTS.name,
            RequestReceived(
                **call.identity(),
                endpoint=call.endpoint,
                model=model,
                stream=stream,
                body=stored,
                deployment=call.deployment,
                est_usd=str(ticket.usd),
                est_tokens=ticket.tokens,
                prompt_tokens=prompt,
                body_kept=kept,
                guard=verdict,
            ),
            None if entry is None else lambda p, o: self.admission.local.acked(entry, p, o),
        )
        if inspection is None:
            return body
        if inspection.blocked is not None:
            raise GuardBlockedError(inspection.blocked)
        return inspection.forward

    def checked_answer(
        self, call: Call, answer: dict[str, Any]
    ) -> tuple[dict[str, Any], OutputBlocked | None]:
        """A JSON answer after the output policy (redactions, placeholders restored), or the
        reason it must be withheld."""
        inspection = call.inspection
        if inspection is None or not inspection.policy.output_filters:
            return answer, None
        call.output = guard = OutputGuard(inspection)
        try:
            return guard.answer(answer), None
        except OutputBlocked as exc:
            return answer, exc

    def stream_filter(self, call: Call) -> StreamFilter | None:
        """The hold-back filter a relayed stream goes through, when the policy needs one."""
        inspection = call.inspection
        if inspection is None or not inspection.policy.output_filters:
            return None
        call.output = guard = OutputGuard(inspection)
        return StreamFilter(guard)

    def completed(
        self,
        call: Call,
        target: Target,
        attempts: list[dict[str, Any]],
        *,
        outputs: list[str],
        finish_reason: str | None,
        usage: dict[str, Any] | None,
        status: int = 200,
        ttft_ms: float | None = None,
        disconnected: bool = False,
    ) -> None:
        latency = _ms_since(call.started)
        provider = target.deployment.provider.name
        answered, kept, verdict = outputs, "full", None
        if call.inspection is not None:
            outputs, kept, verdict = event_outputs(call.inspection, call.output, outputs)
        if sum(map(len, outputs)) * 4 > EVENT_TEXT_MAX and _utf8_size(outputs) > EVENT_TEXT_MAX:
            outputs, kept = [], "too_large"
        event = ResponseCompleted(
            **call.identity(),
            provider=provider,
            model=target.public_model,
            status=status,
            latency_ms=latency,
            outputs=outputs,
            finish_reason=finish_reason,
            usage=usage,
            endpoint=call.endpoint,
            deployment=target.deployment.id,
            upstream_model=target.upstream_model,
            stream=call.stream,
            ttft_ms=ttft_ms,
            disconnected=disconnected,
            attempts=attempts,
            outputs_kept=kept,
            guard=verdict,
        )
        if usage or kept == "full":
            self.publisher.publish(REQUESTS.name, event)
        else:  # the processors cannot count what the event leaves out: count it here
            self._publish_counted(event, answered)
        m = self.metrics
        m.child(m.requests, call.endpoint, target.public_model, str(status)).inc()
        m.child(m.latency, call.endpoint, provider).observe(latency / 1000)
        if ttft_ms is not None:
            m.child(m.ttft, provider).observe(ttft_ms / 1000)
        if disconnected:
            m.child(m.disconnects, target.public_model).inc()
        if usage:
            runtime = call.runtime
            where = target.deployment.id
            price = runtime.price_today(target.upstream_model, where) or runtime.price_today(
                target.public_model, where
            )
            m.usage(target.public_model, usage, price)

    def _publish_counted(self, event: ResponseCompleted, answered: list[str]) -> None:
        """With the answer's tokens; a large answer is counted in a worker thread."""

        def count() -> int:
            return sum(count_text(text, event.model) for text in answered)

        if sum(map(len, answered)) <= OFF_LOOP_BYTES // 4:
            event.completion_tokens = count()
            self.publisher.publish(REQUESTS.name, event)
            return

        async def counted() -> None:
            event.completion_tokens = await asyncio.to_thread(count)
            self.publisher.publish(REQUESTS.name, event)

        task = asyncio.get_running_loop().create_task(counted())
        self._counting.add(task)
        task.add_done_callback(self._counting.discard)

    async def settle(self) -> None:
        """Until the answers being counted off the loop have published their events."""
        if self._counting:
            await asyncio.gather(*self._counting, return_exceptions=True)

    def stream_ended(
        self,
        call: Call,
        target: Target,
        attempts: list[dict[str, Any]],
        seen: StreamOutputs,
        *,
        status: int,
        ttft_ms: float,
        disconnected: bool,
    ) -> None:
        """A relayed stream is over: finished, broken by the provider, or left by the client."""
        self.completed(
            call,
            target,
            attempts,
            outputs=seen.outputs(),
            finish_reason=seen.finish_reason or ("error" if status != 200 else None),
            usage=seen.usage,
            status=status,
            ttft_ms=ttft_ms,
            disconnected=disconnected,
        )

    def failed(self, call: Call, error: GatewayError) -> None:
        label = call.model if call.runtime.router.serves(call.model) else "unknown"
        self.metrics.requests.labels(call.endpoint, label, str(error.status)).inc()
        if error.status == 429:
            if isinstance(error, BudgetExceededError):
                reason = "budget"
            else:
                reason = "upstream" if call.published else "rate"
            self.metrics.rate_limited.labels(reason).inc()
        if not call.published:
            self._refused(call, error)
            return
        last = error.attempts[-1] if error.attempts else {}
        self.publisher.publish(
            REQUESTS.name,
            ResponseFailed(
                **call.identity(),
                provider=str(last.get("provider") or ""),
                model=call.model,
                status=error.status,
                latency_ms=_ms_since(call.started),
                error_type=error.type,
                error_message=error.message[:2000],
                endpoint=call.endpoint,
                stream=call.stream,
                attempts=error.attempts,
                deployment=str(last.get("deployment") or call.deployment),
            ),
        )

    def _refused(self, call: Call, error: GatewayError) -> None:
        """Refused before ``request.received``: recorded in the audit log all the same."""
        self.publisher.publish(
            REQUESTS.name,
            RequestRefused(
                **call.identity(),
                model=call.model,
                status=error.status,
                error_type=error.type,
                error_code=error.code,
                error_message=error.message[:2000],
                endpoint=call.endpoint,
                stream=call.stream,
            ),
        )
