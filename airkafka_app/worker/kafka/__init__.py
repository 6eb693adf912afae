"""The Kafka plumbing under Faust: the start-up connection check and topic administration, and
Faust's aiokafka transport with the fixes it needs here."""
