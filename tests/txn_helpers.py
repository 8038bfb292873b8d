"""Helpers for the transaction tests (issue 10): one synchronous interface over the transactional
producers of confluent-kafka, kafka-python and aiokafka, readers at either isolation level, and
ListOffsets at either isolation level.

`TxnProducer` methods block until the client answered (each bounded by `CALL_TIMEOUT_S`), so a
test reads like the Java client's API: init, begin, send, flush, send_offsets, commit / abort.
Errors are the clients' own exceptions; `is_fenced(error)` says whether one is the client's way of
reporting PRODUCER_FENCED / INVALID_PRODUCER_EPOCH (a newer producer with the same transactional
id, or a transaction the coordinator aborted and fenced by bumping the epoch, KIP-98/KIP-360).
"""

import asyncio
import threading
import time
import uuid

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer,
                             TopicPartition)

CLIENTS = ("confluent", "kafka-python", "aiokafka")
CALL_TIMEOUT_S = 60.0


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ----- producers -----

class TxnProducer:
    """A transactional producer of one client library; see the module doc."""

    client = None

    def init(self):
        raise NotImplementedError

    def begin(self):
        raise NotImplementedError

    def send(self, topic, partition, value, key=None):
        """Queues one record for `topic`/`partition` (bytes value); `flush()` waits for it."""
        raise NotImplementedError

    def flush(self):
        """Waits until every queued record is acknowledged; raises the first delivery error."""
        raise NotImplementedError

    def send_offsets(self, offsets, group_id, consumer=None):
        """Adds `offsets` {(topic, partition): next offset to read} of `group_id` to the open
        transaction (send_offsets_to_transaction). `consumer` is a confluent Consumer of that
        group; the confluent producer takes its group metadata, the others the group id."""
        raise NotImplementedError

    def commit(self):
        raise NotImplementedError

    def abort(self):
        raise NotImplementedError

    def close(self):
        raise NotImplementedError


class ConfluentTxnProducer(TxnProducer):
    client = "confluent"

    def __init__(self, bootstrap, transactional_id, transaction_timeout_ms=None, extra=None):
        config = {
            "bootstrap.servers": bootstrap,
            "transactional.id": transactional_id,
            "linger.ms": 5,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 500,
        }
        if transaction_timeout_ms is not None:
            config["transaction.timeout.ms"] = transaction_timeout_ms
            config["message.timeout.ms"] = transaction_timeout_ms
            config["socket.timeout.ms"] = min(60000, max(1000, transaction_timeout_ms - 100))
        config["error_cb"] = self._on_error
        config.update(extra or {})
        self.producer = Producer(config)
        self.errors = []
        self.fatal_errors = []

    def _on_error(self, error):
        if error.fatal():
            self.fatal_errors.append(error)

    def _on_delivery(self, error, message):
        if error is not None:
            self.errors.append(error)

    def init(self):
        self.producer.init_transactions(CALL_TIMEOUT_S)

    def begin(self):
        self.producer.begin_transaction()

    def send(self, topic, partition, value, key=None):
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, partition=partition,
                                      on_delivery=self._on_delivery)
                return
            except BufferError:
                self.producer.poll(0.05)

    def flush(self):
        try:
            left = self.producer.flush(CALL_TIMEOUT_S)
        except SystemError as binding_error:
            # confluent-kafka 2.16's flush() can return NULL without an exception when the
            # instance hits a fatal error (e.g. _FENCED) while it serves callbacks; the error
            # itself reached error_cb or a delivery report. Surface that error, or re-raise.
            self.producer.poll(0)
            if self.fatal_errors or self.errors:
                raise KafkaException((self.fatal_errors or self.errors)[0]) from binding_error
            raise
        if self.errors:
            raise KafkaException(self.errors[0])
        assert left == 0, f"{left} records not delivered within {CALL_TIMEOUT_S}s"

    def send_offsets(self, offsets, group_id, consumer=None):
        assert consumer is not None, "the confluent producer needs the consumer's group metadata"
        self.producer.send_offsets_to_transaction(
            [TopicPartition(t, p, o) for (t, p), o in offsets.items()],
            consumer.consumer_group_metadata(), CALL_TIMEOUT_S)

    def commit(self):
        self.producer.commit_transaction(CALL_TIMEOUT_S)

    def abort(self):
        self.producer.abort_transaction(CALL_TIMEOUT_S)

    def close(self):
        self.producer.flush(0)
        self.producer = None


