"""Bad input from a raw socket (issue 2, test 6).

Each case: the broker answers with the right Kafka error code or, for framing it cannot parse,
closes that one connection. Afterwards nothing was appended (ListOffsets latest unchanged), a
connection opened before the bad input and a fresh connection both still produce and fetch, and
the broker process is alive. One broker serves the whole module, so the cases also pile up.
"""

import struct
import time

import pytest

import harness
import kafka_wire as wire
from kafka_wire import Record

SOCKET_REQUEST_MAX_BYTES = 1048576
MESSAGE_MAX_BYTES = 100000
TOPIC = "bad-input"
OTHER_TOPIC = "bad-input-other"  # never touched by bad input; must go on working


@pytest.fixture(scope="module")
def module_broker(module_broker_factory):
    broker = module_broker_factory(settings={
        "socket.request.max.bytes": SOCKET_REQUEST_MAX_BYTES,
        "message.max.bytes": MESSAGE_MAX_BYTES,
    })
    harness.create_topic(broker, TOPIC, 1)
    harness.create_topic(broker, OTHER_TOPIC, 2)
    return broker


@pytest.fixture
def bad_input_broker(module_broker):
    """The module's broker; if an earlier case killed it (that case has failed already), it is
    restarted on the same data so that every case is still checked on its own."""
    if not module_broker.alive():
        module_broker.start()
    return module_broker


class Checker:
    """Snapshots latest offsets before a case; verifies the broker still works after it."""

    def __init__(self, broker):
        self.broker = broker
        self.counter = 0
        self.failed = False
        self.log_start = len(broker.log_text())
        self.bystander = wire.Connection(broker.bootstrap)  # opened before the bad input
        self.before = self._latest_offsets(self.bystander)

    def _latest_offsets(self, connection):
        partitions = [(TOPIC, 0), (OTHER_TOPIC, 0), (OTHER_TOPIC, 1)]
        answers = connection.list_offsets({tp: wire.LATEST_TIMESTAMP for tp in partitions})
        for tp, (error_code, _, _) in answers.items():
            assert error_code == wire.NONE, f"ListOffsets {tp}: error {error_code}"
        return {tp: answers[tp][2] for tp in partitions}

    def assert_nothing_appended(self):
        with wire.Connection(self.broker.bootstrap) as fresh:
            after = self._latest_offsets(fresh)
        assert after == self.before, f"bad input changed log end offsets: {self.before} -> {after}"

    def assert_alive(self):
        """The process is alive and has not panicked or aborted since this case began."""
        time.sleep(0.2)  # give a crash caused by the last bytes sent the time to happen
        found = harness.panic_in(self.broker.log_text()[self.log_start:])
        if found or not self.broker.alive():
            self.failed = True  # reported once, here; teardown does not repeat it
            pytest.fail(f"the broker panicked or aborted:\n{found}" if found
                        else "the broker process exited (see its log below)")

    def assert_still_serving(self):
        if self.failed:
            self.bystander.close()
            return
        self.assert_alive()
        self.assert_nothing_appended()
        with wire.Connection(self.broker.bootstrap) as fresh:
            for connection, name in ((fresh, "fresh"), (self.bystander, "bystander")):
                for topic, partition in ((TOPIC, 0), (OTHER_TOPIC, 1)):
                    self.produce_and_fetch(connection, topic, partition, name)
        self.bystander.close()

    def produce_and_fetch(self, connection, topic, partition, name):
        self.counter += 1
        record = Record(f"ok-{name}-{self.counter}".encode(), key=b"k",
                        headers=[("h", b"v")], timestamp=1_700_000_000_000 + self.counter)
        expected_offset = connection.latest_offset(topic, partition)
        result = connection.produce({topic: {partition: wire.record_batch([record])}})
        assert result == {(topic, partition): (wire.NONE, expected_offset)}, \
            f"{name} connection: produce to {topic}-{partition} after bad input"
        fetched = connection.fetch({(topic, partition): expected_offset})[(topic, partition)]
        assert fetched["error_code"] == wire.NONE
        assert fetched["high_watermark"] == expected_offset + 1
        records = wire.records_of(wire.parse_record_batches(fetched["records"]))
        assert records == [(expected_offset, record)], f"{name} connection: fetch back"


@pytest.fixture
def checker(bad_input_broker):
    check = Checker(bad_input_broker)
    yield check
    check.assert_still_serving()


def valid_batch(text=b"value"):
    return wire.record_batch([Record(text, key=b"key")])


