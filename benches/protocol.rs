//! Request decode and response encode through kafka-protocol, as the broker does them: a
//! Produce request (v9, 8 partitions x one 64 KiB batch) decoded from a frame, and a Fetch
//! response (v12, 8 partitions x 1 MiB of stored batches) encoded into a buffer.

mod common;

use bytes::{Bytes, BytesMut};
use criterion::{black_box, Criterion, Throughput};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, FetchResponse, ProduceRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{
    decode_request_header_from_buffer, Decodable, Encodable, HeaderVersion, StrBytes,
};

const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;

fn produce_frame() -> Bytes {
    let records = Bytes::from(vec![0u8; 64 << 10]);
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("bench")))
            .with_partition_data(
                (0..8)
                    .map(|p| {
                        PartitionProduceData::default()
                            .with_index(p)
                            .with_records(Some(records.clone()))
                    })
                    .collect(),
            )]);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(PRODUCE_VERSION)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("bench")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, ProduceRequest::header_version(PRODUCE_VERSION))
        .expect("header");
    request.encode(&mut buf, PRODUCE_VERSION).expect("body");
    buf.freeze()
}

fn fetch_response() -> FetchResponse {
    let records = Bytes::from(vec![0u8; 1 << 20]);
    FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
        .with_topic(TopicName(StrBytes::from_static_str("bench")))
        .with_partitions(
            (0..8)
                .map(|p| {
                    PartitionData::default()
                        .with_partition_index(p)
                        .with_high_watermark(1_000_000)
                        .with_records(Some(records.clone()))
                })
                .collect(),
        )])
}

fn protocol(c: &mut Criterion) {
    let mut group = c.benchmark_group("protocol");
    let frame = produce_frame();
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function("produce_request_decode/v9_8x64KiB", |b| {
        b.iter(|| {
            let mut bytes = black_box(frame.clone());
            let header = decode_request_header_from_buffer(&mut bytes).expect("header");
            ProduceRequest::decode(&mut bytes, header.request_api_version).expect("body")
        })
    });
    let response = fetch_response();
    let size = response.compute_size(FETCH_VERSION).expect("size");
    group.throughput(Throughput::Bytes(size as u64));
    group.bench_function("fetch_response_encode/v12_8x1MiB", |b| {
        let mut buf = BytesMut::with_capacity(size + 64);
        b.iter(|| {
            buf.clear();
            black_box(&response)
                .encode(&mut buf, FETCH_VERSION)
                .expect("encode");
        })
    });
    group.finish();
}

fn main() {
    let mut c = common::criterion();
    protocol(&mut c);
    c.final_summary();
    common::write_summary("protocol", &["protocol"]);
}
