"""A DAG of team_b's bundle: its tries go to team_b's executor, and to its workers only."""

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG("airkafka_team_b", schedule=None, catchup=False) as dag:
    BashOperator(task_id="hello", bash_command="echo team_b")
