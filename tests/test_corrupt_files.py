"""Torn and corrupt files before a restart (issue 14, "Torn and corrupt files").

Each case fills a topic (1 MiB segments, so there are sealed segments with indexes; an aborted
and a committed transaction among idempotent records), stops the broker (SIGKILL; SIGTERM where
the file only exists after a clean stop), truncates or flips bytes at seeded random places in
the tail of one kind of file, and starts the broker again. Then, for the kinds the broker must
start with:

- it started; what it read is a prefix of what was acknowledged, each record at its
  acknowledged offset (segments: start-up truncated to the last valid batch; derived files:
  nothing is lost), read with librdkafka's `check.crcs=true`, so a corrupt batch served fails;
- read_committed never shows the aborted transaction and shows the committed one (when it
  survived);
- seeks into the sealed segment land on the right records (the indexes are right);
- a new producer appends at the new log end;
- Ringtail logs what it dropped or rebuilt.

For `meta.properties` the broker refuses to start with an error naming the file (as Kafka does
for a meta.properties without a valid node.id); repaired, it starts again.
What Kafka 4.1.2 does for each kind is in results/2026-12-01-corrupt-files.md.

Replay: RINGTAIL_CORRUPT_SEED=1234 pytest tests/test_corrupt_files.py
"""

import os
import random
import re
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

import harness
import txn_helpers as tx

SEGMENT_BYTES = 1 << 20
RECORDS = 9_000
VALUE_BYTES = 250
TAIL_BYTES = 64 * 1024


def case_seed(kind):
    configured = os.environ.get("RINGTAIL_CORRUPT_SEED")
    seed = int(configured) if configured else random.SystemRandom().randrange(1 << 32)
    print(f"corrupt-file case {kind}: seed={seed} (replay with RINGTAIL_CORRUPT_SEED={seed})")
    return seed


