"""Transactions with real clients (issue 10, "Tests (real clients)"; KIP-98, KIP-447).

The transactional producers of confluent-kafka, kafka-python and aiokafka (tests parametrized by
client, see txn_helpers.TxnProducer):

- a committed transaction is visible to read_committed, an aborted one is not (but is to
  read_uncommitted), read with confluent-kafka and with the same client's own consumer;
- an open transaction holds the last stable offset: read_committed stops before its first
  record, ListOffsets(latest, read_committed) answers that offset, and after the commit
  everything (also records appended after the transaction began) is visible;
- a second producer with the same transactional id fences the first (PRODUCER_FENCED), whose
  open transaction is aborted;
- a transaction that outlives `transaction.timeout.ms` is aborted by the broker (checked every
  `transaction.abort.timed.out.transaction.cleanup.interval.ms`);
- consume-transform-produce with send_offsets_to_transaction commits the output and the input
  offsets atomically, and neither on abort;
- many interleaved transactions of several producers (all three clients) over 8 partitions,
  some aborted: read_committed gives exactly the committed records, in order per partition.

Every expectation is Kafka's: run with RINGTAIL_TEST_TARGET=kafka to check them against Apache
Kafka. Replay the randomised test with RINGTAIL_TEST_SEED=<printed seed>.
"""

import random
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import harness
import txn_helpers as tx
from txn_helpers import CLIENTS

# Broker settings of the timeout test (Kafka's names; the harness passes them to either target):
# the coordinator looks for timed-out transactions every 500 ms instead of every 10 s.
TIMEOUT_SETTINGS = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": 500}


@pytest.fixture
def producers():
    """Closes every producer a test made, fenced or not."""
    made = []

    def make(client, bootstrap, transactional_id, **kwargs):
        producer = tx.make_producer(client, bootstrap, transactional_id, **kwargs)
        made.append(producer)
        return producer

    yield make
    for producer in made:
        try:
            producer.close()
        except Exception as error:  # a fenced producer may refuse to close cleanly
            print(f"closing {producer.client} producer: {tx.describe_error(error)}")


def send_transaction(producer, topic, partitions, tag, count, commit=True):
    """One whole transaction of `count` records `tag-i` spread round-robin over `partitions`;
    returns {partition: [value, ...]} in send order."""
    sent = {p: [] for p in range(partitions)}
    producer.begin()
    for i in range(count):
        value = f"{tag}-{i}".encode()
        producer.send(topic, i % partitions, value)
        sent[i % partitions].append(value)
    producer.flush()
    if commit:
        producer.commit()
    else:
        producer.abort()
    return sent


def merge(*parts):
    out = {}
    for part in parts:
        for partition, values in part.items():
            out.setdefault(partition, []).extend(values)
    return out


@pytest.mark.timeout(240)
@pytest.mark.parametrize("client", CLIENTS)
def test_commit_visible_abort_invisible(start_broker, producers, client):
    broker = start_broker()
    partitions = 3
    topic = harness.create_topic(broker, tx.unique(f"txn-vis-{client}"), partitions)
    producer = producers(client, broker.bootstrap, tx.unique("tid-vis"))
    producer.init()

    first = send_transaction(producer, topic, partitions, "commit1", 12)
    aborted = send_transaction(producer, topic, partitions, "abort", 9, commit=False)
    second = send_transaction(producer, topic, partitions, "commit2", 7)
    committed = merge(first, second)

    got = tx.values(tx.read_confluent(broker.bootstrap, topic, partitions, "read_committed",
                                      expected_count=19))
    assert got == committed, "read_committed must see exactly the committed transactions"

    everything = merge(first, aborted, second)
    got = tx.values(tx.read_confluent(broker.bootstrap, topic, partitions, "read_uncommitted",
                                      expected_count=28))
    assert got == everything, "read_uncommitted sees the aborted records too, in append order"

    # The same client's own consumer, read_committed: it must skip the aborted records (from
    # the Fetch response's aborted_transactions) and the control batches.
    got = tx.read_values_with(client, broker.bootstrap, topic, partitions, "read_committed", 19)
    assert got == committed, f"{client} consumer, read_committed"

    # Control batches take offsets: the log end is past the 28 data records (3 markers on each
    # of the 3 partitions), and with no open transaction the LSO is the high watermark.
    latest = tx.list_latest(broker.bootstrap, topic, partitions, "read_uncommitted")
    assert latest == {p: len(everything[p]) + 3 for p in range(partitions)}
    assert tx.list_latest(broker.bootstrap, topic, partitions, "read_committed") == latest


