"""Transactions survive a crash (issue 10: "SIGKILL the broker in the middle of a transaction and
during a commit").

Each round (seeded; the seed is printed):
1. a confluent-kafka transactional producer commits (and aborts) a few whole transactions over
   1-4 partitions;
2. it opens one more and the broker is SIGKILLed either in the middle of it (records written, no
   commit asked: mode "mid") or during its commit (commit_transaction() running on a thread, the
   kill a few milliseconds after it starts: mode "commit");
3. the broker restarts on the same port and log dirs (Kafka's log recovery; for Ringtail the
   recovery of the producer and transaction state of every partition and of
   `__transaction_state`); in mode "mid" the recovered open transaction must still hold the LSO
   at its first record and read_committed show exactly the earlier committed transactions;
4. a new producer (a random one of the three clients) with the same transactional id initialises
   (which completes or aborts what the coordinator had in flight), commits one more transaction.

Then read_committed must give per partition exactly: every committed transaction whole, the
interrupted one whole or absent (never partly; absent in mode "mid", whole if its commit returned
success), then the new transaction, in order; and the LSO must come back to the high watermark.

Replay: RINGTAIL_TXN_SEED=1234[,5678] pytest tests/test_transactions_crash.py; more rounds:
RINGTAIL_TXN_ROUNDS=50 (scripts/txn-crash-rounds.sh N runs N rounds and writes the counts under
results/).
"""

import os
import random
import threading
import time

import pytest

import harness
import txn_helpers as tx

ROUNDS = int(os.environ.get("RINGTAIL_TXN_ROUNDS", "5"))


def round_seeds():
    configured = os.environ.get("RINGTAIL_TXN_SEED")
    if configured:
        return [int(seed) for seed in configured.replace(",", " ").split()]
    return [random.SystemRandom().randrange(1 << 32) for _ in range(ROUNDS)]


def send(producer, topic, partitions, tag, count, rng):
    """Sends `count` records `tag-i` to random partitions (in the open transaction), waits for
    them; returns {partition: [value, ...]} in send order."""
    sent = {p: [] for p in range(partitions)}
    for i in range(count):
        partition = rng.randrange(partitions)
        value = f"{tag}-{i}".encode()
        producer.send(topic, partition, value)
        sent[partition].append(value)
    producer.flush()
    return sent


def extend(into, part):
    for partition, values in part.items():
        into[partition].extend(values)


@pytest.mark.timeout(420)
@pytest.mark.parametrize("seed", round_seeds(), ids=lambda seed: f"seed={seed}")
def test_sigkill_during_transaction(start_broker, seed):
    print(f"transaction crash round seed={seed} (replay with RINGTAIL_TXN_SEED={seed})")
    rng = random.Random(seed)
    shards = rng.choice([1, 2]) if harness.available_cpus() >= 2 else 1
    partitions = rng.randint(1, 4)
    mode = rng.choice(["mid", "commit"])
    before_count = rng.randint(1, 4)
    restart_client = rng.choice(tx.CLIENTS)
    kill_delay_s = rng.uniform(0.0, 0.05)
    down_for_s = rng.uniform(0.0, 1.0)
    print(f"shards={shards} partitions={partitions} mode={mode} transactions_before="
          f"{before_count} restart_client={restart_client} kill_delay_s={kill_delay_s:.3f} "
          f"down_for_s={down_for_s:.3f}")
    broker = start_broker(shards=shards)
    topic = harness.create_topic(broker, f"txn-crash-{seed}", partitions)
    transactional_id = f"tid-crash-{seed}"

    expected = {p: [] for p in range(partitions)}    # committed, in order
    producer = tx.make_producer("confluent", broker.bootstrap, transactional_id)
    new_producer = None
    try:
        producer.init()
        for n in range(before_count):
            producer.begin()
            sent = send(producer, topic, partitions, f"t{n}", rng.randint(1, 30), rng)
            if rng.random() < 0.25:
                producer.abort()
            else:
                producer.commit()
                extend(expected, sent)

        producer.begin()
        interrupted = send(producer, topic, partitions, "interrupted", rng.randint(1, 30), rng)
        commit_result = {}
        committer = None
        if mode == "commit":
            def commit():
                try:
                    producer.commit()
                    commit_result["ok"] = True
                except Exception as error:  # the broker died under it: reported below
                    commit_result["error"] = error
            committer = threading.Thread(target=commit, name="txn-crash-commit", daemon=True)
            committer.start()
            time.sleep(kill_delay_s)
        broker.kill()
        time.sleep(down_for_s)
        broker.start()
        if mode == "mid":
            # Recovery rebuilt the open transaction: before anyone touches it, it still holds
            # the LSO at its first record on each of its partitions, and read_committed shows
            # exactly the transactions committed before the crash.
            raw = tx.read_confluent(broker.bootstrap, topic, partitions, "read_uncommitted",
                                    timeout_s=120)
            first_open = {}
            for partition, records in raw.items():
                for offset, _, value in records:
                    if value.startswith(b"interrupted-"):
                        first_open[partition] = offset
                        break
            latest = tx.list_latest(broker.bootstrap, topic, partitions, "read_uncommitted")
            assert tx.list_latest(broker.bootstrap, topic, partitions, "read_committed") == \
                {p: first_open.get(p, latest[p]) for p in range(partitions)}, \
                f"seed={seed}: after the restart the open transaction must hold the LSO"
            got = tx.values(tx.read_confluent(broker.bootstrap, topic, partitions,
                                              "read_committed", timeout_s=120))
            assert got == expected, f"seed={seed}: read_committed right after the restart"
        if committer is not None:
            committer.join(tx.CALL_TIMEOUT_S + 10)
            assert not committer.is_alive(), "commit_transaction() did not return"
            outcome = commit_result.get("error")
            print(f"commit across the crash: "
                  f"{'ok' if commit_result.get('ok') else tx.describe_error(outcome)}")

        # The same transactional id starts again: InitProducerId fences the old producer and
        # makes the coordinator finish (or abort) what it had in flight.
        new_producer = tx.make_producer(restart_client, broker.bootstrap, transactional_id)
        new_producer.init()
        new_producer.begin()
        after = send(new_producer, topic, partitions, "after", rng.randint(1, 20), rng)
        new_producer.commit()
    finally:
        for made in (producer, new_producer):
            if made is not None:
                try:
                    made.close()
                except Exception as error:
                    print(f"closing a producer: {tx.describe_error(error)}")

    def stable():
        committed = tx.list_latest(broker.bootstrap, topic, partitions, "read_committed")
        latest = tx.list_latest(broker.bootstrap, topic, partitions, "read_uncommitted")
        return committed == latest and committed
    tx.wait_until(stable, 60, message="LSO == high watermark on every partition")

    got = tx.values(tx.read_confluent(broker.bootstrap, topic, partitions, "read_committed",
                                      timeout_s=120))
    with_interrupted = {p: expected[p] + interrupted[p] + after[p] for p in range(partitions)}
    without = {p: expected[p] + after[p] for p in range(partitions)}
    if got == with_interrupted:
        outcome = "whole"
    elif got == without:
        outcome = "absent"
    else:
        raise AssertionError(
            f"seed={seed}: read_committed is neither with nor without the interrupted "
            f"transaction:\n got      {got}\n with     {with_interrupted}\n without  {without}")
    print(f"seed={seed}: interrupted transaction {outcome}")
    if mode == "mid":
        assert outcome == "absent", f"seed={seed}: a transaction never committed became visible"
    if commit_result.get("ok"):
        assert outcome == "whole", f"seed={seed}: commit_transaction() succeeded, yet it is gone"
