"""A small hand-written Kafka wire client for tests that need exact bytes on a raw socket.

Request header v1 (non-flexible) and v2 (flexible), and these bodies:
ApiVersions v0-v3 (+ any version number, for KIP-511), Metadata v1, Produce v2/v3,
Fetch v4, ListOffsets v1. Record batches v2 (with CRC-32C) and legacy v1 message sets are built
by hand so tests can corrupt them on purpose.

Nothing here depends on a Kafka library: it checks the broker against the protocol guide, not
against another implementation.
"""

import socket
import struct
import time
import zlib

# ----- error codes used by the tests (Kafka's numbering) -----
NONE = 0
OFFSET_OUT_OF_RANGE = 1
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
MESSAGE_TOO_LARGE = 10
UNSUPPORTED_VERSION = 35
UNSUPPORTED_FOR_MESSAGE_FORMAT = 43
INVALID_RECORD = 87

# ----- API keys -----
PRODUCE = 0
FETCH = 1
LIST_OFFSETS = 2
METADATA = 3
API_VERSIONS = 18

LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2


class ProtocolError(Exception):
    """The bytes the broker sent do not parse as the expected response."""


# ----- CRC-32C (Castagnoli), reflected polynomial 0x82F63B78 -----

def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the standard check value


# ----- primitive encoders -----

def int8(value):
    return struct.pack(">b", value)


def int16(value):
    return struct.pack(">h", value)


def int32(value):
    return struct.pack(">i", value)


def uint32(value):
    return struct.pack(">I", value)


def int64(value):
    return struct.pack(">q", value)


def string(value):
    if value is None:
        return int16(-1)
    raw = value.encode() if isinstance(value, str) else value
    return int16(len(raw)) + raw


def bytes_(value):
    if value is None:
        return int32(-1)
    return int32(len(value)) + value


def array(items, encode=lambda item: item):
    if items is None:
        return int32(-1)
    return int32(len(items)) + b"".join(encode(item) for item in items)


def unsigned_varint(value):
    assert value >= 0
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def varint(value):
    """Zigzag varint (record fields); works for 32- and 64-bit values alike."""
    return unsigned_varint((value << 1) ^ (value >> 63))


def compact_string(value):
    if value is None:
        return unsigned_varint(0)
    raw = value.encode() if isinstance(value, str) else value
    return unsigned_varint(len(raw) + 1) + raw


EMPTY_TAGGED_FIELDS = unsigned_varint(0)


# ----- primitive decoder -----

class Reader:
    def __init__(self, data):
        self.data = bytes(data)
        self.position = 0

    def remaining(self):
        return len(self.data) - self.position

    def take(self, count):
        if count < 0 or self.position + count > len(self.data):
            raise ProtocolError(
                f"need {count} bytes at {self.position}, have {self.remaining()}")
        chunk = self.data[self.position:self.position + count]
        self.position += count
        return chunk

    def _unpack(self, fmt, size):
        return struct.unpack(fmt, self.take(size))[0]

    def int8(self):
        return self._unpack(">b", 1)

    def int16(self):
        return self._unpack(">h", 2)

    def int32(self):
        return self._unpack(">i", 4)

    def uint32(self):
        return self._unpack(">I", 4)

    def int64(self):
        return self._unpack(">q", 8)

    def boolean(self):
        return self.int8() != 0

    def string(self):
        length = self.int16()
        return None if length < 0 else self.take(length).decode()

    def bytes_(self):
        length = self.int32()
        return None if length < 0 else self.take(length)

    def array(self, decode):
        count = self.int32()
        if count < 0:
            return None
        return [decode(self) for _ in range(count)]

    def unsigned_varint(self):
        value = 0
        shift = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ProtocolError("varint too long")

    def varint(self):
        raw = self.unsigned_varint()
        return (raw >> 1) ^ -(raw & 1)

    def expect_end(self, what):
        if self.remaining() != 0:
            raise ProtocolError(f"{what}: {self.remaining()} unexpected trailing bytes")


# ----- record batches -----

class Record:
    def __init__(self, value, key=None, headers=(), timestamp=None):
        self.key = key
        self.value = value
        self.headers = list(headers)
        self.timestamp = timestamp

    def __eq__(self, other):
        return (self.key, self.value, self.headers, self.timestamp) == \
            (other.key, other.value, other.headers, other.timestamp)

    def __repr__(self):
        return f"Record(key={self.key!r}, value={self.value!r:.60}, headers={self.headers!r}, " \
               f"timestamp={self.timestamp})"