class KafkaPythonTxnProducer(TxnProducer):
    client = "kafka-python"

    def __init__(self, bootstrap, transactional_id, transaction_timeout_ms=None, extra=None):
        from kafka import KafkaProducer
        config = dict(bootstrap_servers=bootstrap, transactional_id=transactional_id,
                      linger_ms=5, max_block_ms=int(CALL_TIMEOUT_S * 1000),
                      reconnect_backoff_ms=50, reconnect_backoff_max_ms=500)
        if transaction_timeout_ms is not None:
            config["transaction_timeout_ms"] = transaction_timeout_ms
        config.update(extra or {})
        self.producer = KafkaProducer(**config)
        self.futures = []

    def init(self):
        self.producer.init_transactions()

    def begin(self):
        self.producer.begin_transaction()

    def send(self, topic, partition, value, key=None):
        self.futures.append(self.producer.send(topic, value=value, key=key, partition=partition))

    def flush(self):
        self.producer.flush(timeout=CALL_TIMEOUT_S)
        futures, self.futures = self.futures, []
        for future in futures:
            future.get(timeout=CALL_TIMEOUT_S)

    def send_offsets(self, offsets, group_id, consumer=None):
        from kafka import OffsetAndMetadata
        from kafka import TopicPartition as KTopicPartition
        self.producer.send_offsets_to_transaction(
            {KTopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()},
            group_id)

    def commit(self):
        self.producer.commit_transaction()

    def abort(self):
        self.producer.abort_transaction()

    def close(self):
        self.producer.close(timeout=5)


class _LoopThread:
    """An asyncio loop on its own thread, so that aiokafka can be driven synchronously."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="aiokafka-loop",
                                       daemon=True)
        self.thread.start()

    def run(self, coroutine, timeout_s=CALL_TIMEOUT_S):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()


class AiokafkaTxnProducer(TxnProducer):
    client = "aiokafka"

    def __init__(self, bootstrap, transactional_id, transaction_timeout_ms=None, extra=None):
        from aiokafka import AIOKafkaProducer
        self.runner = _LoopThread()
        config = dict(bootstrap_servers=bootstrap, transactional_id=transactional_id,
                      linger_ms=5, request_timeout_ms=30000, retry_backoff_ms=50)
        if transaction_timeout_ms is not None:
            config["transaction_timeout_ms"] = transaction_timeout_ms
        config.update(extra or {})

        async def make():
            return AIOKafkaProducer(**config)
        self.producer = self.runner.run(make())
        self.futures = []
        self.started = False

    def init(self):
        # aiokafka's start() runs InitProducerId for a transactional id (it has no separate
        # init_transactions()).
        self.runner.run(self.producer.start())
        self.started = True

    def begin(self):
        self.runner.run(self.producer.begin_transaction())

    def send(self, topic, partition, value, key=None):
        self.futures.append(self.runner.run(
            self.producer.send(topic, value=value, key=key, partition=partition)))

    def flush(self):
        futures, self.futures = self.futures, []

        async def wait_all():
            await self.producer.flush()
            return [await future for future in futures]
        self.runner.run(wait_all())

    def send_offsets(self, offsets, group_id, consumer=None):
        from aiokafka.structs import TopicPartition as ATopicPartition
        self.runner.run(self.producer.send_offsets_to_transaction(
            {ATopicPartition(t, p): o for (t, p), o in offsets.items()}, group_id))

    def commit(self):
        self.runner.run(self.producer.commit_transaction())

    def abort(self):
        self.runner.run(self.producer.abort_transaction())

    def close(self):
        try:
            if self.started:
                self.runner.run(self.producer.stop(), timeout_s=15)
        except Exception:  # a fenced producer may fail to stop cleanly; the loop goes anyway
            pass
        finally:
            self.runner.close()


PRODUCERS = {
    "confluent": ConfluentTxnProducer,
    "kafka-python": KafkaPythonTxnProducer,
    "aiokafka": AiokafkaTxnProducer,
}


def make_producer(client, bootstrap, transactional_id, transaction_timeout_ms=None, extra=None):
    return PRODUCERS[client](bootstrap, transactional_id, transaction_timeout_ms, extra)


def is_fenced(error):
    """True if `error` (or an exception it was raised from) is the client's PRODUCER_FENCED /
    INVALID_PRODUCER_EPOCH."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if _is_fenced(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def _is_fenced(error):
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        code = error.args[0].code()
        return code in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                        KafkaError.INVALID_PRODUCER_EPOCH)
    name = type(error).__name__
    return name in ("ProducerFencedError", "ProducerFenced", "InvalidProducerEpochError")


def has_error(error, kafka_name):
    """True if `error` (or an exception it was raised from) is the client's exception for the
    Kafka error `kafka_name` (e.g. "INVALID_TRANSACTION_TIMEOUT")."""
    camel = "".join(word.capitalize() for word in kafka_name.split("_"))
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, KafkaException) and error.args and \
                isinstance(error.args[0], KafkaError):
            if error.args[0].code() == getattr(KafkaError, kafka_name):
                return True
        elif camel in type(error).__name__ or camel in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def describe_error(error):
    text = f"{type(error).__module__}.{type(error).__name__}: {error}"
    cause = error.__cause__ or error.__context__
    return text + (f" (from {describe_error(cause)})" if cause is not None else "")


# ----- readers -----

