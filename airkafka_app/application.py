"""The Faust application: broker, RocksDB store, partitions and web server, from settings."""
import faust

from airkafka_app.kafka_transport import Transport
from airkafka_app.settings import settings


class App(faust.App):
    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)


app = App(
    settings.app_id,
    broker=settings.broker,
    store="rocksdb://",
    datadir=settings.data_dir,
    topic_partitions=settings.partitions,
    topic_replication_factor=settings.replication,
    web_host=settings.web_host,
    web_port=settings.web_port,
    web_bind=settings.web_bind,
    origin="airkafka_app",
    # Each task writes the table and publishes state changes three times; batching them
    # costs a few ms of latency and saves most of the produce requests.
    producer_linger=settings.producer_linger_s,
    # Faust checks co-partitioning against the consumer's metadata, which may have seen a
    # just-created changelog topic as having 0 partitions; refresh it within seconds, not minutes.
    consumer_metadata_max_age_ms=5000,
    # A killed worker's partitions move after the session timeout; Faust's 60 s default would
    # make finding its tasks slower than the minute we promise.
    broker_session_timeout=settings.session_timeout_s,
    broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
    broker_max_poll_interval=settings.max_poll_interval_s,
)
