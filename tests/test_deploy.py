"""The deployment files in deploy/ (issue 12): the Grafana dashboard only queries the contract's
metric names with their labels (and uses every one of them), the Prometheus scrape config
targets the HTTP listener's default address, the systemd unit passes `systemd-analyze verify`
and carries the limits the broker needs, and the example server.properties starts a broker.

None of these needs a broker except the last, so they run alike on both targets.
"""

import json
import re
import shutil
import signal
import subprocess
import time

import pytest

import harness

DEPLOY = harness.REPO_ROOT / "deploy"

# Issue 12, "Metrics (names below are the contract)": metric -> (labels, is a histogram).
CONTRACT = {
    "ringtail_topic_bytes_in_total": ({"topic"}, False),
    "ringtail_topic_bytes_out_total": ({"topic"}, False),
    "ringtail_topic_messages_in_total": ({"topic"}, False),
    "ringtail_request_latency_seconds": ({"api"}, True),
    "ringtail_request_errors_total": ({"api", "error"}, False),
    "ringtail_partition_log_end_offset": ({"topic", "partition"}, False),
    "ringtail_partition_log_start_offset": ({"topic", "partition"}, False),
    "ringtail_partition_size_bytes": ({"topic", "partition"}, False),
    "ringtail_consumer_group_lag": ({"group", "topic", "partition"}, False),
    "ringtail_consumer_group_members": ({"group"}, False),
    "ringtail_connections": ({"listener"}, False),
    "ringtail_connections_closed_total": ({"listener", "reason"}, False),
    "ringtail_log_flush_latency_seconds": (set(), True),
    "ringtail_produce_batches_total": ({"codec"}, False),
}
# Labels Prometheus adds to every series of a scrape (deploy/prometheus.yml).
TARGET_LABELS = {"job", "instance", "cluster"}
METRIC = re.compile(r"\b(ringtail_[a-z_]+)")
AGGREGATION_LABELS = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
SELECTOR = re.compile(r"(ringtail_[a-z_]+)\{([^}]*)\}")
MATCHER_LABEL = re.compile(r"([a-z_]+)\s*(?:=~|!~|!=|=)")


def contract_metric(name):
    """The contract metric `name` refers to (histograms: also its _bucket/_sum/_count
    series), or None."""
    if name in CONTRACT and not CONTRACT[name][1]:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[:-len(suffix)] if name.endswith(suffix) else None
        if base in CONTRACT and CONTRACT[base][1]:
            return base
    return None


def dashboard():
    return json.loads((DEPLOY / "grafana" / "ringtail.json").read_text())


def expressions(board):
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def test_dashboard_queries_only_contract_metrics_and_labels():
    board = dashboard()
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    assert all(p.get("targets") for p in panels), "a panel without a query"
    used = set()
    for title, expr in expressions(board):
        names = METRIC.findall(expr)
        assert names, f"{title}: {expr} queries no Ringtail metric"
        metrics = set()
        for name in names:
            metric = contract_metric(name)
            assert metric, f"{title}: {name} is not a contract metric (issue 12)"
            metrics.add(metric)
        used |= metrics
        allowed = set().union(*(CONTRACT[m][0] for m in metrics)) | TARGET_LABELS
        if any(CONTRACT[m][1] for m in metrics):
            allowed.add("le")
        for group in AGGREGATION_LABELS.findall(expr):
            labels = {label.strip() for label in group.split(",") if label.strip()}
            assert labels <= allowed, f"{title}: by ({group}) not labels of {sorted(metrics)}"
        for name, matchers in SELECTOR.findall(expr):
            labels = set(MATCHER_LABEL.findall(matchers))
            assert labels <= CONTRACT[contract_metric(name)][0] | TARGET_LABELS, \
                f"{title}: {name}{{{matchers}}}"
    assert used == set(CONTRACT), f"contract metrics without a panel: {set(CONTRACT) - used}"
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            match = re.fullmatch(r"label_values\((ringtail_[a-z_]+),\s*([a-z_]+)\)", query)
            assert match, query
            assert match.group(2) in CONTRACT[contract_metric(match.group(1))][0], query


def test_dashboard_is_importable_json():
    board = dashboard()
    assert board["uid"] and board["title"] == "Ringtail"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_prometheus_scrapes_the_http_listener_default():
    text = (DEPLOY / "prometheus.yml").read_text()
    assert "\t" not in text, "YAML forbids tabs"
    assert re.search(r"^scrape_configs:\n  - job_name: ringtail$", text, re.M), text
    assert re.search(r"^    metrics_path: /metrics$", text, re.M)
    assert re.search(r'^      - targets: \["127\.0\.0\.1:9644"\]$', text, re.M)


def test_systemd_unit_verifies(tmp_path):
    unit = (DEPLOY / "ringtail.service").read_text()
    for directive in ("LimitMEMLOCK=infinity", "LimitNOFILE=1048576", "Restart=on-failure",
                      "User=ringtail", "Group=ringtail", "KillSignal=SIGTERM",
                      "ExecStart=/usr/local/bin/ringtail serve --config "
                      "/etc/ringtail/server.properties"):
        assert re.search(rf"^{re.escape(directive)}$", unit, re.M), directive
    sysusers = (DEPLOY / "ringtail.sysusers.conf").read_text()
    assert re.search(r"^u ringtail - ", sysusers, re.M)
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    binary = harness.ringtail_bin()
    assert binary.is_file(), f"ringtail binary not found at {binary}"
    # verify checks that ExecStart's binary exists: point it at the built one.
    copy = tmp_path / "ringtail.service"
    copy.write_text(unit.replace("/usr/local/bin/ringtail", str(binary)))
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


@pytest.mark.ringtail_only("deploy/server.properties configures `ringtail serve`")
def test_example_server_properties_start_a_broker(tmp_path):
    port = harness.free_port()
    command = [str(harness.ringtail_bin()), "serve", "--config", str(DEPLOY / "server.properties"),
               "--listeners", f"PLAINTEXT://127.0.0.1:{port}", "--log-dirs",
               str(tmp_path / "data"), "--shards", "1"]
    log = tmp_path / "broker.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + harness.START_TIMEOUT_S
        while harness.api_versions_error(f"127.0.0.1:{port}") is not None:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=harness.STOP_TIMEOUT_S) == 0, log.read_text()
