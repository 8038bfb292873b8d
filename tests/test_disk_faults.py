"""Disk faults on real file systems made inside the tests (issue 14): two `log.dirs`, one of
them on a small device that fails; the broker must answer KAFKA_STORAGE_ERROR for that dir's
partitions, never acknowledge what did not reach the device, keep serving the other dir, and
after a restart (space freed / device repaired) hold every acknowledged record.

Cases (each runs on Ringtail and, with RINGTAIL_TEST_TARGET=kafka, on Apache Kafka 4.1.2):
    test_enospc_takes_the_dir_offline     ext4 image on a loop device, filled by produce
    test_io_errors_take_the_dir_offline   ext4 on a loop device whose backing file lives on a
                                          tmpfs too small for it: the block device fails
                                          writes (a thin-provisioned disk out of space, as
                                          dm-thin); fdatasync gets EIO, the journal aborts
    test_dm_error_target                  device-mapper: linear, then `dmsetup reload` to an
                                          `error` table (needs CONFIG_BLK_DEV_DM)
    test_fuse_error_device                the dm `error` case without device-mapper: ext4 on a
                                          loop device over an image that a FUSE daemon
                                          (tests/fuse_faulty.py) serves, then switches to fail
                                          every read, write and fsync with EIO; produce until
                                          offline, repair, then reads with the page cache
                                          dropped (needs /dev/fuse, fusepy, libfuse2)
    test_fuse_fsync_errors                the same FUSE disk with writes passing and every
                                          fsync failing (a device whose cache flushes fail);
                                          then the device recovers: the dir stays offline

Needs root, losetup, mkfs.ext4, e2fsck, mount (util-linux, e2fsprogs; dmsetup for the dm case;
/dev/fuse, fusepy from tests/requirements.txt and Debian's libfuse2 for the FUSE case):
otherwise each test is skipped with the reason. Every loop device, dm device, mount and FUSE
daemon is named `rtdisk-<pid>-...`, removed in a `finally`, and left-overs of dead test
processes are removed when a test starts.

Kafka acknowledges acks=all once the record is in its page cache (it does not fsync per
produce unless `log.flush.interval.messages` says so), so the I/O-error cases run Kafka with
`log.flush.interval.messages=1`: with its defaults the device's failures reach Kafka only at a
later flush, after the acknowledgements (see results/2026-12-01-disk-faults.md). The fault is
always in the second log dir: Kafka halts when the first one (its metadata log dir) fails.

A failed segment read differs: Ringtail answers KAFKA_STORAGE_ERROR and takes the dir offline
(as for a failed write); Kafka 4.1.2 answers that fetch UNKNOWN_SERVER_ERROR and keeps the dir
online (the IOException reaches LocalLog wrapped in a KafkaException, which it does not treat as
a storage error). test_fuse_error_device expects each broker's own answer; both give an error,
never records, and keep serving the other dir.
"""

import base64
import importlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import harness
import kafka_wire

KAFKA_STORAGE_ERROR = 56
UNKNOWN_SERVER_ERROR = -1
LEADER_NOT_AVAILABLE = 5
NOT_LEADER_OR_FOLLOWER = 6
DESCRIBE_LOG_DIRS = 35
PREFIX = f"rtdisk-{os.getpid()}"
RECORD_BYTES = 4096
RECORDS_PER_BATCH = 16
TOOLS = ("losetup", "mkfs.ext4", "e2fsck", "mount", "umount")
FUSE_DAEMON = Path(__file__).resolve().with_name("fuse_faulty.py")

pytestmark = pytest.mark.timeout(900 if harness.TARGET == "kafka" else 240)


def run(*command, check=True):
    result = subprocess.run(command, capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}: "
                             f"{result.stderr.strip()}")
    return result


def require_block_tools(extra=()):
    if os.geteuid() != 0:
        pytest.skip("disk-fault tests need root (loop devices, mounts)")
    missing = [tool for tool in (*TOOLS, *extra) if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"disk-fault tests need {', '.join(missing)} (scripts/test.sh installs "
                    f"util-linux, e2fsprogs and dmsetup)")
    if not Path("/dev/loop-control").exists():
        pytest.skip("no loop device support (/dev/loop-control missing)")


# ----- devices and mounts -----

def _pid_alive(pid):
    return Path(f"/proc/{pid}").exists()


def cleanup_leftovers():
    """Removes FUSE daemons, mounts, dm devices and loop devices named rtdisk-<pid>-... of dead
    processes: file systems first, then the devices under them, then the FUSE mounts that
    served loop devices' images."""
    def dead(name):
        match = re.search(r"rtdisk-(\d+)-", name)
        return match is not None and not _pid_alive(int(match.group(1)))

    # A daemon dies with its test (PR_SET_PDEATHSIG); this catches any that outlived it.
    killed = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = [a.decode(errors="replace")
                    for a in (proc / "cmdline").read_bytes().split(b"\0")]
        except OSError:
            continue
        if any(a.endswith(FUSE_DAEMON.name) for a in argv) and any(dead(a) for a in argv):
            try:
                os.kill(int(proc.name), signal.SIGKILL)
                killed.append(int(proc.name))
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 10
    while any(_pid_alive(pid) for pid in killed) and time.monotonic() < deadline:
        time.sleep(0.05)

    mounts = [line.split()[:3] for line in Path("/proc/mounts").read_text().splitlines()]
    fuse_mounts = [m for m in mounts if m[2].startswith("fuse")]
    for source, target, _ in sorted((m for m in mounts if m not in fuse_mounts),
                                    key=lambda m: -len(m[1])):
        if dead(target) or dead(source):
            run("umount", "-l", target, check=False)
    if shutil.which("dmsetup"):
        listing = run("dmsetup", "ls", check=False).stdout
        for line in listing.splitlines():
            name = line.split()[0] if line.split() else ""
            if dead(name + "-"):
                run("dmsetup", "remove", "--force", name, check=False)
    listing = run("losetup", "-J", "-l", check=False).stdout
    if listing.strip():
        for device in json.loads(listing).get("loopdevices", []):
            if dead(device.get("back-file") or ""):
                run("losetup", "-d", device["name"], check=False)
    for source, target, _ in fuse_mounts:
        if dead(target) or dead(source):
            run("umount", "-l", target, check=False)


