"""Deploys without loss: a signal stops intake, lets the running tasks finish, then stops the worker.

The first SIGTERM or SIGINT stops intake at once (messages not yet handled stay unacknowledged,
for the partitions' next owner) and gives the running tasks ``AIRKAFKA_SHUTDOWN_GRACE_S`` to
finish. What still runs then is killed and handed back: its attempt ends ``up_for_retry``, not
counted as a retry, and the next owner of its partition runs it again, as it does with the
tasks that waited. A last heartbeat tells the other workers that this one has stopped, and a
file in its data directory tells this worker when it starts again, so neither waits out the
loss bound. Then Faust stops the worker as usual. A second signal cuts the grace short, or,
once the tasks are handed back, ends the worker at once (exit 75) rather than wait for Kafka.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import faust

log = logging.getLogger(__name__)


class Worker(faust.Worker):
    """What ``faust -A airkafka_app worker`` runs (the assembly sets ``app.conf.Worker``)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._draining: asyncio.Future | None = None
        self._cut = asyncio.Event()

    def _on_sigterm(self) -> None:
        self._drain_then_stop(signal.SIGTERM)

    def _on_sigint(self) -> None:
        self._drain_then_stop(signal.SIGINT)

    def _drain_then_stop(self, signum: signal.Signals) -> None:
        if self._draining is None:
            self._draining = asyncio.ensure_future(self._drain(signum), loop=self.loop)
        elif not self._draining.done():
            log.warning("%s again: handing back the running tasks now", signum.name)
            self._cut.set()
        else:
            # The tasks are handed back; what is left to wait for is Kafka, which may be gone.
            log.warning("%s again: stopping now, without waiting for Kafka", signum.name)
            logging.shutdown()
            os._exit(os.EX_TEMPFAIL)

    async def _drain(self, signum: signal.Signals) -> None:
        parts = self.app.parts
        settings, pool = parts.settings, parts.pool
        log.info("%s: intake stopped; the running tasks have %gs to finish", signum.name, settings.shutdown_grace_s)
        try:
            finished, handed_back = await pool.drain(settings.shutdown_grace_s, self._cut)
            log.info("%d running tasks finished, %d handed back to their partitions' next owner", finished, handed_back)
            parts.liveness.note_clean_stop()
            await parts.liveness.announce_stop()
        finally:
            self._schedule_shutdown(signum)
