//! Unit tests of the classic group state machine, driven with a fake clock.

use bytes::Bytes;
use futures::channel::oneshot;
use kafka_protocol::error::ResponseError;

use super::coordinator_state::{CoordinatorState, JoinParams, Reply, SyncParams};
use super::group::{GroupState, JoinResult, SyncResult};
use super::records::{CoordinatorRecord, OffsetCommitValue};
use super::*;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;

fn settings(initial_delay_ms: i32) -> GroupSettings {
    GroupSettings {
        group_min_session_timeout_ms: 100,
        group_initial_rebalance_delay_ms: initial_delay_ms,
        ..GroupSettings::default()
    }
}

fn loaded(initial_delay_ms: i32) -> CoordinatorState {
    let mut state = CoordinatorState::new(0, 1, settings(initial_delay_ms));
    state.set_loaded(true, 0);
    state
}

fn join(member_id: &str, version: i16) -> JoinParams {
    JoinParams {
        group_id: "g".into(),
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: vec![
            ("range".into(), Bytes::from_static(b"range-meta")),
            ("roundrobin".into(), Bytes::from_static(b"rr-meta")),
        ],
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    }
}

fn static_join(member_id: &str, instance: &str) -> JoinParams {
    JoinParams {
        group_instance_id: Some(instance.into()),
        ..join(member_id, 5)
    }
}

fn sync(member_id: &str, generation_id: i32, assignments: &[(&str, &str)]) -> SyncParams {
    SyncParams {
        group_id: "g".into(),
        generation_id,
        member_id: member_id.into(),
        group_instance_id: None,
        protocol_type: None,
        protocol_name: None,
        assignments: assignments
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
            .collect(),
    }
}

fn ready<T: std::fmt::Debug>(reply: Reply<T>) -> T {
    match reply {
        Reply::Ready(value) => value,
        Reply::Pending(_) => panic!("expected an immediate answer"),
    }
}

fn pending<T: std::fmt::Debug>(reply: Reply<T>) -> oneshot::Receiver<T> {
    match reply {
        Reply::Pending(receiver) => receiver,
        Reply::Ready(value) => panic!("expected a pending answer, got {value:?}"),
    }
}

fn answered<T>(receiver: &mut oneshot::Receiver<T>) -> Option<T> {
    receiver.try_recv().expect("sender alive")
}

fn check_join_error(result: &JoinResult, error: ResponseError) {
    assert_eq!(result.error, Some(error), "{result:?}");
    assert_eq!(result.generation_id, -1);
}

fn state_of(state: &CoordinatorState) -> GroupState {
    state.group("g").expect("group exists").state
}

/// One dynamic member through KIP-394, join, sync: returns its member id.
fn stable_single_member(state: &mut CoordinatorState, now: i64) -> String {
    let first = ready(state.join_group(join("", 4), now));
    check_join_error(&first, ResponseError::MemberIdRequired);
    let member_id = first.member_id.clone();
    assert!(member_id.starts_with("client-"), "{member_id}");
    let mut joined = pending(state.join_group(join(&member_id, 4), now));
    // The initial rebalance delay (0 here) still needs the timer.
    assert!(answered(&mut joined).is_none());
    state.tick(now);
    let result = answered(&mut joined).expect("join completed");
    assert_eq!(result.error, None);
    assert_eq!(result.leader_id, member_id);
    assert_eq!(result.members.len(), 1);
    assert_eq!(result.protocol_name.as_deref(), Some("range"));
    let mut synced = pending(state.sync_group(
        sync(&member_id, result.generation_id, &[(&member_id, "all")]),
        now,
    ));
    let synced = answered(&mut synced).expect("leader sync completes");
    assert_eq!(synced.assignment, Bytes::from_static(b"all"));
    assert_eq!(state_of(state), GroupState::Stable);
    member_id
}

