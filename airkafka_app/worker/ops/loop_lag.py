"""How long the event loop has been held: every step of the worker waits for it, heartbeats and
views included. A sampler sleeps ``SAMPLE_S`` at a time and notes how late it wakes."""

from __future__ import annotations

import asyncio

from mode import Service

SAMPLE_S = 0.05


class LoopLag(Service):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_s = 0.0  # the longest hold seen since the worker started

    @Service.task
    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.should_stop:
            slept = loop.time()
            await asyncio.sleep(SAMPLE_S)
            self.max_s = max(self.max_s, loop.time() - slept - SAMPLE_S)
