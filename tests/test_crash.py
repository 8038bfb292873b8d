"""Crash safety (issue 2, test 5).

Five rounds, each with a printed seed. In each, a confluent-kafka producer (acks=all, idempotent)
writes unique values from a thread and records every acknowledged (partition, offset, value);
the broker is SIGKILLed at a random moment, restarted on the same port and data dir, and the
producer goes on until it has delivered everything it queued. Then everything is read back:

- every acknowledged record is at its acknowledged offset,
- offsets are contiguous per partition from 0,
- no value appears twice (retries of batches that were written but not acknowledged before the
  crash must be recognised as duplicates, as Kafka does from the producer state in its log),
- per partition, values appear in the order they were produced (idempotence keeps order).

Replay a round: RINGTAIL_CRASH_SEEDS=1234,5678 pytest tests/test_crash.py
"""

import os
import random
import threading
import time

import pytest
from confluent_kafka import Producer

import harness

ROUNDS = 5
MAX_MESSAGES = 400_000  # a bound only: the rate limit keeps the producer busy across the crash
FLUSH_TIMEOUT_S = 90


def crash_seeds():
    configured = os.environ.get("RINGTAIL_CRASH_SEEDS")
    if configured:
        return [int(seed) for seed in configured.replace(",", " ").split()]
    return [random.SystemRandom().randrange(1 << 32) for _ in range(ROUNDS)]


class Writer(threading.Thread):
    """Produces unique values until told to stop or MAX_MESSAGES; then flushes (bounded)."""

    def __init__(self, bootstrap, topic, seed, rng):
        super().__init__(name=f"crash-writer-{seed}", daemon=True)
        self.topic = topic
        self.seed = seed
        self.value_bytes = rng.randrange(8, 2000)
        self.rate_per_s = rng.choice([2_000, 10_000, 40_000])
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
                except BufferError:
                    producer.poll(0.05)
            self.not_flushed = producer.flush(FLUSH_TIMEOUT_S)
        except Exception as error:  # e.g. a fatal idempotence error; reported by the test
            self.failure = error


def index_of(value, seed):
    prefix, index, _ = value.split(b":", 2)
    assert prefix == str(seed).encode(), f"foreign value {value[:40]!r}"
    return int(index)


@pytest.mark.timeout(400)
@pytest.mark.parametrize("seed", crash_seeds(), ids=lambda seed: f"seed={seed}")
def test_sigkill_keeps_every_acknowledged_record(start_broker, seed):
    print(f"crash round seed={seed} (replay with RINGTAIL_CRASH_SEEDS={seed})")
    rng = random.Random(seed)
    shards = rng.choice([1, 2]) if harness.available_cpus() >= 2 else 1
    partitions = rng.randint(1, 4)
    broker = start_broker(shards=shards)
    topic = harness.create_topic(broker, f"crash-{seed}", partitions)

    writer = Writer(broker.bootstrap, topic, seed, rng)
    kill_after_s = rng.uniform(0.05, 2.0)
    down_for_s = rng.uniform(0.0, 1.0)
    run_after_restart_s = rng.uniform(0.2, 1.5)
    print(f"shards={shards} partitions={partitions} config={writer.config} "
          f"value_bytes={writer.value_bytes} rate_per_s={writer.rate_per_s} kill_after_s={kill_after_s:.3f} "
          f"down_for_s={down_for_s:.3f} run_after_restart_s={run_after_restart_s:.3f}")

    writer.start()
    try:
        harness.wait_until(lambda: writer.acked or writer.failure, 30,
                           message="the first acknowledgement")
        time.sleep(kill_after_s)
        acked_at_kill, produced_at_kill = len(writer.acked), writer.produced
        broker.kill()
        time.sleep(down_for_s)
        broker.start()
        time.sleep(run_after_restart_s)
    finally:
        writer.stop_event.set()
        writer.join(FLUSH_TIMEOUT_S + 30)
    assert not writer.is_alive(), "producer thread did not finish"
    print(f"produced={writer.produced} acked={len(writer.acked)} "
          f"produced_at_kill={produced_at_kill} acked_at_kill={acked_at_kill} "
          f"errors={len(writer.errors)} not_flushed={writer.not_flushed}")

    by_partition = harness.read_all_confluent(broker, topic, partitions, timeout_s=180,
                                              extra_config={"check.crcs": True})
    seen = {}
    for partition, messages in by_partition.items():
        offsets = [message.offset() for message in messages]
        assert offsets == list(range(len(messages))), \
            f"seed={seed}: partition {partition}: offsets not contiguous from 0"
        last_index = -1
        for message in messages:
            value = message.value()
            first = seen.setdefault(value, (partition, message.offset()))
            assert first == (partition, message.offset()), \
                f"seed={seed}: value {value[:40]!r} at {first} and {(partition, message.offset())}"
            index = index_of(value, seed)
            assert index > last_index, \
                f"seed={seed}: partition {partition} offset {message.offset()}: out of order"
            last_index = index

    for partition, offset, value in writer.acked:
        found = by_partition[partition][offset].value() if offset < len(
            by_partition[partition]) else None
        assert found == value, \
            f"seed={seed}: acknowledged {value[:40]!r} at {partition}/{offset}, found {found!r:.60}"

    # Durability is checked above; now the producer must have finished cleanly too.
    assert writer.failure is None, f"seed={seed}: producer failed: {writer.failure!r}"
    assert writer.not_flushed == 0, f"seed={seed}: {writer.not_flushed} messages never delivered"
    assert not writer.errors, f"seed={seed}: delivery errors after restart: {writer.errors[:5]}"
    assert len(writer.acked) == writer.produced
    assert len(writer.acked) > acked_at_kill, "nothing acknowledged after the restart"
