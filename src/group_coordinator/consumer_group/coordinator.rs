//! ConsumerGroupHeartbeat, ConsumerGroupDescribe, expiry and replay of consumer groups on the
//! shard's [`CoordinatorState`] (Kafka's `GroupMetadataManager.consumerGroupHeartbeat`,
//! `consumerGroupLeave`, `consumerGroupDescribe`, the session and rebalance timers, and the
//! `replay` of the `ConsumerGroup*` records).

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::member::{self, Assignment, ConsumerGroupMember, MemberState};
use super::{
    assignor, metadata_hash, ConsumerGroup, ConsumerGroupState, TopicsView,
    LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH,
};
use crate::group_coordinator::coordinator_state::{CoordinatorState, GroupApi, Reply};
use crate::group_coordinator::group::GroupState;
use crate::group_coordinator::offsets_partition_for;
use crate::group_coordinator::records::{
    ConsumerGroupCurrentMemberAssignmentValue, ConsumerGroupMemberMetadataValue,
    ConsumerGroupMetadataValue, ConsumerGroupRegularExpressionValue,
    ConsumerGroupTargetAssignmentMemberValue, ConsumerGroupTargetAssignmentMetadataValue,
    CoordinatorRecord, TopicPartitions,
};
use crate::group_coordinator::GroupSettings;

/// ConsumerGroupHeartbeat v0-1, version differences resolved.
#[derive(Clone, Debug, Default)]
pub struct HeartbeatParams {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1 when not sent (only the first request must carry it).
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// What the member owns; `None` when unchanged since its last heartbeat.
    pub topic_partitions: Option<Vec<(Uuid, Vec<i32>)>>,
    pub client_id: String,
    pub client_host: String,
    /// The request version (v1+: KIP-1082 client-generated member ids).
    pub version: i16,
}

/// A ConsumerGroupHeartbeat answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeartbeatResult {
    pub error: Option<ResponseError>,
    pub error_message: Option<String>,
    pub member_id: Option<String>,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's assigned partitions, when it must (re)learn them.
    pub assignment: Option<Assignment>,
}

impl HeartbeatResult {
    fn error(error: ResponseError, message: impl Into<String>) -> HeartbeatResult {
        HeartbeatResult {
            error: Some(error),
            error_message: Some(message.into()),
            ..Default::default()
        }
    }
}

/// A consumer group as ConsumerGroupDescribe shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsumerGroupDescription {
    pub state: ConsumerGroupState,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor_name: String,
    /// (member, current assignment, target assignment).
    pub members: Vec<(ConsumerGroupMember, Assignment, Assignment)>,
}

/// A consumer group as ListGroups shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ListedConsumerGroup {
    pub group_id: String,
    pub state: ConsumerGroupState,
}

fn wire_partitions(a: &Assignment) -> Vec<TopicPartitions> {
    a.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(topic_id, ps)| TopicPartitions {
            topic_id: *topic_id,
            partitions: ps.iter().copied().collect(),
        })
        .collect()
}

fn from_wire(parts: &[TopicPartitions]) -> Assignment {
    let mut a = Assignment::new();
    for tp in parts {
        a.entry(tp.topic_id)
            .or_default()
            .extend(tp.partitions.iter().copied());
    }
    member::normalized(&a)
}

/// Where a group's records go and how they are made.
struct Sink<'a> {
    settings: &'a GroupSettings,
    records: &'a mut Vec<(i32, CoordinatorRecord)>,
}

