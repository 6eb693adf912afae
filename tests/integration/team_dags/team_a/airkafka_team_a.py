"""A DAG of team_a's bundle: its tries go to team_a's executor, and to its workers only."""

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG("airkafka_team_a", schedule=None, catchup=False) as dag:
    BashOperator(task_id="hello", bash_command="echo team_a")
