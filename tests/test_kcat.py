"""kcat against the broker (issue 2, test 1): metadata listing, produce 10,000 keyed messages with
headers to a 4-partition topic, consume them back identical and in order per partition."""

import json
import random
import shutil
import subprocess

import pytest

import harness

MESSAGES = 10_000
PARTITIONS = 4
KCAT_TIMEOUT_S = 120
HEADERS = [("origin", "kcat"), ("trace", "abc-123")]

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None,
                                reason="kcat not installed (scripts/test.sh installs it)")


def kcat(*args, input_text=None):
    """Runs kcat (bounded in time); fails on a non-zero exit or an error it reports."""
    result = subprocess.run(
        ["kcat", *args], input=input_text, capture_output=True, text=True,
        timeout=KCAT_TIMEOUT_S, stdin=None if input_text is not None else subprocess.DEVNULL)
    failed = result.returncode != 0 or "% ERROR" in result.stderr \
        or "Delivery failed" in result.stderr
    assert not failed, \
        f"kcat {' '.join(args)} exited {result.returncode}\nstderr:\n{result.stderr[-4000:]}"
    return result


def test_kcat_metadata_lists_broker_and_topics(broker):
    topics = {harness.unique_topic("kcat-a"): 4, harness.unique_topic("kcat-b"): 1}
    for name, partitions in topics.items():
        harness.create_topic(broker, name, partitions)

    listing = json.loads(kcat("-b", broker.bootstrap, "-L", "-J").stdout)
    assert [b["name"] for b in listing["brokers"]] == [broker.bootstrap], listing["brokers"]
    broker_id = listing["brokers"][0]["id"]
    found = {t["topic"]: t for t in listing["topics"]}
    for name, partitions in topics.items():
        assert name in found, f"topic {name} not listed: {sorted(found)}"
        assert "error" not in found[name], found[name]
        listed = found[name]["partitions"]
        assert sorted(p["partition"] for p in listed) == list(range(partitions))
        assert all(p["leader"] == broker_id for p in listed), listed

    text = kcat("-b", broker.bootstrap, "-L").stdout
    assert "1 brokers:" in text, text
    assert f"at {broker.bootstrap}" in text, text
    for name, partitions in topics.items():
        assert f'topic "{name}" with {partitions} partitions:' in text, text


def test_kcat_produce_and_consume_10000_keyed_messages(broker):
    topic = harness.create_topic(broker, harness.unique_topic("kcat"), PARTITIONS)
    seed = harness.test_seed("kcat produce/consume")
    rng = random.Random(seed)
    produced = []
    for i in range(MESSAGES):
        key = f"key-{i:05d}"
        # Values of varied length and content (no tab or newline: those are kcat's delimiters).
        value = f"value-{i:05d}-" + "".join(
            rng.choice("abcdefghijklmnopqrstuvwxyz0123456789 ={}[],.-")
            for _ in range(rng.randrange(0, 200)))
        produced.append((key, value))

    header_args = [arg for name, value in HEADERS for arg in ("-H", f"{name}={value}")]
    kcat("-b", broker.bootstrap, "-P", "-t", topic, "-K", "\t", *header_args,
         "-X", "acks=all", "-X", "enable.idempotence=true", "-X", "linger.ms=5",
         input_text="".join(f"{k}\t{v}\n" for k, v in produced))

    out = kcat("-b", broker.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
               "-f", "%p\t%o\t%k\t%h\t%s\n").stdout
    lines = out.split("\n")
    assert lines[-1] == "", "output does not end with a newline"
    consumed = [line.split("\t", 4) for line in lines[:-1]]
    assert len(consumed) == MESSAGES, f"consumed {len(consumed)} of {MESSAGES} (seed={seed})"

    expected_headers = ",".join(f"{name}={value}" for name, value in HEADERS)
    order = {key: i for i, (key, _) in enumerate(produced)}
    values = dict(produced)
    by_partition = {}
    for partition, offset, key, headers, value in consumed:
        assert key in values, f"unknown key {key!r}"
        assert value == values[key], f"value of {key}: {value!r} != {values[key]!r}"
        assert headers == expected_headers, f"headers of {key}: {headers!r}"
        by_partition.setdefault(int(partition), []).append((int(offset), key))

    assert set(by_partition) <= set(range(PARTITIONS)), sorted(by_partition)
    assert len(by_partition) > 1, "all messages went to one partition"
    seen = set()
    for partition, entries in by_partition.items():
        offsets = [offset for offset, _ in entries]
        assert offsets == list(range(len(entries))), \
            f"partition {partition}: offsets not contiguous from 0 (seed={seed})"
        keys = [key for _, key in entries]
        assert keys == sorted(keys, key=order.__getitem__), \
            f"partition {partition}: messages out of produce order (seed={seed})"
        seen.update(keys)
    assert len(seen) == MESSAGES, "duplicate keys read back"