impl Sink<'_> {
    fn push(&mut self, group_id: &str, record: CoordinatorRecord) {
        let partition = offsets_partition_for(group_id, self.settings.offsets_topic_num_partitions);
        self.records.push((partition, record));
    }

    fn group_epoch(&mut self, group: &ConsumerGroup) {
        self.push(
            &group.group_id,
            CoordinatorRecord::ConsumerGroupMetadata {
                group: group.group_id.clone(),
                value: Some(ConsumerGroupMetadataValue {
                    epoch: group.group_epoch,
                    metadata_hash: group.metadata_hash,
                }),
            },
        );
    }

    fn member_metadata(&mut self, group_id: &str, m: &ConsumerGroupMember) {
        self.push(
            group_id,
            CoordinatorRecord::ConsumerGroupMemberMetadata {
                group: group_id.to_owned(),
                member_id: m.member_id.clone(),
                value: Some(ConsumerGroupMemberMetadataValue {
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_topic_names.clone(),
                    subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    server_assignor: m.server_assignor.clone(),
                    // Only members of the classic protocol inside a consumer group (KIP-848's
                    // online migration, not served here) carry it.
                    classic_member_metadata: None,
                }),
            },
        );
    }

    fn current_assignment(&mut self, group_id: &str, m: &ConsumerGroupMember) {
        self.push(
            group_id,
            CoordinatorRecord::ConsumerGroupCurrentMemberAssignment {
                group: group_id.to_owned(),
                member_id: m.member_id.clone(),
                value: Some(ConsumerGroupCurrentMemberAssignmentValue {
                    member_epoch: m.member_epoch,
                    previous_member_epoch: m.previous_member_epoch,
                    state: m.state.value(),
                    assigned_partitions: wire_partitions(&m.assigned_partitions),
                    partitions_pending_revocation: wire_partitions(
                        &m.partitions_pending_revocation,
                    ),
                }),
            },
        );
    }

    fn target_member(&mut self, group_id: &str, member_id: &str, a: Option<&Assignment>) {
        self.push(
            group_id,
            CoordinatorRecord::ConsumerGroupTargetAssignmentMember {
                group: group_id.to_owned(),
                member_id: member_id.to_owned(),
                value: a.map(|a| ConsumerGroupTargetAssignmentMemberValue {
                    topic_partitions: wire_partitions(a),
                }),
            },
        );
    }

    fn target_metadata(&mut self, group: &ConsumerGroup) {
        self.push(
            &group.group_id,
            CoordinatorRecord::ConsumerGroupTargetAssignmentMetadata {
                group: group.group_id.clone(),
                value: Some(ConsumerGroupTargetAssignmentMetadataValue {
                    assignment_epoch: group.assignment_epoch,
                }),
            },
        );
    }

    fn regex(&mut self, group: &ConsumerGroup, pattern: &str) {
        let value =
            group
                .resolved_regexes
                .get(pattern)
                .map(|r| ConsumerGroupRegularExpressionValue {
                    topics: r.topics.iter().cloned().collect(),
                    version: r.version,
                    timestamp: r.timestamp,
                });
        self.push(
            &group.group_id,
            CoordinatorRecord::ConsumerGroupRegularExpression {
                group: group.group_id.clone(),
                regex: pattern.to_owned(),
                value,
            },
        );
    }

    /// Kafka's `removeMember` tombstones: current assignment, target assignment, subscription.
    fn member_tombstones(&mut self, group_id: &str, member_id: &str) {
        self.push(
            group_id,
            CoordinatorRecord::ConsumerGroupCurrentMemberAssignment {
                group: group_id.to_owned(),
                member_id: member_id.to_owned(),
                value: None,
            },
        );
        self.target_member(group_id, member_id, None);
        self.push(
            group_id,
            CoordinatorRecord::ConsumerGroupMemberMetadata {
                group: group_id.to_owned(),
                member_id: member_id.to_owned(),
                value: None,
            },
        );
    }

    /// Every tombstone of a deleted group (Kafka's `createGroupTombstoneRecords`).
    fn group_tombstones(&mut self, group: &ConsumerGroup) {
        let gid = group.group_id.clone();
        for member_id in group.members.keys() {
            self.member_tombstones(&gid, member_id);
        }
        for member_id in group.target_assignment.keys() {
            if !group.members.contains_key(member_id) {
                self.target_member(&gid, member_id, None);
            }
        }
        self.push(
            &gid,
            CoordinatorRecord::ConsumerGroupTargetAssignmentMetadata {
                group: gid.clone(),
                value: None,
            },
        );
        for pattern in group.resolved_regexes.keys() {
            self.push(
                &gid,
                CoordinatorRecord::ConsumerGroupRegularExpression {
                    group: gid.clone(),
                    regex: pattern.clone(),
                    value: None,
                },
            );
        }
        self.push(
            &gid,
            CoordinatorRecord::ConsumerGroupMetadata {
                group: gid.clone(),
                value: None,
            },
        );
    }
}

