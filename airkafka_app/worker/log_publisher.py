"""Tasks' output, published to ``<app id>-logs`` while they run (contract/task_logs.py), so that a
log outlives the worker's host: Airflow's UI reads an ended try's log there, and
``airkafka logs`` a shell task's.

Each run's lines wait in a buffer, sent as a chunk once a second or when the buffer is full; its
end sends what is left and an end record. A run without output sends nothing, so a ``true``
costs a closure and a dictionary lookup.
"""

from __future__ import annotations

import asyncio
import logging

import faust
from mode import Service

from airkafka_app.contract.commands import Command
from airkafka_app.contract.task_logs import CHUNK_BYTES, encode_chunk, encode_end, log_name, partition_of
from airkafka_app.worker.runners import Output

log = logging.getLogger(__name__)

FLUSH_S = 1.0


class _Buffer:
    def __init__(self, name: str, run: str, partitions: int) -> None:
        self.key = name.encode()
        self.partition = partition_of(name, partitions)
        self.run = run
        self.lines: list[str] = []
        self.size = 0
        self.seq = 0


class LogPublisher(Service):
    def __init__(self, topic: faust.TopicT, partitions: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self._topic = topic
        self._partitions = partitions
        self._buffers: dict[str, _Buffer] = {}  # run -> its unsent lines

    def output(self, command: Command, attempt: int) -> Output:
        """What takes the lines of this attempt's output."""
        run = f"{command.id}:{attempt}"

        def line(data: bytes) -> None:
            if (buffer := self._buffers.get(run)) is None:
                buffer = self._buffers[run] = _Buffer(log_name(command), run, self._partitions)
            text = data.decode("utf-8", errors="replace").rstrip("\n")
            buffer.lines.append(text)
            buffer.size += len(text) + 1
            if buffer.size >= CHUNK_BYTES:
                self._send(buffer)

        return line

    def end(self, command: Command, attempt: int) -> None:
        """The attempt has ended: what is left of its output, then its end."""
        if (buffer := self._buffers.pop(f"{command.id}:{attempt}", None)) is not None:
            self._send(buffer)
            self._post(buffer, encode_end(buffer.run))

    def _send(self, buffer: _Buffer) -> None:
        if buffer.lines:
            self._post(buffer, encode_chunk(buffer.run, buffer.seq, buffer.lines))
            buffer.seq += 1
            buffer.lines, buffer.size = [], 0

    def _post(self, buffer: _Buffer, value: bytes) -> None:
        # Sent in the order posted, which is each run's order on its partition.
        sent = asyncio.ensure_future(self._topic.send(key=buffer.key, value=value, partition=buffer.partition))
        sent.add_done_callback(_log_unsent)

    @Service.timer(FLUSH_S)
    async def _flush(self) -> None:
        for buffer in self._buffers.values():
            self._send(buffer)


def _log_unsent(sent: asyncio.Future) -> None:
    if not sent.cancelled() and sent.exception() is not None:
        log.warning("a task's output not sent to the logs topic: %r", sent.exception())
