"""Shared pieces of the crash tests (issue 14, "Crash rounds at scale"): the workloads that run
while a broker is SIGKILLed and the checks made once it is back.

Workloads (each a thread; each keeps what its client acknowledged):

- `Writer`: confluent-kafka, acks=all, idempotent; unique values `seed:index:xxx`.
- `PlainWriter`: kafka-python, acks=all, not idempotent (retries may duplicate a batch, so only
  "every acknowledged record is at its acknowledged offset" holds).
- `TxnWriter`: confluent-kafka, transactional; commits and aborts whole transactions and records
  each one's outcome: committed, aborted, or in doubt (commit_transaction() failed: the commit
  may or may not have happened, but never partly).
- `GroupCommitter`: a confluent-kafka consumer in a group that commits offsets synchronously
  after every poll and records what was acknowledged and what was only attempted.

`run_round(start_broker, seed)` runs one seeded round with all four at once (tests/
test_crash_scale.py, scripts/crash-rounds.sh); tests/test_crash.py uses `Writer` alone.
Everything is bounded in time; a failed check raises AssertionError naming the seed.
"""

import os
import random
import threading
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

import harness
import txn_helpers as tx

MAX_MESSAGES = 400_000  # a bound only: the rate limit keeps a producer busy across the crash
FLUSH_TIMEOUT_S = 90


def value_index(value, seed):
    """The index in a `seed:index:...` value (asserts the seed: no foreign values)."""
    prefix, index, _ = value.split(b":", 2)
    assert prefix == str(seed).encode(), f"foreign value {value[:40]!r}"
    return int(index)


class Writer(threading.Thread):
    """Idempotent acks=all confluent-kafka producer of unique values, until told to stop or
    MAX_MESSAGES; then flushes (bounded)."""

    def __init__(self, bootstrap, topic, seed, rng, rates=(2_000, 10_000, 40_000)):
        super().__init__(name=f"crash-writer-{seed}", daemon=True)
        self.topic = topic
        self.seed = seed
        self.value_bytes = rng.randrange(8, 2000)
        self.rate_per_s = rng.choice(rates)
        self.config = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": rng.choice([0, 2, 10]),
            "compression.type": rng.choice(["none", "none", "lz4", "zstd", "gzip", "snappy"]),
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
            "message.timeout.ms": 240_000,
        }
        # e.g. RINGTAIL_CRASH_LIBRDKAFKA_DEBUG=eos,msg,broker to see a replayed round's retries.
        if os.environ.get("RINGTAIL_CRASH_LIBRDKAFKA_DEBUG"):
            self.config["debug"] = os.environ["RINGTAIL_CRASH_LIBRDKAFKA_DEBUG"]
        self.stop_event = threading.Event()
        self.acked = []            # (partition, offset, value)
        self.errors = []           # (value, error)
        self.produced = 0
        self.not_flushed = None
        self.failure = None

    def value(self, index):
        prefix = f"{self.seed}:{index}:".encode()
        return prefix + b"x" * max(0, self.value_bytes - len(prefix))

    def on_delivery(self, error, message):
        if error is not None:
            self.errors.append((message.value()[:40], error))
        else:
            self.acked.append((message.partition(), message.offset(), message.value()))

    def run(self):
        producer = Producer(self.config)
        started = time.monotonic()
        try:
            while not self.stop_event.is_set() and self.produced < MAX_MESSAGES:
                due = int((time.monotonic() - started) * self.rate_per_s) + 1
                if self.produced >= due:
                    producer.poll(0.001)  # serves delivery reports, paces the loop
                    continue
                try:
                    producer.produce(self.topic, value=self.value(self.produced),
                                     key=b"%d" % (self.produced % 64),
                                     on_delivery=self.on_delivery)
                    self.produced += 1
                    if self.produced % 64 == 0:
                        # A writer behind its rate (a loaded machine) must still serve delivery
                        # reports, or nothing counts as acknowledged until the queue is full.
                        producer.poll(0)
                except BufferError:
                    producer.poll(0.05)
            self.not_flushed = producer.flush(FLUSH_TIMEOUT_S)
        except Exception as error:  # e.g. a fatal idempotence error; reported by the checks
            self.failure = error


