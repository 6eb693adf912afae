"""A DAG that misses its deadline: a run is due 5 s after it was queued and its task sleeps 30 s,
so the scheduler hands the executor the deadline alert's callback, which a worker runs."""

from datetime import timedelta

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG
from airflow.sdk.definitions.callback import SyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

with DAG(
    "airkafka_deadline",
    schedule=None,
    catchup=False,
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(seconds=5),
        callback=SyncCallback("airkafka_deadline_callback.mark", kwargs={"note": "missed"}),
    ),
) as dag:
    BashOperator(task_id="slow", bash_command="sleep 30")
