"""AirKafka: Airflow work over Kafka. ``faust -A airkafka_app worker`` starts a worker.

The package imports without Faust, because the Airflow executor runs in Airflow's
interpreter, where Faust cannot be installed; and importing any of its modules builds nothing.
``app`` is the worker, assembled from the environment's settings on first use
(``worker/assembly.py``).
"""

from typing import Any

_app: Any = None


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(f"module 'airkafka_app' has no attribute {name!r}")
    global _app
    if _app is None:
        from airkafka_app.contract.settings import Settings
        from airkafka_app.worker.assembly import build

        _app = build(Settings())
    return _app