@pytest.mark.timeout(240)
@pytest.mark.parametrize("client", CLIENTS)
def test_open_transaction_holds_last_stable_offset(start_broker, producers, client):
    broker = start_broker()
    topic = harness.create_topic(broker, tx.unique(f"txn-lso-{client}"), 1)
    producer = producers(client, broker.bootstrap, tx.unique("tid-lso"))
    producer.init()
    before = send_transaction(producer, topic, 1, "before", 5)[0]

    producer.begin()
    opened = [f"open-{i}".encode() for i in range(5)]
    for value in opened:
        producer.send(topic, 0, value)
    producer.flush()

    # A plain (idempotent, non-transactional) producer appends after the open transaction.
    plain = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    after = [f"after-{i}".encode() for i in range(5)]
    for value in after:
        plain.produce(topic, value=value, partition=0)
    assert plain.flush(30) == 0

    uncommitted = tx.read_confluent(broker.bootstrap, topic, 1, "read_uncommitted",
                                    expected_count=15)[0]
    assert [v for _, _, v in uncommitted] == before + opened + after
    first_open_offset = uncommitted[len(before)][0]
    high_watermark = uncommitted[-1][0] + 1

    committed_view = tx.read_confluent(broker.bootstrap, topic, 1, "read_committed")[0]
    assert [v for _, _, v in committed_view] == before, \
        "read_committed must stop before the open transaction's first record"
    assert tx.list_latest(broker.bootstrap, topic, 1, "read_committed") == {0: first_open_offset}, \
        "ListOffsets latest read_committed is the last stable offset"
    assert tx.list_latest(broker.bootstrap, topic, 1, "read_uncommitted") == {0: high_watermark}

    producer.commit()
    got = tx.read_confluent(broker.bootstrap, topic, 1, "read_committed", expected_count=15)[0]
    assert [v for _, _, v in got] == before + opened + after, \
        "after the commit read_committed sees everything, in offset order"
    # The commit marker is appended at the log end: LSO = HW = one past it.
    latest = tx.list_latest(broker.bootstrap, topic, 1, "read_uncommitted")
    assert latest == {0: high_watermark + 1}
    assert tx.list_latest(broker.bootstrap, topic, 1, "read_committed") == latest


@pytest.mark.timeout(240)
@pytest.mark.parametrize("client", CLIENTS)
def test_second_producer_fences_first(start_broker, producers, client):
    broker = start_broker()
    partitions = 2
    topic = harness.create_topic(broker, tx.unique(f"txn-fence-{client}"), partitions)
    transactional_id = tx.unique("tid-fence")
    first = producers(client, broker.bootstrap, transactional_id)
    first.init()
    first.begin()
    for i in range(4):
        first.send(topic, i % partitions, f"first-{i}".encode())
    first.flush()

    # InitProducerId of a second instance: the coordinator aborts the first one's open
    # transaction and bumps the epoch.
    second = producers(client, broker.bootstrap, transactional_id)
    second.init()

    with pytest.raises(Exception) as caught:
        first.send(topic, 0, b"first-late")
        first.flush()
        first.commit()
    assert tx.is_fenced(caught.value), \
        f"the old producer must be fenced, got {tx.describe_error(caught.value)}"

    sent = send_transaction(second, topic, partitions, "second", 6)
    got = tx.values(tx.read_confluent(broker.bootstrap, topic, partitions, "read_committed",
                                      expected_count=6))
    assert got == sent, "only the second producer's transaction is committed"
    # The first producer's records were written and then aborted: there for read_uncommitted.
    raw = tx.values(tx.read_confluent(broker.bootstrap, topic, partitions, "read_uncommitted",
                                      expected_count=10))
    assert sorted(v for vs in raw.values() for v in vs if v.startswith(b"first-")) == \
        sorted(f"first-{i}".encode() for i in range(4))


