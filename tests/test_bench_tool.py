"""`ringtail bench` against a real Ringtail broker (issue 4): produce with every codec and acks
setting (idempotent with acks=all), consume everything back, e2e latency, the result files, and
clear failures for an unknown topic and an invalid setting."""

import json
import subprocess

import pytest

import harness

BENCH_TIMEOUT_S = 120


def bench(*args, check=True):
    result = subprocess.run([str(harness.ringtail_bin()), "bench", *args], capture_output=True,
                            text=True, timeout=BENCH_TIMEOUT_S, stdin=subprocess.DEVNULL)
    if check:
        assert result.returncode == 0, f"bench {args} exited {result.returncode}:\n{result.stderr[-4000:]}"
    return result


# Found by running against Apache Kafka: Kafka answers retriable errors that Ringtail never
# sends here -- COORDINATOR_LOAD_IN_PROGRESS to a broker's first InitProducerId (while it fetches
# a block of producer ids from the controller), NOT_LEADER_OR_FOLLOWER to a Produce just after
# the topic was created (before the broker made itself leader). The Java producer retries both
# (after refreshing metadata); `ringtail bench` ends the run. Which one shows is a matter of
# timing, so the mark is not strict.
BENCH_RETRIES_INIT_PRODUCER_ID = pytest.mark.xfail(
    harness.TARGET == "kafka", strict=False, raises=AssertionError,
    reason="ringtail bench bug: retriable errors end the run (InitProducerId "
           "COORDINATOR_LOAD_IN_PROGRESS 14, Produce NOT_LEADER_OR_FOLLOWER 6)")


@BENCH_RETRIES_INIT_PRODUCER_ID
def test_produce_consume_e2e(start_broker, tmp_path):
    broker = start_broker(shards=2)
    topic = harness.unique_topic("bench")
    common = ["--bootstrap-server", broker.bootstrap, "--results-dir", str(tmp_path), "--no-progress"]
    produced = 0
    runs = [("none", "1"), ("gzip", "all"), ("snappy", "0"), ("lz4", "1"), ("zstd", "all")]
    for codec, acks in runs:
        out = bench("produce", "--topic", topic, "--partitions", "4", "--num-records", "3000",
                    "--payload", "json", "--result-name", f"p-{codec}", *common,
                    "--producer-props", f"acks={acks}", "linger.ms=2", f"compression.type={codec}").stdout
        assert "3000 records sent," in out and "ms 99.9th." in out, out
        produced += 3000
    result = json.loads((tmp_path / "p-zstd.json").read_text())
    assert result["figures"]["produce"]["records"] == 3000
    assert result["settings"]["producer"]["enable_idempotence"] is True
    assert (tmp_path / "p-zstd.svg").exists()

    out = bench("consume", "--topic", topic, "--result-name", "c", *common).stdout
    header, values = out.strip().splitlines()[-2:]
    assert header.startswith("start.time, end.time, data.consumed.in.MB")
    assert values.split(", ")[4] == str(produced), out

    out = bench("e2e", "--topic", harness.unique_topic("bench-e2e"), "--partitions", "2",
                "--num-records", "2000", "--throughput", "2000", "--result-name", "e", *common).stdout
    assert "2000 records consumed end to end" in out, out


def test_bad_input_fails_clearly(start_broker):
    """An unknown topic on a broker that does not auto-create topics, and an invalid setting."""
    broker = start_broker(settings={"auto.create.topics.enable": "false"})
    missing = bench("produce", "--bootstrap-server", broker.bootstrap, "--topic", "no-such-topic",
                    "--num-records", "1", "--no-results", check=False)
    assert missing.returncode != 0 and "does not exist" in missing.stderr, missing.stderr
    invalid = bench("produce", "--bootstrap-server", broker.bootstrap, "--topic", "t",
                    "--num-records", "1", "--no-results", "--producer-props", "acks=2", check=False)
    assert invalid.returncode != 0 and "acks" in invalid.stderr, invalid.stderr


def test_produce_auto_creates_topic(start_broker, tmp_path):
    """Without --partitions, produce creates the topic through Metadata
    (allow_auto_topic_creation), as kafka-producer-perf-test does, with num.partitions."""
    broker = start_broker(settings={"num.partitions": "3"})
    topic = harness.unique_topic("bench-auto")
    out = bench("produce", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                "--num-records", "500", "--no-results", "--no-progress").stdout
    assert "500 records sent," in out, out
    consumed = bench("consume", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                     "--results-dir", str(tmp_path), "--result-name", "c", "--no-progress").stdout
    assert consumed.strip().splitlines()[-1].split(", ")[4] == "500", consumed
    result = json.loads((tmp_path / "c.json").read_text())
    assert result["settings"]["partitions"] == 3, result["settings"]


def test_many_producers(broker):
    """--producers N: N producers, each with its own connections and share of the records."""
    topic = harness.unique_topic("bench-many")
    out = bench("produce", "--bootstrap-server", broker.bootstrap, "--topic", topic, "--partitions", "4",
                "--num-records", "5000", "--producers", "10", "--throughput", "5000", "--no-results",
                "--no-progress", "--producer-props", "acks=1", "linger.ms=5").stdout
    assert "5000 records sent," in out, out
    consumed = bench("consume", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                     "--no-results", "--no-progress").stdout
    assert consumed.strip().splitlines()[-1].split(", ")[4] == "5000", consumed
    invalid = bench("produce", "--bootstrap-server", broker.bootstrap, "--topic", topic,
                    "--num-records", "1", "--producers", "0", "--no-results", check=False)
    assert invalid.returncode != 0 and "--producers" in invalid.stderr, invalid.stderr