class PlainWriter(threading.Thread):
    """kafka-python producer, acks=all, enable_idempotence=False, at a fixed rate."""

    def __init__(self, bootstrap, topic, seed, rng):
        super().__init__(name=f"crash-plain-{seed}", daemon=True)
        self.topic = topic
        self.seed = seed
        self.rate_per_s = rng.choice([100, 500, 1_000])
        self.config = dict(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False,
                           linger_ms=rng.choice([0, 5]), retries=1_000_000,
                           retry_backoff_ms=50, reconnect_backoff_ms=50,
                           reconnect_backoff_max_ms=500, delivery_timeout_ms=200_000,
                           request_timeout_ms=30_000, max_block_ms=60_000)
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.acked = []
        self.errors = []
        self.produced = 0
        self.failure = None

    def run(self):
        from kafka import KafkaProducer
        try:
            producer = KafkaProducer(**self.config)
        except Exception as error:
            self.failure = error
            return
        started = time.monotonic()
        try:
            while not self.stop_event.is_set() and self.produced < MAX_MESSAGES:
                due = int((time.monotonic() - started) * self.rate_per_s) + 1
                if self.produced >= due:
                    time.sleep(0.002)
                    continue
                value = f"{self.seed}:{self.produced}:plain".encode()
                future = producer.send(self.topic, value=value)
                future.add_callback(self._acked, value)
                future.add_errback(self._failed, value)
                self.produced += 1
            producer.flush(timeout=FLUSH_TIMEOUT_S)
        except Exception as error:
            self.failure = error
        finally:
            producer.close(timeout=10)

    def _acked(self, value, metadata):
        with self.lock:
            self.acked.append((metadata.partition, metadata.offset, value))

    def _failed(self, value, error):
        with self.lock:
            self.errors.append((value, error))


class TxnWriter(threading.Thread):
    """A transactional confluent-kafka producer: transactions of 1-20 records over the topic's
    partitions, each committed or aborted (seeded choice). A failed call makes the transaction's
    outcome "doubt" if it was the commit, else "aborted"; the producer is then replaced by a new
    one with the same transactional id, whose init fences the old one and makes the coordinator
    finish (or abort) what was in flight (KIP-98)."""

    def __init__(self, bootstrap, topic, partitions, seed, rng):
        super().__init__(name=f"crash-txn-{seed}", daemon=True)
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.seed = seed
        self.rng = random.Random(rng.randrange(1 << 32))
        self.transactional_id = f"crash-scale-{seed}"
        self.stop_event = threading.Event()
        self.transactions = []  # (n, outcome, {partition: [value, ...]})
        self.inits = 0
        self.failure = None

    def _new_producer(self, deadline):
        while True:
            producer = tx.ConfluentTxnProducer(self.bootstrap, self.transactional_id,
                                               extra={"transaction.timeout.ms": 30_000})
            try:
                producer.init()
                self.inits += 1
                return producer
            except KafkaException as error:
                if time.monotonic() > deadline:
                    raise AssertionError(f"init_transactions never succeeded: {error}") from error
                time.sleep(0.2)

    def run(self):
        try:
            producer = self._new_producer(time.monotonic() + 120)
            n = 0
            while not self.stop_event.is_set():
                sent = {}
                step = "begin"
                try:
                    producer.begin()
                    step = "send"
                    for i in range(self.rng.randint(1, 20)):
                        partition = self.rng.randrange(self.partitions)
                        value = f"{self.seed}:{n}:{i}".encode()
                        producer.send(self.topic, partition, value)
                        sent.setdefault(partition, []).append(value)
                    producer.flush()
                    if self.rng.random() < 0.3:
                        step = "abort"
                        producer.abort()
                        self.transactions.append((n, "aborted", sent))
                    else:
                        step = "commit"
                        producer.commit()
                        self.transactions.append((n, "committed", sent))
                except Exception:
                    self.transactions.append((n, "doubt" if step == "commit" else "aborted", sent))
                    try:
                        producer.close()
                    except Exception:
                        pass
                    producer = self._new_producer(time.monotonic() + 120)
                n += 1
                time.sleep(self.rng.uniform(0, 0.02))
            producer.close()
        except Exception as error:
            self.failure = error


