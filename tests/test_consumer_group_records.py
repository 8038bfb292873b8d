"""KIP-848 consumer group records written by Ringtail's encoder, read by Kafka's own decoder.

The Rust test `consumer_group_records::tests::writes_segment_for_kafka_dump_log` writes a
`__consumer_offsets` segment (every KIP-848 record type, values and tombstones) with Ringtail's
encoder; Kafka 4.1.2's `kafka.tools.DumpLogSegments --offsets-decoder` (what
`kafka-dump-log.sh --offsets-decoder` runs) must read each record with the values written.
The other direction (Kafka's bytes decoded and re-encoded byte for byte) is the Rust test
`encodes_kafka_bytes` over the fixture in crates/ringtail-protocol/tests/fixtures/.
Offline: no broker is started, so the test is the same for both targets.
"""
import json
import os
import re
import shutil
import subprocess

import pytest

from harness import REPO_ROOT, kafka_libs

CARGO_TIMEOUT_S = 900
DUMP_TIMEOUT_S = 180


def test_kafka_dump_log_reads_ringtail_segment(tmp_path):
    libs = kafka_libs()
    if not (libs / ".installed").is_file() and not any(libs.glob("kafka-group-coordinator-*.jar")):
        pytest.skip(f"Kafka's jars are not installed in {libs} (set KAFKA_PEER_LIBS)")
    java = shutil.which("java")
    if java is None:
        pytest.skip("no java on PATH for Kafka's DumpLogSegments")
    env = dict(os.environ, RINGTAIL_K848_SEGMENT_DIR=str(tmp_path))
    subprocess.run(
        ["cargo", "test", "--release", "-p", "ringtail-protocol", "--lib", "--",
         "--exact", "consumer_group_records::tests::writes_segment_for_kafka_dump_log"],
        cwd=REPO_ROOT, env=env, check=True, stdin=subprocess.DEVNULL, timeout=CARGO_TIMEOUT_S)
    segment = tmp_path / "00000000000000000000.log"
    assert segment.is_file(), "the Rust test wrote no segment"
    result = subprocess.run(
        [java, "-Xmx256M", "-cp", f"{libs}/*", "kafka.tools.DumpLogSegments", "--files",
         str(segment), "--offsets-decoder", "--print-data-log"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=DUMP_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-3000:]
    records = []
    for line in result.stdout.splitlines():
        match = re.search(r"key: (\{.*\}) payload: (.*)$", line)
        if match:
            payload = match.group(2)
            records.append((json.loads(match.group(1)),
                            None if payload == "<DELETE>" else json.loads(payload)))
    assert "Could not deserialize" not in result.stdout, result.stdout
    assert "unknown" not in result.stdout.lower(), result.stdout
    assert len(records) == 13, result.stdout
    types = [key["type"] for key, _ in records]
    assert types == ["5", "3", "7", "6", "8", "16", "5", "8", "7", "5", "16", "6", "3"]
    member_key, member = records[0]
    assert member_key["data"] == {"groupId": "rt848", "memberId": "rt-member-1"}
    assert member["version"] == "0"
    assert member["data"] == {
        "instanceId": "rt-instance", "rackId": "rt-rack", "clientId": "rt-client",
        "clientHost": "/127.0.0.1", "subscribedTopicNames": ["rt-a"],
        "subscribedTopicRegex": "rt-.*", "rebalanceTimeoutMs": 300000,
        "serverAssignor": "range", "classicMemberMetadata": None}
    assert records[1][1]["data"] == {"epoch": 7, "metadataHash": -42}
    assert records[2][1]["data"]["topicPartitions"][0]["partitions"] == [0, 2]
    assert records[3][1]["data"] == {"assignmentEpoch": 7}
    current = records[4][1]["data"]
    assert (current["memberEpoch"], current["previousMemberEpoch"], current["state"]) == (7, 6, 1)
    assert current["partitionsPendingRevocation"][0]["partitions"] == [3]
    assert records[5][0]["data"] == {"groupId": "rt848", "regularExpression": "rt-.*"}
    assert records[5][1]["data"] == {"topics": ["rt-a", "rt-b"], "version": 12,
                                     "timestamp": 1700000000000}
    classic = records[6][1]["data"]["classicMemberMetadata"]
    assert classic["sessionTimeoutMs"] == 45000
    assert classic["supportedProtocols"][0]["name"] == "range"
    assert all(value is None for _, value in records[7:])