def test_truncated_frame_then_close(bad_input_broker, checker):
    """(a) A frame that says 100 bytes, then only part of a Produce request, then close."""
    with wire.Connection(bad_input_broker.bootstrap) as connection:
        frame = connection.request_bytes(
            wire.PRODUCE, 3, wire.string(None) + wire.int16(-1) + wire.int32(1000))
        connection.send_raw(wire.int32(100) + frame[4:])  # claims more than it sends
    # And a truncated frame on a connection that stays open while others work.
    lingering = wire.Connection(bad_input_broker.bootstrap)
    lingering.send_raw(wire.int32(64) + b"\x00\x03\x00\x01")
    try:
        checker.assert_nothing_appended()
    finally:
        lingering.close()


def test_frame_over_socket_request_max_bytes_closes_connection(bad_input_broker, checker):
    """(b) A 4-byte size of 2,000,000 > socket.request.max.bytes: the connection is closed
    without the broker waiting for (or allocating) the body."""
    with wire.Connection(bad_input_broker.bootstrap) as connection:
        connection.send_raw(wire.int32(2_000_000))
        assert connection.wait_closed(timeout_s=10), "connection not closed for an oversized frame"
    checker.assert_alive()


def test_negative_frame_size_closes_connection(bad_input_broker, checker):
    with wire.Connection(bad_input_broker.bootstrap) as connection:
        connection.send_raw(wire.int32(-5) + b"\x00" * 16)
        assert connection.wait_closed(timeout_s=10), "connection not closed for a negative size"
    checker.assert_alive()


@pytest.mark.parametrize("case", ["header", "produce_body", "list_offsets_body"])
def test_garbage_body_closes_connection(bad_input_broker, checker, case):
    """(c) A valid length but a body that does not parse."""
    if case == "header":
        # Metadata v1 whose client_id claims 30,000 bytes inside a 13-byte frame.
        payload = wire.int16(wire.METADATA) + wire.int16(1) + wire.int32(7) + wire.int16(30000) \
            + b"abc"
    elif case == "produce_body":
        # Produce v3 for our topic whose topic array claims 2^31-1 entries.
        payload = wire.int16(wire.PRODUCE) + wire.int16(3) + wire.int32(7) + wire.string("x") \
            + wire.string(None) + wire.int16(-1) + wire.int32(1000) + wire.int32(0x7FFFFFFF) \
            + wire.string(TOPIC) + wire.int32(1) + wire.int32(0) + wire.int32(0x7FFFFFF0)
    else:
        # ListOffsets v1 whose topic array claims 2^30 entries, followed by junk.
        payload = wire.int16(wire.LIST_OFFSETS) + wire.int16(1) + wire.int32(7) \
            + wire.string("x") + wire.int32(-1) + wire.int32(0x40000000) + bytes(range(40))
    with wire.Connection(bad_input_broker.bootstrap) as connection:
        connection.send_frame(payload)
        assert connection.wait_closed(timeout_s=10), f"connection not closed for garbage ({case})"
    checker.assert_alive()


def test_unknown_api_key_closes_connection(bad_input_broker, checker):
    """(d) API key 9999 is not a Kafka API: Kafka closes the connection."""
    with wire.Connection(bad_input_broker.bootstrap) as connection:
        connection.send_raw(connection.request_bytes(9999, 0, b"\x00" * 8))
        assert connection.wait_closed(timeout_s=10), "connection not closed for API key 9999"
    checker.assert_alive()


def test_api_versions_newer_than_supported_gets_v0_response(bad_input_broker, checker):
    """(e) KIP-511: ApiVersions v99 gets a v0-format response with UNSUPPORTED_VERSION and at
    least ApiVersions' own range (Kafka sends only that one; Ringtail sends all its ranges); the
    same connection can then go on with a version from that range and gets every range."""
    with wire.Connection(bad_input_broker.bootstrap) as connection:
        error_code, ranges = connection.api_versions(version=99)
        assert error_code == wire.UNSUPPORTED_VERSION
        assert wire.API_VERSIONS in ranges, f"ApiVersions missing from ranges {ranges}"
        low, high = ranges[wire.API_VERSIONS]
        assert low == 0 and high >= 3, f"ApiVersions range {low}-{high}"
        error_code, ranges_v3 = connection.api_versions(version=3)
        assert error_code == wire.NONE
        assert ranges.items() <= ranges_v3.items(), "the v0-format answer disagrees with v3's"
        for api_key, needed in ((wire.PRODUCE, 3), (wire.FETCH, 4), (wire.LIST_OFFSETS, 1),
                                (wire.METADATA, 1)):
            assert api_key in ranges_v3, f"API {api_key} not advertised"
            low, high = ranges_v3[api_key]
            assert low <= needed <= high, f"API {api_key} range {low}-{high} lacks v{needed}"
        assert ranges_v3[wire.PRODUCE][0] == 0, "Produce must be advertised from v0 as Kafka does"


