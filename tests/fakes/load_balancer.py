"""A round-robin load balancer in front of several bot processes, as nginx would be
(README "Scaling out"): the fake Telegram's webhook updates and the sandbox's callbacks
reach the processes through it. Used by tests/test_scale_out.py and benchmarks/scale_out.py.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web


class RoundRobinProxy:
    """Forwards every request to the next backend in turn; one that refuses the connection
    (a dead process) is skipped for the next."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self._next = 0
        self.forwarded: Counter[str] = Counter()
        self._session: aiohttp.ClientSession | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in {"host", "content-length"}}
        for _ in range(len(self.backends)):
            backend = self.backends[self._next % len(self.backends)]
            self._next += 1
            try:
                async with self._session.request(
                    request.method, backend + request.path_qs, data=body, headers=headers
                ) as answer:
                    payload = await answer.read()
                    self.forwarded[backend] += 1
                    return web.Response(status=answer.status, body=payload, content_type=answer.content_type or None)
            except aiohttp.ClientConnectionError:
                continue  # that backend is down: the next one
        return web.Response(status=502)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        try:
            yield f"http://127.0.0.1:{runner.addresses[0][1]}"
        finally:
            await self._session.close()
            await runner.cleanup()
