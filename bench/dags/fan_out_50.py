"""The DAG of the executor benchmark: start, 50 parallel `true` tasks, end."""

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG("fan_out_50", schedule=None, catchup=False) as dag:
    start = BashOperator(task_id="start", bash_command="true")
    end = BashOperator(task_id="end", bash_command="true")
    start >> [BashOperator(task_id=f"true_{i}", bash_command="true") for i in range(50)] >> end
