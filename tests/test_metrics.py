"""The operator HTTP listener (issue 12): /metrics, /healthz and the status page.

Each test starts the real broker with `ringtail.http.listener` on a free loopback port
(harness.http_settings), drives it with real Kafka clients and checks what the HTTP endpoints
say against what the clients sent and committed. The exposition is parsed with the Prometheus
project's own Python parsers (prometheus-client), both formats. Kafka has no such endpoint (its
metrics are JMX MBeans), so every test here is ringtail_only.

The status page test needs Debian's `chromium` (headless); it fails, not skips, without it.
RINGTAIL_STATUS_SCREENSHOT=PATH also saves its screenshot there (results/ keeps one).
"""

import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus

import harness

pytestmark = pytest.mark.ringtail_only(
    "Ringtail's own HTTP listener (/metrics, /healthz, /); Kafka exposes JMX MBeans instead")

HTTP_TIMEOUT_S = 30


def http_get(url, accept=None):
    """(status, content type, body text) of a GET."""
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def scrape(broker):
    """{(sample name, frozenset(labels)): value} from /metrics in Prometheus text format."""
    status, content_type, body = http_get(broker.http_address() + "/metrics")
    assert status == 200, body
    assert content_type.startswith("text/plain; version=0.0.4"), content_type
    samples = {}
    for family in parse_prometheus(body):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels):
    key = (name, frozenset((k, str(v)) for k, v in labels.items()))
    assert key in samples, f"no sample {name}{labels}; have {sorted(k for k in samples if k[0] == name)[:20]}"
    return samples[key]


def matching(samples, name, **labels):
    """Every sample of `name` whose labels include `labels`, as {labels dict: value}."""
    wanted = {(k, str(v)) for k, v in labels.items()}
    return {frozenset(key[1]): v for key, v in samples.items()
            if key[0] == name and wanted <= set(key[1])}


def create_topic(broker, name, partitions):
    harness.create_topic(broker, name, partitions)
    harness.wait_for_partitions(broker, name, partitions)


def test_metrics_count_what_clients_produced_fetched_and_committed(start_broker):
    broker = start_broker(shards=2, settings={**harness.http_settings(),
                                              "group.initial.rebalance.delay.ms": "0"})
    topic = harness.unique_topic("metrics")
    partitions = 3
    create_topic(broker, topic, partitions)
    before = scrape(broker)
    assert value(before, "ringtail_topic_messages_in_total", topic=topic) == 0

    # lz4 batches from confluent-kafka, a known number of records per partition.
    per_partition = [120, 70, 40]
    producer = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "lz4",
                         "linger.ms": 20, "acks": "all"})
    for partition, count in enumerate(per_partition):
        for i in range(count):
            producer.produce(topic, value=f"value-{partition}-{i}".encode() * 3,
                             partition=partition)
    assert producer.flush(30) == 0
    total = sum(per_partition)

    samples = scrape(broker)
    assert value(samples, "ringtail_topic_messages_in_total", topic=topic) == total
    sizes = [value(samples, "ringtail_partition_size_bytes", topic=topic, partition=p)
             for p in range(partitions)]
    # Only this producer wrote: the bytes in are exactly the bytes of the segment files.
    assert value(samples, "ringtail_topic_bytes_in_total", topic=topic) == sum(sizes)
    for partition, count in enumerate(per_partition):
        assert value(samples, "ringtail_partition_log_end_offset", topic=topic,
                     partition=partition) == count
        assert value(samples, "ringtail_partition_log_start_offset", topic=topic,
                     partition=partition) == 0
    assert value(samples, "ringtail_produce_batches_total", codec="lz4") >= partitions
    assert value(samples, "ringtail_produce_batches_total", codec="none") == 0
    assert value(samples, "ringtail_produce_batches_total", codec="zstd") == 0

    # The Produce latency histogram: cumulative buckets, +Inf = count = requests answered.
    produce_count = value(samples, "ringtail_request_latency_seconds_count", api="Produce")
    assert produce_count >= 1
    assert value(samples, "ringtail_request_latency_seconds_sum", api="Produce") > 0
    buckets = sorted(((float(dict(labels)["le"]), v) for labels, v in matching(
        samples, "ringtail_request_latency_seconds_bucket", api="Produce").items()))
    assert buckets[-1] == (float("inf"), produce_count)
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), buckets
    # Kafka's ErrorsPerSec counts one NONE per partition of each Produce response.
    assert value(samples, "ringtail_request_errors_total", api="Produce", error="NONE") >= partitions

    # A group consumes everything, then commits chosen offsets: lag is end - committed.
    group = harness.unique_topic("metrics-group")
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    received = 0
    deadline = time.monotonic() + 60
    while received < total and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            received += 1
    assert received == total
    committed = [100, 70, 5]
    consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in enumerate(committed)],
                    asynchronous=False)
    samples = scrape(broker)
    for partition, count in enumerate(per_partition):
        assert value(samples, "ringtail_consumer_group_lag", group=group, topic=topic,
                     partition=partition) == count - committed[partition]
        assert value(samples, "ringtail_consumer_group_committed_offset", group=group,
                     topic=topic, partition=partition) == committed[partition]
    assert value(samples, "ringtail_consumer_group_members", group=group, state="Stable") == 1
    # Everything was fetched at least once.
    assert value(samples, "ringtail_topic_bytes_out_total", topic=topic) >= sum(sizes)
    assert value(samples, "ringtail_request_latency_seconds_count", api="Fetch") >= 1
    assert value(samples, "ringtail_request_latency_seconds_count", api="OffsetCommit") >= 1
    assert value(samples, "ringtail_connections", listener="PLAINTEXT") >= 1
    reads = sum(matching(samples, "ringtail_shard_tail_cache_hits_total").values()) + \
        sum(matching(samples, "ringtail_shard_tail_cache_misses_total").values())
    assert reads >= 1
    assert set(dict(k)["shard"] for k in matching(samples, "ringtail_shard_busy_seconds_total")) == {"0", "1"}

    consumer.close()
    producer = None
    # An error per topic, as Kafka counts DeleteTopics errors.
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    missing = harness.unique_topic("missing")
    with pytest.raises(Exception):
        admin.delete_topics([missing], operation_timeout=10)[missing].result(timeout=30)
    samples = scrape(broker)
    assert value(samples, "ringtail_request_errors_total", api="DeleteTopics",
                 error="UNKNOWN_TOPIC_OR_PARTITION") == 1
    assert value(samples, "ringtail_consumer_group_members", group=group, state="Empty") == 0
    # The consumer's connections were closed by the client.
    harness.wait_until(
        lambda: value(scrape(broker), "ringtail_connections_closed_total", listener="PLAINTEXT",
                      reason="client_closed") >= 1,
        timeout_s=30, message="a closed connection counted")


