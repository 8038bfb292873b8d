//! State-machine tests of KIP-848 consumer groups on a sans-io [`CoordinatorState`].

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::coordinator::{HeartbeatParams, HeartbeatResult};
use super::member::{Assignment, MemberState};
use super::{metadata_hash, ConsumerGroupState, TopicsView};
use crate::group_coordinator::coordinator_state::{CoordinatorState, Reply};
use crate::group_coordinator::GroupSettings;

const GROUP: &str = "g";

fn topic_id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn topics(list: &[(&str, u128, i32)]) -> TopicsView {
    TopicsView {
        by_name: list
            .iter()
            .map(|(name, id, n)| (name.to_string(), (topic_id(*id), *n)))
            .collect(),
    }
}

fn state() -> CoordinatorState {
    let mut state = CoordinatorState::new(0, 1, GroupSettings::default());
    state.set_loaded(true, 0);
    state
}

fn join(member: &str, subscribed: &[&str]) -> HeartbeatParams {
    HeartbeatParams {
        group_id: GROUP.into(),
        member_id: member.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(subscribed.iter().map(|s| s.to_string()).collect()),
        topic_partitions: Some(Vec::new()),
        version: 1,
        ..Default::default()
    }
}

fn beat(member: &str, epoch: i32, owned: &Assignment) -> HeartbeatParams {
    HeartbeatParams {
        group_id: GROUP.into(),
        member_id: member.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        topic_partitions: Some(
            owned
                .iter()
                .map(|(t, ps)| (*t, ps.iter().copied().collect()))
                .collect(),
        ),
        version: 1,
        ..Default::default()
    }
}

fn hb(
    state: &mut CoordinatorState,
    p: HeartbeatParams,
    t: &TopicsView,
    now: i64,
) -> HeartbeatResult {
    match state.consumer_group_heartbeat(p, t, now) {
        Reply::Ready(r) => r,
        Reply::Pending(_) => panic!("heartbeats answer at once"),
    }
}

fn count(a: &Assignment) -> usize {
    a.values().map(|p| p.len()).sum()
}

#[test]
fn members_split_partitions_revoking_before_assigning() {
    let t = topics(&[("t", 1, 6)]);
    let mut s = state();
    let a = hb(&mut s, join("a", &["t"]), &t, 0);
    assert_eq!(a.error, None);
    assert_eq!(a.member_epoch, 1);
    let a_owned = a.assignment.clone().unwrap();
    assert_eq!(count(&a_owned), 6);
    assert_eq!(a.heartbeat_interval_ms, 5000);

    // b joins: the group epoch rises, b waits for partitions a still owns.
    let b = hb(&mut s, join("b", &["t"]), &t, 10);
    assert_eq!(b.member_epoch, 2);
    assert_eq!(b.assignment.as_ref().map(count), Some(0));
    assert_eq!(
        s.consumer_group(GROUP).unwrap().state(),
        ConsumerGroupState::Reconciling
    );

    // a must revoke three partitions first; its epoch stays 1 until it does.
    let a = hb(&mut s, beat("a", 1, &a_owned), &t, 20);
    assert_eq!(a.error, None);
    assert_eq!(a.member_epoch, 1);
    let a_kept = a.assignment.clone().unwrap();
    assert_eq!(count(&a_kept), 3);
    assert_eq!(
        s.consumer_group(GROUP).unwrap().members["a"].state,
        MemberState::UnrevokedPartitions
    );
    // b still gets nothing while a holds them.
    let b = hb(&mut s, beat("b", 2, &Assignment::new()), &t, 30);
    assert_eq!(b.assignment, None, "nothing changed for b");
    // a reports the revocation: it moves to epoch 2.
    let a = hb(&mut s, beat("a", 1, &a_kept), &t, 40);
    assert_eq!(a.member_epoch, 2);
    // Now b receives the released partitions.
    let b = hb(&mut s, beat("b", 2, &Assignment::new()), &t, 50);
    let b_owned = b.assignment.clone().unwrap();
    assert_eq!(count(&b_owned), 3);
    for (topic, ps) in &b_owned {
        assert!(a_kept[topic].is_disjoint(ps));
    }
    let b = hb(&mut s, beat("b", 2, &b_owned), &t, 60);
    assert_eq!(b.error, None);
    assert_eq!(
        s.consumer_group(GROUP).unwrap().state(),
        ConsumerGroupState::Stable
    );
}

