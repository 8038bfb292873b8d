//! The transactional workload (`ringtail bench txn`): producers that each run
//! InitProducerId(`transactional.id`), then transactions of `records_per_transaction` records:
//! AddPartitionsToTxn, Produce (transactional batches, acks=all), EndTxn(commit), one after
//! the other (KIP-98, the Java producer's sequence with one transaction in flight).
//!
//! Versions are capped at the pre-KIP-890-part-2 protocol (AddPartitionsToTxn v3, EndTxn v4,
//! Produce v11), which every broker serving transactions answers the same way: partitions
//! are added explicitly and the producer epoch stays fixed across transactions.
//!
//! A record's latency is from the start of its transaction to the EndTxn answer (it is
//! visible to read_committed consumers only then); the figures are transactions/s, records/s,
//! MB/s of values, and those latencies.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, ApiKey, EndTxnRequest, FindCoordinatorRequest,
    InitProducerIdRequest, ProduceRequest, ProducerId,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::{topic_name, ClientError, Connection};
use crate::cluster::TopicLayout;
use crate::config::ProducerConfig;
use crate::payload::Payloads;
use crate::producer::increment_sequence;
use crate::protocol::records::RecordBatchBuilder;
use crate::stats::{latency_histogram, SharedStats};
use crate::BenchError;

/// FindCoordinator `key_type` of a transactional id.
const COORDINATOR_TYPE_TRANSACTION: i8 = 1;
/// Errors a transactional producer retries after a backoff (Kafka's `RetriableException`s of
/// the transaction APIs): COORDINATOR_LOAD_IN_PROGRESS (14), COORDINATOR_NOT_AVAILABLE (15),
/// NOT_COORDINATOR (16), CONCURRENT_TRANSACTIONS (51).
const RETRIABLE: [i16; 4] = [14, 15, 16, 51];
/// Longest time one transaction call is retried.
const RETRY_FOR: Duration = Duration::from_secs(30);
/// Backoff between retries (the Java producer's `retry.backoff.ms` default is 100).
const RETRY_BACKOFF: Duration = Duration::from_millis(20);
/// Attributes bit of a transactional batch.
const TRANSACTIONAL_ATTRIBUTE: i16 = 0x10;

/// What the transactional producers do.
#[derive(Debug, Clone)]
pub struct TxnSpec {
    pub topic: String,
    /// Producer `i` uses `<transactional_id>-<i>` (the id itself with one producer).
    pub transactional_id: String,
    pub records_per_transaction: u64,
    /// `transaction.timeout.ms`.
    pub transaction_timeout_ms: i32,
    /// Total records over all producers (whole transactions), or run for `duration`.
    pub num_records: Option<u64>,
    pub duration: Option<Duration>,
    pub producers: usize,
    pub config: ProducerConfig,
    pub payloads: Payloads,
    pub bootstrap: String,
}

impl TxnSpec {
    /// The transactional id of producer `worker`.
    pub fn transactional_id_of(&self, worker: usize) -> String {
        if self.producers == 1 {
            self.transactional_id.clone()
        } else {
            format!("{}-{worker}", self.transactional_id)
        }
    }
}

/// One producer's figures.
pub struct TxnWorkerResult {
    /// Per-record latency (transaction start to commit), microseconds.
    pub histogram: hdrhistogram::Histogram<u64>,
    pub transactions: u64,
    pub batches: u64,
    pub requests: u64,
}

/// Runs producer `worker` to completion.
pub async fn txn_worker(
    spec: Arc<TxnSpec>,
    layout: TopicLayout,
    worker: usize,
    stats: Arc<SharedStats>,
    started: Instant,
) -> Result<TxnWorkerResult, BenchError> {
    let result = txn_worker_inner(spec, layout, worker, stats.clone(), started).await;
    if let Err(e) = &result {
        stats.fail(e.to_string());
    }
    result
}