/// Kafka's `throwIfConsumerGroupHeartbeatRequestIsInvalid`.
fn validate(p: &HeartbeatParams, assignors: &[String]) -> Result<(), HeartbeatResult> {
    let invalid = |m: &str| Err(HeartbeatResult::error(ResponseError::InvalidRequest, m));
    if (p.version >= 1 || p.member_epoch > 0 || p.member_epoch == LEAVE_GROUP_MEMBER_EPOCH)
        && p.member_id.is_empty()
    {
        return invalid("MemberId can't be empty.");
    }
    if p.group_id.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if p.instance_id.as_deref() == Some("") {
        return invalid("InstanceId can't be empty.");
    }
    if p.rack_id.as_deref() == Some("") {
        return invalid("RackId can't be empty.");
    }
    if p.member_epoch == 0 {
        if p.rebalance_timeout_ms == -1 {
            return invalid("RebalanceTimeoutMs must be provided in first request.");
        }
        if p.topic_partitions.as_ref().is_none_or(|t| !t.is_empty()) {
            return invalid("TopicPartitions must be empty when (re-)joining.");
        }
        if p.subscribed_topic_names.is_none() && p.subscribed_topic_regex.is_none() {
            return invalid(
                "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
            );
        }
    } else if p.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
        if p.instance_id.is_none() {
            return invalid("InstanceId can't be null.");
        }
    } else if p.member_epoch < LEAVE_GROUP_STATIC_MEMBER_EPOCH {
        return invalid("MemberEpoch is invalid.");
    }
    if let Some(pattern) = &p.subscribed_topic_regex {
        if let Err(e) = ConsumerGroup::compile(pattern) {
            return Err(HeartbeatResult::error(
                ResponseError::InvalidRegularExpression,
                format!("SubscribedTopicRegex `{pattern}` is not a valid regular expression: {e}."),
            ));
        }
    }
    if let Some(name) = &p.server_assignor {
        if !assignors.iter().any(|a| a == name) {
            return Err(HeartbeatResult::error(
                ResponseError::UnsupportedAssignor,
                format!(
                    "ServerAssignor {name} is not supported. Supported assignors: {}.",
                    assignors.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn owned_assignment(p: &HeartbeatParams) -> Option<Assignment> {
    p.topic_partitions.as_ref().map(|tps| {
        let mut a = Assignment::new();
        for (topic_id, ps) in tps {
            a.entry(*topic_id).or_default().extend(ps.iter().copied());
        }
        member::normalized(&a)
    })
}

impl CoordinatorState {
    /// True when `group_id` is a consumer (KIP-848) group on this shard.
    pub fn is_consumer_group(&self, group_id: &str) -> bool {
        self.consumer_groups.contains_key(group_id)
    }

    pub fn consumer_group(&self, group_id: &str) -> Option<&ConsumerGroup> {
        self.consumer_groups.get(group_id)
    }

    /// ConsumerGroupHeartbeat (Kafka's `GroupMetadataManager.consumerGroupHeartbeat`):
    /// join with epoch 0, heartbeat, leave with -1 (static members: -2).
    pub fn consumer_group_heartbeat(
        &mut self,
        p: HeartbeatParams,
        topics: &TopicsView,
        now_ms: i64,
    ) -> Reply<HeartbeatResult> {
        let (group, member, sent_epoch) = (p.group_id.clone(), p.member_id.clone(), p.member_epoch);
        let result = self
            .heartbeat_inner(p, topics, now_ms)
            .unwrap_or_else(|e| e);
        tracing::debug!(
            %group,
            %member,
            sent_epoch,
            member_epoch = result.member_epoch,
            error = ?result.error,
            assignment = ?result.assignment.as_ref().map(|a| a.values().map(|p| p.len()).sum::<usize>()),
            "consumer group heartbeat"
        );
        Reply::Ready(result)
    }

    fn heartbeat_inner(
        &mut self,
        p: HeartbeatParams,
        topics: &TopicsView,
        now_ms: i64,
    ) -> Result<HeartbeatResult, HeartbeatResult> {
        let assignors = self.settings.group_consumer_assignors.clone();
        validate(&p, &assignors)?;
        if let Some(error) = self.group_status(&p.group_id, GroupApi::Heartbeat) {
            return Err(HeartbeatResult {
                error: Some(error),
                ..Default::default()
            });
        }
        if p.member_epoch == LEAVE_GROUP_MEMBER_EPOCH
            || p.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH
        {
            return self.consumer_group_leave(&p, topics, now_ms);
        }
        let settings = &self.settings;
        let mut sink = Sink {
            settings,
            records: &mut self.pending_records,
        };
        // A group id is either classic or consumer (Kafka's GroupType); an Empty classic group
        // becomes a consumer group, its offsets stay.
        if !self.consumer_groups.contains_key(&p.group_id) {
            if let Some(classic) = self.groups.get_mut(&p.group_id) {
                let is_empty = classic.members.is_empty()
                    && matches!(classic.state, GroupState::Empty | GroupState::Dead);
                if !is_empty {
                    return Err(HeartbeatResult::error(
                        ResponseError::GroupIdNotFound,
                        format!("Group {} is not a consumer group.", p.group_id),
                    ));
                }
                if p.member_epoch == 0
                    && (classic.protocol_type.is_some() || classic.generation_id > 0)
                {
                    sink.push(
                        &p.group_id,
                        CoordinatorRecord::GroupMetadata {
                            group: p.group_id.clone(),
                            value: None,
                        },
                    );
                    let offsets = std::mem::take(&mut classic.offsets);
                    *classic = crate::group_coordinator::group::GroupMetadata::new(
                        p.group_id.clone(),
                        now_ms,
                    );
                    classic.offsets = offsets;
                }
            }
            if p.member_epoch != 0 {
                return Err(HeartbeatResult::error(
                    ResponseError::GroupIdNotFound,
                    format!("Consumer group {} not found.", p.group_id),
                ));
            }
            self.consumer_groups
                .insert(p.group_id.clone(), ConsumerGroup::new(p.group_id.clone()));
        }
        let group = self
            .consumer_groups
            .get_mut(&p.group_id)
            .expect("inserted above");
        let owned = owned_assignment(&p);

        // Find or create the member.
        let mut replaced_static: Option<ConsumerGroupMember> = None;
        let existing: Option<ConsumerGroupMember> = if p.member_epoch == 0 {
            match p
                .instance_id
                .as_deref()
                .and_then(|i| group.static_member(i))
            {
                Some(old) if old.member_id == p.member_id => Some(old.clone()),
                Some(old) if old.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH => {
                    return Err(HeartbeatResult::error(
                        ResponseError::UnreleasedInstanceId,
                        format!(
                            "Static member {} with instance id {} cannot join the group since \
                             the instance id is still used by member {}.",
                            p.member_id,
                            p.instance_id.as_deref().unwrap_or(""),
                            old.member_id
                        ),
                    ));
                }
                Some(old) => {
                    replaced_static = Some(old.clone());
                    None
                }
                None => group.members.get(&p.member_id).cloned(),
            }
        } else {
            let Some(m) = group.members.get(&p.member_id) else {
                if let Some(instance) = p.instance_id.as_deref() {
                    if group.static_member(instance).is_some() {
                        return Err(HeartbeatResult::error(
                            ResponseError::FencedInstanceId,
                            format!(
                                "Static member {} with instance id {instance} was fenced by \
                                 another member.",
                                p.member_id
                            ),
                        ));
                    }
                }
                return Err(HeartbeatResult::error(
                    ResponseError::UnknownMemberId,
                    format!(
                        "Member {} is not a member of group {}.",
                        p.member_id, p.group_id
                    ),
                ));
            };
            if let Some(instance) = p.instance_id.as_deref() {
                if m.instance_id.as_deref() != Some(instance) {
                    return Err(HeartbeatResult::error(
                        ResponseError::FencedInstanceId,
                        format!(
                            "Static member {} with instance id {instance} was fenced by \
                             another member.",
                            p.member_id
                        ),
                    ));
                }
            }
            // Kafka's `throwIfMemberEpochIsInvalid`.
            if p.member_epoch > m.member_epoch {
                return Err(HeartbeatResult::error(
                    ResponseError::FencedMemberEpoch,
                    format!(
                        "The consumer group member has a greater member epoch ({}) than the one \
                         known by the group coordinator ({}). The member must abandon all its \
                         partitions and rejoin.",
                        p.member_epoch, m.member_epoch
                    ),
                ));
            }
            if p.member_epoch < m.member_epoch
                && (p.member_epoch != m.previous_member_epoch
                    || !owned
                        .as_ref()
                        .is_some_and(|o| member::is_subset(o, &m.assigned_partitions)))
            {
                return Err(HeartbeatResult::error(
                    ResponseError::FencedMemberEpoch,
                    format!(
                        "The consumer group member has a smaller member epoch ({}) than the one \
                         known by the group coordinator ({}). The member must abandon all its \
                         partitions and rejoin.",
                        p.member_epoch, m.member_epoch
                    ),
                ));
            }
            Some(m.clone())
        };
        let is_new = existing.is_none();
        if is_new
            && replaced_static.is_none()
            && group.members.len() >= settings.group_consumer_max_size
        {
            return Err(HeartbeatResult::error(
                ResponseError::GroupMaxSizeReached,
                format!(
                    "The consumer group has reached its maximum capacity of {} members.",
                    settings.group_consumer_max_size
                ),
            ));
        }
        let member_id = if p.member_id.is_empty() {
            Uuid::new_v4().to_string()
        } else {
            p.member_id.clone()
        };
        let mut m = match (&existing, &replaced_static) {
            (Some(m), _) => m.clone(),
            (None, Some(old)) => {
                // Kafka's `replaceStaticMember`: the new member id takes over the old member's
                // assignment without a rebalance.
                let target = group.target_assignment.remove(&old.member_id);
                group.members.remove(&old.member_id);
                sink.member_tombstones(&p.group_id, &old.member_id);
                if let Some(target) = target {
                    sink.target_member(&p.group_id, &member_id, Some(&target));
                    group.target_assignment.insert(member_id.clone(), target);
                }
                ConsumerGroupMember {
                    member_id: member_id.clone(),
                    member_epoch: 0,
                    previous_member_epoch: -1,
                    ..old.clone()
                }
            }
            (None, None) => ConsumerGroupMember::new(member_id.clone()),
        };
        if p.member_epoch == 0 && existing.is_some() {
            // A rejoin of a known member: it owns nothing any more.
            m.member_epoch = 0;
            m.state = MemberState::Stable;
            m.assigned_partitions.clear();
            m.partitions_pending_revocation.clear();
        }
        // A replaced static member's successor compares with the member it replaces (Kafka's
        // `replaceStaticMember`: same subscription, no group epoch bump).
        let before = existing
            .clone()
            .or_else(|| replaced_static.clone())
            .unwrap_or_else(|| ConsumerGroupMember::new(member_id.clone()));
        // The subscription as sent (null fields keep their value).
        if let Some(instance) = &p.instance_id {
            m.instance_id = Some(instance.clone());
        }
        if let Some(rack) = &p.rack_id {
            m.rack_id = Some(rack.clone());
        }
        if p.rebalance_timeout_ms != -1 {
            m.rebalance_timeout_ms = p.rebalance_timeout_ms;
        }
        if let Some(names) = &p.subscribed_topic_names {
            m.subscribed_topic_names = names.clone();
            if p.version >= 1 && p.subscribed_topic_regex.is_none() && p.member_epoch == 0 {
                m.subscribed_topic_regex = None;
            }
        }
        if let Some(pattern) = &p.subscribed_topic_regex {
            m.subscribed_topic_regex = (!pattern.is_empty()).then(|| pattern.clone());
            if p.subscribed_topic_names.is_none() {
                m.subscribed_topic_names.clear();
            }
        }
        if p.server_assignor.is_some() {
            m.server_assignor = p.server_assignor.clone();
        }
        m.client_id = p.client_id.clone();
        m.client_host = p.client_host.clone();
        let subscription_changed = (is_new && replaced_static.is_none())
            || before.subscribed_topic_names != m.subscribed_topic_names
            || before.subscribed_topic_regex != m.subscribed_topic_regex
            || before.server_assignor != m.server_assignor;
        let metadata_changed = subscription_changed
            || before.instance_id != m.instance_id
            || before.rack_id != m.rack_id
            || before.rebalance_timeout_ms != m.rebalance_timeout_ms
            || before.client_id != m.client_id
            || before.client_host != m.client_host;
        if metadata_changed || replaced_static.is_some() {
            sink.member_metadata(&p.group_id, &m);
        }
        group.members.insert(member_id.clone(), m);

        // Regexes and topic metadata: a change bumps the group epoch.
        let refresh_interval_ms = i64::from(settings.group_consumer_regex_refresh_interval_ms);
        for pattern in group.refresh_regexes(topics, now_ms, refresh_interval_ms) {
            sink.regex(group, &pattern);
        }
        let hash = metadata_hash(&group.subscribed_topic_names(), topics);
        if subscription_changed || hash != group.metadata_hash {
            group.group_epoch += 1;
            group.metadata_hash = hash;
            sink.group_epoch(group);
        }
        if group.group_epoch > group.assignment_epoch {
            let default = assignors
                .first()
                .map(String::as_str)
                .unwrap_or(assignor::UNIFORM);
            for id in group.compute_target_assignment(topics, default) {
                let target = group.target_assignment.get(&id).cloned();
                sink.target_member(&p.group_id, &id, target.as_ref());
            }
            sink.target_metadata(group);
        }

        // Reconcile the member towards its target.
        let owners = group.partition_owners();
        let current = group.members[&member_id].clone();
        let target = group
            .target_assignment
            .get(&member_id)
            .cloned()
            .unwrap_or_default();
        let mut next = super::reconcile::reconcile(
            &current,
            &target,
            group.assignment_epoch,
            owned.as_ref(),
            |topic_id, partition| {
                owners
                    .get(&(*topic_id, partition))
                    .is_some_and(|owner| *owner != member_id)
            },
        );
        next.session_deadline_ms = Some(now_ms + settings.group_consumer_session_timeout_ms as i64);
        if next.state == MemberState::UnrevokedPartitions {
            if next.rebalance_deadline_ms.is_none()
                || current.state != MemberState::UnrevokedPartitions
            {
                next.rebalance_deadline_ms = Some(now_ms + next.rebalance_timeout_ms.max(0) as i64);
            }
        } else {
            next.rebalance_deadline_ms = None;
        }
        let assignment_changed = next.member_epoch != current.member_epoch
            || next.previous_member_epoch != current.previous_member_epoch
            || next.state != current.state
            || next.assigned_partitions != current.assigned_partitions
            || next.partitions_pending_revocation != current.partitions_pending_revocation;
        if assignment_changed || replaced_static.is_some() {
            sink.current_assignment(&p.group_id, &next);
        }
        let is_full_request = p.rebalance_timeout_ms != -1
            && (p.subscribed_topic_names.is_some() || p.subscribed_topic_regex.is_some())
            && p.topic_partitions.is_some();
        let send_assignment = p.member_epoch == 0
            || is_full_request
            || next.assigned_partitions != before.assigned_partitions
            || next.assigned_partitions != current.assigned_partitions;
        let result = HeartbeatResult {
            error: None,
            error_message: None,
            member_id: Some(member_id.clone()),
            member_epoch: next.member_epoch,
            heartbeat_interval_ms: settings.group_consumer_heartbeat_interval_ms,
            assignment: send_assignment.then(|| next.assigned_partitions.clone()),
        };
        debug_assert!(
            next.assigned_partitions
                .iter()
                .all(|(t, ps)| ps.iter().all(|p| owners
                    .get(&(*t, *p))
                    .is_none_or(|owner| *owner == member_id))),
            "invariant: a consumer group partition is held by at most one member"
        );
        group.members.insert(member_id, next);
        Ok(result)
    }

    /// Kafka's `consumerGroupLeave`: -1 removes the member, -2 keeps a static member's place
    /// (and assignment) until its session expires.
    fn consumer_group_leave(
        &mut self,
        p: &HeartbeatParams,
        topics: &TopicsView,
        now_ms: i64,
    ) -> Result<HeartbeatResult, HeartbeatResult> {
        let _ = now_ms;
        let Some(group) = self.consumer_groups.get_mut(&p.group_id) else {
            return Err(HeartbeatResult::error(
                ResponseError::GroupIdNotFound,
                format!("Consumer group {} not found.", p.group_id),
            ));
        };
        let member_id = match p.instance_id.as_deref() {
            Some(instance) => match group.static_member(instance) {
                None => {
                    return Err(HeartbeatResult::error(
                        ResponseError::UnknownMemberId,
                        format!("Instance id {instance} is unknown."),
                    ))
                }
                Some(m) if m.member_id != p.member_id => {
                    return Err(HeartbeatResult::error(
                        ResponseError::FencedInstanceId,
                        format!(
                            "Static member {} with instance id {instance} was fenced by member {}.",
                            p.member_id, m.member_id
                        ),
                    ))
                }
                Some(m) => m.member_id.clone(),
            },
            None => {
                if !group.members.contains_key(&p.member_id) {
                    return Err(HeartbeatResult::error(
                        ResponseError::UnknownMemberId,
                        format!(
                            "Member {} is not a member of group {}.",
                            p.member_id, p.group_id
                        ),
                    ));
                }
                p.member_id.clone()
            }
        };
        let mut sink = Sink {
            settings: &self.settings,
            records: &mut self.pending_records,
        };
        if p.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            let m = group.members.get_mut(&member_id).expect("found above");
            m.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
            m.rebalance_deadline_ms = None;
            let m = m.clone();
            sink.current_assignment(&p.group_id, &m);
        } else {
            fence_member(group, &member_id, topics_hash_fn(topics), &mut sink);
        }
        Ok(HeartbeatResult {
            member_id: Some(member_id),
            member_epoch: p.member_epoch,
            heartbeat_interval_ms: 0,
            ..Default::default()
        })
    }

    /// Session and rebalance timeouts of consumer group members (Kafka's
    /// `scheduleConsumerGroupSessionTimeout` / `scheduleConsumerGroupRebalanceTimeout`).
    pub(in crate::group_coordinator) fn tick_consumer_groups(&mut self, now_ms: i64) {
        let mut sink = Sink {
            settings: &self.settings,
            records: &mut self.pending_records,
        };
        for group in self.consumer_groups.values_mut() {
            let expired: Vec<(String, &'static str)> = group
                .members
                .values()
                .filter_map(|m| {
                    if m.session_deadline_ms.is_some_and(|d| d <= now_ms) {
                        Some((m.member_id.clone(), "session timeout"))
                    } else if m.rebalance_deadline_ms.is_some_and(|d| d <= now_ms) {
                        Some((m.member_id.clone(), "rebalance timeout"))
                    } else {
                        None
                    }
                })
                .collect();
            for (member_id, why) in expired {
                tracing::info!(group = %group.group_id, member = %member_id, "consumer group member fenced: {why} expired");
                // The metadata hash is recomputed at the next heartbeat against live metadata.
                let hash = group.metadata_hash;
                fence_member(group, &member_id, move |_| hash, &mut sink);
            }
        }
    }

    /// After replay: every member's session starts now (Kafka schedules the session timeouts
    /// of loaded members).
    pub(in crate::group_coordinator) fn consumer_groups_loaded(&mut self, now_ms: i64) {
        let session = self.settings.group_consumer_session_timeout_ms as i64;
        for group in self.consumer_groups.values_mut() {
            for m in group.members.values_mut() {
                m.session_deadline_ms = Some(now_ms + session);
                m.rebalance_deadline_ms = (m.state == MemberState::UnrevokedPartitions)
                    .then(|| now_ms + m.rebalance_timeout_ms.max(0) as i64);
            }
        }
    }

    /// Applies one replayed `ConsumerGroup*` record; other records are ignored here.
    pub(in crate::group_coordinator) fn replay_consumer_group(
        &mut self,
        record: CoordinatorRecord,
    ) {
        let groups = &mut self.consumer_groups;
        match record {
            CoordinatorRecord::ConsumerGroupMetadata { group, value } => match value {
                Some(v) => {
                    let g = groups
                        .entry(group.clone())
                        .or_insert_with(|| ConsumerGroup::new(group));
                    g.group_epoch = v.epoch;
                    g.metadata_hash = v.metadata_hash;
                }
                None => {
                    groups.remove(&group);
                }
            },
            CoordinatorRecord::ConsumerGroupMemberMetadata {
                group,
                member_id,
                value,
            } => match value {
                Some(v) => {
                    let g = groups
                        .entry(group.clone())
                        .or_insert_with(|| ConsumerGroup::new(group));
                    let m = g
                        .members
                        .entry(member_id.clone())
                        .or_insert_with(|| ConsumerGroupMember::new(member_id));
                    m.instance_id = v.instance_id;
                    m.rack_id = v.rack_id;
                    m.client_id = v.client_id;
                    m.client_host = v.client_host;
                    m.subscribed_topic_names = v.subscribed_topic_names;
                    m.subscribed_topic_regex = v.subscribed_topic_regex;
                    m.rebalance_timeout_ms = v.rebalance_timeout_ms;
                    m.server_assignor = v.server_assignor;
                }
                None => {
                    if let Some(g) = groups.get_mut(&group) {
                        g.members.remove(&member_id);
                    }
                }
            },
            CoordinatorRecord::ConsumerGroupCurrentMemberAssignment {
                group,
                member_id,
                value,
            } => match value {
                Some(v) => {
                    let g = groups
                        .entry(group.clone())
                        .or_insert_with(|| ConsumerGroup::new(group));
                    let m = g
                        .members
                        .entry(member_id.clone())
                        .or_insert_with(|| ConsumerGroupMember::new(member_id));
                    m.member_epoch = v.member_epoch;
                    m.previous_member_epoch = v.previous_member_epoch;
                    m.state = MemberState::from_value(v.state);
                    m.assigned_partitions = from_wire(&v.assigned_partitions);
                    m.partitions_pending_revocation = from_wire(&v.partitions_pending_revocation);
                }
                None => {
                    if let Some(m) = groups
                        .get_mut(&group)
                        .and_then(|g| g.members.get_mut(&member_id))
                    {
                        m.member_epoch = 0;
                        m.previous_member_epoch = -1;
                        m.state = MemberState::Stable;
                        m.assigned_partitions.clear();
                        m.partitions_pending_revocation.clear();
                    }
                }
            },
            CoordinatorRecord::ConsumerGroupTargetAssignmentMember {
                group,
                member_id,
                value,
            } => match value {
                Some(v) => {
                    let g = groups
                        .entry(group.clone())
                        .or_insert_with(|| ConsumerGroup::new(group));
                    g.target_assignment
                        .insert(member_id, from_wire(&v.topic_partitions));
                }
                None => {
                    if let Some(g) = groups.get_mut(&group) {
                        g.target_assignment.remove(&member_id);
                    }
                }
            },
            #[allow(clippy::collapsible_match)]
            CoordinatorRecord::ConsumerGroupTargetAssignmentMetadata { group, value } => {
                if let Some(v) = value {
                    let g = groups
                        .entry(group.clone())
                        .or_insert_with(|| ConsumerGroup::new(group));
                    g.assignment_epoch = v.assignment_epoch;
                }
            }
            CoordinatorRecord::ConsumerGroupRegularExpression {
                group,
                regex,
                value,
            } => match value {
                Some(v) => {
                    let g = groups
                        .entry(group.clone())
                        .or_insert_with(|| ConsumerGroup::new(group));
                    g.resolved_regexes.insert(
                        regex,
                        super::ResolvedRegex {
                            topics: v.topics.into_iter().collect(),
                            version: v.version,
                            timestamp: v.timestamp,
                        },
                    );
                }
                None => {
                    if let Some(g) = groups.get_mut(&group) {
                        g.resolved_regexes.remove(&regex);
                    }
                }
            },
            _ => {}
        }
    }

    /// The live consumer group records of `partition`, for compaction tests and snapshots.
    pub(in crate::group_coordinator) fn consumer_group_snapshot(
        &self,
        partition: i32,
    ) -> Vec<CoordinatorRecord> {
        let mut records = Vec::new();
        let mut ids: Vec<&String> = self
            .consumer_groups
            .keys()
            .filter(|id| {
                offsets_partition_for(id, self.settings.offsets_topic_num_partitions) == partition
            })
            .collect();
        ids.sort();
        for id in ids {
            let group = &self.consumer_groups[id];
            let mut out = Vec::new();
            let mut sink = Sink {
                settings: &self.settings,
                records: &mut out,
            };
            sink.group_epoch(group);
            for m in group.members.values() {
                sink.member_metadata(id, m);
            }
            for pattern in group.resolved_regexes.keys() {
                sink.regex(group, pattern);
            }
            for (member_id, a) in &group.target_assignment {
                sink.target_member(id, member_id, Some(a));
            }
            sink.target_metadata(group);
            for m in group.members.values() {
                sink.current_assignment(id, m);
            }
            records.extend(out.into_iter().map(|(_, r)| r));
        }
        records
    }

    /// ConsumerGroupDescribe for one group (Kafka's `consumerGroupDescribe`).
    pub fn consumer_group_describe(
        &self,
        group_id: &str,
        default_assignor: &str,
    ) -> Result<ConsumerGroupDescription, (ResponseError, Option<String>)> {
        if group_id.is_empty() {
            return Err((ResponseError::InvalidGroupId, None));
        }
        if let Some(error) = self.group_status(group_id, GroupApi::DescribeGroups) {
            return Err((error, None));
        }
        let Some(group) = self.consumer_groups.get(group_id) else {
            let message = if self.groups.contains_key(group_id) {
                format!("Group {group_id} is not a consumer group.")
            } else {
                format!("Group {group_id} not found.")
            };
            return Err((ResponseError::GroupIdNotFound, Some(message)));
        };
        Ok(ConsumerGroupDescription {
            state: group.state(),
            group_epoch: group.group_epoch,
            assignment_epoch: group.assignment_epoch,
            assignor_name: group.preferred_assignor(default_assignor),
            members: group
                .members
                .values()
                .map(|m| {
                    (
                        m.clone(),
                        m.assigned_partitions.clone(),
                        group
                            .target_assignment
                            .get(&m.member_id)
                            .cloned()
                            .unwrap_or_default(),
                    )
                })
                .collect(),
        })
    }

    /// Consumer groups for ListGroups: `states` (case-insensitive, all when empty), only when
    /// `types` is empty or names "consumer".
    pub fn list_consumer_groups(
        &self,
        states: &[String],
        types: &[String],
    ) -> Vec<ListedConsumerGroup> {
        if !types.is_empty() && !types.iter().any(|t| t.eq_ignore_ascii_case("consumer")) {
            return Vec::new();
        }
        let mut listed: Vec<ListedConsumerGroup> = self
            .consumer_groups
            .values()
            .map(|g| ListedConsumerGroup {
                group_id: g.group_id.clone(),
                state: g.state(),
            })
            .filter(|g| {
                states.is_empty()
                    || states
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(g.state.name()))
            })
            .collect();
        listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        listed
    }

    /// DeleteGroups of a consumer group: `None` when `group_id` is not one; NON_EMPTY_GROUP
    /// while it has members; else its tombstones are queued and the group is gone (its
    /// offsets are deleted by the caller's classic path).
    pub(in crate::group_coordinator) fn delete_consumer_group(
        &mut self,
        group_id: &str,
    ) -> Option<Result<(), ResponseError>> {
        let group = self.consumer_groups.get(group_id)?;
        if !group.members.is_empty() {
            return Some(Err(ResponseError::NonEmptyGroup));
        }
        let mut sink = Sink {
            settings: &self.settings,
            records: &mut self.pending_records,
        };
        sink.group_tombstones(group);
        self.consumer_groups.remove(group_id);
        Some(Ok(()))
    }

    /// An Empty consumer group is replaced by a classic group on JoinGroup (Kafka's
    /// `getOrMaybeCreateClassicGroup`): `Err` when the consumer group still has members.
    pub(in crate::group_coordinator) fn take_over_empty_consumer_group(
        &mut self,
        group_id: &str,
    ) -> Result<(), ResponseError> {
        match self.delete_consumer_group(group_id) {
            None | Some(Ok(())) => Ok(()),
            Some(Err(_)) => Err(ResponseError::InconsistentGroupProtocol),
        }
    }

    /// OffsetCommit checks for a consumer group (Kafka's `ConsumerGroup.validateOffsetCommit`);
    /// `None` when `group_id` is not a consumer group.
    pub fn validate_consumer_offset_commit(
        &self,
        group_id: &str,
        member_epoch: i32,
        member_id: &str,
        is_transactional: bool,
        version: i16,
    ) -> Option<Result<(), ResponseError>> {
        let group = self.consumer_groups.get(group_id)?;
        if member_epoch < 0 && group.members.is_empty() {
            return Some(Ok(()));
        }
        let Some(m) = group.members.get(member_id) else {
            return Some(Err(ResponseError::UnknownMemberId));
        };
        if !is_transactional && version < 9 {
            return Some(Err(ResponseError::UnsupportedVersion));
        }
        if member_epoch != m.member_epoch {
            return Some(Err(ResponseError::StaleMemberEpoch));
        }
        Some(Ok(()))
    }

    /// OffsetFetch v9 checks (Kafka's `ConsumerGroup.validateOffsetFetch`); `None` when the
    /// request carries no member or the group is not a consumer group.
    pub fn validate_consumer_offset_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Option<ResponseError> {
        let group = self.consumer_groups.get(group_id)?;
        if member_epoch < 0 && member_id.is_none() {
            return None;
        }
        let Some(m) = member_id.and_then(|id| group.members.get(id)) else {
            return Some(ResponseError::UnknownMemberId);
        };
        (member_epoch != m.member_epoch).then_some(ResponseError::StaleMemberEpoch)
    }
}

/// Computes the metadata hash of a subscription set.
fn topics_hash_fn(topics: &TopicsView) -> impl Fn(&BTreeSet<String>) -> i64 + '_ {
    move |subscribed| metadata_hash(subscribed, topics)
}

/// Kafka's `consumerGroupFenceMember`: the member's records are tombstoned and the group epoch
/// rises; the target assignment follows at the next heartbeat (state Assigning).
fn fence_member(
    group: &mut ConsumerGroup,
    member_id: &str,
    hash: impl Fn(&BTreeSet<String>) -> i64,
    sink: &mut Sink,
) {
    if group.members.remove(member_id).is_none() {
        return;
    }
    group.target_assignment.remove(member_id);
    sink.member_tombstones(&group.group_id, member_id);
    let patterns: BTreeSet<String> = group
        .members
        .values()
        .filter_map(|m| m.subscribed_topic_regex.clone())
        .collect();
    let dropped: Vec<String> = group
        .resolved_regexes
        .keys()
        .filter(|p| !patterns.contains(*p))
        .cloned()
        .collect();
    for pattern in dropped {
        group.resolved_regexes.remove(&pattern);
        sink.regex(group, &pattern);
    }
    group.group_epoch += 1;
    group.metadata_hash = hash(&group.subscribed_topic_names());
    sink.group_epoch(group);
}
