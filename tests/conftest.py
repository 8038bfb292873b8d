"""pytest fixtures: a real `ringtail` broker per test (or per module), log tails on failure.

    broker            one broker, 1 shard, default settings, for this test
    start_broker(...) factory: start_broker(shards=2, settings={"num.partitions": 4})

The binary is $RINGTAIL_BIN, else $CARGO_TARGET_DIR/release/ringtail, else target/release/ringtail.
"""

import re

import pytest

import harness

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for broker in list(harness.ACTIVE_BROKERS):
            alive = "running" if broker.alive() else "NOT running"
            report.sections.append(
                (f"broker {broker.bootstrap} ({alive}) log", broker.log_tail()))


def _check_no_panic(broker):
    found = harness.panic_in(broker.log_text())
    if found:
        pytest.fail(f"broker log shows a panic or abort:\n{found}")


@pytest.fixture
def start_broker(tmp_path_factory, request):
    """Factory fixture: starts brokers for this test, stops them at teardown."""
    started = []

    def start(shards=1, settings=None):
        base = tmp_path_factory.mktemp(re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:40])
        broker = harness.Broker(base / "data", base / "broker.log", shards=shards,
                                settings=settings)
        started.append(broker)
        return broker.start()

    yield start
    for broker in started:
        broker.close()
    for broker in started:
        _check_no_panic(broker)


@pytest.fixture
def broker(start_broker):
    return start_broker()


@pytest.fixture(scope="module")
def module_broker_factory(tmp_path_factory, request):
    """Like start_broker, but the brokers live for the whole module. The module checks the log
    for panics itself, per test (see `panic_in`), so that the right test fails."""
    started = []

    def start(shards=1, settings=None):
        base = tmp_path_factory.mktemp(request.module.__name__)
        broker = harness.Broker(base / "data", base / "broker.log", shards=shards,
                                settings=settings)
        started.append(broker)
        return broker.start()

    yield start
    for broker in started:
        broker.close()