class GroupCommitter(threading.Thread):
    """A consumer of `topic` in group `group_id` committing synchronously after each poll."""

    def __init__(self, bootstrap, topic, group_id):
        super().__init__(name=f"crash-group-{group_id}", daemon=True)
        self.topic = topic
        self.group_id = group_id
        self.config = {
            "bootstrap.servers": bootstrap, "group.id": group_id, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "session.timeout.ms": 45_000,
            "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 500, "check.crcs": True,
        }
        self.stop_event = threading.Event()
        self.committed = {}   # partition -> last offset whose commit was acknowledged
        self.attempted = {}   # partition -> largest offset ever sent in a commit
        self.commits = 0
        self.commit_errors = 0
        self.consumed = 0
        self.failure = None

    def run(self):
        consumer = Consumer(self.config)
        try:
            consumer.subscribe([self.topic])
            while not self.stop_event.is_set():
                messages = consumer.consume(num_messages=500, timeout=0.2)
                positions = {}
                for message in messages:
                    if message.error() is not None:
                        continue
                    positions[message.partition()] = message.offset() + 1
                    self.consumed += 1
                if not positions:
                    continue
                for partition, offset in positions.items():
                    self.attempted[partition] = max(self.attempted.get(partition, 0), offset)
                try:
                    answers = consumer.commit(
                        offsets=[TopicPartition(self.topic, p, o) for p, o in positions.items()],
                        asynchronous=False)
                    for answer in answers or []:
                        if answer.error is None:
                            self.committed[answer.partition] = answer.offset
                    self.commits += 1
                except KafkaException:
                    self.commit_errors += 1  # the broker is down or the group moved: retried
        except Exception as error:
            self.failure = error
        finally:
            try:
                consumer.close()
            except Exception:
                pass


# ----- checks -----

def check_idempotent(broker, topic, partitions, writer, seed):
    """Offsets contiguous from 0, every value once, in produce order per partition, every
    acknowledged record at its acknowledged offset; the producer finished cleanly."""
    by_partition = harness.read_all_confluent(broker, topic, partitions, timeout_s=180,
                                              extra_config={"check.crcs": True})
    seen = {}
    for partition, messages in by_partition.items():
        offsets = [message.offset() for message in messages]
        assert offsets == list(range(len(messages))), \
            f"seed={seed}: {topic}/{partition}: offsets not contiguous from 0"
        last_index = -1
        for message in messages:
            value = message.value()
            first = seen.setdefault(value, (partition, message.offset()))
            assert first == (partition, message.offset()), \
                f"seed={seed}: value {value[:40]!r} at {first} and {(partition, message.offset())}"
            index = value_index(value, seed)
            assert index > last_index, \
                f"seed={seed}: {topic}/{partition} offset {message.offset()}: out of order"
            last_index = index
    check_acked_at_offsets(by_partition, writer.acked, seed, topic)
    assert writer.failure is None, f"seed={seed}: idempotent producer failed: {writer.failure!r}"
    assert writer.not_flushed == 0, f"seed={seed}: {writer.not_flushed} messages never delivered"
    assert not writer.errors, f"seed={seed}: delivery errors after restart: {writer.errors[:5]}"
    assert len(writer.acked) == writer.produced
    return by_partition


def check_acked_at_offsets(by_partition, acked, seed, topic):
    for partition, offset, value in acked:
        messages = by_partition[partition]
        found = messages[offset].value() if offset < len(messages) else None
        assert found == value, \
            f"seed={seed}: {topic}: acknowledged {value[:40]!r} at {partition}/{offset}, " \
            f"found {found!r:.60}"


