"""AirKafka: Airflow work over Kafka. ``faust -A airkafka_app worker`` starts a worker.

The package imports without Faust, because the Airflow executor runs in Airflow's
interpreter, where Faust cannot be installed. The Faust app loads on first use of ``app``.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(f"module 'airkafka_app' has no attribute {name!r}")
    # Importing these registers the agent, the tables, the web views, the CLI commands and the
    # worker class.
    import airkafka_app.agents.intake  # noqa: F401
    import airkafka_app.cli  # noqa: F401
    import airkafka_app.heap  # noqa: F401
    import airkafka_app.log_server  # noqa: F401
    import airkafka_app.metrics  # noqa: F401
    import airkafka_app.replay  # noqa: F401
    import airkafka_app.retention  # noqa: F401
    import airkafka_app.shutdown  # noqa: F401
    import airkafka_app.web.cluster  # noqa: F401
    import airkafka_app.web.dashboard  # noqa: F401
    import airkafka_app.web.dead_letters  # noqa: F401
    import airkafka_app.web.views  # noqa: F401
    from airkafka_app.application import app

    return app
