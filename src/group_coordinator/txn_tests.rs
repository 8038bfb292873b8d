//! Unit tests of transactional offset commits (TxnOffsetCommit, markers, `require_stable`
//! state, replay of transactional `__consumer_offsets` batches), sans-io with a fake clock,
//! and one run of the async coordinator on a real log directory.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use ringtail_protocol::consumer_offsets_txn::{BatchContent, LogBatch};

use super::coordinator_state::{CoordinatorState, JoinParams, Reply, SyncParams};
use super::records::{CoordinatorRecord, OffsetCommitKey, OffsetCommitValue};
use super::*;

const PID: i64 = 4000;
const OTHER_PID: i64 = 4001;

fn loaded() -> CoordinatorState {
    let settings = GroupSettings {
        group_min_session_timeout_ms: 100,
        group_initial_rebalance_delay_ms: 0,
        ..GroupSettings::default()
    };
    let mut state = CoordinatorState::new(0, 1, settings);
    state.set_loaded(true, 0);
    state
}

fn value(offset: i64) -> OffsetCommitValue {
    OffsetCommitValue {
        offset,
        leader_epoch: -1,
        metadata: format!("m{offset}"),
        commit_timestamp: 0,
    }
}

fn offsets(list: &[(i32, i64)]) -> Vec<(String, i32, OffsetCommitValue)> {
    list.iter()
        .map(|(p, o)| ("t".to_string(), *p, value(*o)))
        .collect()
}

fn committed(state: &CoordinatorState, group: &str, partition: i32) -> Option<i64> {
    state
        .fetch_offsets(group, Some(vec![("t".into(), vec![partition])]))
        .expect("fetch")[0]
        .1[0]
        .1
        .as_ref()
        .map(|v| v.offset)
}

fn partition_of(group: &str) -> i32 {
    offsets_partition_for(group, GroupSettings::default().offsets_topic_num_partitions)
}

/// A TxnOffsetCommit accepted and durable at `base_offset`.
fn txn_commit(
    state: &mut CoordinatorState,
    group: &str,
    pid: i64,
    list: &[(i32, i64)],
    base_offset: i64,
) {
    assert_eq!(
        state.validate_txn_offset_commit(group, pid, 0, -1, "", None, 0),
        Ok(())
    );
    let offsets = offsets(list);
    state.prepare_txn_offset_commit(group, pid, &offsets);
    state.on_txn_offset_commit_append(group, pid, 0, &offsets, base_offset);
}

/// One dynamic member joined and synced: (member id, generation).
fn stable_member(state: &mut CoordinatorState, instance: Option<&str>) -> (String, i32) {
    let join = |member_id: &str| JoinParams {
        group_id: "g".into(),
        member_id: member_id.into(),
        group_instance_id: instance.map(str::to_owned),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
        require_known_member_id: true,
        supports_skip_assignment: false,
    };
    let mut reply = state.join_group(join(""), 0);
    if let Reply::Ready(first) = &reply {
        if first.error == Some(ResponseError::MemberIdRequired) {
            reply = state.join_group(join(&first.member_id.clone()), 0);
        }
    }
    state.tick(0);
    let result = match reply {
        Reply::Ready(result) => result,
        Reply::Pending(mut receiver) => receiver.try_recv().expect("alive").expect("joined"),
    };
    assert_eq!(result.error, None, "{result:?}");
    let sync = SyncParams {
        group_id: "g".into(),
        generation_id: result.generation_id,
        member_id: result.member_id.clone(),
        group_instance_id: instance.map(str::to_owned),
        protocol_type: None,
        protocol_name: None,
        assignments: vec![(result.member_id.clone(), Bytes::from_static(b"all"))],
    };
    let _ = state.sync_group(sync, 0);
    (result.member_id, result.generation_id)
}

#[test]
fn txn_offsets_are_pending_until_commit_marker() {
    let mut state = loaded();
    let p = partition_of("g");
    txn_commit(&mut state, "g", PID, &[(0, 10), (1, 11)], 5);
    assert_eq!(committed(&state, "g", 0), None, "pending, not committed");
    assert!(state.has_pending_txn_offset_for("g", "t", 0));
    assert!(state.has_pending_txn_offset_for("g", "t", 1));
    assert!(!state.has_pending_txn_offset_for("g", "t", 2));
    assert!(state.has_pending_txn_offsets(p, PID));
    // A marker on another __consumer_offsets partition leaves them alone.
    assert_eq!(state.complete_txn_offset_commit(p + 1, PID, 0, true, 0), 0);
    assert!(state.has_pending_txn_offset_for("g", "t", 0));
    assert_eq!(state.complete_txn_offset_commit(p, PID, 0, true, 0), 2);
    assert_eq!(committed(&state, "g", 0), Some(10));
    assert_eq!(committed(&state, "g", 1), Some(11));
    assert!(!state.has_pending_txn_offset_for("g", "t", 0));
    assert!(!state.has_pending_txn_offsets(p, PID));
}