#[test]
fn epochs_and_members_are_checked() {
    let t = topics(&[("t", 1, 2)]);
    let mut s = state();
    let a = hb(&mut s, join("a", &["t"]), &t, 0);
    let owned = a.assignment.unwrap();
    let r = hb(&mut s, beat("nobody", 1, &owned), &t, 1);
    assert_eq!(r.error, Some(ResponseError::UnknownMemberId));
    let r = hb(&mut s, beat("a", 5, &owned), &t, 1);
    assert_eq!(r.error, Some(ResponseError::FencedMemberEpoch));
    let mut other = beat("a", 1, &owned);
    other.group_id = "missing".into();
    let r = hb(&mut s, other, &t, 1);
    assert_eq!(r.error, Some(ResponseError::GroupIdNotFound));
    // Leaving bumps the group epoch and empties the group.
    let mut leave = beat("a", -1, &owned);
    leave.topic_partitions = None;
    let r = hb(&mut s, leave, &t, 2);
    assert_eq!((r.error, r.member_epoch), (None, -1));
    let group = s.consumer_group(GROUP).unwrap();
    assert_eq!(group.state(), ConsumerGroupState::Empty);
    assert_eq!(group.group_epoch, 2);
}

#[test]
fn invalid_requests_are_refused_as_kafka_does() {
    let t = topics(&[("t", 1, 2)]);
    let mut s = state();
    let mut p = join("a", &["t"]);
    p.rebalance_timeout_ms = -1;
    assert_eq!(
        hb(&mut s, p, &t, 0).error,
        Some(ResponseError::InvalidRequest)
    );
    let mut p = join("", &["t"]);
    p.version = 1;
    assert_eq!(
        hb(&mut s, p, &t, 0).error,
        Some(ResponseError::InvalidRequest)
    );
    let mut p = join("a", &["t"]);
    p.subscribed_topic_names = None;
    assert_eq!(
        hb(&mut s, p, &t, 0).error,
        Some(ResponseError::InvalidRequest)
    );
    let mut p = join("a", &["t"]);
    p.server_assignor = Some("sticky".into());
    assert_eq!(
        hb(&mut s, p, &t, 0).error,
        Some(ResponseError::UnsupportedAssignor)
    );
    let mut p = join("a", &[]);
    p.subscribed_topic_regex = Some("(".into());
    assert_eq!(
        hb(&mut s, p, &t, 0).error,
        Some(ResponseError::InvalidRegularExpression)
    );
    // v0 hands out a member id.
    let mut p = join("", &["t"]);
    p.version = 0;
    let r = hb(&mut s, p, &t, 0);
    assert_eq!(r.error, None);
    assert!(!r.member_id.unwrap().is_empty());
}

#[test]
fn group_max_size_is_enforced() {
    let t = topics(&[("t", 1, 2)]);
    let settings = GroupSettings {
        group_consumer_max_size: 1,
        ..GroupSettings::default()
    };
    let mut s = CoordinatorState::new(0, 1, settings);
    s.set_loaded(true, 0);
    assert_eq!(hb(&mut s, join("a", &["t"]), &t, 0).error, None);
    assert_eq!(
        hb(&mut s, join("b", &["t"]), &t, 0).error,
        Some(ResponseError::GroupMaxSizeReached)
    );
}

#[test]
fn static_member_keeps_its_assignment_across_a_restart() {
    let t = topics(&[("t", 1, 4)]);
    let mut s = state();
    let mut p = join("a1", &["t"]);
    p.instance_id = Some("i".into());
    let a = hb(&mut s, p, &t, 0);
    let owned = a.assignment.unwrap();
    let mut p = join("b", &["t"]);
    p.instance_id = Some("j".into());
    hb(&mut s, p, &t, 0);
    let epoch = s.consumer_group(GROUP).unwrap().group_epoch;
    // A second process with the same instance id while a1 is active.
    let mut p = join("a2", &["t"]);
    p.instance_id = Some("i".into());
    assert_eq!(
        hb(&mut s, p.clone(), &t, 1).error,
        Some(ResponseError::UnreleasedInstanceId)
    );
    // a1 leaves temporarily (-2); a2 takes its place without a rebalance.
    let mut leave = beat("a1", -2, &owned);
    leave.instance_id = Some("i".into());
    let r = hb(&mut s, leave, &t, 2);
    assert_eq!((r.error, r.member_epoch), (None, -2));
    let r = hb(&mut s, p, &t, 3);
    assert_eq!(r.error, None);
    let group = s.consumer_group(GROUP).unwrap();
    assert_eq!(
        group.group_epoch, epoch,
        "no rebalance for a returning static member"
    );
    assert!(!group.members.contains_key("a1"));
    assert_eq!(group.target_assignment["a2"].len(), 1);
    // The old member id is fenced.
    let mut old = beat("a1", 1, &owned);
    old.instance_id = Some("i".into());
    assert_eq!(
        hb(&mut s, old, &t, 4).error,
        Some(ResponseError::FencedInstanceId)
    );
}