def test_metrics_in_openmetrics_when_asked(start_broker):
    broker = start_broker(settings=harness.http_settings())
    topic = harness.unique_topic("openmetrics")
    create_topic(broker, topic, 1)
    status, content_type, body = http_get(broker.http_address() + "/metrics",
                                          accept="application/openmetrics-text; version=1.0.0")
    assert status == 200
    assert content_type.startswith("application/openmetrics-text"), content_type
    assert body.endswith("# EOF\n")
    families = {f.name: f for f in parse_openmetrics(body)}
    # OpenMetrics names a counter family without `_total`; its samples carry it.
    assert families["ringtail_topic_bytes_in"].type == "counter"
    assert families["ringtail_request_latency_seconds"].type == "histogram"
    assert families["ringtail_partition_log_end_offset"].type == "gauge"
    samples = {(s.name, s.labels.get("topic")) for s in families["ringtail_topic_bytes_in"].samples}
    assert ("ringtail_topic_bytes_in_total", topic) in samples
    # The Prometheus text format names the family with its suffix and has no EOF marker.
    _, _, text = http_get(broker.http_address() + "/metrics")
    assert "# TYPE ringtail_topic_bytes_in_total counter" in text
    assert "# EOF" not in text
    assert http_get(broker.http_address() + "/nothing")[0] == 404


def test_http_listener_address_in_use_is_a_start_up_error(start_broker, tmp_path):
    first = start_broker(settings=harness.http_settings())
    second = harness.Broker(tmp_path / "data", tmp_path / "broker.log",
                            settings={"ringtail.http.listener": first.settings["ringtail.http.listener"]})
    with pytest.raises(harness.BrokerStartError) as error:
        second.start()
    second.close()
    assert "cannot listen on ringtail.http.listener" in str(error.value)


def test_healthz_is_503_during_recovery_after_kill_9_then_200(start_broker):
    # Many small segments make recovery after SIGKILL take long enough to watch: 150 MB in
    # 64 KiB segments, about 130 ms of recovery here (100,000 records gave 40 ms, thin for a
    # poller sharing 2 cores with the broker).
    settings = {**harness.http_settings(), "log.segment.bytes": "65536"}
    broker = start_broker(settings=settings)
    assert http_get(broker.http_address() + "/healthz")[:1] == (200,)
    topic = harness.unique_topic("recovery")
    create_topic(broker, topic, 20)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20, "acks": "1"})
    for i in range(300_000):
        while True:
            try:
                producer.produce(topic, value=b"r" * 500, partition=i % 20)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0
    broker.kill()

    answers = []
    stop = threading.Event()

    def poll_healthz():
        while not stop.is_set():
            try:
                status, _, body = http_get(broker.http_address() + "/healthz")
                answers.append((status, body))
                if status == 200:
                    return
            except OSError:
                pass  # not listening yet
            time.sleep(0.01)

    poller = threading.Thread(target=poll_healthz, daemon=True)
    poller.start()
    try:
        broker.start()
        poller.join(timeout=60)
    finally:
        stop.set()
    unavailable = [body for status, body in answers if status == 503]
    assert unavailable, f"no 503 seen during recovery: {answers[:5]}\n{broker.log_tail()}"
    assert any("recovery in progress" in body for body in unavailable), unavailable[:3]
    assert answers[-1] == (200, "ok\n"), answers[-3:]
    assert all(status in (200, 503) for status, _ in answers)


