//! A KIP-848 consumer group member (Kafka's `ConsumerGroupMember`): its subscription, its
//! member epoch and its current assignment as reconciliation left it.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// Partitions by topic id, sorted: the shape of every KIP-848 assignment.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// Kafka's `MemberState` (persisted as `state` of ConsumerGroupCurrentMemberAssignmentValue).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// The member owns its whole target assignment at the assignment epoch.
    Stable,
    /// The member must first give up `partitions_pending_revocation`.
    UnrevokedPartitions,
    /// Partitions of the target assignment are still held by other members.
    UnreleasedPartitions,
    /// Kafka's UNKNOWN (127): a state from a newer version.
    Unknown,
}

impl MemberState {
    /// The persisted byte (Kafka's `MemberState.value()`).
    pub fn value(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
            MemberState::Unknown => 127,
        }
    }

    /// The state of a persisted byte; unknown bytes are [`MemberState::Unknown`].
    pub fn from_value(value: i8) -> MemberState {
        match value {
            0 => MemberState::Stable,
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            _ => MemberState::Unknown,
        }
    }
}

/// One member of a consumer group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerGroupMember {
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    /// RE2-syntax regular expression (ConsumerGroupHeartbeat v1).
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    /// 0 before the first assignment; -2 after a static member's temporary leave.
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub assigned_partitions: Assignment,
    pub partitions_pending_revocation: Assignment,
    /// Session expiry, milliseconds since the Unix epoch (not persisted).
    pub session_deadline_ms: Option<i64>,
    /// Deadline to revoke `partitions_pending_revocation` (not persisted).
    pub rebalance_deadline_ms: Option<i64>,
}

impl ConsumerGroupMember {
    /// A member that has not joined yet (epoch 0, nothing assigned).
    pub fn new(member_id: String) -> ConsumerGroupMember {
        ConsumerGroupMember {
            member_id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            subscribed_topic_names: Vec::new(),
            subscribed_topic_regex: None,
            rebalance_timeout_ms: -1,
            server_assignor: None,
            member_epoch: 0,
            previous_member_epoch: -1,
            state: MemberState::Stable,
            assigned_partitions: Assignment::new(),
            partitions_pending_revocation: Assignment::new(),
            session_deadline_ms: None,
            rebalance_deadline_ms: None,
        }
    }

    /// True when `(topic_id, partition)` is assigned or pending revocation.
    pub fn holds(&self, topic_id: &Uuid, partition: i32) -> bool {
        self.assigned_partitions
            .get(topic_id)
            .is_some_and(|ps| ps.contains(&partition))
            || self
                .partitions_pending_revocation
                .get(topic_id)
                .is_some_and(|ps| ps.contains(&partition))
    }
}

/// `a` without empty topic entries, for comparisons.
pub fn normalized(a: &Assignment) -> Assignment {
    a.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(t, ps)| (*t, ps.clone()))
        .collect()
}

/// True when every partition of `owned` is in `assigned` (Kafka's `isSubset`).
pub fn is_subset(owned: &Assignment, assigned: &Assignment) -> bool {
    owned.iter().all(|(topic_id, partitions)| {
        partitions.is_empty()
            || assigned
                .get(topic_id)
                .is_some_and(|a| partitions.is_subset(a))
    })
}
