import pytest

from airkafka_app.contract.defaults import DEFAULTS
from airkafka_app.contract.settings import Settings, for_team


def test_queues_name_the_commands_topics(monkeypatch):
    monkeypatch.setenv("AIRKAFKA_QUEUES", "default, gpu,gpu")
    monkeypatch.setenv("AIRKAFKA_COMMANDS_TOPIC", "x.commands")
    settings = Settings()
    assert settings.queues == ("default", "gpu")
    assert settings.commands_topic_for("default") == "x.commands"
    assert settings.commands_topic_for("gpu") == "x.commands.gpu"


@pytest.mark.parametrize("value", ["a b", "", "gpu,../x"])
def test_a_bad_queue_list_is_refused_with_the_variable_named(monkeypatch, value):
    monkeypatch.setenv("AIRKAFKA_QUEUES", value)
    with pytest.raises(ValueError, match="AIRKAFKA_QUEUES"):
        Settings()


def test_a_queue_no_topic_can_carry_is_refused():
    with pytest.raises(ValueError, match="queue name 'a/b'"):
        Settings().commands_topic_for("a/b")


def test_a_teams_settings_come_from_its_options_and_not_the_shared_variables(monkeypatch):
    monkeypatch.setenv("AIRKAFKA_APP_ID", "shared")
    monkeypatch.setenv("AIRKAFKA_SASL_PASSWORD", "shared-secret")
    options = {"app_id": "team-a", "commands_topic": "team-a.commands", "partitions": "3"}
    team = for_team(options.get)
    assert (team.app_id, team.commands_topic, team.partitions) == ("team-a", "team-a.commands", 3)
    assert team.heartbeats_topic == "team-a-heartbeats" and team.sasl_password == ""
    assert team.state_changes_topic == DEFAULTS["AIRKAFKA_STATE_CHANGES_TOPIC"]  # unset: the default
    assert Settings().app_id == "shared"  # outside, the variables as before
