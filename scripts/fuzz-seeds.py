#!/usr/bin/env python3
"""Seeds fuzz/corpus/<target>/ from real client traffic and real broker files.

usage: .venv/bin/python scripts/fuzz-seeds.py [--out fuzz/corpus]

Starts `ringtail serve` (target/release/ringtail, tests/harness.py) with RINGTAIL_CAPTURE_DIR
set, so that the broker writes every request frame it reads (src/network/capture.rs); runs real
clients against it (confluent-kafka producers with every codec, idempotent and transactional,
a consumer group committing offsets, the AdminClient; kafka-python with an old api_version for
Produce v0-2); stops the broker cleanly (producer-state snapshots are written then); and turns
what it captured and what it wrote to its log dir into seeds for each target of
src/fuzzing.rs, in the input layout that target documents. Names are the SHA-1 of the content
(libFuzzer's convention), so re-running adds files instead of renaming them. The SASL, JAAS and
principal-rule seeds are written from the protocol's and Kafka's documented examples.
"""

import argparse
import hashlib
import os
import shutil
import struct
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import harness  # noqa: E402

MAX_SEED_BYTES = 64 * 1024
PER_KEY_LIMIT = 6


def write_seed(out, target, data, stats):
    if not data or len(data) > MAX_SEED_BYTES:
        return
    directory = out / target
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / hashlib.sha1(data).hexdigest()
    if not path.exists():
        path.write_bytes(data)
        stats[target] += 1


def workload(bootstrap):
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [f"seed-{codec}" for codec in ("none", "gzip", "snappy", "lz4", "zstd")]
    futures = admin.create_topics([NewTopic(t, 2, 1) for t in topics + ["seed-txn", "seed-del"]])
    for future in futures.values():
        try:
            future.result(30)
        except Exception as error:  # noqa: BLE001 - an existing topic is fine
            print("create_topics:", error)
    for codec, topic in zip(("none", "gzip", "snappy", "lz4", "zstd"), topics):
        producer = Producer({"bootstrap.servers": bootstrap, "compression.type": codec,
                             "enable.idempotence": codec in ("none", "zstd"),
                             "linger.ms": 5})
        for i in range(300):
            producer.produce(topic, key=f"k{i % 17}".encode() if i % 3 else None,
                             value=(f"value-{i}-" * (1 + i % 9)).encode(),
                             headers=[("h", b"x" * (i % 4))] if i % 5 == 0 else None,
                             partition=i % 2)
            if i % 50 == 0:
                producer.flush(10)
        producer.flush(30)
    txn = Producer({"bootstrap.servers": bootstrap, "transactional.id": "seed-tx"})
    txn.init_transactions(30)
    for commit in (True, False, True):
        txn.begin_transaction()
        for i in range(20):
            txn.produce("seed-txn", key=b"t", value=f"txn-{i}".encode(), partition=i % 2)
        if commit:
            txn.commit_transaction(30)
        else:
            txn.abort_transaction(30)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "seed-group",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    consumer.subscribe(["seed-none", "seed-txn"])
    deadline = time.monotonic() + 20
    seen = 0
    while time.monotonic() < deadline and seen < 400:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            seen += 1
            if seen % 50 == 0:
                consumer.commit(message, asynchronous=False)
    consumer.commit(asynchronous=False)
    consumer.close()
    admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "seed-none")])
    for future in admin.describe_configs(
            [ConfigResource(ConfigResource.Type.TOPIC, "seed-gzip")]).values():
        future.result(30)
    admin.list_groups(timeout=10)
    for future in admin.delete_topics(["seed-del"]).values():
        future.result(30)
    # Produce v0-2 (message format v0/v1): kafka-python pinned to an old broker version.
    try:
        from kafka import KafkaProducer
        for version in ((0, 9), (0, 10, 0), (0, 10, 1)):
            legacy = KafkaProducer(bootstrap_servers=bootstrap, api_version=version,
                                   max_block_ms=3000, request_timeout_ms=3000, retries=0)
            future = legacy.send("seed-none", key=b"old", value=b"legacy value")
            try:
                future.get(timeout=5)
            except Exception as error:  # noqa: BLE001 - UNSUPPORTED_VERSION is expected
                print("legacy produce", version, type(error).__name__)
            legacy.close(2)
    except ImportError:
        print("kafka-python missing: no Produce v0-2 seeds")


