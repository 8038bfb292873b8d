//! The transaction coordinator over the wire (issue 10): InitProducerId with a transactional
//! id, AddPartitionsToTxn, transactional Produce (with KIP-890 verification), EndTxn, the
//! markers (read_committed last stable offset), DescribeTransactions / ListTransactions,
//! fencing, a restart keeping the producer id, and the broker aborting a timed-out transaction.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, BrokerId, DescribeTransactionsRequest, EndTxnRequest, FetchRequest,
    InitProducerIdRequest, ListTransactionsRequest, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use ringtail_protocol::record_batch::Compression;
use ringtail_protocol::records::RecordBatchBuilder;

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::ProduceRequest;

use crate::harness::{create_topic, topic_name, unique_topic, Broker, Client};

/// Produce v9 acks=-1 of one transactional batch with the request's `transactional_id`, as
/// a transactional producer sends it: the partition's (error, base offset).
fn produce(
    client: &mut Client,
    id: &str,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> (i16, i64) {
    let request = ProduceRequest::default()
        .with_transactional_id(Some(txn_id(id)))
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])]);
    let response = client.call(&request, 9);
    let part = &response.responses[0].partition_responses[0];
    (part.error_code, part.base_offset)
}

fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(id.to_string()))
}

fn code(error: ResponseError) -> i16 {
    error.code()
}

/// InitProducerId v4 with a transactional id: (error, producer id, epoch).
fn init(client: &mut Client, id: &str, timeout_ms: i32) -> (i16, i64, i16) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id(id)))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    // COORDINATOR_LOAD_IN_PROGRESS / CONCURRENT_TRANSACTIONS are retriable, as clients retry.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = client.call(&request, 4);
        let retriable = [
            code(ResponseError::CoordinatorLoadInProgress),
            code(ResponseError::ConcurrentTransactions),
        ];
        if retriable.contains(&response.error_code) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        return (
            response.error_code,
            response.producer_id.0,
            response.producer_epoch,
        );
    }
}

/// AddPartitionsToTxn v3: the error of each partition.
fn add_partitions(
    client: &mut Client,
    id: &str,
    producer_id: i64,
    epoch: i16,
    topic: &str,
    partitions: &[i32],
) -> Vec<i16> {
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id(id))
        .with_v3_and_below_producer_id(ProducerId(producer_id))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(partitions.to_vec())]);
    let response = client.call(&request, 3);
    response.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect()
}

fn end_txn(
    client: &mut Client,
    id: &str,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    version: i16,
) -> i16 {
    let request = EndTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    client.call(&request, version).error_code
}

/// A transactional batch (attribute bit 4) of `count` records, CRC recomputed.
fn txn_batch(producer_id: i64, epoch: i16, base_sequence: i32, count: usize) -> Bytes {
    let mut builder = RecordBatchBuilder::new(1 << 16);
    for i in 0..count {
        builder.append(
            Some(format!("k{i}").as_bytes()),
            format!("value {base_sequence} {i}").as_bytes(),
            1_700_000_000_000 + i as i64,
        );
    }
    let bytes = builder
        .finish(Compression::None, None, producer_id, epoch, base_sequence)
        .expect("encode batch");
    let mut bytes = BytesMut::from(&bytes[..]);
    let attributes = i16::from_be_bytes([bytes[21], bytes[22]]) | 0x10;
    bytes[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    bytes.freeze()
}

/// Fetch v12 read_committed: (high watermark, last stable offset).
fn stable_offsets(client: &mut Client, topic: &str, partition: i32) -> (i64, i64) {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(1)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let response = client.call(&request, 12);
    let part = &response.responses[0].partitions[0];
    assert_eq!(part.error_code, 0, "fetch error");
    (part.high_watermark, part.last_stable_offset)
}

/// DescribeTransactions v0: (error, state name, producer epoch, partitions).
fn describe(client: &mut Client, id: &str) -> (i16, String, i16, usize) {
    let response = client.call(
        &DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id(id)]),
        0,
    );
    let state = &response.transaction_states[0];
    (
        state.error_code,
        state.transaction_state.to_string(),
        state.producer_epoch,
        state.topics.iter().map(|t| t.partitions.len()).sum(),
    )
}

