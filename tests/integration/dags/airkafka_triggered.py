"""A DAG triggered by AirKafka commands in the dispatcher tests: it echoes its conf and exits with it."""

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG("airkafka_triggered", schedule=None, catchup=False) as dag:
    BashOperator(
        task_id="use_conf",
        bash_command='echo "message: {{ dag_run.conf.get("message", "") }}"; exit {{ dag_run.conf.get("exit_code", 0) }}',
    )
