import pytest

from airkafka_app.contract.settings import Settings


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
