//! A classic consumer group round: FindCoordinator, JoinGroup (KIP-394 member id), SyncGroup,
//! OffsetCommit, OffsetFetch, and the committed offset after a restart.

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, JoinGroupRequest, OffsetCommitRequest, OffsetFetchRequest,
    SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;
use ringtail_protocol::record_batch::Compression;

use crate::harness::{
    batch, create_topic, produce, topic_name, unique_topic, values, Broker, Client,
};

/// Kafka's MEMBER_ID_REQUIRED error code (KIP-394).
const MEMBER_ID_REQUIRED: i16 = 79;

fn group_id(name: &str) -> GroupId {
    GroupId(StrBytes::from_string(name.to_string()))
}

fn committed(client: &mut Client, group: &str, topic: &str) -> (i16, i64) {
    let request = OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(vec![0])]));
    let response = client.call(&request, 7);
    assert_eq!(response.error_code, 0, "OffsetFetch");
    let part = &response.topics[0].partitions[0];
    (part.error_code, part.committed_offset)
}

#[test]
fn join_sync_commit_fetch_survives_restart() {
    let mut broker = Broker::start(&["group.initial.rebalance.delay.ms=0"]);
    let mut client = broker.client();
    let topic = unique_topic("it-group");
    let group = unique_topic("it-group-g");
    create_topic(&mut client, &topic, 1);
    assert_eq!(
        produce(
            &mut client,
            &topic,
            0,
            batch(&values(0, 20, 10), Compression::None)
        )
        .0,
        0
    );

    let coordinator = client.call(
        &FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.clone())),
        3,
    );
    assert_eq!(coordinator.error_code, 0, "FindCoordinator");
    assert!(coordinator.port > 0);

    let join = JoinGroupRequest::default()
        .with_group_id(group_id(&group))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(bytes::Bytes::from_static(b"\x00\x01"))]);
    let first = client.call(&join, 7);
    assert_eq!(
        first.error_code, MEMBER_ID_REQUIRED,
        "first join asks for a member id"
    );
    assert!(!first.member_id.is_empty());
    let member_id = first.member_id.clone();
    let joined = client.call(&join.clone().with_member_id(member_id.clone()), 7);
    assert_eq!(joined.error_code, 0, "JoinGroup");
    assert_eq!(joined.leader, member_id, "the only member leads");
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.members.len(), 1);

    let assignment = bytes::Bytes::from_static(b"assignment-bytes");
    let sync = client.call(
        &SyncGroupRequest::default()
            .with_group_id(group_id(&group))
            .with_generation_id(joined.generation_id)
            .with_member_id(member_id.clone())
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(Some(StrBytes::from_static_str("range")))
            .with_assignments(vec![SyncGroupRequestAssignment::default()
                .with_member_id(member_id.clone())
                .with_assignment(assignment.clone())]),
        5,
    );
    assert_eq!(sync.error_code, 0, "SyncGroup");
    assert_eq!(sync.assignment, assignment);

    let commit = client.call(
        &OffsetCommitRequest::default()
            .with_group_id(group_id(&group))
            .with_generation_id_or_member_epoch(joined.generation_id)
            .with_member_id(member_id)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(topic_name(&topic))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(17)
                    .with_committed_metadata(Some(StrBytes::from_static_str(
                        "it",
                    )))])]),
        8,
    );
    assert_eq!(commit.topics[0].partitions[0].error_code, 0, "OffsetCommit");
    assert_eq!(committed(&mut client, &group, &topic), (0, 17));

    drop(client);
    broker.stop();
    broker.restart();
    let mut client = broker.client();
    // The coordinator loads __consumer_offsets after start; until then COORDINATOR_LOAD_IN_PROGRESS.
    let deadline = std::time::Instant::now() + crate::harness::START_TIMEOUT;
    loop {
        let request = OffsetFetchRequest::default()
            .with_group_id(group_id(&group))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(topic_name(&topic))
                .with_partition_indexes(vec![0])]));
        let response = client.call(&request, 7);
        if response.error_code == 14 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
            continue;
        }
        assert_eq!(response.error_code, 0, "OffsetFetch after restart");
        assert_eq!(response.topics[0].partitions[0].committed_offset, 17);
        break;
    }
}