def _encode_record(record, offset_delta, timestamp_delta):
    body = int8(0) + varint(timestamp_delta) + varint(offset_delta)
    body += varint(-1) if record.key is None else varint(len(record.key)) + record.key
    body += varint(-1) if record.value is None else varint(len(record.value)) + record.value
    body += varint(len(record.headers))
    for name, value in record.headers:
        name = name.encode() if isinstance(name, str) else name
        body += varint(len(name)) + name
        body += varint(-1) if value is None else varint(len(value)) + value
    return varint(len(body)) + body


def record_batch(records, base_offset=0, attributes=0, producer_id=-1, producer_epoch=-1,
                 base_sequence=-1, crc=None, magic=2):
    """A record batch v2, uncompressed. `crc` overrides the computed CRC-32C (to corrupt it)."""
    assert records
    now_ms = int(time.time() * 1000)
    timestamps = [r.timestamp if r.timestamp is not None else now_ms for r in records]
    base_timestamp = timestamps[0]
    encoded = b"".join(
        _encode_record(r, i, t - base_timestamp) for i, (r, t) in enumerate(zip(records, timestamps)))
    after_crc = (int16(attributes) + int32(len(records) - 1) + int64(base_timestamp)
                 + int64(max(timestamps)) + int64(producer_id) + int16(producer_epoch)
                 + int32(base_sequence) + int32(len(records)) + encoded)
    checksum = crc32c(after_crc) if crc is None else crc
    after_length = int32(-1) + int8(magic) + uint32(checksum) + after_crc  # leader epoch -1
    return int64(base_offset) + int32(len(after_length)) + after_length


def legacy_message_set_v1(key, value, timestamp=None):
    """One message in the magic 1 format (Kafka 0.10), CRC-32 (IEEE) as Kafka wrote it."""
    timestamp = int(time.time() * 1000) if timestamp is None else timestamp
    after_crc = int8(1) + int8(0) + int64(timestamp) + bytes_(key) + bytes_(value)
    message = uint32(zlib.crc32(after_crc)) + after_crc
    return int64(0) + int32(len(message)) + message


class RecordBatch:
    def __init__(self, base_offset, magic, crc, attributes, last_offset_delta, base_timestamp,
                 max_timestamp, producer_id, record_count, records, raw):
        self.base_offset = base_offset
        self.magic = magic
        self.crc = crc
        self.attributes = attributes
        self.last_offset_delta = last_offset_delta
        self.base_timestamp = base_timestamp
        self.max_timestamp = max_timestamp
        self.producer_id = producer_id
        self.record_count = record_count
        self.records = records  # [(offset, Record)]; None when compressed
        self.raw = raw


def parse_record_batches(data, whole_batches_only=False):
    """Parses a Fetch `records` field. A truncated last batch (allowed by Kafka) is dropped, or
    with `whole_batches_only` (Ringtail's promise) is an error."""
    batches = []
    reader = Reader(data or b"")
    while reader.remaining() > 0:
        if reader.remaining() < 12:
            if whole_batches_only:
                raise ProtocolError(f"{reader.remaining()} trailing bytes after the last batch")
            break
        start = reader.position
        base_offset = reader.int64()
        length = reader.int32()
        if reader.remaining() < length:
            if whole_batches_only:
                raise ProtocolError(f"partial batch at offset {base_offset}: {length} bytes "
                                    f"announced, {reader.remaining()} present")
            break  # partial batch at the end of the response
        body = Reader(reader.take(length))
        body.int32()  # partition leader epoch
        magic = body.int8()
        if magic != 2:
            raise ProtocolError(f"batch at offset {base_offset} has magic {magic}")
        crc = body.uint32()
        after_crc = body.data[body.position:]
        if crc32c(after_crc) != crc:
            raise ProtocolError(f"batch at offset {base_offset}: CRC-32C mismatch")
        attributes = body.int16()
        last_offset_delta = body.int32()
        base_timestamp = body.int64()
        max_timestamp = body.int64()
        producer_id = body.int64()
        body.int16()  # producer epoch
        body.int32()  # base sequence
        record_count = body.int32()
        records = None
        if attributes & 0x07 == 0:
            records = []
            for _ in range(record_count):
                records.append(_parse_record(body, base_offset, base_timestamp))
            body.expect_end(f"batch at offset {base_offset}")
        batches.append(RecordBatch(base_offset, magic, crc, attributes, last_offset_delta,
                                   base_timestamp, max_timestamp, producer_id, record_count,
                                   records, reader.data[start:reader.position]))
    return batches


