"""Retention: the tables keep an ended task's record for ``AIRKAFKA_RETENTION_S`` (7 days) after its
last change, then delete it, with a tombstone on its changelog, which Kafka's compaction then
removes. A command for a task whose record is gone starts it anew, as attempt 1.
"""

from __future__ import annotations

import logging
import time

from airkafka_app.worker.parts import Parts

log = logging.getLogger(__name__)


def install(parts: Parts) -> None:
    """A timer that deletes the ended records past retention, every minute or oftener."""
    app, settings = parts.app, parts.settings

    async def expire_old_records() -> None:
        if app.rebalancing or app.should_stop:
            return
        await expire(parts)

    app.timer(min(60.0, settings.retention_s / 4), name="expire_old_records")(expire_old_records)


async def expire(parts: Parts) -> None:
    settings = parts.settings
    before = time.time() - settings.retention_s
    for queue in parts.queues.values():
        began = time.monotonic()
        if deleted := await queue.tasks.expire(before):
            log.info(
                "%d records of queue %s ended over %gs ago deleted in %.1fs",
                deleted,
                queue.name,
                settings.retention_s,
                time.monotonic() - began,
            )
