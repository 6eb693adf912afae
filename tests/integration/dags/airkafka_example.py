"""The example DAG run under KafkaExecutor by the tests: a success, an exit 127, a retry, a fan-out
and a task on another queue."""

from datetime import timedelta

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

FAN_OUT = 20

with DAG("airkafka_example", schedule=None, catchup=False, max_active_tasks=32) as dag:
    start = BashOperator(task_id="start", bash_command="echo airkafka-example-start")
    exit127 = BashOperator(task_id="exit127", bash_command="exit 127")
    flaky = BashOperator(
        task_id="flaky",
        bash_command='test -f "$DAG_TEST_TMP/flaky-{{ run_id | replace(":", "_") }}" '
        '|| { touch "$DAG_TEST_TMP/flaky-{{ run_id | replace(":", "_") }}"; exit 1; }',
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
    fan = [BashOperator(task_id=f"fan_{i}", bash_command="true") for i in range(FAN_OUT)]
    on_queue = BashOperator(task_id="on_queue", bash_command="true", queue="extra")
    start >> [exit127, flaky, on_queue, *fan]
