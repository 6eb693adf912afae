import json

from airkafka_app.contract.commands import Command
from airkafka_app.contract.task_logs import LogAssembly, encode_chunk, encode_end, log_name, partition_of


def test_an_airflow_try_is_logged_under_its_log_path_and_anything_else_under_its_id():
    workload = json.dumps({"log_path": "dag_id=d/run_id=r/task_id=t/attempt=1.log"})
    assert log_name(Command("af-1", "airflow", {"workload": workload})) == "dag_id=d/run_id=r/task_id=t/attempt=1.log"
    assert log_name(Command("af-2", "airflow", {"workload": "not json"})) == "af-2"
    assert log_name(Command("t1", "shell", {"argv": ["true"]})) == "t1"


def test_writers_and_readers_agree_on_a_logs_partition():
    assert partition_of("t1", 8) == partition_of("t1", 8) and 0 <= partition_of("t1", 8) < 8
    assert len({partition_of(f"t{n}", 8) for n in range(100)}) == 8


def test_a_log_is_put_back_together_from_its_own_records_only():
    log = LogAssembly("t1")
    log.add_all(
        [
            (b"t1", encode_chunk("t1:1", 0, ["a", "b"])),
            (b"t2", encode_chunk("t2:1", 0, ["not mine"])),
            (b"t1", b"{broken"),
            (b"t1", encode_chunk("t1:1", 1, ["c"])),
        ]
    )
    assert log.lines() == ["a", "b", "c"] and not log.complete
    log.add(b"t1", encode_end("t1:1"))
    log.add(b"t1", encode_chunk("t1:2", 0, ["retry"]))
    assert log.lines() == ["a", "b", "c", "retry"] and not log.complete
    log.add(b"t1", encode_end("t1:2"))
    assert log.complete
