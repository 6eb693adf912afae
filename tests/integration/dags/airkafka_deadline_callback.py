"""The deadline alert's callback of airkafka_deadline.py: it leaves its mark where the test looks,
with the process that ran it. Importable by path: the DAGs folder is on Airflow's sys.path."""

import os
from pathlib import Path


def mark(note: str, **context) -> None:
    Path(os.environ["DAG_TEST_TMP"], "deadline-callback").write_text(f"{note} {os.getpid()}\n")
