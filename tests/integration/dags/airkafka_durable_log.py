"""One task on the queue ``durable_logs``, which only the worker of the durable-log test serves."""

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG("airkafka_durable_log", schedule=None, catchup=False) as dag:
    BashOperator(
        task_id="speak", bash_command="echo airkafka-durable-line-1; echo airkafka-durable-line-2", queue="durable_logs"
    )