def read_varint(data, at):
    shift = 0
    value = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (value >> 1) ^ -(value & 1), at
        shift += 7


def batches_of(data):
    """(batch bytes, attributes) of each whole v2 batch in a .log file."""
    at = 0
    while at + 61 <= len(data):
        length = struct.unpack_from(">i", data, at + 8)[0]
        if length <= 0 or at + 12 + length > len(data) or data[at + 16] != 2:
            return
        attributes = struct.unpack_from(">h", data, at + 21)[0]
        yield data[at:at + 12 + length], attributes
        at += 12 + length


def records_of(batch):
    """(key, value) of each record of an uncompressed batch."""
    count = struct.unpack_from(">i", batch, 57)[0]
    at = 61
    for _ in range(max(count, 0)):
        length, at = read_varint(batch, at)
        end = at + length
        at += 1
        _, at = read_varint(batch, at)
        _, at = read_varint(batch, at)
        key_length, at = read_varint(batch, at)
        key = batch[at:at + key_length] if key_length >= 0 else None
        at += max(key_length, 0)
        value_length, at = read_varint(batch, at)
        value = batch[at:at + value_length] if value_length >= 0 else None
        yield key, value
        at = end


def pieces(files):
    """The log_recovery layout: [id u8][length u16 be][bytes] each."""
    out = b""
    for file_id, data in files:
        data = data[:0xFFFF]
        out += bytes([file_id]) + struct.pack(">H", len(data)) + data
    return out