def require_fuse():
    """Skips unless a FUSE daemon can run here: root, /dev/fuse, fusepy and libfuse2."""
    require_block_tools()
    if not Path("/dev/fuse").exists():
        pytest.skip("no FUSE support (/dev/fuse missing)")
    try:
        importlib.import_module("fuse")  # fusepy; loads libfuse.so.2 when imported
    except ImportError as error:
        pytest.skip(f"fusepy is not installed (tests/requirements.txt): {error}")
    except OSError as error:
        pytest.skip(f"fusepy finds no libfuse2 (scripts/test.sh installs Debian's libfuse2): "
                    f"{error}")


class FuseDisk:
    """tests/fuse_faulty.py serving `<base>/rtdisk-<pid>-<name>.img` as `self.image`;
    `set(mode)` switches it between "pass", "error" (every read, write and fsync fails with
    EIO) and "fsync" (only fsyncs fail)."""

    START_TIMEOUT_S = 20

    def __init__(self, base, name, size_mb):
        self.name = f"{PREFIX}-{name}"
        self.backing = base / f"{self.name}.img"
        with open(self.backing, "wb") as out:
            out.truncate(size_mb << 20)
        self.mountpoint = base / f"{self.name}-fuse"
        self.mountpoint.mkdir()
        self.image = self.mountpoint / "disk.img"
        self.control = base / f"{self.name}.sock"
        self.log_path = base / f"{self.name}-daemon.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(FUSE_DAEMON), str(self.backing), str(self.mountpoint),
                 str(self.control), self.name],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"the FUSE daemon exited {self.process.returncode} "
                                     f"before serving {self.image}: {self.log_text()}")
            if os.path.ismount(self.mountpoint) and self.control.exists():
                try:
                    if self.image.stat().st_size == size_mb << 20 and self.status():
                        break
                except OSError:
                    pass
            if time.monotonic() > deadline:
                self.close()
                raise AssertionError(f"the FUSE daemon does not serve {self.image} after "
                                     f"{self.START_TIMEOUT_S} s: {self.log_text()}")
            time.sleep(0.05)

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def command(self, word):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(10)
            connection.connect(str(self.control))
            connection.sendall(word.encode() + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = connection.recv(4096)
                if not chunk:
                    break
                answer += chunk
        return json.loads(answer)

    def status(self):
        return self.command("status")

    def set(self, mode):
        status = self.command(mode)
        assert status.get("mode") == mode, f"the FUSE daemon did not switch to {mode}: {status}"
        return status

    def close(self):
        """Unmounts (the daemon then exits) and waits for the daemon; an error text or None."""
        error = None
        if self.process.poll() is None and os.path.ismount(self.mountpoint):
            result = run("umount", str(self.mountpoint), check=False)
            if result.returncode != 0:
                error = f"umount {self.mountpoint}: {result.stderr.strip()}"
                run("umount", "-l", str(self.mountpoint), check=False)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
            error = error or f"the FUSE daemon did not exit after umount: {self.log_text()}"
        if os.path.ismount(self.mountpoint):
            run("umount", "-l", str(self.mountpoint), check=False)
        return error


class Devices:
    """Loop devices, dm devices, FUSE daemons and mounts made by one test; `close()` removes
    all of them, newest first."""

    def __init__(self, base):
        self.base = Path(base)
        self.undo = []

    def tmpfs(self, name, size_mb):
        path = self.base / f"{PREFIX}-{name}"
        path.mkdir()
        run("mount", "-t", "tmpfs", "-o", f"size={size_mb}M", f"{PREFIX}-{name}", str(path))
        self.undo.append(("umount", path))
        return path

    def loop(self, image):
        device = run("losetup", "-f", "--show", str(image)).stdout.strip()
        self.undo.append(("losetup", device))
        return device

    def ext4(self, device, name):
        run("mkfs.ext4", "-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1",
            device)
        return self.mount(device, name)

    def mount(self, device, name):
        path = self.base / f"{PREFIX}-{name}-mnt"
        path.mkdir(exist_ok=True)
        run("mount", device, str(path))
        self.undo.append(("umount", path))
        return path

    def unmount(self, path):
        run("umount", str(path))
        self.undo.remove(("umount", path))

    def fuse(self, name, size_mb):
        disk = FuseDisk(self.base, name, size_mb)
        self.undo.append(("fuse", disk))
        return disk

    def dm(self, name, table):
        dm_name = f"{PREFIX}-{name}"
        run("dmsetup", "create", dm_name, "--table", table)
        self.undo.append(("dmsetup", dm_name))
        return dm_name, f"/dev/mapper/{dm_name}"

    def close(self):
        errors = []
        for kind, what in self.undo:
            if kind == "fuse":  # a failing test may leave a device failing: unmount cleanly
                try:
                    what.set("pass")
                except (OSError, AssertionError, ValueError):
                    pass
        for kind, what in reversed(self.undo):
            if kind == "umount":
                result = run("umount", str(what), check=False)
                if result.returncode != 0:
                    run("umount", "-l", str(what), check=False)
            elif kind == "losetup":
                result = run("losetup", "-d", what, check=False)
            elif kind == "fuse":
                error = what.close()
                if error:
                    errors.append(f"fuse {what.name}: {error}")
                continue
            else:
                result = run("dmsetup", "remove", "--force", what, check=False)
            if result.returncode != 0:
                errors.append(f"{kind} {what}: {result.stderr.strip()}")
        self.undo.clear()
        return errors


@pytest.fixture
def devices(tmp_path):
    require_block_tools()
    cleanup_leftovers()
    made = Devices(tmp_path)
    try:
        yield made
    finally:
        errors = made.close()
        assert not errors, f"cleaning up devices failed: {errors}"


def small_ext4(devices, name, size_mb):
    image = devices.base / f"{PREFIX}-{name}.img"
    with open(image, "wb") as out:
        out.truncate(size_mb << 20)
    return devices.ext4(devices.loop(image), name)


def fill(path, leave_bytes):
    """A ballast file that leaves about `leave_bytes` free on `path`'s file system."""
    stat = os.statvfs(path)
    free = stat.f_bavail * stat.f_frsize
    size = max(0, free - leave_bytes) // (1 << 20) << 20
    ballast = path / "ballast"
    fd = os.open(ballast, os.O_CREAT | os.O_WRONLY)
    try:
        os.posix_fallocate(fd, 0, size)
        os.fsync(fd)
    finally:
        os.close(fd)
    return ballast


# ----- brokers with two log dirs -----

class TwoDirBroker(harness.Broker):
    """A Ringtail broker whose `log.dirs` is `data_dir,second_dir`."""

    def __init__(self, data_dir, second_dir, log_path, settings=None):
        super().__init__(data_dir, log_path, settings=settings)
        self.second_dir = Path(second_dir)

    def command(self):
        command = super().command()
        index = command.index("--log-dirs") + 1
        command[index] = f"{self.data_dir},{self.second_dir}"
        return command


class TwoDirKafka(harness.KafkaBroker):
    """A Kafka node with a second log dir. Kafka refuses an unformatted log dir ("No
    `meta.properties` found ... have you run `kafka-storage.sh` to format the directory?");
    kafka.sh formats only the first, so the second gets the `meta.properties` that Kafka's
    `kafka-storage.sh format --ignore-formatted` writes for a non-metadata dir (the first one's
    version, cluster.id and node.id, a new directory.id: Kafka's Uuid text, 16 random bytes in
    URL-safe base64 without padding). Written here rather than by a second JVM, which takes
    over a minute on a loaded machine while another process may take the node's ports."""

    def __init__(self, node_dir, second_dir, settings=None):
        super().__init__(node_dir, settings=settings)
        self.second_dir = Path(second_dir)

    def _first_start(self):
        super()._first_start()
        lines = [line for line in (self.data_dir / "meta.properties").read_text().splitlines()
                 if line.split("=", 1)[0] in ("version", "cluster.id", "node.id")]
        directory_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        text = "\n".join(["#Written by tests/test_disk_faults.py as kafka-storage format does",
                          *lines, f"directory.id={directory_id}"]) + "\n"
        # Synced as kafka-storage does: a device failing later must not take it along (ext4
        # aborts its journal on the first failed flush; an unsynced file comes back empty).
        with open(self.second_dir / "meta.properties", "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        directory = os.open(self.second_dir, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def start_two_dir_broker(base, second_dir, settings=None):
    second_dir.mkdir(exist_ok=True)
    if harness.TARGET == "kafka":
        node_dir = base / "kafka"
        broker = TwoDirKafka(node_dir, second_dir, settings={
            "log.dirs": f"{node_dir / 'data'},{second_dir}", **(settings or {})})
    else:
        broker = TwoDirBroker(base / "data", second_dir, base / "broker.log", settings=settings)
    try:
        broker.start()
    except BaseException:
        broker.close()
        raise
    return broker


# ----- wire helpers -----

def describe_log_dirs(broker):
    """DescribeLogDirs v1, all topics: {log_dir: (error_code, {(topic, partition): size})}."""
    with kafka_wire.Connection(broker.bootstrap) as connection:
        response = connection.request(DESCRIBE_LOG_DIRS, 1, kafka_wire.int32(-1))
        response.int32()  # throttle_time_ms
        out = {}
        def partition(p):
            return p.int32(), p.int64(), p.int64(), p.boolean()

        def topic(t):
            return t.string(), t.array(partition)

        for error_code, log_dir, topics in response.array(
                lambda r: (r.int16(), r.string(), r.array(topic))):
            out[os.path.realpath(log_dir)] = (error_code, {
                (topic, partition): size
                for topic, partitions in topics for partition, size, _, _ in partitions})
        response.expect_end("DescribeLogDirs v1 response")
        return out


def metadata_v5(broker, topic):
    """Metadata v5 for `topic`: (node_id, {partition: (error_code, leader, isr,
    offline_replicas)}) with node_id the one broker's."""
    with kafka_wire.Connection(broker.bootstrap) as connection:
        body = kafka_wire.array([topic], kafka_wire.string) + kafka_wire.int8(0)
        response = connection.request(kafka_wire.METADATA, 5, body)
        response.int32()  # throttle_time_ms
        (node_id, _, _, _), = response.array(
            lambda r: (r.int32(), r.string(), r.int32(), r.string()))
        response.string()  # cluster_id
        response.int32()  # controller_id
        topics = response.array(lambda r: (r.int16(), r.string(), r.boolean(), r.array(
            lambda p: (p.int16(), p.int32(), p.int32(), p.array(kafka_wire.Reader.int32),
                       p.array(kafka_wire.Reader.int32), p.array(kafka_wire.Reader.int32)))))
        response.expect_end("Metadata v5 response")
        (_, _, _, partitions), = topics
        return node_id, {index: (error, leader, isr, offline)
                         for error, index, leader, _, isr, offline in partitions}


def values(partition, first, count):
    return [f"{partition}:{seq}:".encode().ljust(RECORD_BYTES, b"x")
            for seq in range(first, first + count)]


def produce_one(broker, topic, partition, batch_values):
    records = [kafka_wire.Record(value) for value in batch_values]
    with kafka_wire.Connection(broker.bootstrap, timeout_s=40) as connection:
        answer = connection.produce({topic: {partition: kafka_wire.record_batch(records)}},
                                    acks=-1, timeout_ms=30000)
    return answer[(topic, partition)]


def read_partition(broker, topic, partition, end_offset):
    """{offset: value} of every record of `partition` below `end_offset` (raises on an error)."""
    found = {}
    offset = 0
    with kafka_wire.Connection(broker.bootstrap, timeout_s=30) as connection:
        while offset < end_offset:
            answer = connection.fetch({(topic, partition): offset}, max_wait_ms=50)[
                (topic, partition)]
            assert answer["error_code"] == kafka_wire.NONE, \
                f"fetch {topic}-{partition} at {offset}: error {answer['error_code']}"
            batches = kafka_wire.parse_record_batches(answer["records"])
            if not batches:
                break
            for batch in batches:
                for record_offset, record in batch.records:
                    found[record_offset] = record.value
                offset = batch.base_offset + batch.last_offset_delta + 1
    return found


def fetch_error(broker, topic, partition):
    with kafka_wire.Connection(broker.bootstrap) as connection:
        return connection.fetch({(topic, partition): 0}, max_wait_ms=10)[
            (topic, partition)]["error_code"]


def fetch_v6(broker, topic, partition, offset):
    """Fetch v6 of one partition: (error_code, records). Unlike v4 (`fetch_error`) Kafka does
    not down-convert KAFKA_STORAGE_ERROR to NOT_LEADER_OR_FOLLOWER from v6 on."""
    w = kafka_wire
    body = w.int32(-1) + w.int32(10) + w.int32(1) + w.int32(64 << 20) + w.int8(0)
    body += w.array([topic], lambda t: w.string(t) + w.array(
        [partition], lambda p: w.int32(p) + w.int64(offset) + w.int64(-1) + w.int32(16 << 20)))
    with w.Connection(broker.bootstrap, timeout_s=40) as connection:
        response = connection.request(w.FETCH, 6, body)
        response.int32()  # throttle_time_ms
        (name, parts), = response.array(lambda r: (r.string(), r.array(lambda p: (
            p.int32(), p.int16(), p.int64(), p.int64(), p.int64(),
            p.array(lambda a: (a.int64(), a.int64())), p.bytes_()))))
        response.expect_end("Fetch v6 response")
    (index, error_code, _, _, _, _, records), = parts
    assert (name, index) == (topic, partition), (name, index)
    return error_code, records


def list_offsets_error(broker, topic, partition):
    with kafka_wire.Connection(broker.bootstrap) as connection:
        answer = connection.list_offsets({(topic, partition): kafka_wire.LATEST_TIMESTAMP})
    return answer[(topic, partition)][0]


class Workload:
    """acks=all batches round-robin over a topic's partitions; remembers what was acked."""

    def __init__(self, broker, topic, partitions):
        self.broker, self.topic, self.partitions = broker, topic, partitions
        self.acked = {p: {} for p in range(partitions)}  # partition -> {offset: value}
        self.sent = {p: 0 for p in range(partitions)}
        self.errors = {p: [] for p in range(partitions)}

    def produce_round(self, partitions=None):
        for partition in partitions if partitions is not None else range(self.partitions):
            batch = values(partition, self.sent[partition], RECORDS_PER_BATCH)
            self.sent[partition] += RECORDS_PER_BATCH
            error, base_offset = produce_one(self.broker, self.topic, partition, batch)
            if error == kafka_wire.NONE:
                for i, value in enumerate(batch):
                    assert base_offset + i not in self.acked[partition], "offset acked twice"
                    self.acked[partition][base_offset + i] = value
            else:
                self.errors[partition].append(error)

    def check_all_acked_present(self):
        for partition, acked in self.acked.items():
            if not acked:
                continue
            found = read_partition(self.broker, self.topic, partition, max(acked) + 1)
            lost = [offset for offset, value in acked.items() if found.get(offset) != value]
            assert not lost, (f"{self.topic}-{partition}: {len(lost)} of {len(acked)} "
                              f"acknowledged records missing or changed, first at offset "
                              f"{min(lost)}")


def placement(broker, topic, faulty_dir):
    """(partitions in the faulty dir, partitions in the other dir), from DescribeLogDirs."""
    dirs = describe_log_dirs(broker)
    faulty = os.path.realpath(faulty_dir)
    assert faulty in dirs, f"DescribeLogDirs lists {sorted(dirs)}, not {faulty}"
    assert len(dirs) == 2, f"DescribeLogDirs lists {sorted(dirs)}: expected both log dirs"
    on_faulty = sorted(p for (t, p) in dirs[faulty][1] if t == topic)
    others = sorted(p for d, (_, parts) in dirs.items() if d != faulty
                    for (t, p) in parts if t == topic)
    return on_faulty, others


def fault_until_offline(workload, on_faulty, max_rounds):
    """Produces until every partition of the faulty dir answers an error; returns the rounds."""
    for round_number in range(max_rounds):
        workload.produce_round()
        if all(workload.errors[p] for p in on_faulty):
            return round_number + 1
    raise AssertionError(f"the faulty dir's partitions {on_faulty} still accept writes after "
                         f"{max_rounds} rounds (errors {workload.errors})")


def check_offline_dir(broker, workload, on_faulty, others, faulty_dir):
    topic = workload.topic
    assert broker.alive(), "the broker exited after a storage error in one of two log dirs"
    for partition in on_faulty:
        assert workload.errors[partition][-1] == KAFKA_STORAGE_ERROR, workload.errors
        error, _ = produce_one(broker, topic, partition, values(partition, 10 ** 6, 1))
        assert error == KAFKA_STORAGE_ERROR, f"produce to offline {topic}-{partition}: {error}"
        # Fetch v4: Kafka down-converts KAFKA_STORAGE_ERROR to NOT_LEADER_OR_FOLLOWER for
        # Fetch v5 and older (KafkaApis.maybeDownConvertStorageError).
        assert fetch_error(broker, topic, partition) == NOT_LEADER_OR_FOLLOWER
        # ListOffsets (Kafka's getPartitionOrError on an offline partition): no down-conversion.
        assert list_offsets_error(broker, topic, partition) == KAFKA_STORAGE_ERROR
    for partition in others:
        assert not workload.errors[partition], f"healthy dir's {partition}: {workload.errors}"
        assert list_offsets_error(broker, topic, partition) == kafka_wire.NONE
    workload.produce_round(others)
    assert not any(workload.errors[p] for p in others), workload.errors
    for partition in others:
        found = read_partition(broker, topic, partition, max(workload.acked[partition]) + 1)
        assert all(found.get(o) == v for o, v in workload.acked[partition].items())
    # Kafka's controller learns of the failed dir through the broker's heartbeat; the replica
    # in the failed dir is then listed in offline_replicas.
    def metadata_shows_offline():
        node_id, answer = metadata_v5(broker, topic)
        return all(answer[p][3] == [node_id] for p in on_faulty) and (node_id, answer)
    node_id, answer = harness.wait_until(metadata_shows_offline, 60, interval_s=0.2,
                                         message="Metadata lists the offline replicas")
    print(f"Metadata v5 after the fault (error, leader, isr, offline_replicas): {answer}")
    for partition in on_faulty:
        # Kafka 4.1.2: no leader, the replica left the ISR (KIP-966 keeps it as an eligible
        # leader replica) and is listed offline.
        assert answer[partition] == (LEADER_NOT_AVAILABLE, -1, [], [node_id]), answer[partition]
    for partition in others:
        assert answer[partition] == (kafka_wire.NONE, node_id, [node_id], []), answer[partition]
    dirs = describe_log_dirs(broker)
    assert dirs[os.path.realpath(faulty_dir)][0] == KAFKA_STORAGE_ERROR, dirs
    assert [error for d, (error, _) in dirs.items() if d != os.path.realpath(faulty_dir)] == [0]


def new_topic(broker, partitions):
    topic = harness.unique_topic("disk")
    harness.create_topic(broker, topic, partitions)
    return topic


# ----- the cases -----

def test_two_log_dirs_spread_partitions(tmp_path):
    """Several log.dirs: each has meta.properties with a directory.id, new partitions go to the
    dir with the fewest, DescribeLogDirs lists both, a restart finds every partition again."""
    second = tmp_path / "second"
    broker = start_two_dir_broker(tmp_path, second)
    try:
        topic = new_topic(broker, 4)
        on_second, on_first = placement(broker, topic, second)
        assert len(on_second) == 2 and len(on_first) == 2, (on_first, on_second)
        workload = Workload(broker, topic, 4)
        workload.produce_round()
        dirs = describe_log_dirs(broker)
        assert all(size > 0 for _, parts in dirs.values() for (t, _), size in parts.items()
                   if t == topic), dirs
        ids = set()
        for log_dir in dirs:
            properties = dict(line.split("=", 1) for line in
                              (Path(log_dir) / "meta.properties").read_text().splitlines()
                              if "=" in line and not line.startswith("#"))
            assert {"version", "cluster.id", "node.id", "directory.id"} <= properties.keys()
            ids.add(properties["directory.id"])
        assert len(ids) == 2, "each log dir has its own directory.id"
        broker.restart()
        harness.wait_for_partitions(broker, topic, 4)
        assert placement(broker, topic, second) == (on_second, on_first)
        workload.produce_round()
        workload.check_all_acked_present()
    finally:
        broker.close()


def test_enospc_takes_the_dir_offline(tmp_path, devices):
    mount = small_ext4(devices, "enospc", 32)
    ballast = fill(mount, 3 << 20)
    log_dir = mount / "logs"
    broker = start_two_dir_broker(tmp_path, log_dir)
    try:
        topic = new_topic(broker, 4)
        on_faulty, others = placement(broker, topic, log_dir)
        assert on_faulty and others, (on_faulty, others)
        workload = Workload(broker, topic, 4)
        rounds = fault_until_offline(workload, on_faulty, max_rounds=80)
        print(f"ENOSPC after {rounds} rounds; acked per partition "
              f"{ {p: len(a) for p, a in workload.acked.items()} }; errors {workload.errors}")
        check_offline_dir(broker, workload, on_faulty, others, log_dir)
        # Kafka's way back: free the space, restart; the dir is online again and every
        # acknowledged record is there.
        broker.stop()
        ballast.unlink()
        broker.start()
        harness.wait_for_partitions(broker, topic, 4)
        workload.check_all_acked_present()
        assert all(describe_log_dirs(broker)[d][0] == 0 for d in describe_log_dirs(broker))
        for p in on_faulty:
            workload.errors[p].clear()
        workload.produce_round()
        assert not any(workload.errors.values()), workload.errors
        workload.check_all_acked_present()
    finally:
        broker.close()


def test_io_errors_take_the_dir_offline(tmp_path, devices):
    # A 96 MiB file system whose blocks live in a 10 MiB tmpfs: once the tmpfs is full the
    # loop device fails writes ("critical space allocation error"), as an over-committed thin
    # volume does; O_DIRECT writes get ENOSPC/EIO and fdatasync EIO.
    backing = devices.tmpfs("backing", 10)
    image = backing / f"{PREFIX}-thin.img"
    with open(image, "wb") as out:
        out.truncate(96 << 20)
    device = devices.loop(image)
    mount = devices.ext4(device, "thin")
    log_dir = mount / "logs"
    settings = {"log.flush.interval.messages": "1"} if harness.TARGET == "kafka" else None
    broker = start_two_dir_broker(tmp_path, log_dir, settings)
    try:
        topic = new_topic(broker, 4)
        on_faulty, others = placement(broker, topic, log_dir)
        assert on_faulty and others, (on_faulty, others)
        workload = Workload(broker, topic, 4)
        rounds = fault_until_offline(workload, on_faulty, max_rounds=120)
        print(f"I/O errors after {rounds} rounds; acked per partition "
              f"{ {p: len(a) for p, a in workload.acked.items()} }; errors {workload.errors}")
        check_offline_dir(broker, workload, on_faulty, others, log_dir)
        # Repair: stop, give the device room, fsck, mount again, restart. Every record that
        # was acknowledged must have reached the device before its acknowledgement.
        broker.stop()
        devices.unmount(mount)
        run("mount", "-o", "remount,size=160M", str(backing))
        fsck = run("e2fsck", "-fy", device, check=False)
        assert fsck.returncode in (0, 1, 2), f"e2fsck: {fsck.returncode} {fsck.stdout[-2000:]}"
        devices.mount(device, "thin")
        broker.start()
        harness.wait_for_partitions(broker, topic, 4)
        workload.check_all_acked_present()
    finally:
        broker.close()


def test_dm_error_target(tmp_path, devices):
    require_block_tools(extra=("dmsetup", "blockdev"))
    targets = run("dmsetup", "targets", check=False)
    if targets.returncode != 0 or "error" not in targets.stdout:
        pytest.skip(f"the kernel has no device-mapper error target (dmsetup targets: "
                    f"{(targets.stderr or targets.stdout).strip()[:200]})")
    image = devices.base / f"{PREFIX}-dm.img"
    with open(image, "wb") as out:
        out.truncate(64 << 20)
    loop = devices.loop(image)
    sectors = run("blockdev", "--getsz", loop).stdout.strip()
    dm_name, dm_device = devices.dm("dm", f"0 {sectors} linear {loop} 0")
    mount = devices.ext4(dm_device, "dm")
    log_dir = mount / "logs"
    settings = {"log.flush.interval.messages": "1"} if harness.TARGET == "kafka" else None
    broker = start_two_dir_broker(tmp_path, log_dir, settings)
    try:
        topic = new_topic(broker, 4)
        on_faulty, others = placement(broker, topic, log_dir)
        assert on_faulty and others, (on_faulty, others)
        workload = Workload(broker, topic, 4)
        workload.produce_round()
        assert not any(workload.errors.values()), workload.errors
        run("dmsetup", "suspend", "--noflush", dm_name)
        run("dmsetup", "reload", dm_name, "--table", f"0 {sectors} error")
        run("dmsetup", "resume", dm_name)
        fault_until_offline(workload, on_faulty, max_rounds=20)
        check_offline_dir(broker, workload, on_faulty, others, log_dir)
        acked_before = {p: dict(workload.acked[p]) for p in on_faulty}
        broker.stop()
        # Back to the linear table: what was acknowledged before the fault is on the device.
        run("dmsetup", "suspend", "--noflush", dm_name)
        run("dmsetup", "reload", dm_name, "--table", f"0 {sectors} linear {loop} 0")
        run("dmsetup", "resume", dm_name)
        run("umount", "-l", str(mount), check=False)
        devices.undo.remove(("umount", mount))
        run("e2fsck", "-fy", dm_device, check=False)
        devices.mount(dm_device, "dm")
        broker.start()
        harness.wait_for_partitions(broker, topic, 4)
        workload.check_all_acked_present()
        assert all(workload.acked[p] == acked_before[p] for p in on_faulty)
    finally:
        broker.close()


def repair_and_restart(broker, devices, disk, loop, mount, name, topic, partitions):
    """Stop the broker, the device back to pass-through, fsck, mount again, restart."""
    broker.stop()
    disk.set("pass")
    devices.unmount(mount)
    fsck = run("e2fsck", "-fy", loop, check=False)
    assert fsck.returncode in (0, 1, 2), f"e2fsck: {fsck.returncode} {fsck.stdout[-2000:]}"
    mount = devices.mount(loop, name)
    broker.start()
    harness.wait_for_partitions(broker, topic, partitions)
    return mount


def drop_caches():
    """Nothing of the faulty file system left in the page cache: its reads reach the device."""
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def test_fuse_error_device(tmp_path, devices):
    """The dm `error` case without device-mapper: a FUSE daemon (tests/fuse_faulty.py) serves
    the image of a loop device under the second log dir, and is switched at run time to fail
    every read, write and fsync with EIO. Writes: the dir's partitions go offline with
    KAFKA_STORAGE_ERROR, nothing sent after the switch is acknowledged (every produce waits
    for a write and fsync that fail, and a failed fsync must not be retried into a success),
    the other dir goes on, every acknowledged record is there after the repair. Reads: with
    the device failing and the page cache dropped, a fetch of the dir's partitions answers
    KAFKA_STORAGE_ERROR, not wrong data or a crash."""
    require_fuse()
    disk = devices.fuse("fuse", 64)
    loop = devices.loop(disk.image)
    mount = devices.ext4(loop, "fuse")
    log_dir = mount / "logs"
    if harness.TARGET == "kafka":
        # No checkpoint written in the background while the device fails reads: its failed
        # write would take the dir offline before the fetch reads (Kafka's defaults: 5 s for
        # the high watermarks, 60 s for the recovery points and log start offsets).
        settings = {"log.flush.interval.messages": "1",
                    "replication.high.watermark.checkpoint.interval.ms": "3600000",
                    "log.flush.offset.checkpoint.interval.ms": "3600000",
                    "log.flush.start.offset.checkpoint.interval.ms": "3600000"}
    else:
        # Fetches are served from segment files, not from the tail kept in memory.
        settings = {"ringtail.partition.cache.bytes": "0", "ringtail.fetch.read.ahead.bytes": "0"}
    broker = start_two_dir_broker(tmp_path, log_dir, settings)
    try:
        topic = new_topic(broker, 4)
        on_faulty, others = placement(broker, topic, log_dir)
        assert on_faulty and others, (on_faulty, others)
        workload = Workload(broker, topic, 4)
        workload.produce_round()
        assert not any(workload.errors.values()), workload.errors
        acked_before = {p: dict(workload.acked[p]) for p in on_faulty}

        # ----- writes and fsyncs fail -----
        before = disk.set("error")
        rounds = fault_until_offline(workload, on_faulty, max_rounds=20)
        after = disk.status()
        print(f"write fault: offline after {rounds} rounds; device {before} -> {after}; "
              f"errors {workload.errors}")
        assert after["failed_writes"] + after["failed_fsyncs"] > 0, \
            f"the dir went offline but the device failed no write or fsync: {after}"
        check_offline_dir(broker, workload, on_faulty, others, log_dir)
        for partition in on_faulty:
            late = sorted(set(workload.acked[partition]) - set(acked_before[partition]))
            assert not late, (f"{topic}-{partition}: offsets {late[:5]}... acknowledged after "
                              f"the device failed every write and fsync")
        mount = repair_and_restart(broker, devices, disk, loop, mount, "fuse", topic, 4)
        workload.check_all_acked_present()
        assert all(workload.acked[p] == acked_before[p] for p in on_faulty)
        dirs = describe_log_dirs(broker)
        assert all(error == 0 for error, _ in dirs.values()), dirs

        # ----- reads fail -----
        broker.restart()  # nothing read back above is left in the broker's memory
        harness.wait_for_partitions(broker, topic, 4)
        os.sync()
        disk.set("error")
        drop_caches()
        before = disk.status()
        answers = {p: fetch_v6(broker, topic, p, 0) for p in on_faulty}
        after = disk.status()
        print(f"read fault: device {before} -> {after}; Fetch v6 errors "
              f"{ {p: (e, len(r or b'')) for p, (e, r) in answers.items()} }")
        assert broker.alive(), "the broker exited after a read error in one of two log dirs"
        # Ringtail takes the dir offline on a failed segment read (README, "Disk faults"):
        # KAFKA_STORAGE_ERROR. Kafka 4.1.2 does not: FileRecords' batch iterator wraps the
        # IOException in a KafkaException, which LocalLog.maybeHandleIOException does not
        # catch, so the fetch answers UNKNOWN_SERVER_ERROR and the dir stays online (until a
        # write to it fails, e.g. the next high-watermark checkpoint). Either way: an error,
        # no records.
        expected = UNKNOWN_SERVER_ERROR if harness.TARGET == "kafka" else KAFKA_STORAGE_ERROR
        for partition, (error, records) in answers.items():
            got = {}
            if records:
                for batch in kafka_wire.parse_record_batches(records):
                    got.update({o: r.value for o, r in batch.records})
            wrong = {o for o, v in got.items() if workload.acked[partition].get(o) != v}
            assert (error, got) == (expected, {}), (
                f"fetch {topic}-{partition} from a device that fails every read: error "
                f"{error} (expected {expected}), {len(got)} records ({len(wrong)} not the "
                f"acknowledged ones); device counters {after}")
        assert after["failed_reads"] > before["failed_reads"], \
            f"the fetches answered {expected} but the device failed no read: {after}"
        for partition in others:
            found = read_partition(broker, topic, partition,
                                   max(workload.acked[partition]) + 1)
            assert all(found.get(o) == v for o, v in workload.acked[partition].items())
        if harness.TARGET != "kafka":
            for partition in on_faulty:
                assert list_offsets_error(broker, topic, partition) == KAFKA_STORAGE_ERROR
            dirs = describe_log_dirs(broker)
            assert dirs[os.path.realpath(log_dir)][0] == KAFKA_STORAGE_ERROR, dirs
        mount = repair_and_restart(broker, devices, disk, loop, mount, "fuse", topic, 4)
        workload.check_all_acked_present()
        for partition in on_faulty:
            workload.errors[partition].clear()
        workload.produce_round()
        assert not any(workload.errors.values()), workload.errors
        workload.check_all_acked_present()
    finally:
        broker.close()


def test_fuse_fsync_errors(tmp_path, devices):
    """A device whose writes succeed but whose cache flushes fail (tests/fuse_faulty.py's
    "fsync" mode): each acks=all produce writes, then fdatasync/fsync gets EIO. The dir's
    partitions go offline with KAFKA_STORAGE_ERROR and nothing sent after the switch is
    acknowledged; once the device works again the dir stays offline until the restart (a
    failed fsync is not retried into a success), then every acknowledged record is there."""
    require_fuse()
    disk = devices.fuse("fsync", 64)
    loop = devices.loop(disk.image)
    mount = devices.ext4(loop, "fsync")
    log_dir = mount / "logs"
    settings = {"log.flush.interval.messages": "1"} if harness.TARGET == "kafka" else None
    broker = start_two_dir_broker(tmp_path, log_dir, settings)
    try:
        topic = new_topic(broker, 4)
        on_faulty, others = placement(broker, topic, log_dir)
        assert on_faulty and others, (on_faulty, others)
        workload = Workload(broker, topic, 4)
        workload.produce_round()
        assert not any(workload.errors.values()), workload.errors
        acked_before = {p: dict(workload.acked[p]) for p in on_faulty}
        before = disk.set("fsync")
        rounds = fault_until_offline(workload, on_faulty, max_rounds=20)
        after = disk.status()
        print(f"fsync fault: offline after {rounds} rounds; device {before} -> {after}; "
              f"errors {workload.errors}")
        assert after["failed_fsyncs"] > before["failed_fsyncs"], \
            f"the dir went offline but the device failed no fsync: {after}"
        assert after["failed_writes"] == before["failed_writes"], after
        check_offline_dir(broker, workload, on_faulty, others, log_dir)
        # The device works again: the dir stays offline, nothing more is acknowledged there.
        disk.set("pass")
        workload.produce_round()
        for partition in on_faulty:
            assert workload.errors[partition][-1] == KAFKA_STORAGE_ERROR, workload.errors
            late = sorted(set(workload.acked[partition]) - set(acked_before[partition]))
            assert not late, (f"{topic}-{partition}: offsets {late[:5]}... acknowledged after "
                              f"the device failed their fsync")
        assert not any(workload.errors[p] for p in others), workload.errors
        log_before = len(broker.log_text())
        mount = repair_and_restart(broker, devices, disk, loop, mount, "fsync", topic, 4)
        if harness.TARGET == "ringtail":
            # Only the dir that was offline lacks its clean-shutdown marker: the healthy one is
            # not recovered (Kafka's LogManager decides per dir too).
            recovered = re.findall(r"no clean-shutdown marker: recovering partition logs "
                                   r"dir=(\S+)", broker.log_text()[log_before:])
            assert recovered, "the dir that was offline is recovered"
            assert str(tmp_path / "data") not in recovered, recovered
        workload.check_all_acked_present()
        assert all(workload.acked[p] == acked_before[p] for p in on_faulty)
        for partition in on_faulty:
            workload.errors[partition].clear()
        workload.produce_round()
        assert not any(workload.errors.values()), workload.errors
        workload.check_all_acked_present()
    finally:
        broker.close()
