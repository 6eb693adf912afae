"""Airflow's own log server on the worker, as Airflow's Celery workers run it: the API server
fetches a task's log from the host that ran it (``[logging] worker_log_server_port``, 8793 by
default) unless remote logging is set up. It runs in Airflow's interpreter
(``AIRKAFKA_AIRFLOW_PYTHON``), with the worker's Airflow settings: ``[api] secret_key`` must be
the API server's, which signs the requests. It ends when the worker does, killed or not: it
exits when its standard input, a pipe from the worker, closes.
"""

from __future__ import annotations

import asyncio
import logging
import os

from mode import Service

log = logging.getLogger(__name__)

SERVE = (
    "import os, sys, threading\n"
    "threading.Thread(target=lambda: (sys.stdin.buffer.read(), os._exit(0)), daemon=True).start()\n"
    "from airflow.utils.serve_logs.core import serve_logs\n"
    "serve_logs()\n"
)


class LogServer(Service):
    def __init__(self, airflow_python: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self._python = airflow_python
        # The worker's environment as it was assembled: the worker withholds its secrets from
        # tasks by removing them (AIRKAFKA_TASK_ENV_DENY, at its first start), and the log
        # server, not a task, needs Airflow's [api] secret_key among them.
        self._env = dict(os.environ)
        self.process: asyncio.subprocess.Process | None = None

    async def on_start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            self._python,
            "-c",
            SERVE,
            stdin=asyncio.subprocess.PIPE,
            start_new_session=True,
            env=self._env,
        )
        log.info("Airflow's log server started (pid %d) on [logging] worker_log_server_port", self.process.pid)

    @Service.task
    async def _watch(self) -> None:
        code = await self.process.wait()
        if not self.should_stop:
            log.warning("Airflow's log server exited %s: the Airflow UI cannot read this worker's task logs", code)

    async def on_stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                self.process.kill()