#[test]
fn abort_marker_drops_txn_offsets() {
    let mut state = loaded();
    let p = partition_of("g");
    state.apply_offset_commit("g", offsets(&[(0, 3)]), 0);
    state.on_offset_commit_append("g", &offsets(&[(0, 3)]), 1);
    txn_commit(&mut state, "g", PID, &[(0, 10)], 5);
    assert_eq!(state.complete_txn_offset_commit(p, PID, 0, false, 0), 0);
    assert_eq!(committed(&state, "g", 0), Some(3));
    assert!(!state.has_pending_txn_offset_for("g", "t", 0));
}

#[test]
fn plain_commit_appended_after_txn_offset_wins() {
    // Kafka's CommitRecordMetadataAndOffset.olderThan: the later batch in the log wins.
    let mut state = loaded();
    let p = partition_of("g");
    txn_commit(&mut state, "g", PID, &[(0, 10), (1, 11)], 5);
    state.apply_offset_commit("g", offsets(&[(0, 20)]), 0);
    state.on_offset_commit_append("g", &offsets(&[(0, 20)]), 8);
    assert_eq!(state.complete_txn_offset_commit(p, PID, 0, true, 0), 1);
    assert_eq!(committed(&state, "g", 0), Some(20));
    assert_eq!(committed(&state, "g", 1), Some(11));
}

#[test]
fn producers_are_independent_and_a_failed_append_is_forgotten() {
    let mut state = loaded();
    let p = partition_of("g");
    txn_commit(&mut state, "g", PID, &[(0, 10)], 5);
    txn_commit(&mut state, "g", OTHER_PID, &[(1, 30)], 6);
    state.complete_txn_offset_commit(p, OTHER_PID, 0, false, 0);
    assert!(state.has_pending_txn_offset_for("g", "t", 0));
    assert!(!state.has_pending_txn_offset_for("g", "t", 1));
    // Prepared but never durable: dropped again.
    let failed = offsets(&[(2, 40)]);
    state.prepare_txn_offset_commit("g", OTHER_PID, &failed);
    assert!(state.has_pending_txn_offset_for("g", "t", 2));
    state.fail_txn_offset_commit("g", OTHER_PID, &failed);
    assert!(!state.has_pending_txn_offset_for("g", "t", 2));
    state.complete_txn_offset_commit(p, PID, 0, true, 0);
    assert_eq!(committed(&state, "g", 0), Some(10));
    assert_eq!(committed(&state, "g", 2), None);
}

#[test]
fn a_marker_before_the_append_is_durable_applies_nothing() {
    let mut state = loaded();
    let p = partition_of("g");
    state.prepare_txn_offset_commit("g", PID, &offsets(&[(0, 10)]));
    assert_eq!(state.complete_txn_offset_commit(p, PID, 0, true, 0), 0);
    assert_eq!(committed(&state, "g", 0), None);
}

#[test]
fn older_producer_epoch_is_fenced() {
    let mut state = loaded();
    let p = partition_of("g");
    let list = offsets(&[(0, 10)]);
    state.prepare_txn_offset_commit("g", PID, &list);
    state.on_txn_offset_commit_append("g", PID, 3, &list, 0);
    assert_eq!(
        state.validate_txn_offset_commit("g", PID, 2, -1, "", None, 0),
        Err(ResponseError::InvalidProducerEpoch)
    );
    assert_eq!(
        state.validate_txn_offset_commit("g", PID, 3, -1, "", None, 0),
        Ok(())
    );
    assert_eq!(
        state.validate_txn_marker(p, PID, 2),
        Err(ResponseError::InvalidProducerEpoch)
    );
    assert_eq!(state.validate_txn_marker(p, PID, 4), Ok(()));
    // Another producer, or the same on another partition, is not affected.
    assert_eq!(state.validate_txn_marker(p, OTHER_PID, 0), Ok(()));
    assert_eq!(state.validate_txn_marker(p + 1, PID, 0), Ok(()));
}

