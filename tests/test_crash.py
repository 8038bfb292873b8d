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

The writer and the checks are tests/crash_workload.py's (shared with tests/test_crash_scale.py).
"""

import os
import random
import time

import pytest

import harness
from crash_workload import FLUSH_TIMEOUT_S, Writer, check_idempotent

ROUNDS = 5


def crash_seeds():
    configured = os.environ.get("RINGTAIL_CRASH_SEEDS")
    if configured:
        return [int(seed) for seed in configured.replace(",", " ").split()]
    return [random.SystemRandom().randrange(1 << 32) for _ in range(ROUNDS)]


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

    check_idempotent(broker, topic, partitions, writer, seed)
    assert len(writer.acked) > acked_at_kill, "nothing acknowledged after the restart"
