"""The README's way of running the broker: `ringtail serve` from a working directory, data in
the relative default `./data`. A relative log dir once took every partition offline at its
first fdatasync (glommio opened the partition directory with a relative path: EBADF)."""

import os
import signal
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import harness

pytestmark = pytest.mark.ringtail_only(
    "the README's own `ringtail serve` command: its relative default ./data, Ringtail's "
    "'ringtail listening' line and files")

TIMEOUT_S = 30


def test_relative_default_data_dir_serves_acks_all(tmp_path):
    port = harness.free_port()
    log_path = tmp_path / "broker.log"
    with open(log_path, "wb") as log:
        broker = subprocess.Popen(
            # The HTTP listener on a free port: its default 9644 may be taken on a shared machine.
            [harness.ringtail_bin(), "serve", "--listeners", f"PLAINTEXT://127.0.0.1:{port}",
             "--set", f"ringtail.http.listener=127.0.0.1:{harness.free_port()}"],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        bootstrap = f"127.0.0.1:{port}"
        deadline = time.monotonic() + TIMEOUT_S
        while b"ringtail listening" not in log_path.read_bytes():
            assert broker.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                             "message.timeout.ms": TIMEOUT_S * 1000})
        delivered = []
        for i in range(100):
            producer.produce("newcomer", value=f"v{i}".encode(),
                             on_delivery=lambda err, msg: delivered.append((err, msg.offset())))
        assert producer.flush(TIMEOUT_S) == 0
        assert [err for err, _ in delivered if err is not None] == []
        assert sorted(offset for _, offset in delivered) == list(range(100))

        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "newcomer",
                             "enable.auto.commit": False})
        consumer.assign([TopicPartition("newcomer", 0, 0)])
        values = []
        while len(values) < 100 and time.monotonic() < deadline + TIMEOUT_S:
            for message in consumer.consume(100, 1.0):
                assert message.error() is None, message.error()
                values.append(message.value().decode())
        consumer.close()
        assert values == [f"v{i}" for i in range(100)]
        assert (tmp_path / "data" / "newcomer-0" / "00000000000000000000.log").exists()
        assert "partition goes offline" not in log_path.read_text()
    finally:
        broker.send_signal(signal.SIGTERM)
        assert broker.wait(TIMEOUT_S) == 0, log_path.read_text()
    assert (tmp_path / "data" / ".kafka_cleanshutdown").exists()
