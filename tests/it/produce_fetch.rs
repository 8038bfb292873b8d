//! Produce -> Fetch round trips, one batch per codec, on one partition.

use ringtail_protocol::record_batch::Compression;

use crate::harness::{batch, create_topic, fetch, produce, unique_topic, values, Broker};

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

#[test]
fn every_codec_round_trips() {
    let broker = Broker::start(&[]);
    let mut client = broker.client();
    let topic = unique_topic("it-codecs");
    create_topic(&mut client, &topic, 1);
    let mut expected = Vec::new();
    for (n, compression) in CODECS.into_iter().enumerate() {
        let values = values(n, 50, 200);
        let (error, base_offset) = produce(&mut client, &topic, 0, batch(&values, compression));
        assert_eq!(error, 0, "{compression:?}");
        assert_eq!(
            base_offset,
            50 * n as i64,
            "{compression:?}: offsets continue"
        );
        for (i, value) in values.into_iter().enumerate() {
            expected.push((base_offset + i as i64, format!("k{i}").into_bytes(), value));
        }
    }
    let (error, high_watermark, records) = fetch(&mut client, &topic, 0, 0);
    assert_eq!(error, 0);
    assert_eq!(high_watermark, 250);
    assert_eq!(records.len(), expected.len());
    assert!(
        records == expected,
        "fetched records differ from produced ones"
    );
    // From the middle of a batch: the batch comes whole, starting at or below the offset.
    let (_, _, from_middle) = fetch(&mut client, &topic, 0, 75);
    assert!(from_middle.first().is_some_and(|r| r.0 <= 75));
    assert_eq!(from_middle.last().map(|r| r.0), Some(249));
}

#[test]
fn unknown_partition_is_refused() {
    let broker = Broker::start(&[]);
    let mut client = broker.client();
    let topic = unique_topic("it-unknown");
    create_topic(&mut client, &topic, 1);
    // Partition 0 becomes known first, then partition 7 must be refused.
    let (error, _) = produce(
        &mut client,
        &topic,
        0,
        batch(&values(0, 1, 10), Compression::None),
    );
    assert_eq!(error, 0);
    let (error, _) = produce(
        &mut client,
        &topic,
        7,
        batch(&values(0, 1, 10), Compression::None),
    );
    assert_eq!(error, 3, "UNKNOWN_TOPIC_OR_PARTITION");
}
