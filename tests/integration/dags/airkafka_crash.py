"""Thirty tasks of three seconds, each writing down that it ran: the DAG the scheduler is killed
under (test_a_scheduler_killed_mid_run_resets_nothing_and_runs_nothing_twice)."""

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG("airkafka_crash", schedule=None, catchup=False, max_active_tasks=64) as dag:
    for n in range(30):
        BashOperator(
            task_id=f"t{n}",
            bash_command='sleep 3; echo "{{ ti.task_id }} {{ ti.try_number }}" >> "$DAG_TEST_TMP/crash-runs"',
        )
