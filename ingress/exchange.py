"""One call to one deployment: adapter (translation) + transport (HTTP), nothing else.

Retries, breakers and fallbacks live in ``ingress.dispatch``; this module turns one attempt
into a canonical answer, a canonical chunk stream, or a typed failure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ingress.providers.base import Adapter, Failure, Json, StreamDecoder, UpstreamCall
from ingress.transport import Streaming, Transport, TransportError


class ProviderFailure(Exception):
    """The provider answered with an error (in its own format, already read)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class BrokenStream(Exception):
    """The stream failed after it started: nothing can be retried, the client is told."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


async def _answer(adapter: Adapter, transport: Transport, call: UpstreamCall) -> bytes:
    answer = await transport.send(call)
    if answer.status >= 300:
        raise ProviderFailure(adapter.failure(answer.status, answer.body, answer.headers))
    return answer.body


def _unreadable(transport: Transport, exc: Exception) -> ProviderFailure:
    return ProviderFailure(
        Failure(502, f"{transport.name} sent an answer the gateway cannot read: {exc}")
    )


async def chat(
    adapter: Adapter, transport: Transport, body: Json, upstream_model: str, public_model: str
) -> Json:
    payload = await _answer(adapter, transport, adapter.chat_call(body, upstream_model, False))
    try:
        return adapter.chat_result(payload, public_model)
    except (ValueError, KeyError, TypeError) as exc:
        raise _unreadable(transport, exc) from exc


async def embeddings(
    adapter: Adapter, transport: Transport, body: Json, upstream_model: str, public_model: str
) -> Json:
    payload = await _answer(adapter, transport, adapter.embeddings_call(body, upstream_model))
    try:
        return adapter.embeddings_result(payload, public_model, body)
    except (ValueError, KeyError, TypeError) as exc:
        raise _unreadable(transport, exc) from exc


class ChunkStream:
    """Canonical chunks of one provider stream. ``first()`` waits for the first chunk, so a
    failure before anything reached the client is still a ``ProviderFailure`` (retryable);
    later failures are ``BrokenStream``."""

    def __init__(self, streaming: Streaming, decoder: StreamDecoder, name: str) -> None:
        self._streaming = streaming
        self._decoder = decoder
        self._name = name
        self._bytes = streaming.chunks()
        self._pending: list[Json] = []
        self._done = False

    async def _pull(self) -> bool:
        """Fill ``_pending``; False at the end of the stream."""
        while not self._pending:
            if self._done:
                return False
            try:
                data = await anext(self._bytes)
                self._pending = self._decoder.feed(data)
            except StopAsyncIteration:
                self._done = True
                self._pending = self._decoder.close()
            except ValueError as exc:
                self._decoder.error = Failure(502, f"{self._name} sent a bad stream: {exc}")
            if self._decoder.error is not None:
                raise ProviderFailure(self._decoder.error)
        return True

    async def first(self) -> None:
        try:
            await self._pull()
        except (TransportError, ProviderFailure):
            self.close()
            raise

    async def __aiter__(self) -> AsyncIterator[Json]:
        try:
            while True:
                try:
                    more = await self._pull()
                except ProviderFailure as exc:
                    raise BrokenStream(exc.failure) from exc
                except TransportError as exc:
                    status = 504 if exc.timed_out else 502
                    raise BrokenStream(Failure(status, str(exc), "upstream_error")) from exc
                if not more:
                    return
                chunks, self._pending = self._pending, []
                for chunk in chunks:
                    yield chunk
        finally:
            self.close()

    def close(self) -> None:
        self._streaming.close()


async def chat_stream(
    adapter: Adapter, transport: Transport, body: Json, upstream_model: str, public_model: str
) -> ChunkStream:
    streaming = await transport.stream(adapter.chat_call(body, upstream_model, True))
    if streaming.status >= 300:
        payload = await streaming.read_all()
        raise ProviderFailure(adapter.failure(streaming.status, payload, streaming.headers))
    stream = ChunkStream(streaming, adapter.stream_decoder(public_model), transport.name)
    await stream.first()
    return stream