def chromium():
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, ("headless Chromium is needed for the status page test: "
                    "apt-get install -y --no-install-recommends chromium")
    return binary


def run_chromium(args, timeout_s=90):
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", "--no-first-run", *args]
    process = subprocess.run(command, capture_output=True, timeout=timeout_s,
                             start_new_session=True)
    assert process.returncode == 0, process.stderr.decode(errors="replace")[-2000:]
    return process.stdout.decode(errors="replace")


def test_status_page_in_headless_chromium(start_broker, tmp_path):
    broker = start_broker(settings={**harness.http_settings(),
                                    "group.initial.rebalance.delay.ms": "0"})
    topic = harness.unique_topic("status-page")
    create_topic(broker, topic, 2)
    # A group id may hold any character: the page must show it as text, not markup.
    group = f"<b>bold</b> & 'quoted' \"{harness.unique_topic('g')}\""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    # Produce for a while, so the sparkline has samples (one every 5 s; a line needs three).
    deadline = time.monotonic() + 16
    sent = 0
    while time.monotonic() < deadline:
        for _ in range(50):
            producer.produce(topic, value=b"s" * 200, partition=sent % 2)
            sent += 1
        producer.poll(0)
        time.sleep(0.05)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition(topic, 0, 1), TopicPartition(topic, 1, 2)],
                    asynchronous=False)
    consumer.close()
    end_0 = (sent + 1) // 2
    end_1 = sent // 2

    url = broker.http_address() + "/"
    dom = run_chromium(["--dump-dom", url])
    (tmp_path / "status-page.html").write_text(dom)
    assert f'<tr data-topic="{topic}"><td>{topic}</td><td class="n">2</td>' in dom, dom[:3000]
    assert f"0:&nbsp;{end_0}" in dom and f"1:&nbsp;{end_1}" in dom
    assert "<polyline" in dom, "no sparkline drawn"
    assert "<b>bold</b>" not in dom, "a group id was rendered as markup"
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; 'quoted' \"" in dom
    assert f"{topic}-0:&nbsp;{end_0 - 1}" in dom and f"{topic}-1:&nbsp;{end_1 - 2}" in dom
    assert '<span class="ok">healthy</span>' in dom
    assert "<script" not in dom and "http://" not in dom.split("<footer>")[0].replace(broker.bootstrap, "")

    screenshot = tmp_path / "status-page.png"
    run_chromium([f"--screenshot={screenshot}", "--window-size=1200,900", url])
    assert screenshot.stat().st_size > 10_000
    keep = os.environ.get("RINGTAIL_STATUS_SCREENSHOT")
    if keep:
        shutil.copyfile(screenshot, keep)


def test_fetch_session_cache_metrics(start_broker):
    """kafka-python's consumer opens an incremental fetch session (KIP-227) over 20 partitions:
    /metrics shows one session and 20 cached partitions (Kafka's FetchSessionCache
    NumIncrementalFetchSessions, NumIncrementalFetchPartitionsCached), and no eviction."""
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KafkaTopicPartition

    broker = start_broker(shards=2, settings=harness.http_settings())
    topic = harness.unique_topic("metrics-sessions")
    partitions = 20
    create_topic(broker, topic, partitions)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                             enable_auto_commit=False, fetch_max_wait_ms=100)
    try:
        consumer.assign([KafkaTopicPartition(topic, p) for p in range(partitions)])

        def session_open():
            consumer.poll(timeout_ms=100)
            samples = scrape(broker)
            sessions = sum(matching(samples, "ringtail_fetch_session_cache_sessions").values())
            cached = sum(matching(samples, "ringtail_fetch_session_cache_partitions").values())
            return (sessions, cached) if sessions >= 1 else None

        sessions, cached = harness.wait_until(session_open, 60, interval_s=0.2,
                                              message="a fetch session in /metrics")
        assert (sessions, cached) == (1, partitions)
        samples = scrape(broker)
        assert sum(matching(samples, "ringtail_fetch_session_cache_evictions_total").values()) == 0
        assert len(matching(samples, "ringtail_fetch_session_cache_sessions")) == 2, "per shard"
    finally:
        consumer.close()
