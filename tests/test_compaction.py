"""Log compaction (`cleanup.policy=compact` and `compact,delete`) with real clients.

Segments roll by `segment.ms` (100 ms) on the next append, as Kafka rolls them, so every test
produces a last "roll" record after waiting; the cleaner runs every `log.cleaner.backoff.ms`
(100 ms) and cleans when the dirty ratio exceeds `min.cleanable.dirty.ratio` (0.01). The same
timing works on Apache Kafka (RINGTAIL_TEST_TARGET=kafka). Every wait is bounded.
"""

import os
import random
import time

import pytest

import harness

BROKER_SETTINGS = {
    "log.cleaner.backoff.ms": "100",
    "log.retention.check.interval.ms": "200",
}
COMPACT = {
    "cleanup.policy": "compact",
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.01",
}
ROLL_WAIT_S = 0.25
CLEAN_TIMEOUT_S = 90.0


@pytest.fixture
def compaction_broker(start_broker):
    return start_broker(settings=BROKER_SETTINGS)


def producer(broker, **extra):
    from confluent_kafka import Producer
    config = {"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5,
              "enable.idempotence": True}
    config.update(extra)
    return Producer(config)


def produce(p, topic, records, on_ack=None):
    """Produces (key, value) pairs (value None = tombstone) and waits for every ack."""
    errors = []

    def delivered(error, message):
        if error is not None:
            errors.append(error)
        elif on_ack is not None:
            on_ack(message)

    for key, value in records:
        p.produce(topic, key=key.encode(), value=None if value is None else value.encode(),
                  on_delivery=delivered)
    assert p.flush(30) == 0, "messages left unflushed"
    assert not errors, f"delivery errors: {errors}"


def roll(p, topic):
    """Waits past segment.ms, then appends one record so the active segment rolls."""
    time.sleep(ROLL_WAIT_S)
    produce(p, topic, [("roll", str(time.time()))])


def read_log(broker, topic):
    """Every record of partition 0 as (offset, key, value), in offset order."""
    messages = harness.read_all_confluent(broker, topic, 1)[0]
    return [(m.offset(), m.key().decode() if m.key() is not None else None,
             m.value().decode() if m.value() is not None else None) for m in messages]


def latest_per_key(records):
    latest = {}
    for _, key, value in records:
        latest[key] = value
    return latest


def wait_for_log(broker, topic, predicate, message, timeout_s=CLEAN_TIMEOUT_S, keep_rolling=None):
    """Reads the log until `predicate(records)` holds; with `keep_rolling` (a producer), appends
    a roll record between reads so the cleaner keeps having dirty segments."""
    deadline = time.monotonic() + timeout_s
    records = []
    while time.monotonic() < deadline:
        records = read_log(broker, topic)
        if predicate(records):
            return records
        if keep_rolling is not None:
            roll(keep_rolling, topic)
        else:
            time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {message}; log: {records[-50:]}")


def assert_one_record_per_key(records, ignore=("roll",)):
    keys = [key for _, key, _ in records if key not in ignore]
    assert len(keys) == len(set(keys)), f"duplicate keys remain: {records}"


def test_compacted_topic_keeps_the_latest_value_per_key(compaction_broker):
    broker = compaction_broker
    topic = harness.create_topic(broker, harness.unique_topic("compact"), 1, COMPACT)
    p = producer(broker)
    keys = [f"k{i}" for i in range(20)]
    rounds = 5
    produce(p, topic, [("once", "only value")])  # never overwritten: a gap follows it
    for r in range(rounds):
        produce(p, topic, [(k, f"{k}-v{r}") for k in keys])
        roll(p, topic)
    expected = {k: f"{k}-v{rounds - 1}" for k in keys}
    expected["once"] = "only value"

    def compacted(records):
        mine = [r for r in records if r[1] != "roll"]
        return len(mine) == len(expected) and latest_per_key(mine) == expected

    records = wait_for_log(broker, topic, compacted, "one record per key")
    offsets = [o for o, _, _ in records]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    mine = [o for o, k, _ in records if k != "roll"]
    assert mine[0] == 0 and mine[1] == 1 + (rounds - 1) * (len(keys) + 1), \
        f"offsets are kept, not renumbered: {offsets}"
    assert any(b - a > 1 for a, b in zip(offsets, offsets[1:])), "compaction leaves offset gaps"


