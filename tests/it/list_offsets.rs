//! ListOffsets: earliest, latest and by timestamp (KIP-79).

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest};
use ringtail_protocol::record_batch::Compression;

use crate::harness::{
    batch, create_topic, produce, topic_name, unique_topic, values, Broker, Client,
};

/// Kafka's `ListOffsetsRequest.EARLIEST_TIMESTAMP`.
const EARLIEST: i64 = -2;
/// Kafka's `ListOffsetsRequest.LATEST_TIMESTAMP`.
const LATEST: i64 = -1;

/// (error code, offset) for `timestamp` (ListOffsets v7).
pub fn list_offset(client: &mut Client, topic: &str, timestamp: i64) -> (i16, i64) {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    let response = client.call(&request, 7);
    let part = &response.topics[0].partitions[0];
    (part.error_code, part.offset)
}

#[test]
fn earliest_latest_and_by_timestamp() {
    let broker = Broker::start(&[]);
    let mut client = broker.client();
    let topic = unique_topic("it-offsets");
    create_topic(&mut client, &topic, 1);
    // Records of the first batch have timestamps 1_700_000_000_000 + i.
    assert_eq!(
        produce(
            &mut client,
            &topic,
            0,
            batch(&values(0, 10, 20), Compression::None)
        )
        .0,
        0
    );
    assert_eq!(
        produce(
            &mut client,
            &topic,
            0,
            batch(&values(1, 5, 20), Compression::Lz4)
        )
        .0,
        0
    );
    assert_eq!(list_offset(&mut client, &topic, EARLIEST), (0, 0));
    assert_eq!(list_offset(&mut client, &topic, LATEST), (0, 15));
    // The first offset with a timestamp at or after the one asked: the first batch holds it.
    assert_eq!(list_offset(&mut client, &topic, 1_700_000_000_003), (0, 3));
    // After every record: -1 (Kafka answers offset -1, no error).
    assert_eq!(list_offset(&mut client, &topic, 1_800_000_000_000), (0, -1));
}