def check_plain(broker, topic, partitions, writer, seed):
    by_partition = harness.read_all_confluent(broker, topic, partitions, timeout_s=180,
                                              extra_config={"check.crcs": True})
    for partition, messages in by_partition.items():
        offsets = [message.offset() for message in messages]
        assert offsets == list(range(len(messages))), \
            f"seed={seed}: {topic}/{partition}: offsets not contiguous from 0"
        for message in messages:
            value_index(message.value(), seed)
    check_acked_at_offsets(by_partition, writer.acked, seed, topic)
    assert writer.failure is None, f"seed={seed}: plain producer failed: {writer.failure!r}"
    assert not writer.errors, f"seed={seed}: plain producer delivery errors: {writer.errors[:5]}"
    assert len(writer.acked) == writer.produced, \
        f"seed={seed}: plain producer: {writer.produced - len(writer.acked)} never acknowledged"


def check_transactions(broker, topic, partitions, writer, seed):
    """read_committed shows every committed transaction whole, no aborted one, each in-doubt one
    whole or absent, in transaction order per partition; and the LSO reaches the high
    watermark. Returns {outcome: count} ("doubt-whole" / "doubt-absent" for the in-doubt)."""
    assert writer.failure is None, f"seed={seed}: transactional producer failed: {writer.failure!r}"

    def stable():
        committed = tx.list_latest(broker.bootstrap, topic, partitions, "read_committed")
        return committed == tx.list_latest(broker.bootstrap, topic, partitions,
                                           "read_uncommitted")
    tx.wait_until(stable, 90, message=f"seed={seed}: LSO == high watermark on {topic}")
    got = tx.values(tx.read_confluent(broker.bootstrap, topic, partitions, "read_committed",
                                      timeout_s=120))
    present = {}
    for partition, values in got.items():
        last = (-1, -1)
        for value in values:
            assert value not in present, f"seed={seed}: {value!r} read twice (read_committed)"
            present[value] = partition
            _, n, i = value.split(b":")
            assert (int(n), int(i)) > last, \
                f"seed={seed}: {topic}/{partition}: {value!r} out of transaction order"
            last = (int(n), int(i))
    counts = {}
    for n, outcome, sent in writer.transactions:
        values = [(p, v) for p, vs in sent.items() for v in vs]
        shown = [present.pop(v, None) == p for p, v in values]
        if outcome == "committed":
            assert all(shown), f"seed={seed}: committed transaction {n} not whole: {shown}"
        elif outcome == "aborted":
            assert not any(shown), f"seed={seed}: aborted transaction {n} visible: {shown}"
        else:
            assert all(shown) or not any(shown), \
                f"seed={seed}: in-doubt transaction {n} partly visible: {shown}"
            outcome = "doubt-whole" if values and all(shown) else "doubt-absent"
        counts[outcome] = counts.get(outcome, 0) + 1
    assert not present, f"seed={seed}: read_committed shows records never sent: {list(present)[:5]}"
    return counts


def check_group(broker, topic, partitions, committer, seed):
    """Committed offsets are never ahead of the log end; an acknowledged commit survived (the
    broker's offset lies between the last acknowledged one and the largest attempted)."""
    assert committer.failure is None, f"seed={seed}: group consumer failed: {committer.failure!r}"
    log_end = tx.list_latest(broker.bootstrap, topic, partitions, "read_uncommitted")
    stored = tx.committed_offsets(broker.bootstrap, committer.group_id, topic, partitions)
    for partition in range(partitions):
        offset = stored[partition]
        acknowledged = committer.committed.get(partition)
        if offset is None:
            assert acknowledged is None, \
                f"seed={seed}: commit {acknowledged} of partition {partition} was lost"
            continue
        assert offset <= log_end[partition], \
            f"seed={seed}: committed offset {offset} ahead of the log end {log_end[partition]}"
        assert acknowledged is None or acknowledged <= offset <= committer.attempted[partition], \
            f"seed={seed}: partition {partition}: stored {offset}, acknowledged {acknowledged}, " \
            f"attempted {committer.attempted.get(partition)}"
    return stored


# ----- one round -----

