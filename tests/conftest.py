"""pytest fixtures: a real broker per test (or per module), log tails on failure.

    broker            one broker, 1 shard, default settings, for this test
    start_broker(...) factory: start_broker(shards=2, settings={"num.partitions": 4})

The broker is `ringtail` by default: the binary is $RINGTAIL_BIN, else
$CARGO_TARGET_DIR/release/ringtail, else target/release/ringtail.

With RINGTAIL_TEST_TARGET=kafka the same fixtures give Apache Kafka nodes instead
(harness.KafkaBroker, started through scripts/peers/kafka.sh). A JVM takes tens of seconds to
start, so Kafka nodes are shared: one node per distinct `settings` for the whole session (topics
and groups in the tests have unique names), at most two running at once. A test that stopped or
killed its node leaves it to the next test's fixture to start again. Tests of Ringtail-only
behaviour carry `@pytest.mark.ringtail_only("reason")` and are skipped there with that reason.
"""

import re

import pytest

import harness


def pytest_report_header(config):
    if harness.TARGET == "kafka":
        return (f"broker target: Apache Kafka (RINGTAIL_TEST_TARGET=kafka, {harness.kafka_script()},"
                f" jars {harness.kafka_libs()})")
    return f"broker target: ringtail ({harness.ringtail_bin()})"


def pytest_collection_modifyitems(config, items):
    for item in items:
        for marker in item.iter_markers("ringtail_only"):
            if not marker.args or not str(marker.args[0]).strip():
                raise pytest.UsageError(f"{item.nodeid}: ringtail_only needs a reason")
    if harness.TARGET != "kafka":
        return
    for item in items:
        marker = item.get_closest_marker("ringtail_only")
        if marker is not None:
            item.add_marker(pytest.mark.skip(reason=f"Ringtail-only: {marker.args[0]}"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for broker in list(harness.ACTIVE_BROKERS):
            alive = "running" if broker.alive() else "NOT running"
            report.sections.append(
                (f"broker {broker.bootstrap} ({alive}) log", broker.log_tail()))


def _check_no_panic(broker, since=0):
    found = harness.panic_in(broker.log_text()[since:])
    if found:
        pytest.fail(f"broker log shows a panic or abort:\n{found}")


class KafkaPool:
    """Kafka nodes shared by the session, one per distinct settings; at most `RUNNING` nodes
    run at once (each JVM takes a 1 GiB heap): starting another stops the least recently used
    one, which starts again (same data) when a test asks for it next."""

    RUNNING = 2

    def __init__(self, tmp_path_factory):
        self.tmp_path_factory = tmp_path_factory
        self.nodes = {}  # settings key -> KafkaBroker, least recently used first

    def get(self, settings, listeners=None):
        key = tuple(sorted((str(k), str(v)) for k, v in (settings or {}).items()))
        key += tuple(("listener", f"{n}:{p}") for n, p in (listeners or []))
        node = self.nodes.pop(key, None)
        if node is None:
            name = "kafka-" + (re.sub(r"[^A-Za-z0-9]+", "_", "-".join(k for k, _ in key))[:30]
                               or "defaults")
            node = harness.KafkaBroker(self.tmp_path_factory.mktemp(name), settings=settings,
                                       listeners=listeners)
        self.nodes[key] = node
        running = [other for other in self.nodes.values() if other is not node and other.alive()]
        for other in running[:max(0, len(running) - (self.RUNNING - 1))]:
            other.stop()
        if not node.alive():
            node.start()
        return node

    def close(self):
        for node in self.nodes.values():
            node.close()


@pytest.fixture(scope="session")
def kafka_pool(tmp_path_factory):
    pool = KafkaPool(tmp_path_factory)
    yield pool
    pool.close()


@pytest.fixture
def start_broker(tmp_path_factory, request):
    """Factory fixture: starts brokers for this test, stops them at teardown (Kafka: takes the
    shared node for these settings, see KafkaPool)."""
    started = []

    def start(shards=1, settings=None, listeners=None):
        if harness.TARGET == "kafka":
            node = request.getfixturevalue("kafka_pool").get(settings, listeners)
            started.append((node, len(node.log_text())))
            return node
        base = tmp_path_factory.mktemp(re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:40])
        broker = harness.Broker(base / "data", base / "broker.log", shards=shards,
                                settings=settings, listeners=listeners)
        started.append((broker, 0))
        return broker.start()

    yield start
    if harness.TARGET != "kafka":
        for broker, _ in started:
            broker.close()
    for broker, since in started:
        _check_no_panic(broker, since)


@pytest.fixture
def broker(start_broker):
    return start_broker()


@pytest.fixture(scope="module")
def module_broker_factory(tmp_path_factory, request):
    """Like start_broker, but the brokers live for the whole module. The module checks the log
    for panics itself, per test (see `panic_in`), so that the right test fails."""
    started = []

    def start(shards=1, settings=None, listeners=None):
        if harness.TARGET == "kafka":
            return request.getfixturevalue("kafka_pool").get(settings, listeners)
        base = tmp_path_factory.mktemp(request.module.__name__)
        broker = harness.Broker(base / "data", base / "broker.log", shards=shards,
                                settings=settings, listeners=listeners)
        started.append(broker)
        return broker.start()

    yield start
    for broker in started:
        broker.close()
