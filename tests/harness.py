"""Test harness: runs the real `ringtail` binary on a free loopback port with a temp data dir,
or, with RINGTAIL_TEST_TARGET=kafka, a real Apache Kafka node (`KafkaBroker`), so that every
expectation is first checked against the reference broker.

Everything here is bounded in time: starting waits at most `START_TIMEOUT_S` (Kafka:
`KAFKA_START_TIMEOUT_S`), stopping at most `STOP_TIMEOUT_S` before SIGKILL. On failure the
broker's log tail is attached to the report (see conftest.py).
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

# Which broker the suite runs against: "ringtail" (the default) or "kafka" (Apache Kafka through
# scripts/peers/kafka.sh; see KafkaBroker). Anything else is a configuration error, not a skip.
TARGET = os.environ.get("RINGTAIL_TEST_TARGET", "ringtail").strip().lower() or "ringtail"
TARGETS = ("ringtail", "kafka")
if TARGET not in TARGETS:
    raise RuntimeError(f"RINGTAIL_TEST_TARGET={TARGET!r}: must be one of {', '.join(TARGETS)}")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
LOG_TAIL_LINES = 80

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# A Rust panic, or an abort such as "memory allocation of N bytes failed"; for Kafka, a FATAL log
# line, a JVM out-of-memory error or a JVM crash report.
PANIC = re.compile(r"panicked at|memory allocation of \d+ bytes failed|stack backtrace:"
                   r"|\] FATAL |java\.lang\.OutOfMemoryError|A fatal error has been detected by the"
                   r" Java Runtime")

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


def _ephemeral_port_range():
    """The kernel's range for outgoing connections' local ports (ip_local_port_range)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


_PORTS_HANDED_OUT = set()
_PORT_RANDOM = random.Random()


def free_port(attempts=200):
    """A loopback port nobody listens on right now, outside the kernel's ephemeral range.

    A port inside that range can be taken between a broker's start and its restart by any
    outgoing connection of the same run, or by a client polling it: a TCP connect to a closed
    loopback port in that range can pick the same port as its source and connect to itself
    (a simultaneous open), and the broker's bind then fails with EADDRINUSE. Ports below the
    range are never chosen by the kernel, so a port is free for as long as the test holds it.
    A port is handed out at most once per process."""
    low, high = _ephemeral_port_range()
    candidates = (10000, low - 1) if low > 11000 else (high + 1, 65535)
    for _ in range(attempts):
        port = _PORT_RANDOM.randint(*candidates)
        if port in _PORTS_HANDED_OUT or not _port_is_free(port):
            continue
        _PORTS_HANDED_OUT.add(port)
        return port
    raise BrokerStartError(f"no free loopback port in {candidates} after {attempts} attempts")


def _port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_pair(attempts=50):
    """A loopback port PORT such that PORT and PORT+1 are both free (a Kafka node's client and
    controller listeners, as scripts/peers/kafka.sh lays them out)."""
    for _ in range(attempts):
        port = free_port()
        if port < 65535 and port + 1 not in _PORTS_HANDED_OUT and _port_is_free(port + 1):
            _PORTS_HANDED_OUT.add(port + 1)
            return port
    raise BrokerStartError(f"no free loopback port pair found in {attempts} attempts")


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


def http_settings():
    """Broker settings that turn on the HTTP listener (/metrics, /healthz, /) on a free
    loopback port; the broker's `http_address()` gives it back."""
    return {"ringtail.http.listener": f"127.0.0.1:{free_port()}"}