def test_tombstones_are_dropped_after_delete_retention_ms(compaction_broker):
    broker = compaction_broker
    configs = dict(COMPACT, **{"delete.retention.ms": "5000"})
    topic = harness.create_topic(broker, harness.unique_topic("tombstone"), 1, configs)
    p = producer(broker)
    produce(p, topic, [(f"k{i}", f"v{i}") for i in range(5)])
    roll(p, topic)
    produce(p, topic, [("k1", None)])
    roll(p, topic)

    def value_gone(records):
        return not any(k == "k1" and v is not None for _, k, v in records)

    records = wait_for_log(broker, topic, value_gone, "k1's value removed")
    assert ("k1", None) in [(k, v) for _, k, v in records], \
        "the tombstone stays until delete.retention.ms has passed"
    records = wait_for_log(broker, topic, lambda rs: all(k != "k1" for _, k, _ in rs),
                           "the tombstone removed", keep_rolling=p)
    assert {k: v for _, k, v in records if k != "roll"} == {f"k{i}": f"v{i}" for i in (0, 2, 3, 4)}


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_are_compacted(compaction_broker, codec):
    broker = compaction_broker
    topic = harness.create_topic(broker, harness.unique_topic(f"compact-{codec}"), 1, COMPACT)
    p = producer(broker, **{"compression.type": codec, "linger.ms": 50})
    keys = [f"key-{i}" for i in range(30)]
    # Each batch mixes keys that a later batch overwrites with keys it does not, so batches
    # lose some records and must be recompressed.
    produce(p, topic, [(k, f"{k}-old" * 10) for k in keys])
    roll(p, topic)
    produce(p, topic, [(k, f"{k}-new" * 10) for k in keys[::2]])
    roll(p, topic)
    expected = {k: f"{k}-new" * 10 if i % 2 == 0 else f"{k}-old" * 10 for i, k in enumerate(keys)}

    def compacted(records):
        mine = [r for r in records if r[1] != "roll"]
        return len(mine) == len(keys) and latest_per_key(mine) == expected

    wait_for_log(broker, topic, compacted, f"{codec} batches compacted")


def test_compact_delete_applies_both(compaction_broker):
    broker = compaction_broker
    configs = dict(COMPACT, **{"cleanup.policy": "compact,delete", "retention.ms": "4000"})
    topic = harness.create_topic(broker, harness.unique_topic("compact-delete"), 1, configs)
    p = producer(broker)
    for r in range(3):
        produce(p, topic, [(f"k{i}", f"v{r}") for i in range(10)])
        roll(p, topic)
    # Compaction first: one record per key.
    wait_for_log(broker, topic, lambda rs: len([r for r in rs if r[1] != "roll"]) == 10,
                 "one record per key")
    # Then retention: once retention.ms passed, the sealed segments go whatever their keys.
    time.sleep(4.5)
    records = wait_for_log(broker, topic, lambda rs: all(k == "roll" for _, k, _ in rs),
                           "every key deleted by retention", keep_rolling=p)
    # (Kafka may also delete an expired active segment after rolling it: the log can be empty.)
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": topic})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        consumer.close()
    assert low > 30 and all(o >= low for o, _, _ in records), \
        f"retention advanced the log start offset: low {low}, high {high}, {records}"