#[test]
fn expired_sessions_fence_members() {
    let t = topics(&[("t", 1, 2)]);
    let mut s = state();
    hb(&mut s, join("a", &["t"]), &t, 0);
    s.tick(44_000);
    assert!(s.consumer_group(GROUP).unwrap().members.contains_key("a"));
    s.tick(45_001);
    let group = s.consumer_group(GROUP).unwrap();
    assert!(group.members.is_empty());
    assert_eq!(group.group_epoch, 2);
}

#[test]
fn regex_subscription_picks_up_a_topic_created_later() {
    let mut s = state();
    let t1 = topics(&[("orders-eu", 1, 2), ("other", 2, 2)]);
    let mut p = join("a", &[]);
    p.subscribed_topic_names = None;
    p.subscribed_topic_regex = Some("orders-.*".into());
    let a = hb(&mut s, p, &t1, 0);
    let owned = a.assignment.unwrap();
    assert_eq!(owned.keys().copied().collect::<Vec<_>>(), vec![topic_id(1)]);
    let t2 = topics(&[("orders-eu", 1, 2), ("orders-us", 3, 3), ("other", 2, 2)]);
    // Within Kafka's 10 s minimum between refreshes the new topic is not seen yet.
    let early = hb(&mut s, beat("a", a.member_epoch, &owned), &t2, 9_999);
    assert_eq!(early.member_epoch, a.member_epoch);
    let r = hb(&mut s, beat("a", a.member_epoch, &owned), &t2, 10_000);
    assert_eq!(r.member_epoch, a.member_epoch + 1);
    assert_eq!(count(&r.assignment.unwrap()), 5);
}

#[test]
fn regexes_refresh_on_topic_changes_or_after_the_refresh_interval() {
    let settings = GroupSettings {
        group_consumer_regex_refresh_interval_ms: 60_000,
        ..Default::default()
    };
    let mut s = CoordinatorState::new(0, 1, settings);
    s.set_loaded(true, 0);
    let t = topics(&[("orders-eu", 1, 2)]);
    let mut p = join("a", &[]);
    p.subscribed_topic_names = None;
    p.subscribed_topic_regex = Some("orders-.*".into());
    let a = hb(&mut s, p, &t, 0);
    let owned = a.assignment.unwrap();
    let group = |s: &CoordinatorState| s.consumer_group(GROUP).unwrap().resolved_regexes.clone();
    // A second member with a new pattern is resolved at once, inside the 10 s minimum.
    let mut q = join("b", &[]);
    q.subscribed_topic_names = None;
    q.subscribed_topic_regex = Some("nothing-.*".into());
    hb(&mut s, q, &t, 1_000);
    assert!(group(&s).contains_key("nothing-.*"));
    // A topic created at 5 s is seen by the first refresh 10 s after the last one (1 s).
    let t2 = topics(&[("orders-eu", 1, 2), ("orders-us", 3, 1)]);
    let r = hb(&mut s, beat("a", a.member_epoch, &owned), &t2, 5_000);
    assert_eq!(r.error, None);
    assert_eq!(group(&s)["orders-.*"].topics.len(), 1);
    let owned = r.assignment.unwrap_or(owned);
    let r = hb(&mut s, beat("a", r.member_epoch, &owned), &t2, 11_000);
    assert_eq!(r.error, None);
    assert_eq!(group(&s)["orders-.*"].topics.len(), 2);
}