def unique_topic(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class BrokerStartError(Exception):
    pass


def api_versions_error(bootstrap):
    """None once `bootstrap` answers ApiVersions v0 without error, else why not (the broker is
    ready to serve when this is None)."""
    try:
        with kafka_wire.Connection(bootstrap, timeout_s=2.0) as connection:
            error_code, _ = connection.api_versions(version=0)
    except (OSError, kafka_wire.ProtocolError) as error:
        return repr(error)
    return None if error_code == 0 else f"ApiVersions error {error_code}"


def ringtail_bug(reason):
    """Marks a test whose expectation Apache Kafka meets and Ringtail does not yet (found by
    the Kafka-target run): expected to fail on Ringtail, with `reason` naming the broker fix.
    Strict: once Ringtail is fixed the unexpected pass fails the run, so the mark is removed."""
    import pytest
    return pytest.mark.xfail(TARGET == "ringtail", strict=True, reason=f"Ringtail bug: {reason}")


def resolved_settings(broker, settings):
    """`settings` with each callable value replaced by its result for `broker` (called with the
    broker once its ports are chosen, e.g. for an `advertised.listeners` naming them)."""
    return {key: value(broker) if callable(value) else value for key, value in settings.items()}


def _extra_listeners(listeners):
    """`listeners` as the harness takes it: [(NAME, PROTOCOL), ...] beside PLAINTEXT, e.g.
    [("SSL", "SSL"), ("SASL_PLAINTEXT", "SASL_PLAINTEXT"), ("CLIENT", "SASL_SSL")]; each gets a
    free port. Returns {NAME: (PROTOCOL, port)}."""
    extra = {}
    for name, protocol in listeners or []:
        name = name.upper()
        assert name not in ("PLAINTEXT", "CONTROLLER") and name not in extra, name
        extra[name] = (protocol.upper(), free_port())
    return extra


def _listener_settings(port, extra, controller_port=None):
    """`listeners` / `advertised.listeners` / `listener.security.protocol.map` for PLAINTEXT on
    `port` plus `extra` (and Kafka's CONTROLLER listener on `controller_port`)."""
    listeners = [f"PLAINTEXT://127.0.0.1:{port}"]
    protocols = ["PLAINTEXT:PLAINTEXT"]
    if controller_port is not None:
        listeners.append(f"CONTROLLER://127.0.0.1:{controller_port}")
        protocols.append("CONTROLLER:PLAINTEXT")
    for name, (protocol, extra_port) in extra.items():
        listeners.append(f"{name}://127.0.0.1:{extra_port}")
        protocols.append(f"{name}:{protocol}")
    return {
        "listeners": ",".join(listeners),
        "advertised.listeners": ",".join(listeners),
        "listener.security.protocol.map": ",".join(protocols),
    }


class Broker:
    """One `ringtail serve` process. `restart()` keeps the port and the data dir.

    `listeners` adds listeners beside PLAINTEXT (see `_extra_listeners`); `bootstrap_for(NAME)`
    is the address of one. A value in `settings` may be a callable: it is called with the broker
    (ports chosen) when the command line is made, e.g. for an `advertised.listeners` naming the
    ports (see `resolved_settings`)."""

    target = "ringtail"

    def __init__(self, data_dir, log_path, shards=1, settings=None, binary=None, listeners=None):
        self.binary = Path(binary or ringtail_bin())
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.extra_listeners = _extra_listeners(listeners)
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.shards = shards
        self.settings = dict(settings or {})
        self.process = None
        self.starts = 0

    def bootstrap_for(self, listener):
        """`127.0.0.1:PORT` of listener `listener` (PLAINTEXT or one of `listeners`)."""
        listener = listener.upper()
        if listener == "PLAINTEXT":
            return self.bootstrap
        return f"127.0.0.1:{self.extra_listeners[listener][1]}"

    # ----- lifecycle -----

    def command(self):
        command = [
            str(self.binary), "serve",
            "--listeners", _listener_settings(self.port, self.extra_listeners)["listeners"],
            "--log-dirs", str(self.data_dir),
            "--shards", str(self.shards),
        ]
        # The HTTP listener (ringtail.http.listener, default 127.0.0.1:9644) is off unless the
        # test asks for it with a free port (see http_settings()): brokers of parallel tests
        # would otherwise clash on the default port.
        settings = {"ringtail.http.listener": "", **self.settings}
        if self.extra_listeners:
            listener_settings = _listener_settings(self.port, self.extra_listeners)
            del listener_settings["listeners"]  # given as --listeners
            settings = {**listener_settings, **settings}
        for key, value in resolved_settings(self, settings).items():
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
            last_error = api_versions_error(self.bootstrap)
            if last_error is None:
                return
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

    def clean_exit_status(self, signal_number=signal.SIGTERM):
        """The exit status of a clean shutdown on `signal_number` (SIGTERM or SIGINT): Ringtail
        exits 0 (README, Configuration)."""
        return 0

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

    def http_address(self):
        """`http://host:port` of the HTTP listener, when the settings turned it on."""
        address = self.settings.get("ringtail.http.listener")
        assert address, "start the broker with harness.http_settings() to get an HTTP listener"
        return f"http://{address}"

    def metadata(self):
        return json.loads(self.metadata_file().read_text())

    def __repr__(self):
        return f"Broker({self.bootstrap}, data_dir={self.data_dir})"


# ----- Apache Kafka as the target (RINGTAIL_TEST_TARGET=kafka) -----

KAFKA_START_TIMEOUT_S = 180.0  # a JVM on a shared 2-core machine: tens of seconds is normal
KAFKA_STOP_TIMEOUT_S = 60.0    # controlled shutdown of the combined broker+controller node
KAFKA_STARTED = "Kafka Server started"


def kafka_script():
    """scripts/peers/kafka.sh, or $RINGTAIL_KAFKA_SH (e.g. a copy outside the repo)."""
    return Path(os.environ.get("RINGTAIL_KAFKA_SH", REPO_ROOT / "scripts" / "peers" / "kafka.sh"))


def kafka_libs():
    """The installed Kafka jars: $KAFKA_PEER_LIBS, else .venv/peers/kafka/libs (where
    `scripts/peers/kafka.sh install .venv/peers/kafka` puts them)."""
    return Path(os.environ.get("KAFKA_PEER_LIBS", REPO_ROOT / ".venv" / "peers" / "kafka" / "libs"))


class KafkaBroker(Broker):
    """One Apache Kafka node (KRaft, broker and controller in one JVM) with Broker's interface.

    The first start goes through `scripts/peers/kafka.sh start DIR PORT`, which formats DIR/data,
    writes DIR/config/server.properties (Kafka's defaults except what one node needs) and waits
    until the node serves. That script formats the log dir afresh on every start and takes no
    extra properties, so the harness then stops that JVM (SIGTERM, waited for), appends the
    test's `settings` (Kafka property names, as Ringtail takes them) to server.properties and
    starts the very same java command line again itself, as its own child. Every later start
    (`restart()`, or `start()` after `kill()`) runs that command line again on the same port and
    data, without formatting: Kafka's own restart and log recovery. Being the parent gives the
    harness the real exit status, and SIGINT reaches the JVM (a node left as started by the
    script ignores SIGINT: bash starts `&` jobs with SIGINT ignored).

    `shards` has no meaning for Kafka and is ignored; `data_dir` is the node's log.dirs
    (DIR/data), `log_path` Kafka's DIR/logs/server.log.
    """

    target = "kafka"

    def __init__(self, node_dir, shards=1, settings=None, listeners=None):
        self.node_dir = Path(node_dir)
        self.port = free_port_pair()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.extra_listeners = _extra_listeners(listeners)
        self.data_dir = self.node_dir / "data"
        self.log_path = self.node_dir / "logs" / "server.log"
        self.notes_path = self.node_dir / "harness.log"
        self.shards = shards
        self.settings = dict(settings or {})
        self.process = None
        self.starts = 0
        self.java_command = None  # the JVM's command line, as kafka.sh started it
        for key in self.settings:
            if key.startswith("ringtail."):
                raise BrokerStartError(f"{key} is a Ringtail-only property; Kafka has no such setting")

    def command(self):
        return list(self.java_command or [str(kafka_script()), "start", str(self.node_dir),
                                          str(self.port)])

    def start(self):
        assert self.process is None or self.process.poll() is not None, "broker already running"
        self.starts += 1
        if self.java_command is None:
            self._first_start()
        self._note(f"start #{self.starts}: {' '.join(self.command())}")
        server_log = self.log_path
        log_offset = server_log.stat().st_size if server_log.exists() else 0
        with open(self.node_dir / "logs" / "kafka.out", "ab") as out:
            self.process = subprocess.Popen(
                self.java_command, cwd=self.node_dir, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        if self not in ACTIVE_BROKERS:
            ACTIVE_BROKERS.append(self)
        self.wait_ready(log_offset)
        return self

    def _first_start(self):
        script, libs = kafka_script(), kafka_libs()
        if not script.is_file():
            raise BrokerStartError(
                f"RINGTAIL_TEST_TARGET=kafka but the Kafka peer script {script} does not exist "
                f"(set RINGTAIL_KAFKA_SH)")
        if not (libs / ".installed").is_file():
            raise BrokerStartError(
                f"RINGTAIL_TEST_TARGET=kafka but Kafka is not installed in {libs}: run "
                f"`{script} install {libs.parent}` or set KAFKA_PEER_LIBS")
        self.node_dir.mkdir(parents=True, exist_ok=True)
        environment = dict(os.environ, KAFKA_PEER_LIBS=str(libs),
                           KAFKA_PEER_START_TIMEOUT_S=str(int(KAFKA_START_TIMEOUT_S)))
        command = [str(script), "start", str(self.node_dir), str(self.port)]
        self._note(f"first start: {' '.join(command)}")
        try:
            result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                                    text=True, env=environment, timeout=KAFKA_START_TIMEOUT_S + 60)
        except subprocess.TimeoutExpired as error:
            raise BrokerStartError(f"{' '.join(command)} did not finish: {error}") from None
        if result.returncode != 0:
            raise BrokerStartError(
                f"{' '.join(command)} exited {result.returncode}:\n{result.stderr[-3000:]}\n"
                f"{self.log_tail()}")
        pid = int(result.stdout.split()[-1])
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            self.java_command = [arg.decode() for arg in cmdline.read().split(b"\0") if arg]
        # Stop the script's JVM (not our child: poll its pid), then start the same command as
        # ours with the test's settings.
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + KAFKA_STOP_TIMEOUT_S
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
            self._note(f"kafka.sh's JVM {pid} did not stop within {KAFKA_STOP_TIMEOUT_S}s; SIGKILL")
        (self.node_dir / "kafka.pid").unlink(missing_ok=True)
        settings = dict(self.settings)
        if self.extra_listeners:
            # Later lines win in a .properties file: these replace kafka.sh's listener lines.
            settings = {**_listener_settings(self.port, self.extra_listeners, self.port + 1),
                        **settings}
        if settings:
            properties = self.node_dir / "config" / "server.properties"
            with open(properties, "a") as out:
                out.write("# Added by tests/harness.py: this test's settings.\n")
                for key, value in resolved_settings(self, settings).items():
                    out.write(f"{key}={value}\n")

    def wait_ready(self, log_offset=0, timeout_s=KAFKA_START_TIMEOUT_S):
        """Waits until Kafka logged that it started (after `log_offset` in server.log) and an
        ApiVersions request over a fresh connection is answered."""
        deadline = time.monotonic() + timeout_s
        last_error = "no 'Kafka Server started' line yet"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerStartError(
                    f"Kafka exited with status {self.process.returncode} during start-up\n"
                    f"{self.log_tail()}")
            started = False
            try:
                with open(self.log_path, "rb") as log:
                    log.seek(log_offset)
                    started = KAFKA_STARTED.encode() in log.read()
            except FileNotFoundError:
                pass
            if started:
                last_error = api_versions_error(self.bootstrap)
                if last_error is None:
                    return
            time.sleep(0.2)
        raise BrokerStartError(
            f"Kafka not ready on {self.bootstrap} after {timeout_s}s (last error: {last_error})\n"
            f"{self.log_tail()}")

    def stop(self):
        """SIGTERM (Kafka's controlled shutdown), then wait; SIGKILL if it does not stop in
        time. Returns the exit status (a JVM ended by SIGTERM exits 143, see
        `clean_exit_status`)."""
        if self.process is None:
            return None
        if self.alive():
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=KAFKA_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._note(f"did not stop within {KAFKA_STOP_TIMEOUT_S}s of SIGTERM; SIGKILL")
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=KAFKA_STOP_TIMEOUT_S)
        self._note(f"stopped, exit status {self.process.returncode}")
        return self.process.returncode

    def clean_exit_status(self, signal_number=signal.SIGTERM):
        """A JVM that ran its shutdown hooks on SIGTERM/SIGINT (Kafka's controlled shutdown)
        exits 128 + the signal number (143, 130); Kafka halts with 1 if its shutdown fails."""
        return 128 + int(signal_number)

    def _note(self, text):
        self.node_dir.mkdir(parents=True, exist_ok=True)
        with open(self.notes_path, "ab") as notes:
            notes.write(f"===== harness: {text}\n".encode())

    def log_tail(self, lines=LOG_TAIL_LINES):
        notes = ""
        try:
            notes = "\n".join(self.notes_path.read_text(errors="replace").splitlines()[-10:])
        except FileNotFoundError:
            pass
        return f"--- harness notes ({self.notes_path}) ---\n{notes}\n" + super().log_tail(lines)

    def metadata_file(self):
        raise AssertionError("ringtail-metadata.json is Ringtail's own file; Kafka has none "
                             "(mark the test ringtail_only)")

    def __repr__(self):
        return f"KafkaBroker({self.bootstrap}, dir={self.node_dir})"


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
    """Waits until Metadata shows `topic` with `partitions` partitions, each with a leader, and
    the leader serves each of them (ListOffsets latest answers without error).

    The second half matters on Kafka: its metadata cache can name the leader a moment before
    that broker has made itself leader, and meanwhile it answers Produce, Fetch and ListOffsets
    with NOT_LEADER_OR_FOLLOWER, which real clients retry but raw-socket tests do not."""
    admin = admin_client(broker)
    deadline = time.monotonic() + timeout_s
    seen = None
    while time.monotonic() < deadline:
        metadata = admin.list_topics(topic=topic, timeout=5)
        found = metadata.topics.get(topic)
        if found is not None and found.error is None:
            seen = {p: found.partitions[p].leader for p in found.partitions}
            if len(seen) == partitions and all(leader >= 0 for leader in seen.values()):
                break
        time.sleep(0.1)
    else:
        raise AssertionError(
            f"topic {topic} not ready with {partitions} partitions: last seen {seen}")
    while time.monotonic() < deadline:
        with kafka_wire.Connection(broker.bootstrap) as connection:
            answers = connection.list_offsets(
                {(topic, p): kafka_wire.LATEST_TIMESTAMP for p in range(partitions)})
        seen = {tp[1]: answer[0] for tp, answer in answers.items()}
        if all(error == kafka_wire.NONE for error in seen.values()):
            return
        time.sleep(0.1)
    raise AssertionError(f"topic {topic}: partitions not served (ListOffsets errors {seen})")


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