#[test]
fn kip394_member_id_required_then_join_sync_heartbeat() {
    let mut state = loaded(0);
    let member = stable_single_member(&mut state, 0);
    assert_eq!(state.heartbeat("g", 1, &member, None, 10), None);
    assert_eq!(
        state.heartbeat("g", 0, &member, None, 10),
        Some(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        state.heartbeat("g", 1, "nobody", None, 10),
        Some(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        state.heartbeat("other", 1, &member, None, 10),
        Some(ResponseError::UnknownMemberId)
    );
    // A v3 join gets a member id at once.
    let mut v3 = pending(state.join_group(join("", 3), 20));
    assert_eq!(state_of(&state), GroupState::PreparingRebalance);
    assert!(answered(&mut v3).is_none());
}

#[test]
fn second_member_rebalances_the_group() {
    let mut state = loaded(0);
    let first = stable_single_member(&mut state, 0);
    let mut second = pending(state.join_group(join("", 3), 100));
    assert_eq!(state_of(&state), GroupState::PreparingRebalance);
    assert_eq!(
        state.heartbeat("g", 1, &first, None, 110),
        Some(ResponseError::RebalanceInProgress)
    );
    assert_eq!(
        ready(state.sync_group(sync(&first, 1, &[]), 110)).error,
        Some(ResponseError::RebalanceInProgress)
    );
    let mut first_join = pending(state.join_group(join(&first, 4), 120));
    let leader = answered(&mut first_join).expect("all members joined");
    let follower = answered(&mut second).expect("all members joined");
    assert_eq!(leader.generation_id, 2);
    assert_eq!(follower.generation_id, 2);
    assert_eq!(leader.leader_id, first);
    assert_eq!(follower.leader_id, first);
    assert_eq!(leader.members.len(), 2);
    assert!(follower.members.is_empty());
    assert_eq!(state_of(&state), GroupState::CompletingRebalance);
    // The follower's SyncGroup waits for the leader's.
    let mut follower_sync = pending(state.sync_group(sync(&follower.member_id, 2, &[]), 130));
    assert!(answered(&mut follower_sync).is_none());
    let mut leader_sync = pending(state.sync_group(
        sync(
            &first,
            2,
            &[(first.as_str(), "p0"), (follower.member_id.as_str(), "p1")],
        ),
        140,
    ));
    assert_eq!(
        answered(&mut leader_sync).expect("leader").assignment,
        Bytes::from_static(b"p0")
    );
    assert_eq!(
        answered(&mut follower_sync).expect("follower").assignment,
        Bytes::from_static(b"p1")
    );
    assert_eq!(state_of(&state), GroupState::Stable);
}

#[test]
fn member_that_does_not_rejoin_is_dropped_after_rebalance_timeout() {
    let mut state = loaded(0);
    let first = stable_single_member(&mut state, 0);
    let mut second = pending(state.join_group(join("", 3), 1_000));
    // The first member keeps heartbeating but never rejoins.
    for now in [5_000, 14_000, 23_000] {
        assert_eq!(
            state.heartbeat("g", 1, &first, None, now),
            Some(ResponseError::RebalanceInProgress)
        );
    }
    state.tick(1_000 + REBALANCE_MS as i64 - 1);
    assert!(answered(&mut second).is_none());
    state.tick(1_000 + REBALANCE_MS as i64);
    let result = answered(&mut second).expect("join phase expired");
    assert_eq!(result.generation_id, 2);
    assert_eq!(result.leader_id, result.member_id);
    assert_eq!(result.members.len(), 1);
    assert_eq!(
        state.heartbeat("g", 2, &first, None, 40_000),
        Some(ResponseError::UnknownMemberId)
    );
}

#[test]
fn session_expiry_removes_member_and_empties_group() {
    let mut state = loaded(0);
    let member = stable_single_member(&mut state, 0);
    state.tick(SESSION_MS as i64 - 1);
    assert_eq!(state_of(&state), GroupState::Stable);
    assert_eq!(
        state.heartbeat("g", 1, &member, None, SESSION_MS as i64 - 1),
        None
    );
    // The heartbeat moved the deadline.
    state.tick(2 * SESSION_MS as i64 - 2);
    assert_eq!(state_of(&state), GroupState::Stable);
    state.tick(2 * SESSION_MS as i64);
    let group = state.group("g").expect("group kept for its offsets");
    assert_eq!(group.state, GroupState::Empty);
    assert_eq!(group.generation_id, 2);
    assert_eq!(
        state.heartbeat("g", 1, &member, None, 30_000),
        Some(ResponseError::UnknownMemberId)
    );
    // The Empty generation was stored.
    let records = state.take_pending_records();
    assert!(records.iter().any(|(_, r)| matches!(r,
        CoordinatorRecord::GroupMetadata { value: Some(v), .. } if v.generation == 2 && v.members.is_empty())));
}

#[test]
fn pending_member_id_expires_after_session_timeout() {
    let mut state = loaded(0);
    let member = stable_single_member(&mut state, 0);
    let required = ready(state.join_group(join("", 4), 100));
    check_join_error(&required, ResponseError::MemberIdRequired);
    assert_eq!(
        state.heartbeat("g", 1, &member, None, 100 + SESSION_MS as i64),
        None
    );
    state.tick(100 + SESSION_MS as i64);
    let late = ready(state.join_group(join(&required.member_id, 4), 200 + SESSION_MS as i64));
    check_join_error(&late, ResponseError::UnknownMemberId);
}

#[test]
fn request_validation_errors() {
    let mut state = CoordinatorState::new(0, 1, settings(0));
    check_join_error(
        &ready(state.join_group(join("", 4), 0)),
        ResponseError::CoordinatorLoadInProgress,
    );
    state.set_loaded(true, 0);
    let mut empty_id = join("", 4);
    empty_id.group_id = String::new();
    check_join_error(
        &ready(state.join_group(empty_id, 0)),
        ResponseError::InvalidGroupId,
    );
    let mut short = join("", 4);
    short.session_timeout_ms = 99;
    check_join_error(
        &ready(state.join_group(short, 0)),
        ResponseError::InvalidSessionTimeout,
    );
    let mut long = join("", 4);
    long.session_timeout_ms = 1_800_001;
    check_join_error(
        &ready(state.join_group(long, 0)),
        ResponseError::InvalidSessionTimeout,
    );
    check_join_error(
        &ready(state.join_group(join("ghost", 4), 0)),
        ResponseError::UnknownMemberId,
    );
    let mut no_protocols = join("", 3);
    no_protocols.protocols.clear();
    check_join_error(
        &ready(state.join_group(no_protocols, 0)),
        ResponseError::InconsistentGroupProtocol,
    );
    assert_eq!(
        ready(state.sync_group(sync("ghost", 1, &[]), 0)).error,
        Some(ResponseError::UnknownMemberId)
    );

    // Another shard's group.
    let mut other = CoordinatorState::new(1, 2, settings(0));
    other.set_loaded(true, 0);
    let foreign = (0..100)
        .map(|i| format!("g{i}"))
        .find(|g| !other.owns(g))
        .expect("some group maps to shard 0");
    let mut misrouted = join("", 4);
    misrouted.group_id = foreign;
    check_join_error(
        &ready(other.join_group(misrouted, 0)),
        ResponseError::NotCoordinator,
    );
}

#[test]
fn inconsistent_protocols_are_rejected() {
    let mut state = loaded(0);
    stable_single_member(&mut state, 0);
    let mut other = join("", 3);
    other.protocols = vec![("sticky".into(), Bytes::new())];
    check_join_error(
        &ready(state.join_group(other, 10)),
        ResponseError::InconsistentGroupProtocol,
    );
    let mut connect = join("", 3);
    connect.protocol_type = "connect".into();
    check_join_error(
        &ready(state.join_group(connect, 10)),
        ResponseError::InconsistentGroupProtocol,
    );
}

#[test]
fn static_member_replacement_fences_the_old_member_id() {
    let mut state = loaded(0);
    let mut first = pending(state.join_group(static_join("", "instance-a"), 0));
    state.tick(0);
    let old = answered(&mut first).expect("joined");
    assert_eq!(old.error, None);
    let mut synced =
        pending(state.sync_group(sync(&old.member_id, 1, &[(old.member_id.as_str(), "a")]), 0));
    answered(&mut synced).expect("synced");
    // The same instance restarts and joins without a member id (no MEMBER_ID_REQUIRED).
    let mut replaced = pending(state.join_group(static_join("", "instance-a"), 1_000));
    let new = answered(&mut replaced).expect("answered without a rebalance");
    assert_eq!(new.error, None);
    assert_ne!(new.member_id, old.member_id);
    assert_eq!(new.generation_id, 1);
    assert_eq!(state_of(&state), GroupState::Stable);
    // The old member id gets FENCED_INSTANCE_ID everywhere.
    assert_eq!(
        state.heartbeat("g", 1, &old.member_id, Some("instance-a"), 1_100),
        Some(ResponseError::FencedInstanceId)
    );
    assert_eq!(
        state.validate_offset_commit("g", 1, &old.member_id, Some("instance-a"), 1_100),
        Err(ResponseError::FencedInstanceId)
    );
    check_join_error(
        &ready(state.join_group(static_join(&old.member_id, "instance-a"), 1_100)),
        ResponseError::FencedInstanceId,
    );
    let left = state.leave_group(
        "g",
        &[(old.member_id.clone(), Some("instance-a".into()))],
        1_100,
    );
    assert_eq!(left, Ok(vec![Some(ResponseError::FencedInstanceId)]));
    // The new member id keeps the old assignment.
    let mut resync = state.sync_group(
        SyncParams {
            group_instance_id: Some("instance-a".into()),
            ..sync(&new.member_id, 1, &[])
        },
        1_200,
    );
    let assignment = match &mut resync {
        Reply::Ready(result) => result.assignment.clone(),
        Reply::Pending(receiver) => answered(receiver).expect("stable").assignment,
    };
    assert_eq!(assignment, Bytes::from_static(b"a"));
    assert_eq!(
        state.heartbeat("g", 1, &new.member_id, Some("instance-a"), 1_300),
        None
    );
}

#[test]
fn static_member_replacement_during_join_fences_the_waiting_request() {
    let mut state = loaded(1_000);
    let mut first = pending(state.join_group(static_join("", "instance-a"), 0));
    let mut second = pending(state.join_group(static_join("", "instance-a"), 10));
    let fenced = answered(&mut first).expect("fenced at once");
    assert_eq!(fenced.error, Some(ResponseError::FencedInstanceId));
    state.tick(1_000);
    let joined = answered(&mut second).expect("joined");
    assert_eq!(joined.error, None);
    assert_eq!(joined.members.len(), 1);
}

#[test]
fn leave_group_by_member_and_by_instance_id() {
    let mut state = loaded(0);
    let member = stable_single_member(&mut state, 0);
    assert_eq!(
        state.leave_group("g", &[("ghost".into(), None)], 10),
        Ok(vec![Some(ResponseError::UnknownMemberId)])
    );
    assert_eq!(
        state.leave_group("g", &[(member.clone(), None)], 10),
        Ok(vec![None])
    );
    assert_eq!(state_of(&state), GroupState::Empty);
    assert_eq!(state.group("g").expect("kept").generation_id, 2);

    let mut first = pending(state.join_group(static_join("", "instance-b"), 20));
    state.tick(20);
    answered(&mut first).expect("joined");
    assert_eq!(
        state.leave_group(
            "g",
            &[
                (String::new(), Some("instance-b".into())),
                (String::new(), Some("nope".into()))
            ],
            30
        ),
        Ok(vec![None, Some(ResponseError::UnknownMemberId)])
    );
    assert_eq!(state_of(&state), GroupState::Empty);
    assert_eq!(
        state.leave_group("missing", &[(member, None)], 40),
        Ok(vec![Some(ResponseError::UnknownMemberId)])
    );
}

#[test]
fn initial_rebalance_delay_waits_for_more_members() {
    let mut state = loaded(3_000);
    let mut first = pending(state.join_group(join("", 3), 0));
    state.tick(1_000);
    let mut second = pending(state.join_group(join("", 3), 1_000));
    // The delay expired with a new member added: it is extended once more.
    state.tick(3_000);
    assert!(answered(&mut first).is_none());
    state.tick(5_999);
    assert!(answered(&mut second).is_none());
    state.tick(6_000);
    let a = answered(&mut first).expect("first");
    let b = answered(&mut second).expect("second");
    assert_eq!((a.generation_id, b.generation_id), (1, 1));
    assert_eq!(a.members.len() + b.members.len(), 2);
}

#[test]
fn pending_sync_members_are_removed_after_rebalance_timeout() {
    let mut state = loaded(0);
    let first = stable_single_member(&mut state, 0);
    let mut second = pending(state.join_group(join("", 3), 100));
    let mut rejoin = pending(state.join_group(join(&first, 4), 100));
    let follower = answered(&mut second).expect("joined");
    answered(&mut rejoin).expect("joined");
    // Only the leader syncs; the follower stays silent but heartbeats.
    let mut leader_sync = pending(state.sync_group(sync(&first, 2, &[(first.as_str(), "x")]), 200));
    answered(&mut leader_sync).expect("synced");
    for now in [5_000, 14_000, 23_000] {
        assert_eq!(
            state.heartbeat("g", 2, &follower.member_id, None, now),
            None
        );
        assert_eq!(state.heartbeat("g", 2, &first, None, now), None);
        state.tick(now);
    }
    state.tick(100 + REBALANCE_MS as i64 - 1);
    assert_eq!(state_of(&state), GroupState::Stable);
    state.tick(100 + REBALANCE_MS as i64);
    assert_eq!(state_of(&state), GroupState::PreparingRebalance);
    assert_eq!(
        state.heartbeat("g", 2, &follower.member_id, None, 31_000),
        Some(ResponseError::UnknownMemberId)
    );
}

#[test]
fn offset_commit_rules() {
    let mut state = loaded(0);
    // Standalone consumers (assign()) commit with generation -1 and no member id.
    assert_eq!(
        state.validate_offset_commit("solo", -1, "", None, 0),
        Ok(())
    );
    assert_eq!(
        state.validate_offset_commit("gone", 3, "m", None, 0),
        Err(ResponseError::IllegalGeneration)
    );
    let member = stable_single_member(&mut state, 0);
    assert_eq!(
        state.validate_offset_commit("g", -1, "", None, 0),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        state.validate_offset_commit("g", 1, "ghost", None, 0),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        state.validate_offset_commit("g", 7, &member, None, 0),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        state.validate_offset_commit("g", 1, &member, None, 0),
        Ok(())
    );
    // During CompletingRebalance commits wait for the new assignment.
    let mut second = pending(state.join_group(join("", 3), 10));
    let mut rejoin = pending(state.join_group(join(&member, 4), 10));
    answered(&mut second).expect("joined");
    answered(&mut rejoin).expect("joined");
    assert_eq!(
        state.validate_offset_commit("g", 2, &member, None, 20),
        Err(ResponseError::RebalanceInProgress)
    );
}

#[test]
fn offsets_fetch_delete_and_group_deletion() {
    let mut state = loaded(0);
    let value = |offset| OffsetCommitValue {
        offset,
        leader_epoch: 3,
        metadata: "m".into(),
        commit_timestamp: 0,
    };
    assert_eq!(
        state.validate_offset_commit("solo", -1, "", None, 0),
        Ok(())
    );
    state.apply_offset_commit(
        "solo",
        vec![("t".into(), 0, value(5)), ("t".into(), 1, value(6))],
        0,
    );
    let fetched = state
        .fetch_offsets("solo", Some(vec![("t".into(), vec![1, 2])]))
        .expect("fetch");
    assert_eq!(
        fetched,
        vec![("t".to_string(), vec![(1, Some(value(6))), (2, None)])]
    );
    let all = state.fetch_offsets("solo", None).expect("fetch all");
    assert_eq!(
        all,
        vec![(
            "t".to_string(),
            vec![(0, Some(value(5))), (1, Some(value(6)))]
        )]
    );
    assert_eq!(
        state.fetch_offsets("unknown", Some(vec![("t".into(), vec![0])])),
        Ok(vec![("t".to_string(), vec![(0, None)])])
    );
    assert_eq!(
        state.delete_offsets("solo", &[("t".into(), vec![0])], 0),
        Ok(vec![("t".to_string(), vec![(0, None)])])
    );
    assert_eq!(
        state.delete_offsets("nope", &[], 0),
        Err(ResponseError::GroupIdNotFound)
    );
    state.take_pending_records();

    let member = stable_single_member(&mut state, 0);
    assert_eq!(
        state.delete_group("g", 0),
        Some(ResponseError::NonEmptyGroup)
    );
    assert_eq!(
        state.delete_group("nope", 0),
        Some(ResponseError::GroupIdNotFound)
    );
    // A Stable consumer group subscribed to nothing decodable: every topic is protected.
    assert_eq!(
        state.delete_offsets("g", &[("t".into(), vec![0])], 0),
        Ok(vec![(
            "t".to_string(),
            vec![(0, Some(ResponseError::GroupSubscribedToTopic))]
        )])
    );
    assert_eq!(state.leave_group("g", &[(member, None)], 0), Ok(vec![None]));
    state.take_pending_records();
    assert_eq!(state.delete_group("solo", 0), None);
    let records = state.take_pending_records();
    assert_eq!(
        records.len(),
        2,
        "one offset tombstone and the group tombstone: {records:?}"
    );
    assert!(records.iter().all(|(_, r)| r.is_tombstone()));
    assert!(state.group("solo").is_none());
    let listed: Vec<String> = state
        .list_groups(&[], &[])
        .into_iter()
        .map(|g| g.group_id)
        .collect();
    assert_eq!(listed, vec!["g".to_string()]);
    assert!(state.list_groups(&["stable".into()], &[]).is_empty());
    assert_eq!(
        state
            .list_groups(&["EMPTY".into()], &["classic".into()])
            .len(),
        1
    );
    assert!(state.list_groups(&[], &["consumer".into()]).is_empty());
}

#[test]
fn replay_restores_offsets_and_generation() {
    let mut state = loaded(0);
    let member = stable_single_member(&mut state, 0);
    assert_eq!(
        state.validate_offset_commit("g", 1, &member, None, 0),
        Ok(())
    );
    let offset = OffsetCommitValue {
        offset: 42,
        leader_epoch: 0,
        metadata: "meta".into(),
        commit_timestamp: 0,
    };
    state.apply_offset_commit("g", vec![("t".into(), 0, offset.clone())], 0);
    let mut records: Vec<CoordinatorRecord> = state
        .take_pending_records()
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    records.push(CoordinatorRecord::OffsetCommit {
        key: records::OffsetCommitKey {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
        },
        value: Some(offset.clone()),
    });

    let mut restarted = loaded(0);
    for record in records {
        restarted.replay(record, 1_000);
    }
    let group = restarted.group("g").expect("restored");
    assert_eq!(group.state, GroupState::Stable);
    assert_eq!(group.generation_id, 1);
    assert_eq!(
        restarted.fetch_offsets("g", Some(vec![("t".into(), vec![0])])),
        Ok(vec![("t".to_string(), vec![(0, Some(offset))])])
    );
    // The member may go on heartbeating; a stale generation gets ILLEGAL_GENERATION.
    assert_eq!(restarted.heartbeat("g", 1, &member, None, 1_100), None);
    assert_eq!(
        restarted.heartbeat("g", 0, &member, None, 1_100),
        Some(ResponseError::IllegalGeneration)
    );
    // If it never comes back, its session expires and the group empties.
    restarted.tick(1_100 + SESSION_MS as i64);
    assert_eq!(restarted.group("g").expect("kept").state, GroupState::Empty);
}

#[test]
fn describe_shows_members_when_stable() {
    let mut state = loaded(0);
    let member = stable_single_member(&mut state, 0);
    let summary = state.describe_group("g").expect("ok").expect("exists");
    assert_eq!(summary.state, GroupState::Stable);
    assert_eq!(summary.protocol, "range");
    assert_eq!(summary.members.len(), 1);
    assert_eq!(summary.members[0].member_id, member);
    assert_eq!(
        summary.members[0].metadata,
        Bytes::from_static(b"range-meta")
    );
    assert_eq!(summary.members[0].assignment, Bytes::from_static(b"all"));
    assert_eq!(state.describe_group("missing"), Ok(None));
}

#[test]
fn sync_error_when_removed_while_waiting() {
    let mut state = loaded(0);
    let first = stable_single_member(&mut state, 0);
    let mut second = pending(state.join_group(join("", 3), 0));
    let mut rejoin = pending(state.join_group(join(&first, 4), 0));
    let follower = answered(&mut second).expect("joined");
    answered(&mut rejoin).expect("joined");
    let mut waiting = pending(state.sync_group(sync(&follower.member_id, 2, &[]), 0));
    // The leader leaves instead of syncing: the follower is told to rejoin.
    assert_eq!(state.leave_group("g", &[(first, None)], 0), Ok(vec![None]));
    let result: SyncResult = answered(&mut waiting).expect("answered");
    assert_eq!(result.error, Some(ResponseError::RebalanceInProgress));
}

#[test]
fn partition_for_matches_kafka() {
    assert_eq!(java_string_hashcode("hello"), 99_162_322);
    assert_eq!(java_string_hashcode(""), 0);
    assert_eq!(java_string_hashcode("Aa"), java_string_hashcode("BB"));
    // Java's hashCode of this string is Integer.MIN_VALUE; Kafka's Utils.abs maps it to 0.
    assert_eq!(java_string_hashcode("polygenelubricants"), i32::MIN);
    assert_eq!(offsets_partition_for("polygenelubricants", 50), 0);
    assert_eq!(offsets_partition_for("hello", 50), 22);
    // Negative hashes use the absolute value.
    let negative = java_string_hashcode("console-consumer-12345");
    assert_eq!(
        offsets_partition_for("console-consumer-12345", 50),
        negative.abs() % 50
    );
    for group in ["a", "payments", "console-consumer-1"] {
        let partition = offsets_partition_for(group, 50);
        assert_eq!(shard_for_group(group, 50, 2), partition as usize % 2);
        assert!(
            owned_offsets_partitions(shard_for_group(group, 50, 2), 2, 50).contains(&partition)
        );
    }
}

#[test]
fn snapshot_replays_to_the_same_state() {
    let mut state = loaded(0);
    let member = stable_single_member(&mut state, 0);
    let value = |offset| OffsetCommitValue {
        offset,
        leader_epoch: 1,
        metadata: format!("m{offset}"),
        commit_timestamp: 7,
    };
    assert_eq!(
        state.validate_offset_commit("g", 1, &member, None, 0),
        Ok(())
    );
    state.apply_offset_commit(
        "g",
        vec![("t".into(), 0, value(10)), ("t".into(), 1, value(11))],
        0,
    );
    assert_eq!(
        state.validate_offset_commit("solo", -1, "", None, 0),
        Ok(())
    );
    state.apply_offset_commit("solo", vec![("u".into(), 3, value(12))], 0);
    let partitions = [
        offsets_partition_for("g", 50),
        offsets_partition_for("solo", 50),
    ];
    let mut restored = loaded(0);
    for partition in partitions.iter().collect::<std::collections::BTreeSet<_>>() {
        for record in state.snapshot_records(*partition) {
            restored.replay(record, 100);
        }
    }
    for (group, topic, partition, offset) in
        [("g", "t", 0, 10), ("g", "t", 1, 11), ("solo", "u", 3, 12)]
    {
        assert_eq!(
            restored.fetch_offsets(group, Some(vec![(topic.into(), vec![partition])])),
            Ok(vec![(
                topic.to_string(),
                vec![(partition, Some(value(offset)))]
            )])
        );
    }
    let group = restored.group("g").expect("restored");
    assert_eq!((group.state, group.generation_id), (GroupState::Stable, 1));
    assert_eq!(restored.heartbeat("g", 1, &member, None, 200), None);
    // A standalone group has offsets only, no metadata record.
    let solo = state.snapshot_records(offsets_partition_for("solo", 50));
    assert!(solo
        .iter()
        .filter(|r| r.group() == "solo")
        .all(|r| matches!(r, CoordinatorRecord::OffsetCommit { .. })));
}
