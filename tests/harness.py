"""Test harness: runs the real `ringtail` binary on a free loopback port with a temp data dir.

Everything here is bounded in time: starting waits at most `START_TIMEOUT_S`, stopping at most
`STOP_TIMEOUT_S` before SIGKILL. On failure the broker's log tail is attached to the report
(see conftest.py).
"""

import atexit
import json
import os
import random
import re
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import kafka_wire

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
LOG_TAIL_LINES = 80

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# A Rust panic, or an abort such as "memory allocation of N bytes failed".
PANIC = re.compile(r"panicked at|memory allocation of \d+ bytes failed|stack backtrace:")

# Brokers that are running right now, so a failing test can show their log tails.
ACTIVE_BROKERS = []


@atexit.register
def _kill_leftover_brokers():
    """If pytest exits without running teardown (e.g. interrupted), no broker outlives it."""
    for broker in list(ACTIVE_BROKERS):
        if broker.alive():
            os.kill(broker.process.pid, signal.SIGKILL)


def ringtail_bin():
    """The broker binary: $RINGTAIL_BIN, else <target dir>/release/ringtail."""
    explicit = os.environ.get("RINGTAIL_BIN")
    if explicit:
        return Path(explicit)
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    return target_dir / "release" / "ringtail"


def free_port():
    """A loopback port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def available_cpus():
    return len(os.sched_getaffinity(0))


def panic_in(log_text):
    """The log around the first panic or abort in `log_text`, or None."""
    match = PANIC.search(log_text)
    if match is None:
        return None
    return log_text[max(0, match.start() - 1500):match.start() + 3000]


def test_seed(name):
    """A seed for a randomised test: $RINGTAIL_TEST_SEED if set, else a fresh one. Printed, so
    a failing run can be replayed with RINGTAIL_TEST_SEED=<seed>."""
    configured = os.environ.get("RINGTAIL_TEST_SEED")
    seed = int(configured) if configured else random.SystemRandom().randrange(1 << 32)
    print(f"{name}: seed={seed} (replay with RINGTAIL_TEST_SEED={seed})")
    return seed


def unique_topic(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class BrokerStartError(Exception):
    pass


class Broker:
    """One `ringtail serve` process. `restart()` keeps the port and the data dir."""

    def __init__(self, data_dir, log_path, shards=1, settings=None, binary=None):
        self.binary = Path(binary or ringtail_bin())
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.shards = shards
        self.settings = dict(settings or {})
        self.process = None
        self.starts = 0

    # ----- lifecycle -----

    def command(self):
        command = [
            str(self.binary), "serve",
            "--listeners", f"PLAINTEXT://{self.bootstrap}",
            "--log-dirs", str(self.data_dir),
            "--shards", str(self.shards),
        ]
        for key, value in self.settings.items():
            command += ["--set", f"{key}={value}"]
        return command

    def start(self):
        assert self.process is None or self.process.poll() is not None, "broker already running"
        if not self.binary.is_file():
            raise BrokerStartError(
                f"ringtail binary not found at {self.binary}: run `cargo build --release` "
                f"or set RINGTAIL_BIN")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        environment = dict(os.environ)
        environment.setdefault("RUST_LOG", "info")
        environment.setdefault("RUST_BACKTRACE", "1")
        environment["NO_COLOR"] = "1"
        with open(self.log_path, "ab") as log:
            log.write(f"===== harness: start #{self.starts}: {' '.join(self.command())}\n".encode())
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=environment, start_new_session=True)
        if self not in ACTIVE_BROKERS:
            ACTIVE_BROKERS.append(self)
        self.wait_ready()
        return self

    def wait_ready(self, timeout_s=START_TIMEOUT_S):
        """Waits until an ApiVersions request over a fresh connection is answered."""
        deadline = time.monotonic() + timeout_s
        last_error = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerStartError(
                    f"broker exited with status {self.process.returncode} during start-up\n"
                    f"{self.log_tail()}")
            try:
                with kafka_wire.Connection(self.bootstrap, timeout_s=2.0) as connection:
                    error_code, _ = connection.api_versions(version=0)
                    if error_code == 0:
                        return
                    last_error = f"ApiVersions error {error_code}"
            except (OSError, kafka_wire.ProtocolError) as error:
                last_error = repr(error)
            time.sleep(0.1)
        raise BrokerStartError(
            f"broker not ready on {self.bootstrap} after {timeout_s}s (last error: {last_error})\n"
            f"{self.log_tail()}")

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def kill(self):
        """SIGKILL, as a crash would."""
        if self.alive():
            os.kill(self.process.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        self._note("killed (SIGKILL)")

    def stop(self):
        """SIGTERM, then wait; SIGKILL if it does not stop in time. Returns the exit status."""
        if self.process is None:
            return None
        if self.alive():
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._note(f"did not stop within {STOP_TIMEOUT_S}s of SIGTERM; SIGKILL")
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT_S)
        self._note(f"stopped, exit status {self.process.returncode}")
        return self.process.returncode

    def restart(self):
        """Stops (SIGTERM) if still running, then starts again on the same port and data dir."""
        self.stop()
        return self.start()

    def close(self):
        """Teardown: stop whatever is running and forget the broker."""
        try:
            self.stop()
        finally:
            if self in ACTIVE_BROKERS:
                ACTIVE_BROKERS.remove(self)

    def _note(self, text):
        with open(self.log_path, "ab") as log:
            log.write(f"===== harness: {text}\n".encode())

    # ----- inspection -----

    def log_text(self):
        try:
            return ANSI_ESCAPE.sub("", self.log_path.read_text(errors="replace"))
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=LOG_TAIL_LINES):
        tail = self.log_text().splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)

    def metadata_file(self):
        return self.data_dir / "ringtail-metadata.json"

    def metadata(self):
        return json.loads(self.metadata_file().read_text())

    def __repr__(self):
        return f"Broker({self.bootstrap}, data_dir={self.data_dir})"


# ----- client helpers (confluent-kafka) -----

def admin_client(broker):
    from confluent_kafka.admin import AdminClient
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create_topic(broker, name, partitions, configs=None, timeout_s=30.0):
    """Creates a topic with CreateTopics (confluent-kafka AdminClient) and waits for it."""
    from confluent_kafka.admin import NewTopic
    admin = admin_client(broker)
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=configs or {})],
        request_timeout=timeout_s, operation_timeout=timeout_s)
    futures[name].result(timeout=timeout_s)
    wait_for_partitions(broker, name, partitions, timeout_s)
    return name


def wait_for_partitions(broker, topic, partitions, timeout_s=30.0):
    """Waits until Metadata shows `topic` with `partitions` partitions, each with a leader."""
    admin = admin_client(broker)
    deadline = time.monotonic() + timeout_s
    seen = None
    while time.monotonic() < deadline:
        metadata = admin.list_topics(topic=topic, timeout=5)
        found = metadata.topics.get(topic)
        if found is not None and found.error is None:
            seen = {p: found.partitions[p].leader for p in found.partitions}
            if len(seen) == partitions and all(leader >= 0 for leader in seen.values()):
                return
        time.sleep(0.1)
    raise AssertionError(f"topic {topic} not ready with {partitions} partitions: last seen {seen}")


def read_all_confluent(broker, topic, partitions, expected_count=None, timeout_s=120.0,
                       extra_config=None):
    """Reads every partition of `topic` from offset 0 up to its end with `assign()`.

    Returns {partition: [Message, ...]} in offset order. Stops at the end of every partition
    (partition EOF) once `expected_count` messages arrived, or fails at the deadline.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
    config = {
        "bootstrap.servers": broker.bootstrap,
        "group.id": unique_topic("reader"),
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
    }
    config.update(extra_config or {})
    consumer = Consumer(config)
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        by_partition = {p: [] for p in range(partitions)}
        at_end = set()
        count = 0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            done = len(at_end) == partitions and (expected_count is None or count >= expected_count)
            if done:
                return by_partition
            for message in consumer.consume(num_messages=10000, timeout=0.5):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_end.add(message.partition())
                        continue
                    raise AssertionError(f"consumer error: {error}")
                at_end.discard(message.partition())
                by_partition[message.partition()].append(message)
                count += 1
        raise AssertionError(
            f"reading {topic} timed out after {timeout_s}s: {count} messages"
            f" (expected {expected_count}), partitions at end: {sorted(at_end)}")
    finally:
        consumer.close()


def wait_until(predicate, timeout_s, interval_s=0.05, message="condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {message}")
