#!/usr/bin/env python3
"""The machine's limit for this work: `true` processes spawned and reaped per second by one
Python process with asyncio, the way a worker spawns them, with no queue or bookkeeping at all."""

from __future__ import annotations

import asyncio
import time


async def spawn_rate(count: int, concurrency: int = 32) -> float:
    slots = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with slots:
            process = await asyncio.create_subprocess_exec("true")
            await process.wait()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return count / (time.perf_counter() - started)


if __name__ == "__main__":
    print(f"{asyncio.run(spawn_rate(5000)):.0f} `true` processes/s")
