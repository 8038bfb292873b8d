//! The log side of transactions against the real broker (issue 10): raw transactional batches
//! produced with the protocol client hold the last stable offset; read_committed Fetch and
//! ListOffsets stop there, read_uncommitted does not; clients cannot produce control batches;
//! DescribeProducers shows the ongoing transaction; SIGKILL and restart rebuild it from the log.
//! Markers need the transaction coordinator (EndTxn); the partition-level tests in
//! `src/partition/transactions/tests.rs` cover them.

use bytes::Bytes;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    BrokerId, DescribeProducersRequest, FetchRequest, FetchResponse, ListOffsetsRequest,
};
use ringtail_protocol::record_batch::{BatchIter, Compression};
use ringtail_protocol::records::RecordBatchBuilder;

use crate::harness::{
    batch, create_topic, produce, topic_name, unique_topic, values, Broker, Client,
};

/// Broker settings for raw transactional produces without a coordinator-registered
/// transaction. Once KIP-890 produce verification exists (TXCOORD), this must hold
/// `transaction.partition.verification.enable=false`.
const SETTINGS: &[&str] = &["transaction.partition.verification.enable=false"];

/// A transactional batch (attribute bit 4) of `count` records from producer `producer_id`.
fn transactional(producer_id: i64, base_sequence: i32, count: usize) -> Bytes {
    let mut builder = RecordBatchBuilder::new(1024);
    for i in 0..count {
        builder.append(Some(b"k"), format!("txn {i}").as_bytes(), 1_700_000_000_000);
    }
    let mut bytes = builder
        .finish(Compression::None, None, producer_id, 0, base_sequence)
        .expect("encode")
        .to_vec();
    let attributes = i16::from_be_bytes([bytes[21], bytes[22]]) | 0x10;
    bytes[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(bytes)
}

/// Fetch v12 at `isolation_level`: (error, high watermark, last stable offset, aborted
/// transactions present, base offsets of the batches).
fn fetch(
    client: &mut Client,
    topic: &str,
    offset: i64,
    isolation_level: i8,
) -> (i16, i64, i64, Option<usize>, Vec<i64>) {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(50)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_isolation_level(isolation_level)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let response: FetchResponse = client.call(&request, 12);
    let part = &response.responses[0].partitions[0];
    let data = part.records.clone().unwrap_or_default();
    let bases = BatchIter::with_crc(&data)
        .map(|(_, h)| h.base_offset)
        .collect();
    (
        part.error_code,
        part.high_watermark,
        part.last_stable_offset,
        part.aborted_transactions.as_ref().map(|a| a.len()),
        bases,
    )
}

fn latest(client: &mut Client, topic: &str, isolation_level: i8) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation_level)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    let response = client.call(&request, 7);
    let part = &response.topics[0].partitions[0];
    assert_eq!(part.error_code, 0);
    part.offset
}

/// (producer id, current txn start offset) of every producer DescribeProducers reports.
fn producers(client: &mut Client, topic: &str) -> Vec<(i64, i64)> {
    let request = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(topic_name(topic))
        .with_partition_indexes(vec![0])]);
    let response = client.call(&request, 0);
    let part = &response.topics[0].partitions[0];
    assert_eq!(part.error_code, 0);
    part.active_producers
        .iter()
        .map(|p| (p.producer_id.0, p.current_txn_start_offset))
        .collect()
}

#[test]
fn an_open_transaction_holds_read_committed_across_a_kill() {
    let mut broker = Broker::start(SETTINGS);
    let topic = unique_topic("it-txn");
    {
        let mut client = broker.client();
        create_topic(&mut client, &topic, 1);
        let plain = batch(&values(0, 3, 20), Compression::None);
        assert_eq!(produce(&mut client, &topic, 0, plain.clone()), (0, 0));
        assert_eq!(
            produce(&mut client, &topic, 0, transactional(4242, 0, 2)),
            (0, 3)
        );
        assert_eq!(produce(&mut client, &topic, 0, plain), (0, 5));
        // Clients never write control batches: INVALID_RECORD (87), as Kafka's LogValidator.
        let control = ringtail_protocol::control_record::control_batch(4242, 0, 0, true, 1);
        assert_eq!(produce(&mut client, &topic, 0, Bytes::from(control)).0, 87);

        assert_eq!(
            fetch(&mut client, &topic, 0, 1),
            (0, 8, 3, Some(0), vec![0])
        );
        assert_eq!(fetch(&mut client, &topic, 3, 1), (0, 8, 3, Some(0), vec![]));
        assert_eq!(
            fetch(&mut client, &topic, 0, 0),
            (0, 8, 3, None, vec![0, 3, 5])
        );
        assert_eq!(latest(&mut client, &topic, 1), 3);
        assert_eq!(latest(&mut client, &topic, 0), 8);
        assert_eq!(producers(&mut client, &topic), vec![(4242, 3)]);
    }
    broker.kill();
    broker.restart();
    let mut client = broker.client();
    // Recovery rebuilt the ongoing transaction from the log before the first fetch.
    assert_eq!(
        fetch(&mut client, &topic, 0, 1),
        (0, 8, 3, Some(0), vec![0])
    );
    assert_eq!(latest(&mut client, &topic, 1), 3);
    assert_eq!(producers(&mut client, &topic), vec![(4242, 3)]);
    // A clean restart keeps it through the producer-state snapshot.
    broker.stop();
    broker.restart();
    let mut client = broker.client();
    assert_eq!(latest(&mut client, &topic, 1), 3);
    assert_eq!(producers(&mut client, &topic), vec![(4242, 3)]);
}