#[test]
fn replay_rebuilds_members_epochs_and_assignments() {
    let t = topics(&[("t", 1, 6)]);
    let mut s = state();
    let a = hb(&mut s, join("a", &["t"]), &t, 0);
    hb(&mut s, join("b", &["t"]), &t, 0);
    hb(&mut s, beat("a", 1, &a.assignment.unwrap()), &t, 0);
    let records = s.take_pending_records();
    let mut replayed = CoordinatorState::new(0, 1, GroupSettings::default());
    for (_, record) in records {
        replayed.replay(record, 0);
    }
    replayed.set_loaded(true, 0);
    let (g1, g2) = (
        s.consumer_group(GROUP).unwrap(),
        replayed.consumer_group(GROUP).unwrap(),
    );
    assert_eq!(g1.group_epoch, g2.group_epoch);
    assert_eq!(g1.assignment_epoch, g2.assignment_epoch);
    assert_eq!(g1.target_assignment, g2.target_assignment);
    for (id, m) in &g1.members {
        let r = &g2.members[id];
        assert_eq!(
            (
                m.member_epoch,
                m.previous_member_epoch,
                m.state,
                &m.assigned_partitions,
                &m.partitions_pending_revocation,
                &m.subscribed_topic_names
            ),
            (
                r.member_epoch,
                r.previous_member_epoch,
                r.state,
                &r.assigned_partitions,
                &r.partitions_pending_revocation,
                &r.subscribed_topic_names
            )
        );
    }
    // The snapshot (what compaction keeps) replays to the same group.
    let mut from_snapshot = CoordinatorState::new(0, 1, GroupSettings::default());
    let partition = crate::group_coordinator::offsets_partition_for(GROUP, 50);
    for record in s.snapshot_records(partition) {
        from_snapshot.replay(record, 0);
    }
    let g3 = from_snapshot.consumer_group(GROUP).unwrap();
    assert_eq!(g3.target_assignment, g1.target_assignment);
    assert_eq!(g3.members.len(), 2);
}

#[test]
fn offset_commits_check_the_member_epoch() {
    let t = topics(&[("t", 1, 2)]);
    let mut s = state();
    let a = hb(&mut s, join("a", &["t"]), &t, 0);
    assert_eq!(
        s.validate_consumer_offset_commit(GROUP, a.member_epoch, "a", false, 9),
        Some(Ok(()))
    );
    assert_eq!(
        s.validate_consumer_offset_commit(GROUP, a.member_epoch - 1, "a", false, 9),
        Some(Err(ResponseError::StaleMemberEpoch))
    );
    assert_eq!(
        s.validate_consumer_offset_commit(GROUP, a.member_epoch, "x", false, 9),
        Some(Err(ResponseError::UnknownMemberId))
    );
    assert_eq!(
        s.validate_consumer_offset_commit("classic", 1, "a", false, 9),
        None
    );
    assert_eq!(
        s.validate_consumer_offset_fetch(GROUP, Some("a"), a.member_epoch + 1),
        Some(ResponseError::StaleMemberEpoch)
    );
    assert_eq!(s.validate_consumer_offset_fetch(GROUP, None, -1), None);
}

#[test]
fn a_group_id_is_either_classic_or_consumer() {
    let t = topics(&[("t", 1, 2)]);
    let mut s = state();
    hb(&mut s, join("a", &["t"]), &t, 0);
    // DeleteGroups refuses a consumer group with members.
    assert_eq!(s.delete_group(GROUP, 1), Some(ResponseError::NonEmptyGroup));
    let mut leave = beat("a", -1, &Assignment::new());
    leave.topic_partitions = None;
    hb(&mut s, leave, &t, 2);
    assert_eq!(s.delete_group(GROUP, 3), None);
    assert!(s.consumer_group(GROUP).is_none());
}

/// The values Kafka 4.1.2 wrote in the `ConsumerGroupMetadataValue` records of
/// crates/ringtail-protocol/tests/fixtures/kafka-4.1.2-consumer-group (`dump-log-segments.txt`
/// offsets 1 and 8): topics `cap-a` (2 partitions) and `cap-b` (1) on a broker without a rack.
#[test]
fn metadata_hash_is_kafkas() {
    let cap_a = Uuid::from_u128(0x91ce58d38426486fac8c38746c1e7ad2); // kc5Y04QmSG-sjDh0bB560g
    let cap_b = Uuid::from_u128(0xdc318b88aaad4d68be316f49ea56c623); // 3DGLiKqtTWi-MW9J6lbGIw
    let view = TopicsView {
        by_name: [
            ("cap-a".to_string(), (cap_a, 2)),
            ("cap-b".to_string(), (cap_b, 1)),
        ]
        .into_iter()
        .collect(),
    };
    let subscribed = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
    assert_eq!(
        metadata_hash(&subscribed(&["cap-a"]), &view),
        7_994_317_240_276_783_047
    );
    assert_eq!(
        metadata_hash(&subscribed(&["cap-a", "cap-b"]), &view),
        -6_460_888_620_934_094_358
    );
    // Topics that do not exist are left out; none at all hashes to 0, as Kafka's empty map.
    assert_eq!(
        metadata_hash(&subscribed(&["cap-a", "missing"]), &view),
        7_994_317_240_276_783_047
    );
    assert_eq!(metadata_hash(&subscribed(&["missing"]), &view), 0);
}