def _parse_record(reader, base_offset, base_timestamp):
    length = reader.varint()
    record = Reader(reader.take(length))
    record.int8()  # attributes
    timestamp = base_timestamp + record.varint()
    offset = base_offset + record.varint()
    key_length = record.varint()
    key = None if key_length < 0 else record.take(key_length)
    value_length = record.varint()
    value = None if value_length < 0 else record.take(value_length)
    headers = []
    for _ in range(record.varint()):
        name = record.take(record.varint()).decode()
        header_length = record.varint()
        headers.append((name, None if header_length < 0 else record.take(header_length)))
    record.expect_end(f"record at offset {offset}")
    return offset, Record(value, key=key, headers=headers, timestamp=timestamp)


def records_of(batches):
    """[(offset, Record)] of uncompressed batches, in order."""
    out = []
    for batch in batches:
        assert batch.records is not None, "compressed batch in a raw-wire test"
        out.extend(batch.records)
    return out


# ----- connection -----

class Connection:
    """One TCP connection speaking Kafka framing. Use as a context manager."""

    def __init__(self, bootstrap, timeout_s=10.0, client_id="ringtail-tests"):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client_id = client_id
        self.correlation_id = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def local_port(self):
        return self.sock.getsockname()[1]

    # ----- framing -----

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, payload):
        self.sock.sendall(int32(len(payload)) + payload)

    def _recv_exact(self, count):
        chunks = []
        while count:
            chunk = self.sock.recv(min(count, 1 << 20))
            if not chunk:
                raise ConnectionError("connection closed by the broker")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def recv_frame(self):
        (size,) = struct.unpack(">i", self._recv_exact(4))
        if size < 0 or size > 256 * 1024 * 1024:
            raise ProtocolError(f"response frame size {size}")
        return self._recv_exact(size)

    def request_bytes(self, api_key, api_version, body, flexible_header=False):
        self.correlation_id += 1
        header = int16(api_key) + int16(api_version) + int32(self.correlation_id)
        header += string(self.client_id)
        if flexible_header:
            header += EMPTY_TAGGED_FIELDS
        return int32(len(header) + len(body)) + header + body

    def request(self, api_key, api_version, body, flexible_header=False,
                flexible_response_header=False):
        """Sends one request and returns a Reader positioned at the response body."""
        self.send_raw(self.request_bytes(api_key, api_version, body, flexible_header))
        response = Reader(self.recv_frame())
        correlation_id = response.int32()
        if correlation_id != self.correlation_id:
            raise ProtocolError(
                f"correlation id {correlation_id}, expected {self.correlation_id}")
        if flexible_response_header:
            _skip_tagged_fields(response)
        return response

    def wait_closed(self, timeout_s=10.0):
        """True if the broker closes the connection within `timeout_s` (data read is ignored)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                if not self.sock.recv(65536):
                    return True
            except (ConnectionResetError, BrokenPipeError):
                return True
            except socket.timeout:
                return False
        return False

    # ----- APIs -----

    def api_versions(self, version=0):
        """ApiVersions v0-v2 (non-flexible) or v3+ (flexible request, KIP-511).

        Returns (error_code, {api_key: (min_version, max_version)}). The response body is
        parsed in v0 format when the broker answered UNSUPPORTED_VERSION (KIP-511).
        """
        flexible = version >= 3
        body = b""
        if flexible:
            body = compact_string("ringtail-tests") + compact_string("1.0") + EMPTY_TAGGED_FIELDS
        response = self.request(API_VERSIONS, version, body, flexible_header=flexible)
        return parse_api_versions(response, version)

    def metadata(self, topics=None):
        """Metadata v1. `topics=None` asks for all topics. Returns a dict."""
        response = self.request(METADATA, 1, array(topics, string))
        brokers = response.array(
            lambda r: {"node_id": r.int32(), "host": r.string(), "port": r.int32(),
                       "rack": r.string()})
        controller_id = response.int32()
        topic_list = response.array(lambda r: {
            "error_code": r.int16(), "name": r.string(), "is_internal": r.boolean(),
            "partitions": r.array(lambda p: {
                "error_code": p.int16(), "partition": p.int32(), "leader": p.int32(),
                "replicas": p.array(Reader.int32), "isr": p.array(Reader.int32)})})
        response.expect_end("Metadata v1 response")
        return {"brokers": brokers, "controller_id": controller_id, "topics": topic_list}

    def produce(self, topic_data, acks=-1, timeout_ms=30000, version=3):
        """Produce v2 or v3. `topic_data` is {topic: {partition: records_bytes}}.

        Returns {(topic, partition): (error_code, base_offset)}.
        """
        body = string(None) if version >= 3 else b""  # transactional_id (v3+)
        body += int16(acks) + int32(timeout_ms)
        body += array(list(topic_data.items()), lambda item: string(item[0]) + array(
            list(item[1].items()), lambda p: int32(p[0]) + bytes_(p[1])))
        response = self.request(PRODUCE, version, body)
        return parse_produce_response(response, version)

    def fetch(self, partitions, max_wait_ms=100, min_bytes=1, max_bytes=64 * 1024 * 1024,
              partition_max_bytes=16 * 1024 * 1024):
        """Fetch v4. `partitions` is {(topic, partition): fetch_offset}.

        Returns {(topic, partition): dict(error_code, high_watermark, last_stable_offset,
        records)} with `records` the raw record bytes.
        """
        by_topic = {}
        for (topic, partition), offset in partitions.items():
            by_topic.setdefault(topic, []).append((partition, offset))
        body = int32(-1) + int32(max_wait_ms) + int32(min_bytes) + int32(max_bytes) + int8(0)
        body += array(list(by_topic.items()), lambda item: string(item[0]) + array(
            item[1], lambda p: int32(p[0]) + int64(p[1]) + int32(partition_max_bytes)))
        response = self.request(FETCH, 4, body)
        response.int32()  # throttle_time_ms
        out = {}
        for topic, parts in response.array(lambda r: (r.string(), r.array(lambda p: (
                p.int32(), p.int16(), p.int64(), p.int64(),
                p.array(lambda a: (a.int64(), a.int64())), p.bytes_())))):
            for partition, error_code, high_watermark, last_stable, _aborted, records in parts:
                out[(topic, partition)] = {
                    "error_code": error_code, "high_watermark": high_watermark,
                    "last_stable_offset": last_stable, "records": records}
        response.expect_end("Fetch v4 response")
        return out

    def list_offsets(self, partitions):
        """ListOffsets v1. `partitions` is {(topic, partition): timestamp}.

        Returns {(topic, partition): (error_code, timestamp, offset)}.
        """
        by_topic = {}
        for (topic, partition), timestamp in partitions.items():
            by_topic.setdefault(topic, []).append((partition, timestamp))
        body = int32(-1) + array(list(by_topic.items()), lambda item: string(item[0]) + array(
            item[1], lambda p: int32(p[0]) + int64(p[1])))
        response = self.request(LIST_OFFSETS, 1, body)
        out = {}
        for topic, parts in response.array(lambda r: (r.string(), r.array(
                lambda p: (p.int32(), p.int16(), p.int64(), p.int64())))):
            for partition, error_code, timestamp, offset in parts:
                out[(topic, partition)] = (error_code, timestamp, offset)
        response.expect_end("ListOffsets v1 response")
        return out

    def latest_offset(self, topic, partition):
        error_code, _, offset = self.list_offsets({(topic, partition): LATEST_TIMESTAMP})[
            (topic, partition)]
        if error_code != NONE:
            raise ProtocolError(f"ListOffsets latest {topic}-{partition}: error {error_code}")
        return offset


def parse_api_versions(response, version):
    error_code = response.int16()
    flexible = version >= 3 and error_code != UNSUPPORTED_VERSION
    if flexible:
        count = response.unsigned_varint() - 1
        entries = []
        for _ in range(count):
            entries.append((response.int16(), response.int16(), response.int16()))
            _skip_tagged_fields(response)
    else:
        entries = response.array(lambda r: (r.int16(), r.int16(), r.int16()))
    return error_code, {key: (low, high) for key, low, high in entries}


def parse_produce_response(response, version):
    out = {}
    for topic, parts in response.array(lambda r: (r.string(), r.array(
            lambda p: (p.int32(), p.int16(), p.int64(), p.int64())))):
        for partition, error_code, base_offset, _log_append_time in parts:
            out[(topic, partition)] = (error_code, base_offset)
    response.int32()  # throttle_time_ms (v1+)
    response.expect_end(f"Produce v{version} response")
    return out


def _skip_tagged_fields(reader):
    for _ in range(reader.unsigned_varint()):
        reader.unsigned_varint()  # tag
        reader.take(reader.unsigned_varint())