async fn txn_worker_inner(
    spec: Arc<TxnSpec>,
    layout: TopicLayout,
    worker: usize,
    stats: Arc<SharedStats>,
    started: Instant,
) -> Result<TxnWorkerResult, BenchError> {
    let config = &spec.config;
    let timeout = config.request_timeout();
    let transactional_id = spec.transactional_id_of(worker);
    let coordinator = find_coordinator(&spec.bootstrap, &transactional_id, config).await?;
    let (producer_id, producer_epoch) =
        init_producer_id(&coordinator, &transactional_id, spec.transaction_timeout_ms).await?;
    let partitions: Vec<usize> = (0..layout.partitions()).collect();
    let mut leaders = Vec::new();
    for (broker, led) in layout.by_leader(&partitions) {
        let connection =
            Connection::connect(&layout.brokers[&broker], &config.client_id, timeout).await?;
        let version = connection.version::<ProduceRequest>(11)?;
        leaders.push((Rc::new(connection), version, led));
    }
    let topic = topic_name(&spec.topic);
    let records_per_worker = spec.num_records.map(|n| {
        let share =
            n / spec.producers as u64 + u64::from((worker as u64) < n % spec.producers as u64);
        share.div_ceil(spec.records_per_transaction) * spec.records_per_transaction
    });
    let mut sequences = vec![0i32; layout.partitions()];
    let mut histogram = latency_histogram();
    let (mut transactions, mut batches, mut requests) = (0u64, 0u64, 0u64);
    let mut record_index = worker as u64;
    let mut sent_records = 0u64;
    loop {
        if let Some(limit) = records_per_worker {
            if sent_records >= limit {
                break;
            }
        }
        if let Some(duration) = spec.duration {
            if started.elapsed() >= duration {
                break;
            }
        }
        if stats.stopping() {
            break;
        }
        let txn_started = Instant::now();
        // Spread the transaction's records round-robin over the partitions, one batch per
        // partition up to batch.size, more batches after that.
        let mut open: BTreeMap<usize, Vec<RecordBatchBuilder>> = BTreeMap::new();
        let now_ms = crate::unix_ms();
        let mut value_bytes = 0u64;
        for i in 0..spec.records_per_transaction {
            let partition = ((record_index + i) % layout.partitions() as u64) as usize;
            let value = spec.payloads.get(record_index + i);
            value_bytes += value.len() as u64;
            let builders = open.entry(partition).or_default();
            let full = builders
                .last()
                .is_none_or(|b| b.uncompressed_bytes() + value.len() + 32 > config.batch_size);
            if full {
                builders.push(RecordBatchBuilder::new(config.batch_size));
            }
            builders
                .last_mut()
                .expect("pushed above")
                .append(None, value, now_ms);
        }
        record_index += spec.records_per_transaction;
        add_partitions(
            &coordinator,
            &transactional_id,
            producer_id,
            producer_epoch,
            &spec.topic,
            open.keys().map(|p| *p as i32).collect(),
        )
        .await?;
        // One Produce request per leader per round of batches (one batch per partition per
        // request, as the Java producer drains), all leaders at once.
        let mut rounds: Vec<Vec<(usize, bytes::Bytes)>> = Vec::new();
        for (&partition, builders) in &open {
            for (round, builder) in builders.iter().enumerate() {
                let sequence = sequences[partition];
                sequences[partition] = increment_sequence(sequence, builder.record_count() as i32);
                let batch = builder
                    .finish(
                        config.compression,
                        config.compression_level,
                        producer_id,
                        producer_epoch,
                        sequence,
                    )
                    .map_err(|e| BenchError::Encode(e.to_string()))?;
                if rounds.len() <= round {
                    rounds.push(Vec::new());
                }
                rounds[round].push((partition, mark_transactional(&batch)));
                batches += 1;
            }
        }
        for round in rounds {
            let mut pending = Vec::new();
            for (connection, version, led) in &leaders {
                let data: Vec<PartitionProduceData> = round
                    .iter()
                    .filter(|(p, _)| led.contains(p))
                    .map(|(p, batch)| {
                        PartitionProduceData::default()
                            .with_index(*p as i32)
                            .with_records(Some(batch.clone()))
                    })
                    .collect();
                if data.is_empty() {
                    continue;
                }
                let request = ProduceRequest::default()
                    .with_transactional_id(Some(
                        StrBytes::from_string(transactional_id.clone()).into(),
                    ))
                    .with_acks(-1)
                    .with_timeout_ms(config.request_timeout_ms as i32)
                    .with_topic_data(vec![TopicProduceData::default()
                        .with_name(topic.clone())
                        .with_partition_data(data)]);
                let receiver = connection
                    .send(&request, *version, true)
                    .await?
                    .expect("acks=all has a response");
                requests += 1;
                pending.push((connection.clone(), *version, receiver));
            }
            for (connection, version, receiver) in pending {
                let response = connection
                    .receive::<ProduceRequest>(receiver, version)
                    .await?;
                for t in &response.responses {
                    for p in &t.partition_responses {
                        if p.error_code != 0 {
                            return Err(ClientError::broker(
                                ApiKey::Produce,
                                format!("{}-{}", t.name.as_str(), p.index),
                                p.error_code,
                            )
                            .into());
                        }
                    }
                }
            }
        }
        end_txn(
            &coordinator,
            &transactional_id,
            producer_id,
            producer_epoch,
            true,
        )
        .await?;
        let latency_us = txn_started.elapsed().as_micros() as u64;
        histogram
            .record_n(latency_us.max(1), spec.records_per_transaction)
            .map_err(|e| BenchError::Protocol(format!("latency histogram: {e}")))?;
        transactions += 1;
        sent_records += spec.records_per_transaction;
        stats
            .records
            .fetch_add(spec.records_per_transaction, Ordering::Relaxed);
        stats.bytes.fetch_add(value_bytes, Ordering::Relaxed);
    }
    Ok(TxnWorkerResult {
        histogram,
        transactions,
        batches,
        requests,
    })
}

