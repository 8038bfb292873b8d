"""Crash rounds at scale, bounded (issue 14, "Crash rounds at scale").

Each round (seeded, the seed printed) runs at once an idempotent acks=all producer
(confluent-kafka), a plain acks=all producer (kafka-python), a transactional producer
(confluent-kafka, committing and aborting) and a consumer group committing offsets, SIGKILLs the
broker at a seeded moment, restarts it on the same port and data, lets the workloads go on, and
checks (tests/crash_workload.py): every acknowledged record at its acknowledged offset, the
idempotent one exactly once and in order, committed offsets never ahead of the log end and no
acknowledged commit lost, read_committed showing every committed transaction whole, no aborted
one and no partial one.

    RINGTAIL_CRASH_SCALE_ROUNDS=6 (default)   rounds in this run
    RINGTAIL_CRASH_SCALE_SEEDS=1234,5678      replay these seeds instead
    scripts/crash-rounds.sh ROUNDS [SEED]     many rounds, counts written under results/
"""

import os
import random

import pytest

from crash_workload import run_round

ROUNDS = int(os.environ.get("RINGTAIL_CRASH_SCALE_ROUNDS", "6"))


def round_seeds():
    configured = os.environ.get("RINGTAIL_CRASH_SCALE_SEEDS")
    if configured:
        return [int(seed) for seed in configured.replace(",", " ").split()]
    base = os.environ.get("RINGTAIL_CRASH_SCALE_BASE_SEED")
    rng = random.Random(int(base)) if base else random.SystemRandom()
    return [rng.randrange(1 << 32) for _ in range(ROUNDS)]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("seed", round_seeds(), ids=lambda seed: f"seed={seed}")
def test_crash_round(start_broker, seed):
    print(f"replay with RINGTAIL_CRASH_SCALE_SEEDS={seed}")
    try:
        run_round(start_broker, seed)
    except Exception as error:
        # At once, so that a long run's log shows why a round failed next to the round.
        print(f"crash round seed={seed} FAILED: {error!r}"[:3000])
        raise