@pytest.mark.timeout(240)
@pytest.mark.parametrize("client", CLIENTS)
def test_timed_out_transaction_is_aborted_by_broker(start_broker, producers, client):
    broker = start_broker(settings=TIMEOUT_SETTINGS)
    partitions = 2
    topic = harness.create_topic(broker, tx.unique(f"txn-timeout-{client}"), partitions)
    producer = producers(client, broker.bootstrap, tx.unique("tid-timeout"),
                         transaction_timeout_ms=3000)
    producer.init()
    producer.begin()
    for i in range(6):
        producer.send(topic, i % partitions, f"timeout-{i}".encode())
    producer.flush()
    assert tx.list_latest(broker.bootstrap, topic, partitions, "read_committed") == \
        {p: 0 for p in range(partitions)}, "the open transaction holds the LSO at 0"

    # Within the timeout plus a few cleanup intervals the broker aborts it: an abort marker on
    # each partition, the LSO moves up to the high watermark (3 records + 1 marker).
    def stable():
        committed = tx.list_latest(broker.bootstrap, topic, partitions, "read_committed")
        return committed == {p: 4 for p in range(partitions)} and committed
    tx.wait_until(stable, 30, message="the broker to abort the timed-out transaction")
    got = tx.values(tx.read_confluent(broker.bootstrap, topic, partitions, "read_committed"))
    assert got == {p: [] for p in range(partitions)}, "an aborted transaction is invisible"

    # The coordinator bumped the epoch when it aborted: the producer's commit is refused.
    with pytest.raises(Exception) as caught:
        producer.commit()
    print(f"{client}: commit after the broker's abort: {tx.describe_error(caught.value)}")
    got = tx.values(tx.read_confluent(broker.bootstrap, topic, partitions, "read_committed"))
    assert got == {p: [] for p in range(partitions)}, "a refused commit makes nothing visible"
    raw = tx.values(tx.read_confluent(broker.bootstrap, topic, partitions, "read_uncommitted",
                                      expected_count=6))
    assert sum(map(len, raw.values())) == 6


def consume(consumer, count, timeout_s=30.0):
    """`count` records from `consumer` (assigned): [(partition, offset, value)]."""
    out = []
    deadline = time.monotonic() + timeout_s
    while len(out) < count and time.monotonic() < deadline:
        for message in consumer.consume(num_messages=count - len(out), timeout=0.3):
            if message.error() is not None:
                raise AssertionError(f"consumer error: {message.error()}")
            out.append((message.partition(), message.offset(), message.value()))
    assert len(out) == count, f"consumed {len(out)} of {count} input records"
    return out


@pytest.mark.timeout(240)
@pytest.mark.parametrize("client", CLIENTS)
def test_consume_transform_produce_commits_offsets_atomically(start_broker, producers, client):
    broker = start_broker()
    partitions = 2
    source = harness.create_topic(broker, tx.unique(f"ctp-in-{client}"), partitions)
    sink = harness.create_topic(broker, tx.unique(f"ctp-out-{client}"), partitions)
    group = tx.unique("ctp-group")
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(30):
        plain.produce(source, value=f"in-{i}".encode(), partition=i % partitions)
    assert plain.flush(30) == 0

    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                         "enable.auto.commit": False, "isolation.level": "read_committed",
                         "auto.offset.reset": "earliest"})
    producer = producers(client, broker.bootstrap, tx.unique("tid-ctp"))
    producer.init()

    def process(records, commit):
        """Transforms `records` into `sink` and adds the next input offsets to the
        transaction; commits or aborts. Returns (offsets, transformed per partition)."""
        producer.begin()
        offsets, out = {}, {p: [] for p in range(partitions)}
        for partition, offset, value in records:
            transformed = value.replace(b"in-", b"out-")
            producer.send(sink, partition, transformed)
            out[partition].append(transformed)
            offsets[(source, partition)] = offset + 1
        producer.flush()
        producer.send_offsets(offsets, group, consumer=consumer)
        if commit:
            producer.commit()
        else:
            producer.abort()
        return offsets, out

    try:
        consumer.assign([TopicPartition(source, p, 0) for p in range(partitions)])
        first_offsets, first_out = process(consume(consumer, 12), commit=True)
        assert tx.committed_offsets(broker.bootstrap, group, source, partitions) == \
            {p: first_offsets.get((source, p)) for p in range(partitions)}, \
            "the commit applies the transaction's input offsets"
        got = tx.values(tx.read_confluent(broker.bootstrap, sink, partitions, "read_committed",
                                          expected_count=12))
        assert got == first_out

        # The next batch is aborted: neither its output nor its offsets count.
        _, aborted_out = process(consume(consumer, 10), commit=False)
        assert tx.committed_offsets(broker.bootstrap, group, source, partitions) == \
            {p: first_offsets.get((source, p)) for p in range(partitions)}, \
            "an aborted transaction's offsets are dropped"
        got = tx.values(tx.read_confluent(broker.bootstrap, sink, partitions, "read_committed"))
        assert got == first_out, "an aborted transaction's output is invisible"

        # As an application does after an abort: rewind to the committed offsets and redo the
        # rest. Every input record ends up in the output exactly once.
        committed = tx.committed_offsets(broker.bootstrap, group, source, partitions)
        consumer.assign([TopicPartition(source, p, committed[p] or 0) for p in range(partitions)])
        last_offsets, last_out = process(consume(consumer, 18), commit=True)
        assert tx.committed_offsets(broker.bootstrap, group, source, partitions) == \
            {p: 15 for p in range(partitions)}
        assert last_offsets == {(source, p): 15 for p in range(partitions)}
        got = tx.values(tx.read_confluent(broker.bootstrap, sink, partitions, "read_committed",
                                          expected_count=30))
        assert got == merge(first_out, last_out)
        assert sorted(v for vs in got.values() for v in vs) == \
            sorted(f"out-{i}".encode() for i in range(30))
        raw = tx.values(tx.read_confluent(broker.bootstrap, sink, partitions, "read_uncommitted",
                                          expected_count=40))
        assert raw == merge(first_out, aborted_out, last_out)
    finally:
        consumer.close()


