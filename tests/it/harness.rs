//! One harness: the broker process ([`Broker`]), a blocking client ([`Client`]) and the
//! requests the tests share.
//!
//! Every wait is bounded: start-up by [`START_TIMEOUT`], each request by [`REQUEST_TIMEOUT`],
//! a stop by [`STOP_TIMEOUT`] before SIGKILL. The broker runs with 1 shard unless told
//! otherwise (the machine is shared), `RUST_LOG=info`, its output in `<temp>/broker.log`; when
//! a test panics, dropping the [`Broker`] prints the last lines of that log.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiVersionsRequest, BrokerId, CreateTopicsRequest, FetchRequest, FetchResponse, ProduceRequest,
    ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use ringtail_protocol::client::{response_frame_size, ClientCodec};
use ringtail_protocol::record_batch::{BatchIter, Compression};
use ringtail_protocol::records::{walk_records, RecordBatchBuilder};

/// Longest wait for the broker to answer ApiVersions after start.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for one response.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest wait for the process to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A `ringtail serve` process on a free loopback port with its own data dir.
pub struct Broker {
    child: Option<Child>,
    /// `127.0.0.1:port`.
    pub addr: String,
    dir: tempfile::TempDir,
    settings: Vec<String>,
}

impl Broker {
    /// Starts a broker with `settings` (`key=value` properties) and waits until it answers.
    pub fn start(settings: &[&str]) -> Broker {
        Broker::start_at(format!("127.0.0.1:{}", free_port()), settings)
    }

    /// Starts a broker whose PLAINTEXT listener is `addr` (`settings` may add listeners).
    pub fn start_at(addr: String, settings: &[&str]) -> Broker {
        let mut broker = Broker {
            child: None,
            addr,
            dir: tempfile::tempdir().expect("temp dir"),
            settings: settings.iter().map(|s| s.to_string()).collect(),
        };
        broker.spawn();
        broker
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("broker.log")
    }

    fn spawn(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("broker log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringtail"));
        command
            .arg("serve")
            .arg("--listeners")
            .arg(format!("PLAINTEXT://{}", self.addr))
            .arg("--log-dirs")
            .arg(self.data_dir())
            .args(["--shards", "1"])
            // No HTTP listener: its default port would clash between brokers (tests/harness.py).
            .args(["--set", "ringtail.http.listener="]);
        for setting in &self.settings {
            command.arg("--set").arg(setting);
        }
        let child = command
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start the ringtail binary");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last_error = String::new();
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("broker exited with {status} during start-up");
            }
            match Client::connect(&self.addr) {
                Ok(_) => return,
                Err(e) => last_error = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "broker not ready on {} after {START_TIMEOUT:?}: {last_error}",
            self.addr
        );
    }

    /// A connected client (versions negotiated).
    pub fn client(&self) -> Client {
        Client::connect(&self.addr).unwrap_or_else(|e| panic!("connect to {}: {e}", self.addr))
    }

    /// SIGTERM and wait (SIGKILL after [`STOP_TIMEOUT`]); panics unless it exits with 0.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on the pid of a child this harness spawned and has not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for the broker") {
                assert!(status.success(), "broker exited with {status} on SIGTERM");
                return;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("broker did not stop within {STOP_TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same port and data dir (after `stop` or `kill`).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running broker");
        self.spawn();
    }

    /// The last `lines` lines of the broker's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- broker log tail ({}) -----\n{}\n-----",
                self.log_path().display(),
                self.log_tail(60)
            );
        }
    }
}

/// A blocking connection: ringtail-protocol's [`ClientCodec`] over a `TcpStream` with read
/// and write timeouts of [`REQUEST_TIMEOUT`].
pub struct Client {
    stream: TcpStream,
    codec: ClientCodec,
}