def test_consumer_sees_gaps_and_resumes(compaction_broker):
    from confluent_kafka import Consumer, TopicPartition
    broker = compaction_broker
    topic = harness.create_topic(broker, harness.unique_topic("compact-gaps"), 1, COMPACT)
    p = producer(broker)
    produce(p, topic, [("once", "only value")])  # never overwritten: a gap follows it
    for r in range(3):
        produce(p, topic, [(f"k{i}", f"v{r}") for i in range(10)])
        roll(p, topic)
    records = wait_for_log(broker, topic,
                           lambda rs: len([r for r in rs if r[1] != "roll"]) == 11,
                           "one record per key")
    offsets = [o for o, _, _ in records]
    gap = next((a + 1, b) for a, b in zip(offsets, offsets[1:]) if b - a > 1)
    # A committed position inside a gap resumes at the next record that survived.
    group = harness.unique_topic("gap-group")
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, gap[0])], asynchronous=False)
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        first = None
        while first is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                first = message
        assert first is not None, "no record after resuming"
        assert first.offset() == gap[1], f"resumed at {first.offset()}, next record {gap[1]}"
    finally:
        consumer.close()
    # kafka-python reads the same log across the gaps.
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTopicPartition
    kp = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                       consumer_timeout_ms=5000)
    try:
        tp = KTopicPartition(topic, 0)
        kp.assign([tp])
        kp.seek_to_beginning(tp)
        seen = [(m.offset, m.key.decode(), m.value.decode()) for m in kp]
        assert [r for r in seen if r[1] != "roll"] == [r for r in records if r[1] != "roll"]
    finally:
        kp.close()


@pytest.mark.ringtail_only("Ringtail's files: the cleaner checkpoint and no temporary files")
def test_cleaner_checkpoint_and_no_leftover_files(compaction_broker):
    broker = compaction_broker
    topic = harness.create_topic(broker, harness.unique_topic("compact-files"), 1, COMPACT)
    p = producer(broker)
    for r in range(3):
        produce(p, topic, [(f"k{i}", f"v{r}") for i in range(10)])
        roll(p, topic)
    wait_for_log(broker, topic, lambda rs: len([r for r in rs if r[1] != "roll"]) == 10,
                 "one record per key")
    checkpoint = broker.data_dir / "cleaner-offset-checkpoint"
    lines = checkpoint.read_text().splitlines()
    assert lines[0] == "0" and int(lines[1]) == len(lines) - 2
    entry = [line.split(" ") for line in lines[2:] if line.startswith(f"{topic} ")]
    assert entry and entry[0][1] == "0" and int(entry[0][2]) > 0, lines
    partition_dir = broker.data_dir / f"{topic}-0"
    leftovers = [f.name for f in partition_dir.iterdir()
                 if f.name.endswith((".cleaned", ".swap", ".deleted"))]
    assert leftovers == []
    broker.restart()
    records = read_log(broker, topic)
    assert len([r for r in records if r[1] != "roll"]) == 10


def test_sigkill_during_cleaning_loses_nothing_acknowledged(compaction_broker):
    """Rounds of: produce updates (acks=all), let the cleaner run a random while, SIGKILL,
    restart; the latest acknowledged value of every key must be its last record."""
    broker = compaction_broker
    rounds = int(os.environ.get("RINGTAIL_COMPACTION_CRASH_ROUNDS",
                                "2" if harness.TARGET == "kafka" else "8"))
    rng = random.Random(harness.test_seed("compaction-crash"))
    topic = harness.create_topic(broker, harness.unique_topic("compact-crash"), 1, COMPACT)
    keys = [f"k{i}" for i in range(40)]
    acknowledged = {}

    def on_ack(message):
        acknowledged[message.key().decode()] = message.value().decode()

    for r in range(rounds):
        p = producer(broker)
        for step in range(3):
            batch = [(k, f"{k}-r{r}-s{step}-" + "x" * rng.randrange(200))
                     for k in rng.sample(keys, rng.randrange(5, len(keys)))]
            produce(p, topic, batch, on_ack)
            roll(p, topic)
        time.sleep(rng.uniform(0.0, 0.6))
        broker.kill()
        broker.start()
        harness.wait_for_partitions(broker, topic, 1)
        records = read_log(broker, topic)
        latest = latest_per_key([r for r in records if r[1] != "roll"])
        missing = {k: v for k, v in acknowledged.items() if latest.get(k) != v}
        assert not missing, f"round {r}: acknowledged latest values lost: {missing}"
        offsets = [o for o, _, _ in records]
        assert offsets == sorted(set(offsets)), f"round {r}: offsets not strictly increasing"
    assert not harness.panic_in(broker.log_text())
    if harness.TARGET == "ringtail":
        assert "cleaned log" in broker.log_text(), "the cleaner ran between the kills"
