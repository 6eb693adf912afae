from types import SimpleNamespace

from airkafka_app.worker.web.views import _filter

AIRFLOW = {
    "id": "af-" + "ab" * 20,
    "airflow": {"dag_id": "nightly_etl", "task_id": "load", "run_id": "manual__1", "map_index": -1, "try_number": 2},
}
SHELL = {"id": "Backup-42"}


def picks(**query: str) -> list[str]:
    match = _filter(SimpleNamespace(query=query))
    return [r["id"] for r in (AIRFLOW, SHELL) if match is None or match(r)]


def test_no_filter_picks_all_and_identity_fields_pick_airflow_tries():
    assert picks() == [AIRFLOW["id"], "Backup-42"]
    assert picks(dag_id="nightly_etl", try_number="2") == [AIRFLOW["id"]]
    assert picks(dag_id="nightly") == []  # identity fields are exact


def test_search_finds_any_part_of_any_id_case_aside():
    assert picks(search="backup") == ["Backup-42"]
    assert picks(search="ETL") == [AIRFLOW["id"]]
    assert picks(search="manual__") == [AIRFLOW["id"]]
    assert picks(search="abab") == [AIRFLOW["id"]]
    assert picks(search="load", dag_id="other") == []  # both must hold
    assert picks(search="  ") == [AIRFLOW["id"], "Backup-42"]
