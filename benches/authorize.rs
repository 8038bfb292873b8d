//! The ACL check on the produce and fetch paths (issue 11): what one topic's check costs per
//! request with ACLs on, beside the work every Produce request does anyway. `cached_hit` is
//! what `request_handler::authorize::authorize_topic_cached` does for a connection that has
//! written the topic before (one hash lookup by `&str`); `uncached/<n>` the full
//! StandardAuthorizer rule over `n` ACLs (a connection's first request for a topic, or the
//! first after an ACL change). `reference/decode_produce_16KiB` decodes a Produce request with
//! one 16 KiB batch, the least a produce request costs, for scale.

mod common;

use bytes::{Bytes, BytesMut};
use criterion::{black_box, BenchmarkId, Criterion};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use ringtail::config::AuthorizerConfig;
use ringtail::metadata::AclRecord;
use ringtail::security::authorizer::{
    authorize, AclOperation, AclPermissionType, AuthorizationCache, PatternType, Requester,
    ResourceType,
};
use ringtail::security::KafkaPrincipal;

/// `n` ACLs on other topics, one prefixed ALLOW WRITE for the benchmarked one.
fn acls(n: usize) -> Vec<AclRecord> {
    let mut acls: Vec<AclRecord> = (0..n.saturating_sub(1))
        .map(|i| AclRecord {
            resource_type: ResourceType::Topic.code(),
            resource_name: format!("other-topic-{i}"),
            pattern_type: PatternType::Literal.code(),
            principal: format!("User:user{}", i % 50),
            host: "*".into(),
            operation: AclOperation::Read.code(),
            permission_type: AclPermissionType::Allow.code(),
        })
        .collect();
    acls.push(AclRecord {
        resource_type: ResourceType::Topic.code(),
        resource_name: "events-".into(),
        pattern_type: PatternType::Prefixed.code(),
        principal: "User:alice".into(),
        host: "*".into(),
        operation: AclOperation::Write.code(),
        permission_type: AclPermissionType::Allow.code(),
    });
    acls.sort();
    acls
}

fn produce_request_bytes() -> Bytes {
    let records = Bytes::from(vec![7u8; 16 * 1024]);
    let request =
        ProduceRequest::default()
            .with_acks(1)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("events-2026")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records))])]);
    let mut buf = BytesMut::new();
    request.encode(&mut buf, 9).expect("encodes");
    buf.freeze()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("authorize");
    let config = AuthorizerConfig {
        enabled: true,
        super_users: vec!["User:admin".into()],
        allow_everyone_if_no_acl_found: false,
    };
    let principal = KafkaPrincipal::user("alice");
    let who = Requester {
        principal: &principal,
        host: "127.0.0.1",
    };
    let topic = "events-2026";
    for n in [10usize, 100, 1000] {
        let set = acls(n);
        assert!(authorize(
            &config,
            &set,
            who,
            AclOperation::Write,
            ResourceType::Topic,
            topic
        ));
        group.bench_with_input(BenchmarkId::new("uncached", n), &set, |b, set| {
            b.iter(|| {
                authorize(
                    &config,
                    black_box(set),
                    who,
                    AclOperation::Write,
                    ResourceType::Topic,
                    black_box(topic),
                )
            })
        });
    }
    let set = acls(1000);
    let mut cache = AuthorizationCache::default();
    group.bench_function("cached_hit", |b| {
        b.iter(|| {
            cache.get_or_decide(1, AclOperation::Write, black_box(topic), || {
                authorize(
                    &config,
                    &set,
                    who,
                    AclOperation::Write,
                    ResourceType::Topic,
                    topic,
                )
            })
        })
    });
    let bytes = produce_request_bytes();
    group.bench_function("reference/decode_produce_16KiB", |b| {
        b.iter(|| {
            let mut body = bytes.clone();
            ProduceRequest::decode(&mut body, 9).expect("decodes")
        })
    });
    group.finish();
}

fn main() {
    let mut c = common::criterion();
    bench(&mut c);
    c.final_summary();
    common::write_summary("authorize", &["authorize"]);
}
