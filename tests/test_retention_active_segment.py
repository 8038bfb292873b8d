"""Retention deletes the active segment too once it expired, as Kafka does.

Kafka's UnifiedLog.deletableSegments lets the active segment be deletable (its upper bound is
the log end offset, which the high watermark covers once everything is acknowledged), and
UnifiedLog.deleteSegments rolls a new empty active segment first when every segment goes: the
log start offset then equals the log end offset (ListOffsets earliest == latest), reads below
it answer OFFSET_OUT_OF_RANGE, and new records continue at the old log end.
"""

import time

import pytest

import harness
import kafka_wire as wire

EARLIEST, LATEST = -2, -1


def offsets(connection, topic):
    earliest = connection.list_offsets({(topic, 0): EARLIEST})[(topic, 0)]
    latest = connection.list_offsets({(topic, 0): LATEST})[(topic, 0)]
    assert earliest[0] == wire.NONE and latest[0] == wire.NONE, (earliest, latest)
    return earliest[2], latest[2]


@pytest.mark.timeout(180)
def test_expired_active_segment_is_rolled_and_deleted(start_broker):
    broker = start_broker(settings={"log.retention.check.interval.ms": "1000"})
    topic = harness.create_topic(broker, harness.unique_topic("retention-active"), 1,
                                 {"retention.ms": "600000"})
    old = int(time.time() * 1000) - 3_600_000  # an hour old: past retention.ms at once
    with wire.Connection(broker.bootstrap) as connection:
        for i in range(3):  # three batches, all in the one (active) segment
            batch = wire.record_batch([wire.Record(b"v%d" % n, timestamp=old + n)
                                       for n in range(4 * i, 4 * i + 4)])
            assert connection.produce({topic: {0: batch}})[(topic, 0)][0] == wire.NONE
        # Kafka's first retention check runs 30 s after start-up (LogManager.InitialTaskDelayMs).
        harness.wait_until(lambda: offsets(connection, topic) == (12, 12), timeout_s=90,
                           interval_s=0.2, message="log start offset == log end offset == 12")
        fetched = connection.fetch({(topic, 0): 0})[(topic, 0)]
        assert fetched["error_code"] == wire.OFFSET_OUT_OF_RANGE, fetched
        # The new active segment continues at the old log end; fresh records are kept.
        fresh = wire.record_batch([wire.Record(b"fresh", timestamp=int(time.time() * 1000))])
        produced = connection.produce({topic: {0: fresh}})[(topic, 0)]
        assert produced == (wire.NONE, 12), produced
        time.sleep(2.5)  # two more retention checks must leave the unexpired record alone
        assert offsets(connection, topic) == (12, 13)
        fetched = connection.fetch({(topic, 0): 12})[(topic, 0)]
        assert fetched["error_code"] == wire.NONE, fetched
        [stored] = wire.parse_record_batches(fetched["records"])
        assert stored.base_offset == 12 and stored.record_count == 1