def test_produce_v2_is_refused(bad_input_broker, checker):
    """(f) Produce v0-2 are advertised (librdkafka needs v0 listed, KAFKA-18659) but refused
    (KIP-896): Kafka 4 closes the connection; Ringtail answers UNSUPPORTED_VERSION. Either
    way nothing is appended (the checker verifies)."""
    with wire.Connection(bad_input_broker.bootstrap) as connection:
        try:
            result = connection.produce({TOPIC: {0: valid_batch()}}, version=2)
        except (OSError, wire.ProtocolError):
            return  # refused by closing the connection, as Kafka does
        assert (TOPIC, 0) in result, f"Produce v2 response lacks the partition: {result}"
        assert {error for error, _ in result.values()} == {wire.UNSUPPORTED_VERSION}, result


def test_batch_with_wrong_crc_is_corrupt_message(bad_input_broker, checker):
    """(g) CRC-32C mismatch: CORRUPT_MESSAGE, nothing appended, the connection stays usable."""
    record = Record(b"crc", key=b"key", timestamp=1_700_000_000_000)
    good = wire.record_batch([record])
    correct_crc = struct.unpack(">I", good[17:21])[0]
    bad = wire.record_batch([record], crc=correct_crc ^ 0x1)
    assert bad != good and len(bad) == len(good)
    with wire.Connection(bad_input_broker.bootstrap) as connection:
        result = connection.produce({TOPIC: {0: bad}})
        assert result[(TOPIC, 0)][0] == wire.CORRUPT_MESSAGE, result
        checker.assert_nothing_appended()
        # Flip a payload byte instead of the CRC: also corrupt.
        flipped = bytearray(good)
        flipped[-3] ^= 0xFF
        result = connection.produce({TOPIC: {0: bytes(flipped)}})
        assert result[(TOPIC, 0)][0] == wire.CORRUPT_MESSAGE, result
        checker.assert_nothing_appended()
        checker.produce_and_fetch(connection, OTHER_TOPIC, 0, "after-crc-error")
    checker.before = checker._latest_offsets(checker.bystander)


def test_batch_over_message_max_bytes_is_message_too_large(bad_input_broker, checker):
    """(h) A batch over message.max.bytes (but under socket.request.max.bytes):
    MESSAGE_TOO_LARGE."""
    big = wire.record_batch([Record(b"x" * (MESSAGE_MAX_BYTES + 1000), key=b"big")])
    assert MESSAGE_MAX_BYTES < len(big) < SOCKET_REQUEST_MAX_BYTES
    with wire.Connection(bad_input_broker.bootstrap) as connection:
        result = connection.produce({TOPIC: {0: big}})
        assert result[(TOPIC, 0)][0] == wire.MESSAGE_TOO_LARGE, result


def test_batch_with_magic_1_is_rejected(bad_input_broker, checker):
    """(i) A legacy magic-1 message set in Produce v3: Kafka 4 answers INVALID_RECORD (Produce
    v3+ carries magic-2 batches only)."""
    with wire.Connection(bad_input_broker.bootstrap) as connection:
        result = connection.produce({TOPIC: {0: wire.legacy_message_set_v1(b"k", b"old")}})
        assert result[(TOPIC, 0)][0] == wire.INVALID_RECORD, result
        # A v2 batch header with its magic byte changed to 1 (CRC recomputed over the same
        # bytes, which do not cover magic): rejected too.
        patched = bytearray(valid_batch(b"magic"))
        patched[16] = 1
        result = connection.produce({TOPIC: {0: bytes(patched)}})
        assert result[(TOPIC, 0)][0] == wire.INVALID_RECORD, result


def test_bad_partition_in_mixed_request_leaves_good_partition_alone(bad_input_broker, checker):
    """One Produce with a corrupt batch for one partition and a good one for another: only the
    corrupt one fails, and the good one is appended."""
    good = valid_batch(b"mixed-good")
    bad = bytearray(valid_batch(b"mixed-bad"))
    bad[-2] ^= 0x55
    with wire.Connection(bad_input_broker.bootstrap) as connection:
        expected_offset = connection.latest_offset(OTHER_TOPIC, 0)
        result = connection.produce({OTHER_TOPIC: {0: good}, TOPIC: {0: bytes(bad)}})
        assert result[(TOPIC, 0)][0] == wire.CORRUPT_MESSAGE, result
        assert result[(OTHER_TOPIC, 0)] == (wire.NONE, expected_offset), result
    checker.before[(OTHER_TOPIC, 0)] = expected_offset + 1
