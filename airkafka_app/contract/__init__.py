"""The contract: settings, the records on the topics (commands, state changes, dead letters,
heartbeats, messages between workers), task states, and Kafka connection options.

Faust-free: the executor and the provider import these in Airflow's interpreter, where Faust
cannot be installed. tests/unit/test_layout.py fails if one of them imports Faust, mode or
aiokafka, or anything outside this package.
"""