/// Sets the transactional attribute of a batch from `RecordBatchBuilder::finish` and its CRC.
fn mark_transactional(batch: &[u8]) -> bytes::Bytes {
    let mut out = batch.to_vec();
    let attributes = i16::from_be_bytes([out[21], out[22]]) | TRANSACTIONAL_ATTRIBUTE;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    bytes::Bytes::from(out)
}

/// Calls `call` until it answers an error outside [`RETRIABLE`] (or none), for at most
/// [`RETRY_FOR`].
async fn retrying<T, F, Fut>(api: ApiKey, context: &str, mut call: F) -> Result<T, BenchError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(i16, T), ClientError>>,
{
    let deadline = Instant::now() + RETRY_FOR;
    loop {
        let (code, value) = call().await?;
        if code == 0 {
            return Ok(value);
        }
        if !RETRIABLE.contains(&code) || Instant::now() >= deadline {
            return Err(ClientError::broker(api, context, code).into());
        }
        glommio::timer::sleep(RETRY_BACKOFF).await;
    }
}

/// FindCoordinator(key type 1) through the bootstrap servers, then a connection to it.
async fn find_coordinator(
    bootstrap: &str,
    transactional_id: &str,
    config: &ProducerConfig,
) -> Result<Connection, BenchError> {
    let timeout = config.request_timeout();
    let connection = crate::cluster::bootstrap(bootstrap, &config.client_id, timeout).await?;
    let version = connection.version::<FindCoordinatorRequest>(4)?;
    let key = StrBytes::from_string(transactional_id.to_owned());
    let request = if version >= 4 {
        FindCoordinatorRequest::default()
            .with_key_type(COORDINATOR_TYPE_TRANSACTION)
            .with_coordinator_keys(vec![key])
    } else {
        FindCoordinatorRequest::default()
            .with_key_type(COORDINATOR_TYPE_TRANSACTION)
            .with_key(key)
    };
    let addr = retrying(ApiKey::FindCoordinator, transactional_id, || async {
        let response = connection.call(&request, version).await?;
        Ok(if version >= 4 {
            match response.coordinators.first() {
                Some(c) => (c.error_code, format!("{}:{}", c.host.as_str(), c.port)),
                None => (15, String::new()),
            }
        } else {
            (
                response.error_code,
                format!("{}:{}", response.host.as_str(), response.port),
            )
        })
    })
    .await?;
    Ok(Connection::connect(&addr, &config.client_id, timeout).await?)
}

async fn init_producer_id(
    coordinator: &Connection,
    transactional_id: &str,
    transaction_timeout_ms: i32,
) -> Result<(i64, i16), BenchError> {
    let version = coordinator.version::<InitProducerIdRequest>(5)?;
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(
            StrBytes::from_string(transactional_id.to_owned()).into(),
        ))
        .with_transaction_timeout_ms(transaction_timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    retrying(ApiKey::InitProducerId, transactional_id, || async {
        let response = coordinator.call(&request, version).await?;
        Ok((
            response.error_code,
            (response.producer_id.0, response.producer_epoch),
        ))
    })
    .await
}

async fn add_partitions(
    coordinator: &Connection,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    topic: &str,
    partitions: Vec<i32>,
) -> Result<(), BenchError> {
    let version = coordinator.version::<AddPartitionsToTxnRequest>(3)?;
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(
            StrBytes::from_string(transactional_id.to_owned()).into(),
        )
        .with_v3_and_below_producer_id(ProducerId(producer_id))
        .with_v3_and_below_producer_epoch(producer_epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(partitions)]);
    retrying(ApiKey::AddPartitionsToTxn, transactional_id, || async {
        let response = coordinator.call(&request, version).await?;
        let code = response
            .results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| t.results_by_partition.iter())
            .map(|p| p.partition_error_code)
            .find(|&c| c != 0)
            .unwrap_or(response.error_code);
        Ok((code, ()))
    })
    .await
}

async fn end_txn(
    coordinator: &Connection,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
) -> Result<(), BenchError> {
    let version = coordinator.version::<EndTxnRequest>(4)?;
    let request = EndTxnRequest::default()
        .with_transactional_id(StrBytes::from_string(transactional_id.to_owned()).into())
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(producer_epoch)
        .with_committed(commit);
    retrying(ApiKey::EndTxn, transactional_id, || async {
        let response = coordinator.call(&request, version).await?;
        Ok((response.error_code, ()))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::record_batch::{check_crc, RecordBatchHeader};
    use crate::protocol::records::RecordBatchBuilder;

    #[test]
    fn marked_batch_is_transactional_with_a_valid_crc() {
        let mut builder = RecordBatchBuilder::new(1024);
        builder.append(None, b"value", 1);
        let batch = builder
            .finish(
                crate::protocol::record_batch::Compression::None,
                None,
                7,
                0,
                0,
            )
            .unwrap();
        let marked = mark_transactional(&batch);
        let header = RecordBatchHeader::parse(&marked).unwrap();
        assert!(header.is_transactional());
        assert!(!header.is_control());
        assert_eq!(header.producer_id, 7);
        check_crc(&marked, &header).expect("CRC recomputed");
    }
}