fn wait_for_state(client: &mut Client, id: &str, expected: &str) -> (i16, String, i16, usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let described = describe(client, id);
        if described.1 == expected || Instant::now() >= deadline {
            return described;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn commit_cycle_fencing_and_restart() {
    let mut broker = Broker::start(&[]);
    let mut client = broker.client();
    let topic = unique_topic("it-txn");
    let id = unique_topic("it-txn-id");
    create_topic(&mut client, &topic, 2);

    assert_eq!(
        init(&mut client, &id, 900_001).0,
        code(ResponseError::InvalidTransactionTimeout)
    );
    let (error, producer_id, epoch) = init(&mut client, &id, 60_000);
    assert_eq!((error, epoch), (0, 0));
    assert!(producer_id >= 0);
    // A second InitProducerId bumps the epoch and fences the first.
    let (error, same_id, epoch) = init(&mut client, &id, 60_000);
    assert_eq!((error, same_id, epoch), (0, producer_id, 1));

    // KIP-890 verification: a partition not added is refused.
    let (error, _) = produce(
        &mut client,
        &id,
        &topic,
        0,
        txn_batch(producer_id, epoch, 0, 3),
    );
    assert_eq!(error, code(ResponseError::InvalidTxnState));

    assert_eq!(
        add_partitions(&mut client, &id, producer_id, 0, &topic, &[0]),
        vec![code(ResponseError::ProducerFenced)]
    );
    assert_eq!(
        add_partitions(&mut client, &id, producer_id, epoch, "no-such-topic", &[0]),
        vec![code(ResponseError::UnknownTopicOrPartition)]
    );
    assert_eq!(
        add_partitions(&mut client, &id, producer_id, epoch, &topic, &[0, 1]),
        vec![0, 0]
    );
    assert_eq!(describe(&mut client, &id).1, "Ongoing");
    let (error, _) = produce(
        &mut client,
        &id,
        &topic,
        0,
        txn_batch(producer_id, epoch, 0, 3),
    );
    assert_eq!(error, 0, "produce to an added partition");
    let (high_watermark, last_stable) = stable_offsets(&mut client, &topic, 0);
    assert_eq!(
        (high_watermark, last_stable),
        (3, 0),
        "the open transaction holds the LSO"
    );

    // EndTxn with the fenced epoch: PRODUCER_FENCED (v2+), INVALID_PRODUCER_EPOCH before.
    assert_eq!(
        end_txn(&mut client, &id, producer_id, 0, true, 3),
        code(ResponseError::ProducerFenced)
    );
    assert_eq!(
        end_txn(&mut client, &id, producer_id, 0, true, 1),
        code(ResponseError::InvalidProducerEpoch)
    );
    assert_eq!(end_txn(&mut client, &id, producer_id, epoch, true, 3), 0);
    let (error, state, _, partitions) = wait_for_state(&mut client, &id, "CompleteCommit");
    assert_eq!(
        (error, state.as_str(), partitions),
        (0, "CompleteCommit", 0)
    );
    // The commit marker moved the LSO past the transaction (its marker takes one offset);
    // partition 1 got a marker too, with no data.
    let (high_watermark, last_stable) = stable_offsets(&mut client, &topic, 0);
    assert_eq!((high_watermark, last_stable), (4, 4));
    assert_eq!(stable_offsets(&mut client, &topic, 1), (1, 1));
    // A retried commit is fine, an abort now is not.
    assert_eq!(end_txn(&mut client, &id, producer_id, epoch, true, 3), 0);
    assert_eq!(
        end_txn(&mut client, &id, producer_id, epoch, false, 3),
        code(ResponseError::InvalidTxnState)
    );

    let listed = client.call(
        &ListTransactionsRequest::default()
            .with_state_filters(vec![StrBytes::from_static_str("CompleteCommit")]),
        1,
    );
    assert_eq!(listed.error_code, 0);
    assert!(listed
        .transaction_states
        .iter()
        .any(|s| s.transactional_id.as_str() == id && s.producer_id.0 == producer_id));

    // After a restart the transactional id keeps its producer id; the epoch bumps.
    broker.stop();
    broker.restart();
    let mut client = broker.client();
    assert_eq!(describe(&mut client, &id).1, "CompleteCommit");
    assert_eq!(init(&mut client, &id, 60_000), (0, producer_id, 2));
}

#[test]
fn broker_aborts_a_timed_out_transaction() {
    let mut broker =
        Broker::start(&["transaction.abort.timed.out.transaction.cleanup.interval.ms=200"]);
    let mut client = broker.client();
    let topic = unique_topic("it-txn-timeout");
    let id = unique_topic("it-txn-timeout-id");
    create_topic(&mut client, &topic, 1);
    let (error, producer_id, epoch) = init(&mut client, &id, 1_000);
    assert_eq!(error, 0);
    assert_eq!(
        add_partitions(&mut client, &id, producer_id, epoch, &topic, &[0]),
        vec![0]
    );
    let (error, _) = produce(
        &mut client,
        &id,
        &topic,
        0,
        txn_batch(producer_id, epoch, 0, 2),
    );
    assert_eq!(error, 0);
    let (error, state, aborted_epoch, _) = wait_for_state(&mut client, &id, "CompleteAbort");
    assert_eq!((error, state.as_str()), (0, "CompleteAbort"));
    assert_eq!(
        aborted_epoch,
        epoch + 1,
        "the abort fences the producer's epoch"
    );
    assert_eq!(
        end_txn(&mut client, &id, producer_id, epoch, true, 3),
        code(ResponseError::ProducerFenced)
    );
    // The abort marker ended the transaction on the partition.
    assert_eq!(stable_offsets(&mut client, &topic, 0), (3, 3));
    drop(broker);
}