@pytest.mark.timeout(300)
def test_interleaved_transactions_over_eight_partitions(start_broker, producers):
    seed = harness.test_seed("interleaved transactions")
    rng = random.Random(seed)
    broker = start_broker()
    partitions = 8
    topic = harness.create_topic(broker, tx.unique("txn-interleaved"), partitions)
    clients = ["confluent", "confluent", "kafka-python", "aiokafka"]
    open_txn = {}     # producer index -> [value, ...] sent in its open transaction
    appended = {p: [] for p in range(partitions)}   # every value, in append order
    committed = set()
    all_producers = []
    for index, client in enumerate(clients):
        producer = producers(client, broker.bootstrap, tx.unique(f"tid-inter-{index}"))
        producer.init()
        all_producers.append(producer)

    transactions = {"committed": 0, "aborted": 0}
    target = rng.randint(30, 45)
    step = 0
    while sum(transactions.values()) < target:
        step += 1
        index = rng.randrange(len(all_producers))
        producer = all_producers[index]
        finishing = sum(transactions.values()) + len(open_txn) >= target
        if index not in open_txn:
            if finishing:
                continue
            producer.begin()
            open_txn[index] = []
        if open_txn[index] and (finishing or rng.random() < 0.3):
            commit = rng.random() < 0.7
            if commit:
                producer.commit()
                committed.update(open_txn[index])
            else:
                producer.abort()
            del open_txn[index]
            transactions["committed" if commit else "aborted"] += 1
            continue
        # Send a few records and wait for them: the append order is then the call order, so
        # the expected order per partition is known across producers.
        for _ in range(rng.randint(1, 4)):
            partition = rng.randrange(partitions)
            value = f"p{index}-s{step}-{len(open_txn[index])}".encode()
            producer.send(topic, partition, value)
            open_txn[index].append(value)
            appended[partition].append(value)
        producer.flush()

    print(f"seed={seed} transactions={transactions} steps={step}")
    assert transactions["committed"] and transactions["aborted"], \
        f"seed={seed}: the run should mix commits and aborts"
    expected = {p: [v for v in appended[p] if v in committed] for p in range(partitions)}
    total = sum(map(len, expected.values()))
    got = tx.values(tx.read_confluent(broker.bootstrap, topic, partitions, "read_committed",
                                      expected_count=total))
    assert got == expected, f"seed={seed}: read_committed (confluent)"
    for client in ("kafka-python", "aiokafka"):
        got = tx.read_values_with(client, broker.bootstrap, topic, partitions, "read_committed",
                                  total)
        assert got == expected, f"seed={seed}: read_committed ({client} consumer)"
    latest = tx.list_latest(broker.bootstrap, topic, partitions, "read_uncommitted")
    assert tx.list_latest(broker.bootstrap, topic, partitions, "read_committed") == latest


@pytest.mark.timeout(180)
@pytest.mark.parametrize("client", CLIENTS)
def test_transaction_timeout_above_max_is_refused(start_broker, producers, client):
    # transaction.timeout.ms above the broker's transaction.max.timeout.ms (default 900000):
    # InitProducerId answers INVALID_TRANSACTION_TIMEOUT (Kafka's TransactionCoordinator).
    broker = start_broker()
    producer = producers(client, broker.bootstrap, tx.unique("tid-maxtimeout"),
                         transaction_timeout_ms=900_001)
    with pytest.raises(Exception) as caught:
        producer.init()
    assert tx.has_error(caught.value, "INVALID_TRANSACTION_TIMEOUT"), \
        f"expected INVALID_TRANSACTION_TIMEOUT, got {tx.describe_error(caught.value)}"
