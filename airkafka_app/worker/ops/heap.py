"""The heap a worker has built once it is ready (modules, Faust's services, the app) lives as long
as the worker. Frozen, it is left out of the garbage collector's full passes: each of them
scanned its 87,000 objects in about 60 ms, holding the event loop that long every few seconds
while tasks or retention allocate (``bench/table_scale.py``)."""

from __future__ import annotations

import gc


async def freeze_startup_heap() -> None:
    """Run by Faust as an app task: once the first recovery, and the index rebuild with it, is over."""
    gc.collect()  # garbage frozen now would stay for good
    gc.freeze()
