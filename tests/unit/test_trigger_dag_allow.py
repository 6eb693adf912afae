"""``trigger_dag`` starts only the DAGs the worker's allowlist names, and none by default."""

import pytest

from airkafka_app.contract.commands import Command, InvalidCommand
from airkafka_app.worker.runners import runner_for
from airkafka_app.worker.runners.trigger_dag import AirflowApi, TriggerDagRunner

API = AirflowApi("http://127.0.0.1:1", "", "", 1)


def trigger(dag_id: str) -> Command:
    return Command("t", "trigger_dag", {"dag_id": dag_id})


def test_by_default_no_dag_may_be_triggered():
    with pytest.raises(InvalidCommand, match="trigger_dag runner is disabled .*AIRKAFKA_TRIGGER_DAG_ALLOW is empty"):
        runner_for({"trigger_dag": TriggerDagRunner(API, 1.0)}, trigger("anything"))


def test_a_dag_on_the_allowlist_or_matching_a_pattern_passes_and_another_is_refused():
    runner = TriggerDagRunner(API, 1.0, ["send_alert", "orders_*"])
    runner.check(trigger("send_alert"))
    runner.check(trigger("orders_eu"))
    for refused in ("drop_all_tables", "Orders_eu", "send_alert_2"):
        with pytest.raises(InvalidCommand, match=f"DAG '{refused}' is not on AIRKAFKA_TRIGGER_DAG_ALLOW"):
            runner.check(trigger(refused))