def run_round(start_broker, seed, log=print):
    """One seeded crash round (see the module doc): every workload runs, the broker is SIGKILLed
    at a seeded moment, down for a seeded time, restarted on the same port and data; the
    workloads go on, stop, and every check runs. Returns a summary dict."""
    started_at = time.monotonic()
    rng = random.Random(seed)
    shards = rng.choice([1, 2]) if harness.available_cpus() >= 2 else 1
    partitions = rng.randint(1, 4)
    kill_after_s = rng.uniform(0.1, 3.0)
    down_for_s = rng.uniform(0.0, 1.0)
    run_after_restart_s = rng.uniform(0.5, 2.0)
    # Drawn from its own generator, so the other draws of a seed stay as before: small
    # segments make the crash land amid rolls, producer-state snapshots and recovery checkpoints
    # (every quarter segment, at least 256 KiB: partition::checkpoint_bytes_for).
    segment_bytes = random.Random(seed ^ 0x5E6B).choice([None, 1 << 20, 64 << 10])
    configs = {"segment.bytes": str(segment_bytes)} if segment_bytes else None
    broker = start_broker(shards=shards)
    topics = {kind: harness.create_topic(broker, harness.unique_topic(f"crash-{kind}-{seed}"),
                                         partitions, configs=configs)
              for kind in ("idem", "plain", "txn")}
    # Modest rates: the checks read everything back, and a round must stay short on a shared
    # machine; the crash still lands amid batches in flight (linger.ms, several per second).
    idem = Writer(broker.bootstrap, topics["idem"], seed, rng, rates=(300, 1_000, 2_000))
    plain = PlainWriter(broker.bootstrap, topics["plain"], seed, rng)
    txn = TxnWriter(broker.bootstrap, topics["txn"], partitions, seed, rng)
    group = GroupCommitter(broker.bootstrap, topics["idem"], f"crash-group-{seed}-{rng.random()}")
    workers = (idem, plain, txn, group)
    log(f"crash round seed={seed}: shards={shards} partitions={partitions} "
        f"idem={idem.config} rate={idem.rate_per_s}/s plain_rate={plain.rate_per_s}/s "
        f"segment_bytes={segment_bytes} "
        f"kill_after_s={kill_after_s:.3f} down_for_s={down_for_s:.3f} "
        f"run_after_restart_s={run_after_restart_s:.3f}")
    for worker in workers:
        worker.start()
    try:
        # Generous: on a loaded machine the group's first join and the transactional
        # producer's init take a while; a failed workload ends the wait (and the checks report it).
        try:
            harness.wait_until(
                lambda: any(w.failure for w in workers) or (
                    idem.acked and plain.acked and txn.transactions and group.commits),
                180, interval_s=0.1, message="every workload's first acknowledgement")
        except AssertionError as error:
            raise AssertionError(
                f"seed={seed}: {error}: idempotent {len(idem.acked)}, plain {len(plain.acked)}, "
                f"transactions {len(txn.transactions)}, group commits {group.commits} "
                f"(consumed {group.consumed})") from None
        time.sleep(kill_after_s)
        at_kill = (len(idem.acked), len(plain.acked), len(txn.transactions), group.commits)
        broker.kill()
        time.sleep(down_for_s)
        broker.start()
        time.sleep(run_after_restart_s)
        harness.wait_until(lambda: len(idem.acked) > at_kill[0] or idem.failure, 90,
                           message="an acknowledgement after the restart")
    finally:
        for worker in workers:
            worker.stop_event.set()
        for worker in workers:
            worker.join(FLUSH_TIMEOUT_S + 60)
    assert not any(w.is_alive() for w in workers), f"seed={seed}: a workload did not finish"
    check_idempotent(broker, topics["idem"], partitions, idem, seed)
    check_plain(broker, topics["plain"], partitions, plain, seed)
    outcomes = check_transactions(broker, topics["txn"], partitions, txn, seed)
    stored = check_group(broker, topics["idem"], partitions, group, seed)
    summary = {
        "seed": seed, "shards": shards, "partitions": partitions,
        "kill_after_s": round(kill_after_s, 3),
        "idempotent_acked": len(idem.acked), "plain_acked": len(plain.acked),
        "acked_at_kill": at_kill[0] + at_kill[1],
        "transactions": outcomes, "txn_inits": txn.inits,
        "group_commits": group.commits, "group_commit_errors": group.commit_errors,
        "group_stored": stored, "duration_s": round(time.monotonic() - started_at, 1),
    }
    log(f"crash round summary {summary}")
    return summary