#[test]
fn txn_offset_commit_validation_as_kafka() {
    let mut state = loaded();
    assert_eq!(
        state.validate_txn_offset_commit("", PID, 0, -1, "", None, 0),
        Err(ResponseError::InvalidGroupId)
    );
    assert_eq!(
        state.validate_txn_offset_commit("missing", PID, 0, 1, "m", None, 0),
        Err(ResponseError::IllegalGeneration),
        "a generation of a group that does not exist"
    );
    let (member, generation) = stable_member(&mut state, None);
    assert_eq!(
        state.validate_txn_offset_commit("g", PID, 0, generation, &member, None, 0),
        Ok(())
    );
    assert_eq!(
        state.validate_txn_offset_commit("g", PID, 0, generation, "stranger", None, 0),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        state.validate_txn_offset_commit("g", PID, 0, generation + 1, &member, None, 0),
        Err(ResponseError::IllegalGeneration)
    );
    // v0-2 carry no member: accepted even though the group has members (unlike OffsetCommit).
    assert_eq!(
        state.validate_txn_offset_commit("g", PID, 0, -1, "", None, 0),
        Ok(())
    );
    assert_eq!(
        state.validate_offset_commit("g", -1, "", None, 0),
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn static_member_checks() {
    let mut state = loaded();
    let (member, generation) = stable_member(&mut state, Some("instance-1"));
    assert_eq!(
        state.validate_txn_offset_commit("g", PID, 0, generation, &member, Some("instance-1"), 0),
        Ok(())
    );
    assert_eq!(
        state.validate_txn_offset_commit("g", PID, 0, generation, "old", Some("instance-1"), 0),
        Err(ResponseError::FencedInstanceId)
    );
    assert_eq!(
        state.validate_txn_offset_commit("g", PID, 0, generation, &member, Some("other"), 0),
        Err(ResponseError::UnknownMemberId)
    );
}

fn record(partition: i32, offset: Option<i64>) -> CoordinatorRecord {
    CoordinatorRecord::OffsetCommit {
        key: OffsetCommitKey {
            group: "g".into(),
            topic: "t".into(),
            partition,
        },
        value: offset.map(value),
    }
}

fn plain(base_offset: i64, records: Vec<CoordinatorRecord>) -> LogBatch {
    LogBatch {
        base_offset,
        content: BatchContent::Plain(records),
    }
}

fn txn(base_offset: i64, producer_id: i64, records: Vec<CoordinatorRecord>) -> LogBatch {
    LogBatch {
        base_offset,
        content: BatchContent::Transactional {
            producer_id,
            producer_epoch: 0,
            records,
        },
    }
}

fn marker(base_offset: i64, producer_id: i64, commit: bool) -> LogBatch {
    LogBatch {
        base_offset,
        content: BatchContent::Marker {
            producer_id,
            producer_epoch: 0,
            commit,
        },
    }
}

#[test]
fn replay_applies_committed_drops_aborted_and_keeps_open_transactions_pending() {
    let p = partition_of("g");
    let mut state = CoordinatorState::new(0, 1, GroupSettings::default());
    let batches = vec![
        plain(
            0,
            vec![record(0, Some(1)), record(1, Some(1)), record(2, Some(1))],
        ),
        // Committed: p0 -> 10.
        txn(3, PID, vec![record(0, Some(10))]),
        marker(4, PID, true),
        // Aborted: p1 stays 1.
        txn(5, OTHER_PID, vec![record(1, Some(50))]),
        marker(6, OTHER_PID, false),
        // Committed, but a plain commit came later in the log: p2 -> 7.
        txn(7, PID, vec![record(2, Some(70))]),
        plain(8, vec![record(2, Some(7))]),
        marker(9, PID, true),
        // Open at the end of the log: p3 pending.
        txn(10, OTHER_PID, vec![record(3, Some(99))]),
    ];
    for batch in batches {
        state.replay_batch(p, batch, 0);
    }
    state.set_loaded(true, 0);
    assert_eq!(committed(&state, "g", 0), Some(10));
    assert_eq!(committed(&state, "g", 1), Some(1));
    assert_eq!(committed(&state, "g", 2), Some(7));
    assert_eq!(committed(&state, "g", 3), None);
    assert!(state.has_pending_txn_offset_for("g", "t", 3));
    assert!(!state.has_pending_txn_offset_for("g", "t", 1));
    // The open transaction completes after start-up.
    assert_eq!(
        state.complete_txn_offset_commit(p, OTHER_PID, 0, true, 0),
        1
    );
    assert_eq!(committed(&state, "g", 3), Some(99));
}

#[test]
fn replayed_epochs_fence_older_producers() {
    let p = partition_of("g");
    let mut state = CoordinatorState::new(0, 1, GroupSettings::default());
    state.replay_batch(
        p,
        LogBatch {
            base_offset: 0,
            content: BatchContent::Marker {
                producer_id: PID,
                producer_epoch: 5,
                commit: false,
            },
        },
        0,
    );
    state.set_loaded(true, 0);
    assert_eq!(
        state.validate_txn_offset_commit("g", PID, 4, -1, "", None, 0),
        Err(ResponseError::InvalidProducerEpoch)
    );
}

/// The async coordinator on a real `__consumer_offsets` directory: TxnOffsetCommit, OffsetFetch
/// with and without `require_stable`, a commit marker, an open transaction across a restart.
#[test]
fn coordinator_txn_offsets_survive_restart() {
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{
        offset_fetch_request::OffsetFetchRequestTopic, OffsetFetchRequest, ProducerId, TopicName,
        TxnOffsetCommitRequest,
    };
    use kafka_protocol::protocol::StrBytes;

    fn commit_request(
        group: &str,
        pid: i64,
        partition: i32,
        offset: i64,
    ) -> TxnOffsetCommitRequest {
        TxnOffsetCommitRequest::default()
            .with_transactional_id(StrBytes::from_static_str("tx").into())
            .with_group_id(StrBytes::from_string(group.to_owned()).into())
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(0)
            .with_generation_id(-1)
            .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(partition)
                    .with_committed_offset(offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(StrBytes::from_static_str(
                        "meta",
                    )))])])
    }
    fn fetch(require_stable: bool) -> OffsetFetchRequest {
        OffsetFetchRequest::default()
            .with_group_id(StrBytes::from_static_str("g").into())
            .with_require_stable(require_stable)
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_indexes(vec![0, 1])]))
    }
    /// (error, offset) of partitions 0 and 1.
    fn fetched(response: &kafka_protocol::messages::OffsetFetchResponse) -> Vec<(i16, i64)> {
        response.topics[0]
            .partitions
            .iter()
            .map(|p| (p.error_code, p.committed_offset))
            .collect()
    }
    fn marker(pid: i64, commit: bool) -> crate::partition::TxnMarker {
        crate::partition::TxnMarker {
            producer_id: pid,
            producer_epoch: 0,
            coordinator_epoch: 1,
            commit,
        }
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let log_dir = dir.path().to_path_buf();
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(1 << 20)
        .make()
        .expect("executor")
        .run(async move {
            let unstable = ResponseError::UnstableOffsetCommit.code();
            let p = partition_of("g");
            let open = || {
                GroupCoordinator::new(
                    0,
                    1,
                    GroupSettings::default(),
                    log_dir.clone(),
                    OffsetsLogSettings::default(),
                )
            };
            let coordinator = open();
            coordinator.load().await.expect("load");
            let response = coordinator
                .txn_offset_commit(commit_request("g", PID, 0, 10), 3)
                .await;
            assert_eq!(response.topics[0].partitions[0].error_code, 0);
            let response = coordinator
                .txn_offset_commit(commit_request("g", OTHER_PID, 1, 20), 3)
                .await;
            assert_eq!(response.topics[0].partitions[0].error_code, 0);
            assert_eq!(
                fetched(&coordinator.offset_fetch(fetch(true), 7).await),
                vec![(unstable, -1), (unstable, -1)]
            );
            assert_eq!(
                fetched(&coordinator.offset_fetch(fetch(false), 7).await),
                vec![(0, -1), (0, -1)],
                "read without require_stable: the last committed (none)"
            );
            assert_eq!(
                coordinator.write_txn_marker(50, marker(PID, true), 0).await,
                Err(ResponseError::NotCoordinator),
                "offsets.topic.num.partitions is 50"
            );
            coordinator
                .write_txn_marker(p, marker(PID, true), 0)
                .await
                .expect("marker");
            assert_eq!(
                fetched(&coordinator.offset_fetch(fetch(true), 7).await),
                vec![(0, 10), (unstable, -1)]
            );
            coordinator.shutdown().await;

            // After a restart the committed offset is back and the open one still pending.
            let coordinator = open();
            coordinator.load().await.expect("reload");
            assert_eq!(
                fetched(&coordinator.offset_fetch(fetch(true), 7).await),
                vec![(0, 10), (unstable, -1)]
            );
            coordinator
                .write_txn_marker(p, marker(OTHER_PID, false), 0)
                .await
                .expect("abort marker");
            assert_eq!(
                fetched(&coordinator.offset_fetch(fetch(true), 7).await),
                vec![(0, 10), (0, -1)]
            );
            coordinator.shutdown().await;
        });
}
