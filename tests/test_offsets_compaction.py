"""`__consumer_offsets` compacted by the log cleaner (issue 9), with real clients.

Many OffsetCommits of one group to the same partitions overwrite the same keys; the cleaner
(`log.cleaner.backoff.ms` 100 ms) must shrink the `__consumer_offsets` partition to about one
record per key, and the committed offsets (and their metadata) must survive a clean restart and
a SIGKILL during cleaning. Commits carry large metadata strings (up to `offset.metadata.max.bytes`,
4096) so that segments of `offsets.topic.segment.bytes` roll after a few hundred commits.
`offsets.topic.num.partitions` is 1, so the whole group lives in `__consumer_offsets-0`. The
SIGKILL test runs against Apache Kafka too (RINGTAIL_TEST_TARGET=kafka); every wait is bounded.
"""

import random
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

import harness

PARTITIONS = 20
METADATA_BYTES = 3900
OFFSETS_DIR = "__consumer_offsets-0"
CLEAN_TIMEOUT_S = 60.0


def commit_rounds(broker, group, topic, first_round, rounds):
    """Commits offset `round + 1` with a round-tagged metadata string for every partition,
    `rounds` times (synchronously); returns the last (offset, metadata) per partition."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        last = {}
        for r in range(first_round, first_round + rounds):
            metadata = f"round-{r}-" + "m" * METADATA_BYTES
            offsets = [TopicPartition(topic, p, r + 1, metadata=metadata)
                       for p in range(PARTITIONS)]
            result = consumer.commit(offsets=offsets, asynchronous=False)
            errors = [tp for tp in result if tp.error is not None]
            assert not errors, f"commit errors in round {r}: {errors}"
            for p in range(PARTITIONS):
                last[p] = (r + 1, metadata)
        return last
    finally:
        consumer.close()


def committed(broker, group, topic, timeout_s=60.0):
    """The committed (offset, metadata) per partition, read with OffsetFetch; retried while the
    coordinator is not ready yet after a restart (Kafka answers NOT_COORDINATOR or
    COORDINATOR_LOAD_IN_PROGRESS until it has loaded __consumer_offsets)."""
    from confluent_kafka import KafkaError, KafkaException
    retriable = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                 KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError._TIMED_OUT}
    deadline = time.monotonic() + timeout_s
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        while True:
            try:
                result = consumer.committed(
                    [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30)
                return {tp.partition: (tp.offset, tp.metadata) for tp in result}
            except KafkaException as error:
                if error.args[0].code() not in retriable or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        consumer.close()


def offsets_dir_usage(broker):
    """(segment count, bytes of the .log files) of `__consumer_offsets-0`."""
    logs = [f for f in (broker.data_dir / OFFSETS_DIR).iterdir() if f.name.endswith(".log")]
    return len(logs), sum(f.stat().st_size for f in logs)


def files_mention(broker, text):
    """Whether any `.log` file of `__consumer_offsets-0` holds `text` (a group id: the
    coordinator's batches are uncompressed, so keys are readable)."""
    needle = text.encode()
    return any(needle in f.read_bytes() for f in (broker.data_dir / OFFSETS_DIR).iterdir()
               if f.name.endswith(".log"))


def leftover_files(broker):
    return [f.name for f in (broker.data_dir / OFFSETS_DIR).iterdir()
            if f.name.endswith((".cleaned", ".swap", ".deleted"))]


@pytest.mark.ringtail_only("Ringtail's files: segment count and size of __consumer_offsets-0, "
                           "its cleaner-offset-checkpoint entry")
def test_many_commits_compact_down_and_survive_restart(start_broker):
    broker = start_broker(settings={
        "offsets.topic.num.partitions": "1",
        "offsets.topic.segment.bytes": "65536",
        "log.cleaner.backoff.ms": "100",
        "log.cleaner.enable": "false",
    })
    topic = harness.create_topic(broker, harness.unique_topic("offsets-compact"), PARTITIONS)
    group = harness.unique_topic("offsets-compact-group")
    expected = commit_rounds(broker, group, topic, 0, 60)
    broker.stop()
    segments_before, bytes_before = offsets_dir_usage(broker)
    assert segments_before >= 10, f"commits rolled segments: {segments_before}"
    assert bytes_before >= 60 * PARTITIONS * METADATA_BYTES

    broker.settings["log.cleaner.enable"] = "true"
    broker.start()
    assert committed(broker, group, topic) == expected, "replay before cleaning"

    # The first pass rewrites each segment on its own (groups of at most segment.bytes of the
    # segments' sizes before cleaning, as Kafka's `groupSegmentsBySize`), so the bytes shrink
    # first; a later pass, once a few more commits made the log dirty again, merges the small
    # cleaned segments, so their count shrinks too.
    def shrunk():
        segments, size = offsets_dir_usage(broker)
        return segments < segments_before // 2 and size < bytes_before // 4

    rounds = 60
    deadline = time.monotonic() + CLEAN_TIMEOUT_S
    while not shrunk() and time.monotonic() < deadline:
        time.sleep(0.5)
        if offsets_dir_usage(broker)[1] < bytes_before // 4:
            expected = commit_rounds(broker, group, topic, rounds, 2)
            rounds += 2
    assert shrunk(), (f"__consumer_offsets-0 shrinks from {segments_before} segments, "
                      f"{bytes_before} bytes: now {offsets_dir_usage(broker)}")
    text = broker.log_text()
    assert "cleaned log" in text and "__consumer_offsets" in text
    assert committed(broker, group, topic) == expected, "offsets after cleaning"
    lines = (broker.data_dir / "cleaner-offset-checkpoint").read_text().splitlines()
    entry = [line.split(" ") for line in lines[2:] if line.startswith("__consumer_offsets ")]
    assert entry and entry[0][1] == "0" and int(entry[0][2]) > 0, lines

    broker.restart()
    assert committed(broker, group, topic) == expected, "offsets after a restart of a cleaned log"
    assert leftover_files(broker) == []
    # More commits after the cleaned section: replay crosses the gaps, the later value wins.
    expected = commit_rounds(broker, group, topic, rounds, 3)
    broker.restart()
    assert committed(broker, group, topic) == expected
    assert not harness.panic_in(broker.log_text())


@pytest.mark.ringtail_only("Ringtail's files: group tombstones leave __consumer_offsets-0")
def test_deleted_group_tombstones_are_cleaned_after_delete_retention(start_broker):
    broker = start_broker(settings={
        "offsets.topic.num.partitions": "1",
        "offsets.topic.segment.bytes": "65536",
        "log.cleaner.backoff.ms": "100",
        "log.cleaner.delete.retention.ms": "500",
    })
    from confluent_kafka.admin import AdminClient
    topic = harness.create_topic(broker, harness.unique_topic("offsets-tomb"), PARTITIONS)
    gone = harness.unique_topic("offsets-gone")
    kept = harness.unique_topic("offsets-kept")
    commit_rounds(broker, gone, topic, 0, 20)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.delete_consumer_groups([gone], request_timeout=30).values():
        future.result(timeout=30)
    assert files_mention(broker, gone), "the group's records and tombstones are in the files"
    # Keep writing (another group) so that the segments holding the tombstones are sealed and
    # cleaned twice: once to set their delete horizon, once past it.
    expected = {}
    deadline = time.monotonic() + CLEAN_TIMEOUT_S
    rounds = 0
    while time.monotonic() < deadline and (rounds == 0 or files_mention(broker, gone)):
        expected = commit_rounds(broker, kept, topic, rounds, 10)
        rounds += 10
        time.sleep(0.6)
    assert not files_mention(broker, gone), "tombstones removed after delete.retention.ms"
    broker.restart()
    assert committed(broker, kept, topic) == expected
    assert all(offset < 0 for offset, _ in committed(broker, gone, topic).values()), \
        "the deleted group's offsets stay deleted after its tombstones were cleaned"


def test_committed_offsets_survive_sigkill_during_cleaning(start_broker):
    """Cycles of: many commits (segments roll, the cleaner starts), a random wait, SIGKILL,
    restart; the last committed offset and metadata of every partition must be read back."""
    settings = {
        "offsets.topic.num.partitions": "1",
        "offsets.topic.segment.bytes": "1048576",
        "log.cleaner.backoff.ms": "100",
    }
    broker = start_broker(settings=settings)
    cycles = 2 if harness.TARGET == "kafka" else 4
    rng = random.Random(harness.test_seed("offsets-compaction-crash"))
    topic = harness.create_topic(broker, harness.unique_topic("offsets-crash"), PARTITIONS)
    group = harness.unique_topic("offsets-crash-group")
    expected = {}
    rounds = 0
    for cycle in range(cycles):
        expected = commit_rounds(broker, group, topic, rounds, 30)
        rounds += 30
        time.sleep(rng.uniform(0.0, 0.6))
        broker.kill()
        broker.start()
        assert committed(broker, group, topic) == expected, f"cycle {cycle}: offsets lost"
    assert not harness.panic_in(broker.log_text())
    if harness.TARGET == "ringtail":
        assert "cleaned log" in broker.log_text(), "the cleaner ran between the kills"
