"""A loopback OpenAI-compatible embeddings server (``POST /v1/embeddings``).

Speaks the wire format of OpenAI's API as vLLM, text-embeddings-inference and Ollama serve
it: ``{"model", "input": str | [str]}`` with ``Authorization: Bearer KEY`` ->
``{"object": "list", "data": [{"object": "embedding", "index": i, "embedding": [...]}],
"model", "usage"}``. Vectors are a hashed bag of the text's character uni- and bigrams (so
similar questions get similar vectors), ``DIM`` floats. ``fail`` makes it answer 500,
``delay`` sleeps before answering (to exceed the client's timeout); every request is counted
in ``requests`` and its inputs kept in ``inputs``.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field

import numpy as np
from aiohttp import web

DIM = 64


def vector(text: str) -> list[float]:
    v = np.zeros(DIM)
    grams = list(text) + [text[i : i + 2] for i in range(len(text) - 1)]
    for g in grams:
        h = int.from_bytes(hashlib.blake2b(g.encode(), digest_size=4).digest(), "big")
        v[h % DIM] += 1.0 if h & 1 else -1.0
    return v.tolist()


@dataclass
class FakeEmbeddingsServer:
    key: str = "test-embeddings-key"
    fail: bool = False
    delay: float = 0.0
    requests: int = 0
    unauthorised: int = 0
    inputs: list[str] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/embeddings", self._embeddings)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self.url

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _embeddings(self, request: web.Request) -> web.Response:
        self.requests += 1
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            self.unauthorised += 1
            return web.json_response({"error": {"message": "invalid api key"}}, status=401)
        body = await request.json()
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            return web.json_response({"error": {"message": "overloaded"}}, status=500)
        self.inputs += texts
        return web.json_response(
            {
                "object": "list",
                "data": [{"object": "embedding", "index": i, "embedding": vector(t)} for i, t in enumerate(texts)],
                "model": body.get("model", ""),
                "usage": {"prompt_tokens": sum(map(len, texts)), "total_tokens": sum(map(len, texts))},
            }
        )
