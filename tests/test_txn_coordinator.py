"""The transaction coordinator end to end with confluent-kafka (librdkafka), issue 10.

A transactional producer's committed transaction is visible to a read_committed consumer, an
aborted one is not (and is to read_uncommitted), a second producer with the same
transactional.id fences the first, and the coordinator keeps its state across a restart (the
same producer id comes back with a higher epoch). The broad client matrix is in
tests/test_transactions*.py; these check the coordinator's side.
"""

import pytest
from confluent_kafka import KafkaException, Producer

import harness

PARTITIONS = 3


def transactional_producer(broker, transactional_id, **extra):
    producer = Producer({"bootstrap.servers": broker.bootstrap,
                         "transactional.id": transactional_id,
                         "transaction.timeout.ms": 60000, **extra})
    producer.init_transactions(30)
    return producer


def produce_transaction(producer, topic, label, count, commit):
    producer.begin_transaction()
    for i in range(count):
        producer.produce(topic, key=b"%d" % i, value=b"%s-%d" % (label, i), partition=i % PARTITIONS)
    producer.flush(30)
    if commit:
        producer.commit_transaction(30)
    else:
        producer.abort_transaction(30)


def values(broker, topic, isolation, expected_count):
    by_partition = harness.read_all_confluent(
        broker, topic, PARTITIONS, expected_count=expected_count, timeout_s=60,
        extra_config={"isolation.level": isolation})
    return sorted(m.value() for messages in by_partition.values() for m in messages)


def test_commit_visible_abort_invisible_to_read_committed(broker):
    topic = harness.create_topic(broker, harness.unique_topic("txc-visibility"), PARTITIONS)
    producer = transactional_producer(broker, harness.unique_topic("txc-id"))
    produce_transaction(producer, topic, b"committed", 30, commit=True)
    produce_transaction(producer, topic, b"aborted", 20, commit=False)
    produce_transaction(producer, topic, b"second", 10, commit=True)
    committed = values(broker, topic, "read_committed", 40)
    assert committed == sorted([b"committed-%d" % i for i in range(30)]
                               + [b"second-%d" % i for i in range(10)])
    uncommitted = values(broker, topic, "read_uncommitted", 60)
    assert len(uncommitted) == 60
    assert sum(v.startswith(b"aborted-") for v in uncommitted) == 20


def test_second_producer_fences_the_first(broker):
    topic = harness.create_topic(broker, harness.unique_topic("txc-fence"), PARTITIONS)
    transactional_id = harness.unique_topic("txc-fence-id")
    first = transactional_producer(broker, transactional_id)
    first.begin_transaction()
    first.produce(topic, value=b"from-first", partition=0)
    first.flush(30)
    # The second InitProducerId aborts the first's open transaction and bumps the epoch.
    second = transactional_producer(broker, transactional_id)
    with pytest.raises(KafkaException) as raised:
        first.commit_transaction(30)
    assert raised.value.args[0].fatal() or "fenced" in str(raised.value).lower()
    produce_transaction(second, topic, b"from-second", 3, commit=True)
    assert values(broker, topic, "read_committed", 3) == sorted(
        b"from-second-%d" % i for i in range(3))


def test_transactional_id_survives_restart(broker):
    topic = harness.create_topic(broker, harness.unique_topic("txc-restart"), PARTITIONS)
    transactional_id = harness.unique_topic("txc-restart-id")
    producer = transactional_producer(broker, transactional_id)
    produce_transaction(producer, topic, b"before", 6, commit=True)
    producer = None
    broker.restart()
    harness.wait_for_partitions(broker, topic, PARTITIONS)
    producer = transactional_producer(broker, transactional_id)
    produce_transaction(producer, topic, b"after", 6, commit=True)
    assert values(broker, topic, "read_committed", 12) == sorted(
        [b"before-%d" % i for i in range(6)] + [b"after-%d" % i for i in range(6)])
