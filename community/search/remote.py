"""An operator's own embeddings server in place of the packaged encoder (``BOT_EMBEDDINGS_URL``).

Any server speaking OpenAI's ``POST /v1/embeddings`` (``{"model", "input": [texts]}`` ->
``{"data": [{"index", "embedding"}]}``) will do, e.g. bge-m3 behind vLLM, text-embeddings-
inference or Ollama in the operator's data centre. Called with aiohttp (never blocking the
event loop), with a timeout per request and a circuit breaker: after
``CircuitBreaker.failures`` failures in a row no request is made for ``cooldown`` seconds, then
one trial request decides. Whenever the server cannot help, the caller falls back to the
lexical path (``None`` from :meth:`RemoteEncoder.aembed_query`), so members never wait on
a dead server or see an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

import aiohttp
import numpy as np

__all__ = ["CircuitBreaker", "EmbeddingsUnavailable", "RemoteEncoder"]

log = logging.getLogger(__name__)

MAX_BATCH = 64


class EmbeddingsUnavailable(RuntimeError):
    """The embeddings server failed, timed out, answered nonsense, or the circuit is open."""


@dataclass
class CircuitBreaker:
    """Closed: requests go. ``failures`` failures in a row open it for ``cooldown`` seconds;
    after that one request is let through (half-open): success closes it, failure reopens."""

    failures: int = 3
    cooldown: float = 30.0
    clock: Callable[[], float] = field(default=time.monotonic)
    _count: int = 0
    _open_until: float = 0.0
    _trial: bool = False

    @property
    def is_open(self) -> bool:
        return self._count >= self.failures and self.clock() < self._open_until

    def allow(self) -> bool:
        if self._count < self.failures:
            return True
        if self.clock() < self._open_until or self._trial:
            return False
        self._trial = True  # half-open: this one request decides
        return True

    def success(self) -> None:
        self._count, self._trial = 0, False

    def failure(self) -> None:
        self._count += 1
        self._trial = False
        if self._count >= self.failures:
            self._open_until = self.clock() + self.cooldown


class RemoteEncoder:
    """The ``Encoder`` of ``semantic.SemanticIndex`` backed by an embeddings server. Only the
    asynchronous methods work (``remote = True`` tells the matcher and the knowledge service);
    ``dim`` is learnt from the first answer."""

    name = "remote"
    remote = True

    def __init__(
        self, url: str, *, model: str = "", key: str = "", timeout: float = 2.0, breaker: CircuitBreaker | None = None
    ) -> None:
        base = url.rstrip("/")
        self.url = (
            base
            if base.endswith("/embeddings")
            else (f"{base}/embeddings" if base.endswith("/v1") else f"{base}/v1/embeddings")
        )
        self.model = model
        self._key = key
        self.timeout = timeout
        self.breaker = breaker or CircuitBreaker()
        self.dim = 0
        self._session: aiohttp.ClientSession | None = None
        self.requests = 0  # made (for the metrics and the tests)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        raise EmbeddingsUnavailable("the embeddings server is asynchronous: use aembed()")

    async def aembed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised. Raises :class:`EmbeddingsUnavailable`."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if not self.breaker.allow():
            raise EmbeddingsUnavailable("circuit open")
        try:
            vecs = await self._post(texts)
        except EmbeddingsUnavailable:
            self.breaker.failure()
            raise
        self.breaker.success()
        return vecs

    async def aembed_query(self, text: str) -> np.ndarray | None:
        """A question's vector, or None when the server cannot help now (the lexical path
        answers)."""
        try:
            return cast(np.ndarray, (await self.aembed([text]))[0])  # numpy indexing is untyped
        except EmbeddingsUnavailable as exc:
            log.warning("embeddings server unavailable, lexical matching only: %s", exc)
            return None

    async def _post(self, texts: list[str]) -> np.ndarray:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        body: dict[str, object] = {"input": texts}
        if self.model:
            body["model"] = self.model
        self.requests += 1
        try:
            async with self._session.post(
                self.url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout)
            ) as resp:
                if resp.status != 200:
                    raise EmbeddingsUnavailable(f"HTTP {resp.status}")
                payload = await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise EmbeddingsUnavailable(f"{type(exc).__name__}: {exc}") from exc
        return self._parse(payload, len(texts))

    def _parse(self, payload: object, n: int) -> np.ndarray:
        try:
            data = sorted(payload["data"], key=lambda d: d["index"])  # type: ignore[index]
            vecs = np.asarray([d["embedding"] for d in data], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbeddingsUnavailable(f"malformed answer: {exc}") from exc
        if vecs.ndim != 2 or vecs.shape[0] != n or vecs.shape[1] == 0 or not np.isfinite(vecs).all():
            raise EmbeddingsUnavailable(f"malformed answer: shape {vecs.shape} for {n} texts")
        if self.dim and vecs.shape[1] != self.dim:
            raise EmbeddingsUnavailable(f"dimension changed from {self.dim} to {vecs.shape[1]}")
        self.dim = int(vecs.shape[1])
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs / np.where(norms > 0, norms, 1.0)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