impl Client {
    /// Connects and checks that ApiVersions v3 is answered without error.
    pub fn connect(addr: &str) -> Result<Client, String> {
        let stream =
            TcpStream::connect_timeout(&addr.parse().map_err(|e| format!("{e}"))?, REQUEST_TIMEOUT)
                .map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(REQUEST_TIMEOUT))
            .map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(Some(REQUEST_TIMEOUT))
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut client = Client {
            stream,
            codec: ClientCodec::new("ringtail-it"),
        };
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("ringtail-it"))
            .with_client_software_version(StrBytes::from_static_str("0"));
        let response = client.try_call(&request, 3)?;
        if response.error_code != 0 {
            return Err(format!("ApiVersions error {}", response.error_code));
        }
        Ok(client)
    }

    /// Sends `request` at `version` and returns its response, or why not.
    pub fn try_call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, String> {
        let (frame, _) = self
            .codec
            .encode(request, version, true)
            .map_err(|e| e.to_string())?;
        self.stream
            .write_all(&frame)
            .map_err(|e| format!("write: {e}"))?;
        let mut prefix = [0u8; 4];
        self.stream
            .read_exact(&mut prefix)
            .map_err(|e| format!("read: {e}"))?;
        let size = response_frame_size(prefix).map_err(|e| e.to_string())?;
        let mut body = vec![0u8; size];
        self.stream
            .read_exact(&mut body)
            .map_err(|e| format!("read: {e}"))?;
        self.codec
            .decode::<R>(Bytes::from(body))
            .map_err(|e| e.to_string())
    }

    /// [`Client::try_call`], panicking on failure.
    pub fn call<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        self.try_call(request, version)
            .unwrap_or_else(|e| panic!("{:?} v{version}: {e}", R::KEY))
    }
}

/// A `TopicName` from a `&str`.
/// A loopback port free now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// A topic name unique to this process and `prefix`.
pub fn unique_topic(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Creates `topic` with `partitions` (CreateTopics v7); panics unless the error code is 0.
pub fn create_topic(client: &mut Client, topic: &str, partitions: i32) {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]);
    let response = client.call(&request, 7);
    let result = &response.topics[0];
    assert_eq!(
        result.error_code, 0,
        "CreateTopics {topic}: {:?}",
        result.error_message
    );
}

/// The record values of test batch `batch`: `count` values of `size` bytes, distinct per
/// record and batch.
pub fn values(batch: usize, count: usize, size: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let mut value = format!("batch {batch} record {i} ").into_bytes();
            value.resize(size.max(value.len()), b'a' + (i % 26) as u8);
            value
        })
        .collect()
}

/// One v2 batch of `values` with keys `k<i>`, written by ringtail-protocol's builder.
pub fn batch(values: &[Vec<u8>], compression: Compression) -> Bytes {
    let mut builder = RecordBatchBuilder::new(1 << 16);
    for (i, value) in values.iter().enumerate() {
        builder.append(
            Some(format!("k{i}").as_bytes()),
            value,
            1_700_000_000_000 + i as i64,
        );
    }
    builder
        .finish(compression, None, -1, -1, -1)
        .expect("encode batch")
}

/// Produces `records` (one batch) to `topic`-`partition` with acks=-1 (Produce v9) and
/// returns the partition's answer as (error code, base offset). Retries while the topic is
/// not yet known to the shard (bounded by [`START_TIMEOUT`]).
pub fn produce(client: &mut Client, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])]);
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let response: ProduceResponse = client.call(&request, 9);
        let part = &response.responses[0].partition_responses[0];
        // UNKNOWN_TOPIC_OR_PARTITION (3), NOT_LEADER_OR_FOLLOWER (6): not there yet.
        if matches!(part.error_code, 3 | 6) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        return (part.error_code, part.base_offset);
    }
}

/// One fetched record: (offset, key, value); a null key or value reads as empty.
pub type FetchedRecord = (i64, Vec<u8>, Vec<u8>);

/// Fetches `topic`-`partition` from `offset` (Fetch v12, up to 4 MiB) and returns
/// (error code, high watermark, (offset, key, value) of every record).
pub fn fetch(
    client: &mut Client,
    topic: &str,
    partition: i32,
    offset: i64,
) -> (i16, i64, Vec<FetchedRecord>) {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(4 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(4 << 20)])]);
    let response: FetchResponse = client.call(&request, 12);
    assert_eq!(response.error_code, 0, "Fetch error");
    let part = &response.responses[0].partitions[0];
    let mut records = Vec::new();
    let data = part.records.clone().unwrap_or_default();
    let mut scratch = Vec::new();
    let mut batches = BatchIter::with_crc(&data);
    for (position, header) in &mut batches {
        let bytes = &data[position..position + header.size_bytes()];
        walk_records(&header, bytes, &mut scratch, |record| {
            records.push((
                record.offset,
                record.key.unwrap_or_default().to_vec(),
                record.value.unwrap_or_default().to_vec(),
            ))
        })
        .expect("records of a fetched batch");
    }
    assert!(
        batches.error().is_none(),
        "fetched batches: {:?}",
        batches.error()
    );
    (part.error_code, part.high_watermark, records)
}
