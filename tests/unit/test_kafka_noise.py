import logging

from prometheus_client import CollectorRegistry

from airkafka_app.worker.ops import kafka_noise
from airkafka_app.worker.ops.kafka_noise import Quieter, kind_of


def test_each_kind_is_logged_first_then_once_per_interval_with_what_was_held_back():
    quieter = Quieter(every_s=60)
    assert quieter.admit("coordinator", 0.0) == 0
    assert [quieter.admit("coordinator", t) for t in (1.0, 2.0, 59.0)] == [None, None, None]
    assert quieter.admit("connection", 3.0) == 0  # kinds are apart
    assert quieter.admit("coordinator", 61.0) == 3
    assert quieter.admit("coordinator", 200.0) == 0


def test_aiokafkas_transient_messages_are_known_and_others_are_not():
    assert kind_of("Group Coordinator Request failed: [Error 15] CoordinatorNotAvailableError") == "coordinator"
    assert kind_of("Marking the coordinator dead (node 1)for group g.") == "coordinator"
    assert kind_of('Unable connect to "127.0.0.1:9092": [Errno 111] Connect call failed') == "connection"
    assert kind_of("Failed fetch messages from 1: NodeNotReadyError") == "fetch"
    assert kind_of("Unable connect to node with id 1: [Errno 111] Connect call failed") == "connection"
    assert kind_of("Heartbeat send request failed: NodeNotReadyError: Attempt to send") == "connection"
    assert kind_of("Unable to update metadata from [1]") == "metadata"
    assert kind_of("Topic app-__assignor-__leader not found in cluster metadata") == "metadata"
    assert kind_of("Unexpected error in sender routine") is None


def test_a_flood_of_coordinator_errors_becomes_one_warning_and_a_count(caplog):
    registry = CollectorRegistry()
    kafka_noise.install(registry)
    logger = logging.getLogger("aiokafka.consumer.group_coordinator")
    with caplog.at_level(logging.INFO, logger="aiokafka"):
        for _ in range(50):
            logger.error("Group Coordinator Request failed: %s", "[Error 15] GroupCoordinatorNotAvailableError")
        logger.error("Unexpected error in heartbeat routine")  # not transient: left as it is
    levels = [(r.levelname, r.getMessage()[:30]) for r in caplog.records]
    assert levels == [
        ("WARNING", "Group Coordinator Request fail"),
        ("ERROR", "Unexpected error in heartbeat "),
    ]
    assert "transient" in caplog.records[0].getMessage()
    assert registry.get_sample_value("airkafka_kafka_client_errors_total", {"kind": "coordinator"}) == 50


def test_a_message_that_cannot_be_formatted_passes_through_to_logging():
    registry = CollectorRegistry()
    quieting = kafka_noise.TransientKafkaErrors(
        kafka_noise.PromCounter("t_errors", "test", ["kind"], registry=registry)
    )
    broken = logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, "Unable connect to %s %s", ("one",), None)
    assert quieting.filter(broken) is True  # logging's own handler reports the bad arguments