def harvest(capture_dir, data_dir, out, stats):
    frames = defaultdict(list)
    for path in sorted(capture_dir.iterdir()):
        frame = path.read_bytes()
        if len(frame) >= 8:
            api_key, version = struct.unpack_from(">hh", frame, 0)
            frames[(api_key, version)].append(frame)
    for (api_key, version), group in sorted(frames.items()):
        group.sort(key=len)
        step = max(1, len(group) // PER_KEY_LIMIT)
        for frame in group[::step][:PER_KEY_LIMIT]:
            write_seed(out, "request", frame, stats)
            if api_key == 0 and version < 3:
                write_seed(out, "produce_legacy", bytes([version]) + frame, stats)
        write_seed(out, "frame", b"".join(struct.pack(">i", len(f)) + f for f in group[:3]), stats)
    partitions = [p for p in sorted(data_dir.iterdir()) if p.is_dir()]
    for partition in partitions:
        name = partition.name
        internal = name.startswith("__consumer_offsets") or name.startswith("__transaction_state")
        logs = sorted(partition.glob("*.log"))
        files = []
        for log in logs:
            data = log.read_bytes()
            stem = log.with_suffix("")
            index = stem.with_suffix(".index")
            timeindex = stem.with_suffix(".timeindex")
            txnindex = stem.with_suffix(".txnindex")
            for selector, path in ((0, index), (1, timeindex), (2, txnindex)):
                if path.exists() and path.stat().st_size:
                    write_seed(out, "indexes", bytes([selector]) + path.read_bytes(), stats)
            if not files:
                files.append((0, data))
                for file_id, path in ((1, index), (2, timeindex), (3, txnindex)):
                    if path.exists():
                        files.append((file_id, path.read_bytes()))
            batches = list(batches_of(data))
            if name.startswith("__consumer_offsets") and data.strip(b"\0"):
                write_seed(out, "internal_records", b"\0" + data, stats)
                write_seed(out, "internal_records", b"\1" + data, stats)
            if name.startswith("__transaction_state") and data.strip(b"\0"):
                write_seed(out, "internal_records", b"\2" + data, stats)
            for batch, attributes in batches[:40]:
                codec = attributes & 7
                control = attributes & 0x20
                if not internal:
                    write_seed(out, "record_batch", batch, stats)
                    if codec:
                        write_seed(out, "codecs", bytes([codec]) + batch[61:], stats)
                if control:
                    write_seed(out, "internal_records", b"\7" + batch, stats)
                if codec == 0:
                    try:
                        for key, value in list(records_of(batch))[:3]:
                            if control:
                                write_seed(out, "internal_records", b"\5" + key, stats)
                                write_seed(out, "internal_records", b"\6" + value, stats)
                            elif name.startswith("__transaction_state"):
                                write_seed(out, "internal_records", b"\3" + key, stats)
                                if value:
                                    write_seed(out, "internal_records", b"\4" + value, stats)
                    except (ValueError, struct.error, TypeError):
                        pass
            if len(batches) > 1 and not internal:
                write_seed(out, "record_batch", b"".join(b for b, _ in batches[:8]), stats)
        for selector, file_name in ((1, "leader-epoch-checkpoint"),
                                    (2, "log-start-offset-checkpoint")):
            path = partition / file_name
            if path.exists():
                write_seed(out, "log_files", bytes([selector]) + path.read_bytes(), stats)
                files.append((4 if selector == 1 else 5, path.read_bytes()))
        for snapshot in partition.glob("*.producer-state"):
            files.append((6, snapshot.read_bytes()))
        if files:
            write_seed(out, "log_recovery", b"\0" + pieces(files), stats)
            write_seed(out, "log_recovery", b"\1" + pieces(files), stats)
    for path in sorted(data_dir.iterdir()):
        if path.is_file() and path.name.endswith(".json"):
            write_seed(out, "log_files", b"\0" + path.read_bytes(), stats)
        elif path.is_file() and path.name == "cleaner-offset-checkpoint":
            write_seed(out, "log_files", b"\3" + path.read_bytes(), stats)


def written_seeds(out, stats):
    """Seeds from documented examples for the text and SASL decoders."""
    for token in (b"\0alice\0alice-secret", b"admin\0alice\0alice-secret", b"\0\0", b"alice"):
        write_seed(out, "sasl", b"\0" + token, stats)
    first = b"n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL"
    final = (b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
             b"p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=")
    for selector in (1, 2):
        write_seed(out, "sasl", bytes([selector]) + first + b"\0" + final, stats)
        write_seed(out, "sasl", bytes([selector]) + b"n,a=alice,n=alice,r=abc,ext=1\0" + final,
                   stats)
        write_seed(out, "sasl", bytes([selector]) + b"y,,n=al=2Cice,r=x\0c=eSws,r=x,p=AA==",
                   stats)
    write_seed(out, "sasl", b"\3SCRAM-SHA-256=[name=alice,password=alice-secret]", stats)
    write_seed(out, "sasl", b"\3SCRAM-SHA-512=[name=bob,iterations=8192,salt=\"MWx2NHBkbnc0ZWRu\","
               b"saltedpassword=\"mT0yyUUxnlJaC99HXgRTSYlbuqa4FSGtJCJfTMvjYCE=\"]", stats)
    for text in (
        'org.apache.kafka.common.security.plain.PlainLoginModule required '
        'username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";',
        'org.apache.kafka.common.security.scram.ScramLoginModule required;',
        'KafkaServer {\n  org.apache.kafka.common.security.plain.PlainLoginModule required\n'
        '  user_alice="a\\"b";\n};\nClient {\n  x.Y optional debug=true;\n};\n',
        'a.B sufficient k="v" k2=v2;',
    ):
        write_seed(out, "jaas", text.encode(), stats)
    for text in (
        "DEFAULT",
        "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,DEFAULT",
        "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,\nDEFAULT\n\n"
        "CN=Alice,OU=Eng,O=Example,L=X,ST=Y,C=Z",
        "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U\n\nCN=bob,O=example",
        "RULE:^CN=([^,ADEFLTU,]+)(,.*|$)/$1/\n\nCN=ADEFLTU",
    ):
        write_seed(out, "principal_rules", text.encode(), stats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "fuzz" / "corpus"))
    parser.add_argument("--written-only", action="store_true",
                        help="only the SASL / JAAS / principal-rule seeds (no broker)")
    args = parser.parse_args()
    out = Path(args.out)
    stats = defaultdict(int)
    if args.written_only:
        written_seeds(out, stats)
        for target, count in sorted(stats.items()):
            print(f"{target}: {count} new seeds")
        return
    work = Path(tempfile.mkdtemp(prefix="ringtail-fuzz-seeds-"))
    try:
        capture_dir = work / "capture"
        os.environ["RINGTAIL_CAPTURE_DIR"] = str(capture_dir)
        broker = harness.Broker(work / "data", work / "broker.log", shards=1)
        broker.start()
        try:
            workload(broker.bootstrap)
        finally:
            broker.stop()
        harvest(capture_dir, work / "data", out, stats)
        written_seeds(out, stats)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for target, count in sorted(stats.items()):
        print(f"{target}: {count} new seeds")


if __name__ == "__main__":
    main()
