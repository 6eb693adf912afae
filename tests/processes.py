"""Process checks shared by the tests."""

import asyncio
import time


def is_running(pid: int) -> bool:
    """A killed orphan can stay a zombie until PID 1 reaps it; that counts as ended."""
    try:
        status = open(f"/proc/{pid}/status").read()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status and "\nState:\tX" not in status


async def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)