def populate(broker, topic, seed):
    """Idempotent records, an aborted and a committed transaction between them; returns
    ({offset: value} acknowledged, aborted values, committed values)."""
    acked = {}
    errors = []

    def report(error, message):
        if error is not None:
            errors.append(error)
        else:
            acked[message.offset()] = message.value()
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 2, "batch.size": 16384})

    def produce(start, stop):
        for i in range(start, stop):
            value = f"{seed}:{i}:".encode().ljust(VALUE_BYTES, b"v")
            while True:
                try:
                    producer.produce(topic, value=value, partition=0, on_delivery=report)
                    break
                except BufferError:
                    producer.poll(0.05)
        assert producer.flush(60) == 0
    produce(0, RECORDS // 2)
    txn = Producer({"bootstrap.servers": broker.bootstrap,
                    "transactional.id": tx.unique(f"corrupt-{seed}"), "linger.ms": 2})
    txn.init_transactions(60)
    groups = {}
    for outcome in ("aborted", "committed"):
        txn.begin_transaction()
        groups[outcome] = [f"{seed}:{outcome}:{i}".encode() for i in range(40)]
        for value in groups[outcome]:
            txn.produce(topic, value=value, partition=0, on_delivery=report)
        assert txn.flush(60) == 0
        if outcome == "aborted":
            txn.abort_transaction(60)
        else:
            txn.commit_transaction(60)
    produce(RECORDS // 2, RECORDS)
    assert not errors, errors[:3]
    return acked, groups["aborted"], groups["committed"]


def partition_dir(broker, topic):
    return broker.data_dir / f"{topic}-0"


def segment_bases(directory):
    return sorted(int(p.stem) for p in directory.glob("*.log"))


def corrupt(path, rng, modes=("truncate", "flip"), tail_bytes=TAIL_BYTES, floor=0):
    """Truncates `path` at a seeded place in its last `tail_bytes` (never below `floor`) or
    flips 1-8 seeded bytes there; returns a description."""
    data = bytearray(path.read_bytes())
    assert data, f"{path} is empty: nothing to corrupt"
    start = max(floor, len(data) - tail_bytes)
    mode = rng.choice(modes)
    if mode == "truncate":
        at = rng.randrange(start, len(data))
        path.write_bytes(bytes(data[:at]))
        return f"truncated {path.name} from {len(data)} to {at} bytes"
    flipped = []
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(start, len(data))
        data[at] ^= rng.randrange(1, 256)
        flipped.append(at)
    path.write_bytes(bytes(data))
    return f"flipped bytes of {path.name} ({len(data)} bytes) at {sorted(flipped)}"


def read_checked(broker, topic, isolation="read_uncommitted"):
    """{offset: value} of partition 0 from the start to its end, CRCs checked by the client."""
    got = tx.read_confluent(broker.bootstrap, topic, 1, isolation, timeout_s=90)
    return {offset: value for offset, _, value in got[0]}


def check_seeks(broker, topic, acked, offsets):
    """A consumer assigned at each offset gets the acknowledged record there first."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": tx.unique("seek"),
                         "enable.auto.commit": False, "check.crcs": True,
                         "isolation.level": "read_uncommitted",
                         "enable.partition.eof": True, "auto.offset.reset": "error"})
    try:
        for offset in offsets:
            consumer.assign([TopicPartition(topic, 0, offset)])
            deadline = time.monotonic() + 30
            message = None
            while time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is None:
                    continue
                if message.error() is not None:
                    assert message.error().code() != KafkaError._PARTITION_EOF, \
                        f"EOF seeking to {offset}"
                    raise AssertionError(f"seek to {offset}: {message.error()}")
                break
            assert message is not None, f"nothing read at offset {offset}"
            assert message.offset() == offset and message.value() == acked[offset], \
                f"seek to {offset} gave offset {message.offset()} value {message.value()[:30]!r}"
    finally:
        consumer.close()


def restart_expecting_start(broker):
    try:
        broker.start()
    except harness.BrokerStartError as error:
        raise AssertionError(f"the broker did not start after the corruption: {error}") from None


def verify_after_start(broker, topic, seed, acked, aborted, committed, lossless):
    got = read_checked(broker, topic)
    for offset, value in got.items():
        assert acked.get(offset) == value, \
            f"seed={seed}: offset {offset} holds {value[:30]!r}, acknowledged {acked.get(offset)!r:.40}"
    log_end = tx.list_latest(broker.bootstrap, topic, 1, "read_uncommitted")[0]
    kept = [offset for offset in acked if offset < log_end]
    missing = [offset for offset in kept if offset not in got]
    assert not missing, f"seed={seed}: acknowledged offsets below the log end {log_end} missing: " \
                        f"{missing[:10]}"
    if lossless:
        assert len(got) == len(acked), \
            f"seed={seed}: {len(acked) - len(got)} acknowledged records lost"
    committed_view = set(read_checked(broker, topic, "read_committed").values())
    assert not committed_view & set(aborted), \
        f"seed={seed}: read_committed shows {len(committed_view & set(aborted))} aborted records"
    survived = [v for v in committed if v in got.values()]
    assert set(survived) <= committed_view, f"seed={seed}: committed transaction not shown"
    # New records go on at the log end.
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all",
                         "enable.idempotence": True})
    offsets = []
    producer.produce(topic, value=b"after", partition=0,
                     on_delivery=lambda error, message: offsets.append((error, message.offset())))
    assert producer.flush(60) == 0
    assert offsets and offsets[0][0] is None, f"seed={seed}: produce after restart: {offsets}"
    assert offsets[0][1] >= log_end, f"seed={seed}: appended at {offsets[0][1]} < {log_end}"
    return got


KINDS = {
    # kind: (how the broker stops, lossless)
    "segment": ("kill", False),
    "offset-index": ("kill", True),
    "time-index": ("kill", True),
    "txn-index": ("kill", True),
    "producer-state": ("stop", True),
    "leader-epoch-checkpoint": ("kill", True),
}


def corrupt_kind(broker, topic, kind, rng):
    directory = partition_dir(broker, topic)
    bases = segment_bases(directory)
    assert len(bases) >= 3, f"expected sealed segments, found {bases}"
    if kind == "segment":
        return corrupt(directory / f"{bases[-1]:020}.log", rng)
    if kind == "offset-index":
        return corrupt(directory / f"{bases[-2]:020}.index", rng, tail_bytes=64)
    if kind == "time-index":
        return corrupt(directory / f"{bases[-2]:020}.timeindex", rng, tail_bytes=48)
    if kind == "txn-index":
        files = sorted(directory.glob("*.txnindex"))
        assert files, f"no .txnindex in {sorted(p.name for p in directory.iterdir())}"
        return corrupt(files[-1], rng, modes=("truncate",))
    if kind == "producer-state":
        files = sorted(directory.glob("*.producer-state" if broker.target == "ringtail"
                                      else "*.snapshot"))
        assert files, f"no producer-state snapshot in {sorted(p.name for p in directory.iterdir())}"
        return corrupt(files[-1], rng)
    if kind == "leader-epoch-checkpoint":
        return corrupt(directory / "leader-epoch-checkpoint", rng)
    raise ValueError(kind)


# What Ringtail logs for each kind when it noticed the damage (a flipped byte a check cannot see,
# e.g. a leader epoch outside the CRC, is not noticed, by Kafka either).
RINGTAIL_REPORTS = {
    "segment": r"truncating torn or corrupt tail of segment",
    "offset-index": r"bad offset index, rebuilding|indexes disagree",
    "time-index": r"bad time index, rebuilding|indexes disagree",
    "txn-index": r"transaction index",
    "producer-state": r"producer-state snapshot",
    "leader-epoch-checkpoint": r"leader-epoch-checkpoint|checkpoint file",
}


def kind_params():
    for kind in KINDS:
        if kind == "leader-epoch-checkpoint":
            # Kafka 4.1.2 reads a malformed line as an IOException: the log dir goes offline and
            # the node halts ("Shutdown broker because all log dirs in ... have failed"), see
            # results/2026-12-01-corrupt-files.md. The file only speeds up OffsetForLeaderEpoch
            # answers, so Ringtail drops what does not parse and starts.
            yield pytest.param(kind, marks=pytest.mark.ringtail_only(
                "Kafka halts on a malformed leader-epoch-checkpoint; Ringtail drops its bad lines"))
        else:
            yield kind


@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind", kind_params())
def test_corrupt_file_recovered(start_broker, kind):
    seed = case_seed(kind)
    rng = random.Random(seed)
    stop, lossless = KINDS[kind]
    broker = start_broker()
    topic = harness.create_topic(broker, tx.unique(f"corrupt-{kind}"), 1,
                                 configs={"segment.bytes": str(SEGMENT_BYTES)})
    acked, aborted, committed = populate(broker, topic, seed)
    if stop == "kill":
        broker.kill()
    else:
        broker.stop()
    log_before = len(broker.log_text())
    what = corrupt_kind(broker, topic, kind, rng)
    print(f"seed={seed}: {what}")
    restart_expecting_start(broker)
    got = verify_after_start(broker, topic, seed, acked, aborted, committed, lossless)
    bases = segment_bases(partition_dir(broker, topic))
    sealed = [o for o in sorted(acked) if bases[-2] <= o < bases[-1] and o in got]
    if sealed:
        check_seeks(broker, topic, acked, sorted(rng.sample(sealed, min(8, len(sealed)))))
    if broker.target == "ringtail":
        new_log = broker.log_text()[log_before:]
        reported = re.search(RINGTAIL_REPORTS[kind], new_log)
        print(f"seed={seed}: kept {len(got)} of {len(acked)}; report: "
              f"{reported.group(0) if reported else None}")
        if kind == "segment" and what.startswith("flipped"):
            assert reported, f"seed={seed}: no log line reports the corrupt tail ({what})"


def meta_properties_damage(path, rng):
    """Garbles node.id: drops the file from its node.id line on, or puts a letter in its value."""
    text = path.read_text()
    match = re.search(r"^node\.id=(\d+)$", text, re.M)
    assert match, f"no node.id line in {path}:\n{text}"
    if rng.random() < 0.5:
        path.write_text(text[:match.start()])
        return "truncated before node.id"
    at = rng.randrange(match.start(1), match.end(1))
    path.write_text(text[:at] + rng.choice("xyz") + text[at + 1:])
    return f"garbled node.id at byte {at}"


@pytest.mark.timeout(600)
def test_corrupt_meta_properties_refuses_to_start(start_broker):
    seed = case_seed("meta.properties")
    rng = random.Random(seed)
    # A node of its own for Kafka (the pool shares nodes by settings): this one is broken on
    # purpose. The setting is Kafka's default.
    broker = start_broker(settings={"log.cleaner.backoff.ms": "15000"})
    topic = harness.create_topic(broker, tx.unique("corrupt-meta"), 1)
    broker.kill()
    path = broker.data_dir / "meta.properties"
    original = path.read_bytes()
    what = meta_properties_damage(path, rng)
    print(f"seed={seed}: {what}")
    try:
        with pytest.raises(harness.BrokerStartError) as refused:
            broker.start()
        print(f"refused: {str(refused.value)[-600:]}")
        if broker.target == "ringtail":
            assert "meta.properties" in str(refused.value) and "node.id" in str(refused.value), \
                "the error must name the file and the property"
    finally:
        path.write_bytes(original)
    broker.start()
    tx.list_latest(broker.bootstrap, topic, 1, "read_uncommitted")


@pytest.mark.ringtail_only("ringtail-metadata.json is Ringtail's own file (Kafka keeps topics in "
                           "its __cluster_metadata log)")
@pytest.mark.timeout(120)
def test_torn_topic_metadata_refuses_to_start(start_broker):
    seed = case_seed("ringtail-metadata.json")
    rng = random.Random(seed)
    broker = start_broker()
    harness.create_topic(broker, tx.unique("corrupt-metadata"), 1)
    broker.kill()
    path = broker.metadata_file()
    original = path.read_bytes()
    what = corrupt(path, rng, modes=("truncate",), tail_bytes=len(original), floor=0)
    print(f"seed={seed}: {what}")
    try:
        with pytest.raises(harness.BrokerStartError) as refused:
            broker.start()
        assert "ringtail-metadata.json" in str(refused.value), str(refused.value)[-600:]
    finally:
        path.write_bytes(original)
    broker.start()