def read_confluent(bootstrap, topic, partitions, isolation, expected_count=None, timeout_s=60.0):
    """Every record of `topic` from offset 0 to the end at `isolation` ("read_committed" /
    "read_uncommitted"), with confluent-kafka: {partition: [(offset, key, value), ...]}.

    "The end" is partition EOF, which a read_committed consumer reaches at the last stable
    offset. Returns once every partition is at EOF (and `expected_count` records arrived)."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": unique("txn-reader"),
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
        "isolation.level": isolation,
        "check.crcs": True,
    })
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        out = {p: [] for p in range(partitions)}
        at_end, count = set(), 0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(at_end) == partitions and (expected_count is None or count >= expected_count):
                return out
            for message in consumer.consume(num_messages=10000, timeout=0.3):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_end.add(message.partition())
                        continue
                    raise AssertionError(f"consumer error: {error}")
                at_end.discard(message.partition())
                out[message.partition()].append((message.offset(), message.key(), message.value()))
                count += 1
        raise AssertionError(f"reading {topic} ({isolation}) timed out after {timeout_s}s: "
                             f"{count} records (expected {expected_count}), at end {sorted(at_end)}")
    finally:
        consumer.close()


def read_values_with(client, bootstrap, topic, partitions, isolation, expected_count,
                     settle_s=1.5, timeout_s=60.0):
    """The values of `topic` read with `client`'s own consumer at `isolation`, per partition
    {partition: [value, ...]}: polls until `expected_count` records arrived, then `settle_s`
    more so that records beyond the expectation would show up too."""
    if client == "confluent":
        got = read_confluent(bootstrap, topic, partitions, isolation, expected_count, timeout_s)
        return {p: [v for _, _, v in records] for p, records in got.items()}
    out = {p: [] for p in range(partitions)}
    if client == "kafka-python":
        from kafka import KafkaConsumer
        from kafka import TopicPartition as KTopicPartition
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                 enable_auto_commit=False, isolation_level=isolation,
                                 auto_offset_reset="earliest")
        try:
            tps = [KTopicPartition(topic, p) for p in range(partitions)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            deadline = time.monotonic() + timeout_s
            settle_until = None
            while time.monotonic() < deadline:
                for tp, records in consumer.poll(timeout_ms=200).items():
                    out[tp.partition].extend(r.value for r in records)
                if sum(map(len, out.values())) >= expected_count:
                    settle_until = settle_until or time.monotonic() + settle_s
                    if time.monotonic() >= settle_until:
                        return out
        finally:
            consumer.close()
    elif client == "aiokafka":
        from aiokafka import AIOKafkaConsumer
        from aiokafka.structs import TopicPartition as ATopicPartition

        async def read():
            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                        enable_auto_commit=False, isolation_level=isolation,
                                        auto_offset_reset="earliest")
            await consumer.start()
            try:
                tps = [ATopicPartition(topic, p) for p in range(partitions)]
                consumer.assign(tps)
                await consumer.seek_to_beginning(*tps)
                deadline = time.monotonic() + timeout_s
                settle_until = None
                while time.monotonic() < deadline:
                    batch = await consumer.getmany(timeout_ms=200)
                    for tp, records in batch.items():
                        out[tp.partition].extend(r.value for r in records)
                    if sum(map(len, out.values())) >= expected_count:
                        settle_until = settle_until or time.monotonic() + settle_s
                        if time.monotonic() >= settle_until:
                            return True
                return False
            finally:
                await consumer.stop()
        if asyncio.run(asyncio.wait_for(read(), timeout_s + 30)):
            return out
    else:
        raise ValueError(client)
    raise AssertionError(f"{client}: reading {topic} ({isolation}) timed out after {timeout_s}s: "
                         f"{sum(map(len, out.values()))} records (expected {expected_count})")


def values(by_partition):
    """{partition: [(offset, key, value)]} -> {partition: [value]}."""
    return {p: [v for _, _, v in records] for p, records in by_partition.items()}


# ----- offsets -----

def list_latest(bootstrap, topic, partitions, isolation):
    """ListOffsets latest for every partition at `isolation` (confluent AdminClient):
    {partition: offset}. read_committed answers the last stable offset (KIP-98)."""
    from confluent_kafka import IsolationLevel
    from confluent_kafka.admin import AdminClient, OffsetSpec
    admin = AdminClient({"bootstrap.servers": bootstrap})
    level = (IsolationLevel.READ_COMMITTED if isolation == "read_committed"
             else IsolationLevel.READ_UNCOMMITTED)
    futures = admin.list_offsets({TopicPartition(topic, p): OffsetSpec.latest()
                                  for p in range(partitions)},
                                 isolation_level=level, request_timeout=30)
    return {tp.partition: future.result(timeout=30).offset for tp, future in futures.items()}


def committed_offsets(bootstrap, group_id, topic, partitions):
    """The group's committed offsets {partition: offset or None} (OffsetFetch, require_stable:
    a pending transactional commit answers UNSTABLE_OFFSET_COMMIT, which librdkafka retries)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id,
                         "enable.auto.commit": False})
    try:
        answers = consumer.committed([TopicPartition(topic, p) for p in range(partitions)],
                                     timeout=30)
        return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in answers}
    finally:
        consumer.close()


def wait_until(predicate, timeout_s, interval_s=0.2, message="condition"):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {message} (last: {last!r})")
