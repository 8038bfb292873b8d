"""Several named listeners: `listeners`, `listener.security.protocol.map` with a custom name,
and Metadata answering each client with the advertised address of the listener it connected on
(Kafka's per-listener endpoints)."""

import kafka_wire


def test_metadata_answers_the_listener_of_the_connection(start_broker):
    broker = start_broker(listeners=[("INTERNAL", "PLAINTEXT")])
    for name in ("PLAINTEXT", "INTERNAL"):
        bootstrap = broker.bootstrap_for(name)
        with kafka_wire.Connection(bootstrap) as connection:
            brokers = connection.metadata([])["brokers"]
        assert [f"{b['host']}:{b['port']}" for b in brokers] == [bootstrap], (name, brokers)
