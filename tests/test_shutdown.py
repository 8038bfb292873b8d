"""Clean shutdown (issue 2, CLI section): SIGTERM or SIGINT while clients are connected on both
shards, some long-polling and some fetching in a tight loop, stops the broker with status 0, no
panic, Kafka's clean-shutdown marker in the log dir, and every acknowledged record there after
the restart."""

import os
import signal
import threading

import pytest

import harness
import kafka_wire as wire
from kafka_wire import Record
from test_shards import connections_on_both_shards

PARTITIONS = 4

pytestmark = pytest.mark.skipif(harness.available_cpus() < 2, reason="needs 2 CPUs for 2 shards")


def fetch_until_closed(connection, topic, stop):
    me = threading.current_thread()
    me.fetches = 0
    with connection:
        while not stop.is_set():
            try:
                connection.fetch({(topic, p): 0 for p in range(PARTITIONS)}, max_wait_ms=0)
            except (OSError, wire.ProtocolError):
                return
            me.fetches += 1


@pytest.mark.timeout(120)
@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT],
                         ids=["SIGTERM", "SIGINT"])
def test_signal_with_busy_clients_shuts_down_cleanly(start_broker, signal_number):
    broker = start_broker(shards=2)
    topic = harness.create_topic(broker, harness.unique_topic("shutdown"), PARTITIONS)
    connections = connections_on_both_shards(broker)
    expected = {}
    try:
        for shard, connection in connections.items():
            for partition in range(PARTITIONS):
                record = Record(b"before shutdown %d %d" % (shard, partition), timestamp=1)
                result = connection.produce({topic: {partition: wire.record_batch([record])}})
                assert result[(topic, partition)][0] == wire.NONE
                expected.setdefault(partition, []).append(record)
        # Each connection now waits in a long-poll fetch at the end of every partition.
        for connection in connections.values():
            connection.send_raw(connection.request_bytes(wire.FETCH, 4, (
                wire.int32(-1) + wire.int32(30_000) + wire.int32(1) + wire.int32(1 << 20)
                + wire.int8(0) + wire.array([topic], lambda name: wire.string(name) + wire.array(
                    list(range(PARTITIONS)), lambda p: wire.int32(p)
                    + wire.int64(len(expected[p])) + wire.int32(1 << 20))))))
        # And on other connections, fetches of every partition (both shards') back to back.
        stop = threading.Event()
        fetchers = [threading.Thread(target=fetch_until_closed, daemon=True,
                                     args=(connection, topic, stop))
                    for connection in connections_on_both_shards(broker).values()]
        for fetcher in fetchers:
            fetcher.start()
        harness.wait_until(lambda: all(getattr(f, "fetches", 0) > 5 for f in fetchers), 10,
                           message="busy fetchers")
        os.kill(broker.process.pid, signal_number)
        status = broker.process.wait(timeout=harness.STOP_TIMEOUT_S)
        stop.set()
        for fetcher in fetchers:
            fetcher.join(10)
    finally:
        for connection in connections.values():
            connection.close()
    assert status == broker.clean_exit_status(signal_number), f"exit status {status} after {signal.Signals(signal_number).name}"
    found = harness.panic_in(broker.log_text())
    assert found is None, f"panic or abort during shutdown:\n{found}"
    assert (broker.data_dir / ".kafka_cleanshutdown").exists(), "no clean-shutdown marker"

    broker.start()
    harness.wait_for_partitions(broker, topic, PARTITIONS)  # Kafka: leaders again after start
    with wire.Connection(broker.bootstrap) as connection:
        fetched = connection.fetch({(topic, p): 0 for p in range(PARTITIONS)})
        for partition in range(PARTITIONS):
            assert fetched[(topic, partition)]["error_code"] == wire.NONE, fetched[(topic, partition)]
            records = wire.records_of(wire.parse_record_batches(
                fetched[(topic, partition)]["records"]))
            assert [record for _, record in records] == expected[partition]
