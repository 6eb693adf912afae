"""Retention: the tables keep an ended task's record for ``AIRKAFKA_RETENTION_S`` (7 days) after its
last change, then delete it, with a tombstone on its changelog, which Kafka's compaction then
removes. A command for a task whose record is gone starts it anew, as attempt 1.
"""

from __future__ import annotations

import logging
import time

from airkafka_app.application import app
from airkafka_app.contract.settings import settings
from airkafka_app.queues import queues

log = logging.getLogger(__name__)


@app.timer(min(60.0, settings.retention_s / 4))
async def expire_old_records() -> None:
    if app.rebalancing or app.should_stop:
        return
    before = time.time() - settings.retention_s
    for queue in queues.values():
        began = time.monotonic()
        if deleted := await queue.tasks.expire(before):
            log.info(
                "%d records of queue %s ended over %gs ago deleted in %.1fs",
                deleted,
                queue.name,
                settings.retention_s,
                time.monotonic() - began,
            )
