"""Incremental fetch sessions (KIP-227, issue 15) from kafka-python 3.x, whose consumer uses
them by default (kafka.consumer.fetcher.FetchSessionHandler): a full fetch opens a session, then
incremental fetches carry only the partitions with news, and every record still arrives,
including those produced after the session was made. The wire-level rules (epochs, each session
error, forgotten topics, slots) are checked in tests/it/fetch_sessions.rs."""

import threading
import time

import pytest
from confluent_kafka import Producer
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer import fetcher

import harness

PARTITIONS = 200
BEFORE = 2  # records per partition before the consumer starts
LATER_PARTITIONS = (3, 77, 150)  # partitions that get records once the session is running
LATER = 50


def produce(broker, topic, records):
    """records: list of (partition, value); waits for every delivery."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    errors = []
    for partition, value in records:
        producer.produce(topic, value=value, partition=partition,
                         on_delivery=lambda err, _msg: err and errors.append(err))
    assert producer.flush(60) == 0, "undelivered records"
    assert not errors, errors


class SessionLog:
    """Records every fetch response the consumer's session handlers see:
    (full request?, session id, error code, partitions in the response)."""

    def __init__(self, monkeypatch):
        self.entries = []
        self.lock = threading.Lock()
        original = fetcher.FetchSessionHandler.handle_response
        log = self

        def handle_response(handler, response):
            with log.lock:
                log.entries.append((handler.next_metadata.is_full, response.session_id,
                                    response.error_code,
                                    sum(len(t.partitions) for t in response.responses)))
            return original(handler, response)

        monkeypatch.setattr(fetcher.FetchSessionHandler, "handle_response", handle_response)

    def snapshot(self):
        with self.lock:
            return list(self.entries)


@pytest.mark.timeout(240)
def test_kafka_python_fetch_session_across_200_partitions(broker, monkeypatch):
    topic = harness.create_topic(broker, harness.unique_topic("fetch-session"), PARTITIONS)
    produce(broker, topic, [(p, b"before %d %d" % (p, i))
                            for p in range(PARTITIONS) for i in range(BEFORE)])
    sessions = SessionLog(monkeypatch)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                             enable_auto_commit=False, request_timeout_ms=30000,
                             fetch_max_wait_ms=100)
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        read = {}

        def poll_until(count, timeout_s):
            deadline = time.monotonic() + timeout_s
            while sum(len(v) for v in read.values()) < count and time.monotonic() < deadline:
                for tp, records in consumer.poll(timeout_ms=200, max_records=10000).items():
                    read.setdefault(tp.partition, []).extend(r.value for r in records)
            return sum(len(v) for v in read.values())

        total = PARTITIONS * BEFORE
        assert poll_until(total, 90) == total
        # Let fetches go by with nothing new: those answers must carry no partition.
        quiet_from = len(sessions.snapshot())
        settle = time.monotonic() + 1.5
        while time.monotonic() < settle:
            consumer.poll(timeout_ms=100)
        quiet_to = len(sessions.snapshot())
        produce(broker, topic, [(p, b"later %d %d" % (p, i))
                                for p in LATER_PARTITIONS for i in range(LATER)])
        total += LATER * len(LATER_PARTITIONS)
        assert poll_until(total, 60) == total
    finally:
        consumer.close()

    for p in range(PARTITIONS):
        expected = [b"before %d %d" % (p, i) for i in range(BEFORE)]
        if p in LATER_PARTITIONS:
            expected += [b"later %d %d" % (p, i) for i in range(LATER)]
        assert read.get(p) == expected, f"partition {p}"

    entries = sessions.snapshot()
    assert entries, "kafka-python sent no fetch through its session handler"
    assert all(error == 0 for _, _, error, _ in entries), entries
    full = [e for e in entries if e[0]]
    incremental = [e for e in entries if not e[0]]
    assert full[0][1] != 0, f"the first full fetch opened no session: {full[0]}"
    assert len(full) == 1, f"the session was reopened: {full}"
    session_ids = {session_id for _, session_id, _, _ in entries}
    assert len(session_ids) == 1, f"one session throughout: {session_ids}"
    assert len(incremental) >= 5, f"few incremental fetches: {len(incremental)}"
    # Incremental answers carry only partitions with news: none while nothing changes, then at
    # most the partitions that got records (several fetches may split them), never all 200.
    quiet = [count for _, _, _, count in entries[quiet_from:quiet_to]]
    assert len(quiet) >= 3 and set(quiet) == {0}, quiet
    later = [count for _, _, _, count in entries[quiet_to:]]
    assert max(later) <= len(LATER_PARTITIONS), later
    assert any(count > 0 for count in later), later
