//! The classic group protocol as a sans-io state machine: every group one shard coordinates.
//!
//! This is Kafka's `GroupCoordinator` (core, `kafka.coordinator.group`, 2.x-3.x) logic with
//! the clock passed in (`now_ms`, milliseconds since the Unix epoch) and the delayed
//! operations of Kafka's purgatories turned into deadlines that [`CoordinatorState::tick`]
//! checks: member heartbeats (`session.timeout.ms`), the join phase (`rebalance.timeout.ms`,
//! `group.initial.rebalance.delay.ms`), pending syncs, KIP-394 pending member ids, and offset
//! retention. Responses that wait for a rebalance are `oneshot` receivers; their senders sit on
//! the member. Records to append to `__consumer_offsets` collect in `pending_records` in the
//! order the state changed; the async layer appends them. No I/O, no async, no panics on input.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use futures::channel::oneshot;
use kafka_protocol::error::ResponseError;

use super::group::{
    GroupMetadata, GroupState, InitialDelay, JoinResult, JoinedMember, MemberMetadata, SyncResult,
};
use super::records::{CoordinatorRecord, OffsetCommitKey, OffsetCommitValue};
use super::{offsets_partition_for, shard_for_group, GroupSettings};

pub mod txn_offsets;

/// Kafka's `NewMemberJoinTimeoutMs`: a new member's JoinGroup expires after 5 minutes.
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 5 * 60 * 1000;

/// An answer now, or one that arrives when a rebalance phase completes.
#[derive(Debug)]
pub enum Reply<T> {
    Ready(T),
    Pending(oneshot::Receiver<T>),
}

/// The Kafka API a request came in on; group id rules differ (Kafka's `isValidGroupId`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupApi {
    JoinGroup,
    SyncGroup,
    Heartbeat,
    LeaveGroup,
    OffsetCommit,
    OffsetFetch,
    DescribeGroups,
    DeleteGroups,
    OffsetDelete,
    /// KIP-98 TxnOffsetCommit: the group id must not be empty.
    TxnOffsetCommit,
}

/// A JoinGroup request, version differences resolved.
#[derive(Clone, Debug)]
pub struct JoinParams {
    pub group_id: String,
    /// Empty on a member's first join.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// KIP-394: JoinGroup v4+ first hands out a member id with MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
    /// KIP-814: JoinGroup v9+ understands `skip_assignment`.
    pub supports_skip_assignment: bool,
}

/// A SyncGroup request, version differences resolved.
#[derive(Clone, Debug)]
pub struct SyncParams {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// Checked against the group's when given (v5+).
    pub protocol_type: Option<String>,
    /// Checked against the group's when given (v5+).
    pub protocol_name: Option<String>,
    /// Member id -> assignment; only the leader sends them.
    pub assignments: Vec<(String, Bytes)>,
}

/// One partition's committed offset as OffsetFetch returns it.
pub type FetchedOffsets = Vec<(String, Vec<(i32, Option<OffsetCommitValue>)>)>;

/// A group as DescribeGroups shows it (Kafka's `GroupSummary`).
#[derive(Clone, Debug, PartialEq)]
pub struct GroupSummary {
    pub state: GroupState,
    pub protocol_type: String,
    /// The selected protocol when Stable, else empty.
    pub protocol: String,
    pub members: Vec<MemberSummary>,
}

/// A member as DescribeGroups shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberSummary {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Metadata for the selected protocol when Stable, else empty.
    pub metadata: Bytes,
    /// Assignment when Stable, else empty.
    pub assignment: Bytes,
}

/// A group as ListGroups shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// Every group owned by one shard, and the records waiting to be appended.
#[derive(Debug)]
pub struct CoordinatorState {
    shard_id: usize,
    shard_count: usize,
    pub(super) settings: GroupSettings,
    /// False until `__consumer_offsets` replay finished (COORDINATOR_LOAD_IN_PROGRESS).
    loaded: bool,
    /// Classic groups, and the offsets of every group (a consumer group's offsets live in a
    /// member-less classic entry of the same id).
    pub(super) groups: HashMap<String, GroupMetadata>,
    /// KIP-848 consumer groups (see [`super::consumer_group`]).
    pub(super) consumer_groups: HashMap<String, super::consumer_group::ConsumerGroup>,
    /// (`__consumer_offsets` partition, record) in the order the state changed.
    pub(super) pending_records: Vec<(i32, CoordinatorRecord)>,
    /// Next offset-retention sweep, milliseconds since the Unix epoch.
    next_retention_check_ms: i64,
    /// Pending transactional offsets (TxnOffsetCommit, see [`txn_offsets`]).
    txn: txn_offsets::TxnOffsetState,
}

/// What a state change needs besides the group: settings, the clock and the record sink.
struct Effects<'a> {
    settings: &'a GroupSettings,
    records: &'a mut Vec<(i32, CoordinatorRecord)>,
    now_ms: i64,
}

impl Effects<'_> {
    /// Appends the group's metadata record (Kafka's `storeGroup`).
    fn store_group(&mut self, group: &GroupMetadata) {
        let partition =
            offsets_partition_for(&group.group_id, self.settings.offsets_topic_num_partitions);
        self.records.push((
            partition,
            CoordinatorRecord::GroupMetadata {
                group: group.group_id.clone(),
                value: Some(group.to_value()),
            },
        ));
    }

    fn tombstone_offset(&mut self, group_id: &str, topic: &str, partition: i32) {
        let offsets_partition =
            offsets_partition_for(group_id, self.settings.offsets_topic_num_partitions);
        self.records.push((
            offsets_partition,
            CoordinatorRecord::OffsetCommit {
                key: OffsetCommitKey {
                    group: group_id.to_owned(),
                    topic: topic.to_owned(),
                    partition,
                },
                value: None,
            },
        ));
    }

    fn tombstone_group(&mut self, group_id: &str) {
        let partition = offsets_partition_for(group_id, self.settings.offsets_topic_num_partitions);
        self.records.push((
            partition,
            CoordinatorRecord::GroupMetadata {
                group: group_id.to_owned(),
                value: None,
            },
        ));
    }
}

impl CoordinatorState {
    /// An unloaded coordinator for the groups that map to `shard_id`.
    pub fn new(shard_id: usize, shard_count: usize, settings: GroupSettings) -> CoordinatorState {
        assert!(shard_id < shard_count, "shard {shard_id} of {shard_count}");
        CoordinatorState {
            shard_id,
            shard_count,
            settings,
            loaded: false,
            groups: HashMap::new(),
            consumer_groups: HashMap::new(),
            pending_records: Vec::new(),
            next_retention_check_ms: 0,
            txn: Default::default(),
        }
    }

    pub fn settings(&self) -> &GroupSettings {
        &self.settings
    }

    /// True when this shard coordinates `group_id`.
    pub fn owns(&self, group_id: &str) -> bool {
        shard_for_group(
            group_id,
            self.settings.offsets_topic_num_partitions,
            self.shard_count,
        ) == self.shard_id
    }

    /// Ends COORDINATOR_LOAD_IN_PROGRESS once replay is done.
    pub fn set_loaded(&mut self, loaded: bool, now_ms: i64) {
        self.loaded = loaded;
        self.next_retention_check_ms = now_ms + self.settings.offsets_retention_check_interval_ms;
        if loaded {
            self.consumer_groups_loaded(now_ms);
        }
    }

    /// False until replay finished, and again after `unload`.
    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// Every group this shard coordinates.
    pub fn groups(&self) -> impl Iterator<Item = &GroupMetadata> {
        self.groups.values()
    }

    pub fn group(&self, group_id: &str) -> Option<&GroupMetadata> {
        self.groups.get(group_id)
    }

    /// Records appended to since the last call, in order.
    pub fn take_pending_records(&mut self) -> Vec<(i32, CoordinatorRecord)> {
        std::mem::take(&mut self.pending_records)
    }

    /// Why a request for `group_id` cannot be served here now (Kafka's `validateGroupStatus`).
    pub fn group_status(&self, group_id: &str, api: GroupApi) -> Option<ResponseError> {
        let empty_allowed = matches!(
            api,
            GroupApi::OffsetCommit
                | GroupApi::OffsetFetch
                | GroupApi::DescribeGroups
                | GroupApi::DeleteGroups
        );
        if group_id.is_empty() && !empty_allowed {
            return Some(ResponseError::InvalidGroupId);
        }
        if !self.owns(group_id) {
            return Some(ResponseError::NotCoordinator);
        }
        if !self.loaded {
            return Some(ResponseError::CoordinatorLoadInProgress);
        }
        None
    }

    /// The live state of one `__consumer_offsets` partition as records: each group's metadata
    /// (when it ever had members) followed by its committed offsets. Replaying them rebuilds
    /// what replaying the whole log did: the minimal log the log cleaner converges to (the
    /// last record of each live key), used by tests of replay.
    pub fn snapshot_records(&self, partition: i32) -> Vec<CoordinatorRecord> {
        let mut group_ids: Vec<&String> = self
            .groups
            .keys()
            .filter(|id| {
                offsets_partition_for(id, self.settings.offsets_topic_num_partitions) == partition
            })
            .collect();
        group_ids.sort();
        let mut records = Vec::new();
        for group_id in group_ids {
            let group = &self.groups[group_id];
            if group.protocol_type.is_some() || group.generation_id > 0 {
                records.push(CoordinatorRecord::GroupMetadata {
                    group: group_id.clone(),
                    value: Some(group.to_value()),
                });
            }
            let mut offsets: Vec<(&(String, i32), &OffsetCommitValue)> =
                group.offsets.iter().collect();
            offsets.sort_by(|a, b| a.0.cmp(b.0));
            for ((topic, partition), value) in offsets {
                records.push(CoordinatorRecord::OffsetCommit {
                    key: OffsetCommitKey {
                        group: group_id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                    },
                    value: Some(value.clone()),
                });
            }
        }
        records.extend(self.consumer_group_snapshot(partition));
        records
    }

    /// Applies one replayed record (Kafka's `GroupMetadataManager.doLoadGroupsAndOffsets`).
    pub fn replay(&mut self, record: CoordinatorRecord, now_ms: i64) {
        match record {
            CoordinatorRecord::OffsetCommit { key, value } => match value {
                Some(value) => {
                    let group = self
                        .groups
                        .entry(key.group.clone())
                        .or_insert_with(|| GroupMetadata::new(key.group.clone(), now_ms));
                    group.offsets.insert((key.topic, key.partition), value);
                }
                None => {
                    if let Some(group) = self.groups.get_mut(&key.group) {
                        group.offsets.remove(&(key.topic, key.partition));
                    }
                }
            },
            CoordinatorRecord::GroupMetadata { group, value } => match value {
                Some(value) => {
                    let entry = self
                        .groups
                        .entry(group.clone())
                        .or_insert_with(|| GroupMetadata::new(group.clone(), now_ms));
                    entry.load(value, now_ms);
                }
                None => {
                    // Offsets are keys of their own: a group that became a consumer group
                    // (KIP-848) keeps them.
                    let keep = self.groups.get(&group).is_some_and(|g| !g.offsets.is_empty());
                    if keep {
                        let entry = self.groups.get_mut(&group).expect("checked above");
                        let offsets = std::mem::take(&mut entry.offsets);
                        *entry = GroupMetadata::new(group.clone(), now_ms);
                        entry.offsets = offsets;
                    } else {
                        self.groups.remove(&group);
                    }
                }
            },
            // KIP-848 consumer group records (key versions 3, 5-8, 16) belong to the consumer
            // group state (`consumer_group`).
            other => self.replay_consumer_group(other),
        }
    }

    /// JoinGroup (Kafka's `handleJoinGroup`).
    pub fn join_group(&mut self, join: JoinParams, now_ms: i64) -> Reply<JoinResult> {
        if let Some(error) = self.group_status(&join.group_id, GroupApi::JoinGroup) {
            return Reply::Ready(JoinResult::error(join.member_id, error));
        }
        if join.session_timeout_ms < self.settings.group_min_session_timeout_ms
            || join.session_timeout_ms > self.settings.group_max_session_timeout_ms
        {
            return Reply::Ready(JoinResult::error(
                join.member_id,
                ResponseError::InvalidSessionTimeout,
            ));
        }
        if let Err(error) = self.take_over_empty_consumer_group(&join.group_id) {
            return Reply::Ready(JoinResult::error(join.member_id, error));
        }
        let is_unknown_member = join.member_id.is_empty();
        if !self.groups.contains_key(&join.group_id) {
            if !is_unknown_member {
                return Reply::Ready(JoinResult::error(
                    join.member_id,
                    ResponseError::UnknownMemberId,
                ));
            }
            self.groups.insert(
                join.group_id.clone(),
                GroupMetadata::new(join.group_id.clone(), now_ms),
            );
        }
        let group = self.groups.get_mut(&join.group_id).expect("inserted above");
        let mut fx = Effects {
            settings: &self.settings,
            records: &mut self.pending_records,
            now_ms,
        };
        let new_member = is_unknown_member || group.pending_members.contains_key(&join.member_id);
        if new_member
            && !group.has(&join.member_id)
            && group.members.len() >= fx.settings.group_max_size
        {
            return Reply::Ready(JoinResult::error(
                join.member_id,
                ResponseError::GroupMaxSizeReached,
            ));
        }
        let reply = if is_unknown_member {
            new_member_join(group, join, &mut fx)
        } else {
            current_member_join(group, join, &mut fx)
        };
        try_complete_join(group, &mut fx);
        reply
    }

    /// SyncGroup (Kafka's `handleSyncGroup`).
    pub fn sync_group(&mut self, sync: SyncParams, now_ms: i64) -> Reply<SyncResult> {
        if let Some(error) = self.group_status(&sync.group_id, GroupApi::SyncGroup) {
            return Reply::Ready(SyncResult::error(error));
        }
        let Some(group) = self.groups.get_mut(&sync.group_id) else {
            return Reply::Ready(SyncResult::error(ResponseError::UnknownMemberId));
        };
        let mut fx = Effects {
            settings: &self.settings,
            records: &mut self.pending_records,
            now_ms,
        };
        let error = if group.is(GroupState::Dead) {
            Some(ResponseError::CoordinatorNotAvailable)
        } else if group.is_static_member_fenced(sync.group_instance_id.as_deref(), &sync.member_id)
        {
            Some(ResponseError::FencedInstanceId)
        } else if !group.has(&sync.member_id) {
            Some(ResponseError::UnknownMemberId)
        } else if sync.generation_id != group.generation_id {
            Some(ResponseError::IllegalGeneration)
        } else if (sync.protocol_type.is_some() && sync.protocol_type != group.protocol_type)
            || (sync.protocol_name.is_some() && sync.protocol_name != group.protocol_name)
        {
            Some(ResponseError::InconsistentGroupProtocol)
        } else {
            None
        };
        if let Some(error) = error {
            return Reply::Ready(SyncResult::error(error));
        }
        match group.state {
            GroupState::Empty => Reply::Ready(SyncResult::error(ResponseError::UnknownMemberId)),
            GroupState::PreparingRebalance => {
                Reply::Ready(SyncResult::error(ResponseError::RebalanceInProgress))
            }
            GroupState::CompletingRebalance => {
                let (sender, receiver) = oneshot::channel();
                let member = group
                    .members
                    .get_mut(&sync.member_id)
                    .expect("checked above");
                member.awaiting_sync = Some(sender);
                group.pending_sync_members.remove(&sync.member_id);
                if group.is_leader(&sync.member_id) {
                    let mut assignments: HashMap<String, Bytes> =
                        sync.assignments.into_iter().collect();
                    for member in group.members.values_mut() {
                        member.assignment =
                            assignments.remove(&member.member_id).unwrap_or_default();
                    }
                    fx.store_group(group);
                    propagate_assignment(group, None, &mut fx);
                    group.transition_to(GroupState::Stable, now_ms);
                }
                Reply::Pending(receiver)
            }
            GroupState::Stable => {
                group.pending_sync_members.remove(&sync.member_id);
                let member = group
                    .members
                    .get_mut(&sync.member_id)
                    .expect("checked above");
                member.heartbeat_deadline_ms = Some(now_ms + member.session_timeout_ms as i64);
                Reply::Ready(SyncResult {
                    error: None,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    assignment: member.assignment.clone(),
                })
            }
            GroupState::Dead => unreachable!("Dead handled above"),
        }
    }

    /// Heartbeat (Kafka's `handleHeartbeat`); `None` means NONE.
    pub fn heartbeat(
        &mut self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
        now_ms: i64,
    ) -> Option<ResponseError> {
        if let Some(error) = self.group_status(group_id, GroupApi::Heartbeat) {
            return Some(error);
        }
        let Some(group) = self.groups.get_mut(group_id) else {
            return Some(ResponseError::UnknownMemberId);
        };
        if group.is(GroupState::Dead) {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        if group.is_static_member_fenced(group_instance_id, member_id) {
            return Some(ResponseError::FencedInstanceId);
        }
        if !group.has(member_id) {
            return Some(ResponseError::UnknownMemberId);
        }
        if generation_id != group.generation_id {
            return Some(ResponseError::IllegalGeneration);
        }
        let state = group.state;
        let member = group.members.get_mut(member_id).expect("checked above");
        match state {
            GroupState::Empty => Some(ResponseError::UnknownMemberId),
            GroupState::CompletingRebalance | GroupState::Stable => {
                member.heartbeat_deadline_ms = Some(now_ms + member.session_timeout_ms as i64);
                None
            }
            GroupState::PreparingRebalance => {
                member.heartbeat_deadline_ms = Some(now_ms + member.session_timeout_ms as i64);
                Some(ResponseError::RebalanceInProgress)
            }
            GroupState::Dead => unreachable!("Dead handled above"),
        }
    }

    /// LeaveGroup (Kafka's `handleLeaveGroup`): a top-level error, or one result per member.
    pub fn leave_group(
        &mut self,
        group_id: &str,
        members: &[(String, Option<String>)],
        now_ms: i64,
    ) -> Result<Vec<Option<ResponseError>>, ResponseError> {
        if let Some(error) = self.group_status(group_id, GroupApi::LeaveGroup) {
            return Err(error);
        }
        let Some(group) = self.groups.get_mut(group_id) else {
            return Ok(vec![Some(ResponseError::UnknownMemberId); members.len()]);
        };
        if group.is(GroupState::Dead) {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let mut fx = Effects {
            settings: &self.settings,
            records: &mut self.pending_records,
            now_ms,
        };
        let mut results = Vec::with_capacity(members.len());
        for (member_id, group_instance_id) in members {
            let result = if member_id.is_empty() {
                // Administrative removal by group.instance.id (KIP-345).
                match group_instance_id
                    .as_deref()
                    .and_then(|id| group.static_member_id(id))
                    .map(str::to_owned)
                {
                    Some(current) => {
                        remove_member_and_update_group(group, &current, &mut fx);
                        None
                    }
                    None => Some(ResponseError::UnknownMemberId),
                }
            } else if group.pending_members.remove(member_id).is_some() {
                try_complete_join(group, &mut fx);
                None
            } else if group.is_static_member_fenced(group_instance_id.as_deref(), member_id) {
                Some(ResponseError::FencedInstanceId)
            } else if group.has(member_id) {
                remove_member_and_update_group(group, member_id, &mut fx);
                None
            } else {
                Some(ResponseError::UnknownMemberId)
            };
            results.push(result);
        }
        Ok(results)
    }

    /// Checks that a member may commit offsets now (Kafka's `handleCommitOffsets` and
    /// `validateOffsetCommit`); creates a standalone group for a `generation_id < 0` commit.
    pub fn validate_offset_commit(
        &mut self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
        now_ms: i64,
    ) -> Result<(), ResponseError> {
        if let Some(error) = self.group_status(group_id, GroupApi::OffsetCommit) {
            return Err(error);
        }
        if !self.groups.contains_key(group_id) {
            if generation_id >= 0 {
                // A commit from an older generation of a group that no longer exists.
                return Err(ResponseError::IllegalGeneration);
            }
            self.groups
                .insert(group_id.to_owned(), GroupMetadata::new(group_id, now_ms));
        }
        let group = self.groups.get_mut(group_id).expect("inserted above");
        if group.is(GroupState::Dead) {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            if let Some(instance_id) = group_instance_id {
                match group.static_member_id(instance_id) {
                    Some(current) if current != member_id => {
                        return Err(ResponseError::FencedInstanceId)
                    }
                    Some(_) => {}
                    None => return Err(ResponseError::UnknownMemberId),
                }
            } else if !group.has(member_id) {
                return Err(ResponseError::UnknownMemberId);
            }
            if generation_id != group.generation_id {
                return Err(ResponseError::IllegalGeneration);
            }
        } else if !group.is(GroupState::Empty) {
            // When the group is non-empty, only members can commit offsets.
            return Err(ResponseError::UnknownMemberId);
        }
        match group.state {
            GroupState::Empty => Ok(()),
            GroupState::Stable | GroupState::PreparingRebalance => {
                if let Some(member) = group.members.get_mut(member_id) {
                    member.heartbeat_deadline_ms = Some(now_ms + member.session_timeout_ms as i64);
                }
                Ok(())
            }
            GroupState::CompletingRebalance => Err(ResponseError::RebalanceInProgress),
            GroupState::Dead => unreachable!("Dead handled above"),
        }
    }

    /// Stores offsets whose records are durable (Kafka: the cache is updated after the append).
    pub fn apply_offset_commit(
        &mut self,
        group_id: &str,
        offsets: Vec<(String, i32, OffsetCommitValue)>,
        now_ms: i64,
    ) {
        let group = self
            .groups
            .entry(group_id.to_owned())
            .or_insert_with(|| GroupMetadata::new(group_id, now_ms));
        if group.is(GroupState::Dead) {
            return;
        }
        for (topic, partition, value) in offsets {
            group.offsets.insert((topic, partition), value);
        }
    }

    /// OffsetFetch (Kafka's `handleFetchOffsets`): `topics == None` asks for every committed
    /// offset. Offsets are returned whatever the group's state, as Kafka does.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<FetchedOffsets, ResponseError> {
        if let Some(error) = self.group_status(group_id, GroupApi::OffsetFetch) {
            return Err(error);
        }
        let group = self
            .groups
            .get(group_id)
            .filter(|g| !g.is(GroupState::Dead));
        match topics {
            Some(topics) => Ok(topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let found = partitions
                        .into_iter()
                        .map(|partition| {
                            let value = group
                                .and_then(|g| g.offsets.get(&(topic.clone(), partition)).cloned());
                            (partition, value)
                        })
                        .collect();
                    (topic, found)
                })
                .collect()),
            None => {
                let mut by_topic: std::collections::BTreeMap<
                    String,
                    Vec<(i32, Option<OffsetCommitValue>)>,
                > = Default::default();
                if let Some(group) = group {
                    for ((topic, partition), value) in &group.offsets {
                        by_topic
                            .entry(topic.clone())
                            .or_default()
                            .push((*partition, Some(value.clone())));
                    }
                }
                Ok(by_topic
                    .into_iter()
                    .map(|(topic, mut partitions)| {
                        partitions.sort_by_key(|(partition, _)| *partition);
                        (topic, partitions)
                    })
                    .collect())
            }
        }
    }

    /// ListGroups: groups in `states` (case-insensitive; all when empty), of a type in `types`
    /// (only "classic" exists here; all when empty). Sorted by group id.
    pub fn list_groups(&self, states: &[String], types: &[String]) -> Vec<ListedGroup> {
        if !types.is_empty() && !types.iter().any(|t| t.eq_ignore_ascii_case("classic")) {
            return Vec::new();
        }
        let mut listed: Vec<ListedGroup> = self
            .groups
            .values()
            .filter(|g| !g.is(GroupState::Dead))
            .filter(|g| !self.consumer_groups.contains_key(&g.group_id))
            .filter(|g| {
                states.is_empty()
                    || states
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(g.state.name()))
            })
            .map(|g| ListedGroup {
                group_id: g.group_id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect();
        listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        listed
    }

    /// DescribeGroups for one group: `Ok(None)` when the group does not exist.
    pub fn describe_group(&self, group_id: &str) -> Result<Option<GroupSummary>, ResponseError> {
        if let Some(error) = self.group_status(group_id, GroupApi::DescribeGroups) {
            return Err(error);
        }
        if self.consumer_groups.contains_key(group_id) {
            // Kafka 4.1: "Group <id> is not a classic group."
            return Err(ResponseError::GroupIdNotFound);
        }
        let Some(group) = self
            .groups
            .get(group_id)
            .filter(|g| !g.is(GroupState::Dead))
        else {
            return Ok(None);
        };
        let stable = group.is(GroupState::Stable);
        let protocol = if stable {
            group.protocol_name.clone().unwrap_or_default()
        } else {
            String::new()
        };
        let members = group
            .members
            .values()
            .map(|member| MemberSummary {
                member_id: member.member_id.clone(),
                group_instance_id: member.group_instance_id.clone(),
                client_id: member.client_id.clone(),
                client_host: member.client_host.clone(),
                metadata: if stable {
                    member.metadata(&protocol)
                } else {
                    Bytes::new()
                },
                assignment: if stable {
                    member.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect();
        Ok(Some(GroupSummary {
            state: group.state,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol,
            members,
        }))
    }

    /// DeleteGroups for one group (Kafka's `handleDeleteGroups`): only Empty groups go, with
    /// tombstones for their offsets and metadata.
    pub fn delete_group(&mut self, group_id: &str, now_ms: i64) -> Option<ResponseError> {
        if let Some(error) = self.group_status(group_id, GroupApi::DeleteGroups) {
            return Some(error);
        }
        let was_consumer_group = match self.delete_consumer_group(group_id) {
            Some(Err(error)) => return Some(error),
            Some(Ok(())) => true,
            None => false,
        };
        let Some(group) = self.groups.get_mut(group_id) else {
            return (!was_consumer_group).then_some(ResponseError::GroupIdNotFound);
        };
        match group.state {
            GroupState::Dead => Some(ResponseError::GroupIdNotFound),
            GroupState::Empty => {
                group.transition_to(GroupState::Dead, now_ms);
                let mut fx = Effects {
                    settings: &self.settings,
                    records: &mut self.pending_records,
                    now_ms,
                };
                let mut offsets: Vec<&(String, i32)> = group.offsets.keys().collect();
                offsets.sort();
                for (topic, partition) in offsets {
                    fx.tombstone_offset(group_id, topic, *partition);
                }
                fx.tombstone_group(group_id);
                self.groups.remove(group_id);
                None
            }
            _ => Some(ResponseError::NonEmptyGroup),
        }
    }

    /// OffsetDelete (Kafka's `handleDeleteOffsets`): a group error, or one result per
    /// partition. Offsets of topics an active consumer group subscribes to stay.
    #[allow(clippy::type_complexity)]
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        topics: &[(String, Vec<i32>)],
        now_ms: i64,
    ) -> Result<Vec<(String, Vec<(i32, Option<ResponseError>)>)>, ResponseError> {
        if let Some(error) = self.group_status(group_id, GroupApi::OffsetDelete) {
            return Err(error);
        }
        let Some(group) = self.groups.get_mut(group_id) else {
            return Err(ResponseError::GroupIdNotFound);
        };
        let subscribed: Option<HashSet<String>> = match group.state {
            GroupState::Dead => return Err(ResponseError::GroupIdNotFound),
            GroupState::Empty => Some(HashSet::new()),
            _ if group.protocol_type.as_deref() == Some("consumer") => {
                // Unknown subscriptions protect every topic, as Kafka's `isSubscribedToTopic`.
                group.subscribed_topics()
            }
            _ => return Err(ResponseError::NonEmptyGroup),
        };
        let mut fx = Effects {
            settings: &self.settings,
            records: &mut self.pending_records,
            now_ms,
        };
        let results = topics
            .iter()
            .map(|(topic, partitions)| {
                let subscribed_to_topic = subscribed.as_ref().is_none_or(|s| s.contains(topic));
                let results = partitions
                    .iter()
                    .map(|&partition| {
                        if subscribed_to_topic {
                            return (partition, Some(ResponseError::GroupSubscribedToTopic));
                        }
                        if group.offsets.remove(&(topic.clone(), partition)).is_some() {
                            fx.tombstone_offset(group_id, topic, partition);
                        }
                        (partition, None)
                    })
                    .collect();
                (topic.clone(), results)
            })
            .collect();
        Ok(results)
    }

    /// Fires every deadline that passed by `now_ms`: pending member ids, member sessions, join
    /// and sync phases, and (every `offsets.retention.check.interval.ms`) offset retention.
    pub fn tick(&mut self, now_ms: i64) {
        let mut fx = Effects {
            settings: &self.settings,
            records: &mut self.pending_records,
            now_ms,
        };
        for group in self.groups.values_mut() {
            expire_pending_members(group, &mut fx);
            expire_heartbeats(group, &mut fx);
            expire_join(group, &mut fx);
            expire_pending_sync(group, &mut fx);
        }
        self.tick_consumer_groups(now_ms);
        if self.loaded && now_ms >= self.next_retention_check_ms {
            self.next_retention_check_ms =
                now_ms + self.settings.offsets_retention_check_interval_ms;
            self.expire_offsets(now_ms);
        }
    }

    /// Fails every waiting request with COORDINATOR_NOT_AVAILABLE and marks groups Dead
    /// (Kafka's `onResignation`/`shutdown`): clients find the coordinator again.
    pub fn unload(&mut self, now_ms: i64) {
        for group in self.groups.values_mut() {
            for member in group.members.values_mut() {
                let member_id = member.member_id.clone();
                member.complete_join(JoinResult::error(member_id, ResponseError::NotCoordinator));
                member.complete_sync(SyncResult::error(ResponseError::NotCoordinator));
            }
            group.transition_to(GroupState::Dead, now_ms);
        }
        self.groups.clear();
        self.consumer_groups.clear();
        self.clear_txn_offsets();
        self.loaded = false;
    }

    /// Removes expired offsets and Empty groups left without offsets (Kafka's
    /// `cleanupGroupMetadata` with `removeExpiredOffsets`).
    fn expire_offsets(&mut self, now_ms: i64) {
        let retention_ms = self.settings.offsets_retention_ms;
        let mut fx = Effects {
            settings: &self.settings,
            records: &mut self.pending_records,
            now_ms,
        };
        let mut dead = Vec::new();
        let active_consumer_groups: HashSet<String> = self
            .consumer_groups
            .iter()
            .filter(|(_, g)| !g.members.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        for group in self.groups.values_mut() {
            if active_consumer_groups.contains(&group.group_id) {
                // Kafka keeps the offsets of a consumer group with members.
                continue;
            }
            let expired: Vec<(String, i32)> = match (&group.protocol_type, group.state) {
                (Some(_), GroupState::Empty) => {
                    if now_ms - group.state_timestamp_ms >= retention_ms {
                        group.offsets.keys().cloned().collect()
                    } else {
                        Vec::new()
                    }
                }
                (Some(protocol_type), GroupState::Stable) if protocol_type == "consumer" => {
                    match group.subscribed_topics() {
                        Some(subscribed) => group
                            .offsets
                            .iter()
                            .filter(|((topic, _), value)| {
                                !subscribed.contains(topic)
                                    && now_ms - value.commit_timestamp >= retention_ms
                            })
                            .map(|(key, _)| key.clone())
                            .collect(),
                        None => Vec::new(),
                    }
                }
                (None, _) => group
                    .offsets
                    .iter()
                    .filter(|(_, value)| now_ms - value.commit_timestamp >= retention_ms)
                    .map(|(key, _)| key.clone())
                    .collect(),
                _ => Vec::new(),
            };
            for key in expired {
                group.offsets.remove(&key);
                fx.tombstone_offset(&group.group_id, &key.0, key.1);
            }
            if group.is(GroupState::Empty) && group.offsets.is_empty() {
                group.transition_to(GroupState::Dead, now_ms);
                fx.tombstone_group(&group.group_id);
                dead.push(group.group_id.clone());
            }
        }
        for group_id in dead {
            self.groups.remove(&group_id);
        }
    }
}

/// A JoinGroup without a member id (Kafka's `doNewMemberJoinGroup`).
fn new_member_join(
    group: &mut GroupMetadata,
    join: JoinParams,
    fx: &mut Effects,
) -> Reply<JoinResult> {
    if group.is(GroupState::Dead) {
        return Reply::Ready(JoinResult::error(
            join.member_id,
            ResponseError::CoordinatorNotAvailable,
        ));
    }
    if !group.supports_protocols(&join.protocol_type, &join.protocols) {
        return Reply::Ready(JoinResult::error(
            join.member_id,
            ResponseError::InconsistentGroupProtocol,
        ));
    }
    let new_member_id = format!("{}-{}", join.client_id, uuid::Uuid::new_v4());
    if let Some(group_instance_id) = join.group_instance_id.clone() {
        return match group
            .static_member_id(&group_instance_id)
            .map(str::to_owned)
        {
            Some(old_member_id) => update_static_member_and_rebalance(
                group,
                &group_instance_id,
                &old_member_id,
                new_member_id,
                join,
                fx,
            ),
            None => add_member_and_rebalance(group, new_member_id, join, fx),
        };
    }
    if join.require_known_member_id {
        // KIP-394: hand out the member id; the member must rejoin with it within its session.
        group.pending_members.insert(
            new_member_id.clone(),
            fx.now_ms + join.session_timeout_ms as i64,
        );
        return Reply::Ready(JoinResult::error(
            new_member_id,
            ResponseError::MemberIdRequired,
        ));
    }
    add_member_and_rebalance(group, new_member_id, join, fx)
}

/// A JoinGroup with a member id (Kafka's `doCurrentMemberJoinGroup`).
fn current_member_join(
    group: &mut GroupMetadata,
    join: JoinParams,
    fx: &mut Effects,
) -> Reply<JoinResult> {
    let member_id = join.member_id.clone();
    if group.is(GroupState::Dead) {
        return Reply::Ready(JoinResult::error(
            member_id,
            ResponseError::CoordinatorNotAvailable,
        ));
    }
    if !group.supports_protocols(&join.protocol_type, &join.protocols) {
        return Reply::Ready(JoinResult::error(
            member_id,
            ResponseError::InconsistentGroupProtocol,
        ));
    }
    if group.pending_members.contains_key(&member_id) {
        if join.group_instance_id.is_some() {
            // Pending member ids are only handed to dynamic members.
            return Reply::Ready(JoinResult::error(member_id, ResponseError::UnknownMemberId));
        }
        return add_member_and_rebalance(group, member_id, join, fx);
    }
    let instance_not_found = join
        .group_instance_id
        .as_deref()
        .is_some_and(|id| group.static_member_id(id).is_none());
    if group.is_static_member_fenced(join.group_instance_id.as_deref(), &member_id) {
        return Reply::Ready(JoinResult::error(
            member_id,
            ResponseError::FencedInstanceId,
        ));
    }
    if !group.has(&member_id) || instance_not_found {
        return Reply::Ready(JoinResult::error(member_id, ResponseError::UnknownMemberId));
    }
    let member = group.members.get(&member_id).expect("checked above");
    let matches = member.matches(&join.protocols);
    match group.state {
        GroupState::PreparingRebalance => update_member_and_rebalance(group, join, fx),
        GroupState::CompletingRebalance if matches => {
            // The member lost its JoinGroup response: answer with the current generation.
            let members = if group.is_leader(&member_id) {
                group.current_member_metadata()
            } else {
                Vec::new()
            };
            Reply::Ready(generation_result(group, member_id, members))
        }
        GroupState::CompletingRebalance => update_member_and_rebalance(group, join, fx),
        GroupState::Stable if group.is_leader(&member_id) || !matches => {
            // A leader's JoinGroup always rebalances: it may have seen metadata change.
            update_member_and_rebalance(group, join, fx)
        }
        GroupState::Stable => Reply::Ready(generation_result(group, member_id, Vec::new())),
        GroupState::Empty | GroupState::Dead => {
            Reply::Ready(JoinResult::error(member_id, ResponseError::UnknownMemberId))
        }
    }
}

/// The current generation as a successful JoinGroup answer.
fn generation_result(
    group: &GroupMetadata,
    member_id: String,
    members: Vec<JoinedMember>,
) -> JoinResult {
    JoinResult {
        error: None,
        member_id,
        generation_id: group.generation_id,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol_name.clone(),
        leader_id: group.leader_id.clone().unwrap_or_default(),
        members,
        skip_assignment: false,
    }
}

/// Kafka's `addMemberAndRebalance`.
fn add_member_and_rebalance(
    group: &mut GroupMetadata,
    member_id: String,
    join: JoinParams,
    fx: &mut Effects,
) -> Reply<JoinResult> {
    let (sender, receiver) = oneshot::channel();
    let member = MemberMetadata {
        member_id,
        group_instance_id: join.group_instance_id,
        client_id: join.client_id,
        client_host: join.client_host,
        rebalance_timeout_ms: join.rebalance_timeout_ms,
        session_timeout_ms: join.session_timeout_ms,
        protocol_type: join.protocol_type,
        protocols: join.protocols,
        assignment: Bytes::new(),
        awaiting_join: Some(sender),
        awaiting_sync: None,
        is_new: true,
        // A new member cannot heartbeat before it has joined; its JoinGroup expires instead.
        heartbeat_deadline_ms: Some(fx.now_ms + NEW_MEMBER_JOIN_TIMEOUT_MS),
    };
    if group.is(GroupState::PreparingRebalance) && group.generation_id == 0 {
        group.new_member_added = true;
    }
    group.add(member);
    maybe_prepare_rebalance(group, fx);
    Reply::Pending(receiver)
}

/// Kafka's `updateMemberAndRebalance`: new protocols and timeouts, then wait for the join.
fn update_member_and_rebalance(
    group: &mut GroupMetadata,
    join: JoinParams,
    fx: &mut Effects,
) -> Reply<JoinResult> {
    let (sender, receiver) = oneshot::channel();
    let member = group
        .members
        .get_mut(&join.member_id)
        .expect("caller checked membership");
    member.protocols = join.protocols;
    member.rebalance_timeout_ms = join.rebalance_timeout_ms;
    member.session_timeout_ms = join.session_timeout_ms;
    member.awaiting_join = Some(sender);
    maybe_prepare_rebalance(group, fx);
    Reply::Pending(receiver)
}

/// A known `group.instance.id` joins with a new member id (Kafka's
/// `updateStaticMemberAndRebalance`): the old member id is fenced.
fn update_static_member_and_rebalance(
    group: &mut GroupMetadata,
    group_instance_id: &str,
    old_member_id: &str,
    new_member_id: String,
    join: JoinParams,
    fx: &mut Effects,
) -> Reply<JoinResult> {
    let current_leader = group.leader_id.clone().unwrap_or_default();
    group.replace_static_member(group_instance_id, old_member_id, &new_member_id);
    let (sender, receiver) = oneshot::channel();
    let member = group
        .members
        .get_mut(&new_member_id)
        .expect("just replaced");
    member.heartbeat_deadline_ms = Some(fx.now_ms + join.session_timeout_ms as i64);
    member.protocols = join.protocols;
    member.rebalance_timeout_ms = join.rebalance_timeout_ms;
    member.session_timeout_ms = join.session_timeout_ms;
    member.awaiting_join = Some(sender);
    match group.state {
        GroupState::Stable => {
            if group.select_protocol() == group.protocol_name {
                // Same protocol: persist the new member id and answer without a rebalance.
                fx.store_group(group);
                let is_leader = group.is_leader(&new_member_id);
                let result = if is_leader && join.supports_skip_assignment {
                    JoinResult {
                        skip_assignment: true,
                        ..generation_result(
                            group,
                            new_member_id.clone(),
                            group.current_member_metadata(),
                        )
                    }
                } else {
                    // The old leader id keeps a rejoined leader from reassigning in a Stable group.
                    JoinResult {
                        leader_id: current_leader,
                        ..generation_result(group, new_member_id.clone(), Vec::new())
                    }
                };
                let member = group
                    .members
                    .get_mut(&new_member_id)
                    .expect("just replaced");
                member.complete_join(result);
            } else {
                maybe_prepare_rebalance(group, fx);
            }
        }
        // The leader may have assigned to the old member id: everyone must rejoin.
        GroupState::CompletingRebalance => prepare_rebalance(group, fx),
        GroupState::PreparingRebalance => {}
        GroupState::Empty | GroupState::Dead => {
            unreachable!("a group with a static member is neither Empty nor Dead")
        }
    }
    Reply::Pending(receiver)
}

/// Kafka's `maybePrepareRebalance`.
fn maybe_prepare_rebalance(group: &mut GroupMetadata, fx: &mut Effects) {
    if group.can_rebalance() {
        prepare_rebalance(group, fx);
    }
}

/// Kafka's `prepareRebalance`: a new group waits `group.initial.rebalance.delay.ms` (extended
/// while members keep arriving, up to the rebalance timeout); others wait for every member to
/// rejoin or the rebalance timeout.
fn prepare_rebalance(group: &mut GroupMetadata, fx: &mut Effects) {
    tracing::info!(
        group = %group.group_id,
        generation = group.generation_id,
        members = group.members.len(),
        "preparing to rebalance group"
    );
    if group.is(GroupState::CompletingRebalance) {
        for member in group.members.values_mut() {
            member.assignment = Bytes::new();
        }
        propagate_assignment(group, Some(ResponseError::RebalanceInProgress), fx);
    }
    group.sync_deadline_ms = None;
    let rebalance_timeout_ms = group.rebalance_timeout_ms();
    if group.is(GroupState::Empty) {
        let delay_ms = fx.settings.group_initial_rebalance_delay_ms as i64;
        group.initial_delay = Some(InitialDelay {
            delay_ms,
            remaining_ms: (rebalance_timeout_ms - delay_ms).max(0),
        });
        group.join_deadline_ms = Some(fx.now_ms + delay_ms);
    } else {
        group.initial_delay = None;
        group.join_deadline_ms = Some(fx.now_ms + rebalance_timeout_ms);
    }
    group.transition_to(GroupState::PreparingRebalance, fx.now_ms);
    try_complete_join(group, fx);
}

/// Answers every waiting SyncGroup with the member's assignment or `error` (Kafka's
/// `propagateAssignment`); on success members must heartbeat from now on.
fn propagate_assignment(group: &mut GroupMetadata, error: Option<ResponseError>, fx: &mut Effects) {
    let protocol_type = group.protocol_type.clone();
    let protocol_name = group.protocol_name.clone();
    for member in group.members.values_mut() {
        member.complete_sync(SyncResult {
            error,
            protocol_type: protocol_type.clone(),
            protocol_name: protocol_name.clone(),
            assignment: member.assignment.clone(),
        });
        if error.is_none() {
            member.heartbeat_deadline_ms = Some(fx.now_ms + member.session_timeout_ms as i64);
        }
    }
}

/// Completes the join phase early when everyone rejoined (Kafka's `DelayedJoin.tryComplete`);
/// the initial delay of a new group is never cut short.
fn try_complete_join(group: &mut GroupMetadata, fx: &mut Effects) {
    if group.is(GroupState::PreparingRebalance)
        && group.initial_delay.is_none()
        && group.has_all_members_joined()
    {
        complete_join(group, fx);
    }
}

/// Kafka's `onCompleteJoin`: drops dynamic members that did not rejoin, starts the next
/// generation and answers every waiting JoinGroup (the leader gets everyone's metadata).
fn complete_join(group: &mut GroupMetadata, fx: &mut Effects) {
    assert!(
        group.is(GroupState::PreparingRebalance),
        "complete_join in {:?}",
        group.state
    );
    group.join_deadline_ms = None;
    group.initial_delay = None;
    group.new_member_added = false;
    let not_rejoined: Vec<String> = group
        .members
        .values()
        .filter(|m| m.awaiting_join.is_none() && m.group_instance_id.is_none())
        .map(|m| m.member_id.clone())
        .collect();
    for member_id in not_rejoined {
        group.remove(&member_id);
    }
    if !group.maybe_elect_new_joined_leader() && !group.members.is_empty() {
        // Only static members that have not rejoined remain: wait another rebalance timeout
        // for them to come back or for their sessions to expire.
        group.join_deadline_ms = Some(fx.now_ms + group.rebalance_timeout_ms());
        return;
    }
    group.init_next_generation(fx.now_ms);
    tracing::info!(
        group = %group.group_id,
        generation = group.generation_id,
        members = group.members.len(),
        protocol = group.protocol_name.as_deref().unwrap_or(""),
        "stabilized group"
    );
    if group.is(GroupState::Empty) {
        fx.store_group(group);
        return;
    }
    let all_members = group.current_member_metadata();
    let leader_id = group.leader_id.clone().unwrap_or_default();
    let generation_id = group.generation_id;
    let protocol_type = group.protocol_type.clone();
    let protocol_name = group.protocol_name.clone();
    for member in group.members.values_mut() {
        let is_leader = member.member_id == leader_id;
        member.complete_join(JoinResult {
            error: None,
            member_id: member.member_id.clone(),
            generation_id,
            protocol_type: protocol_type.clone(),
            protocol_name: protocol_name.clone(),
            leader_id: leader_id.clone(),
            members: if is_leader {
                all_members.clone()
            } else {
                Vec::new()
            },
            skip_assignment: false,
        });
        member.heartbeat_deadline_ms = Some(fx.now_ms + member.session_timeout_ms as i64);
        member.is_new = false;
    }
    group.pending_sync_members = group.members.keys().cloned().collect();
    group.sync_deadline_ms = Some(fx.now_ms + group.rebalance_timeout_ms());
}

/// Kafka's `removeMemberAndUpdateGroup`: a waiting JoinGroup gets UNKNOWN_MEMBER_ID so a
/// live client retries; the group rebalances without the member.
fn remove_member_and_update_group(group: &mut GroupMetadata, member_id: &str, fx: &mut Effects) {
    if let Some(member) = group.members.get_mut(member_id) {
        member.complete_join(JoinResult::error("", ResponseError::UnknownMemberId));
        member.complete_sync(SyncResult::error(ResponseError::UnknownMemberId));
    }
    group.remove(member_id);
    match group.state {
        GroupState::Dead | GroupState::Empty => {}
        GroupState::Stable | GroupState::CompletingRebalance => maybe_prepare_rebalance(group, fx),
        GroupState::PreparingRebalance => try_complete_join(group, fx),
    }
}

/// KIP-394 member ids that were not used within the session timeout.
fn expire_pending_members(group: &mut GroupMetadata, fx: &mut Effects) {
    let before = group.pending_members.len();
    group
        .pending_members
        .retain(|_, deadline_ms| *deadline_ms > fx.now_ms);
    if group.pending_members.len() != before {
        try_complete_join(group, fx);
    }
}

/// Kafka's `onExpireHeartbeat` with `hasSatisfiedHeartbeat`: members waiting in a rebalance
/// are exempt (the rebalance timeout bounds them) unless they are new.
fn expire_heartbeats(group: &mut GroupMetadata, fx: &mut Effects) {
    let expired: Vec<String> = group
        .members
        .values()
        .filter(|m| m.heartbeat_deadline_ms.is_some_and(|d| d <= fx.now_ms))
        .map(|m| m.member_id.clone())
        .collect();
    for member_id in expired {
        let Some(member) = group.members.get_mut(&member_id) else {
            continue;
        };
        let waiting = member.awaiting_join.is_some() || member.awaiting_sync.is_some();
        if waiting && !member.is_new {
            member.heartbeat_deadline_ms = None;
            continue;
        }
        tracing::info!(group = %group.group_id, member = %member_id, "member session expired, removing it from the group");
        remove_member_and_update_group(group, &member_id, fx);
    }
}

/// The join phase's deadline (Kafka's `DelayedJoin` and `InitialDelayedJoin` expiry).
fn expire_join(group: &mut GroupMetadata, fx: &mut Effects) {
    if !group.is(GroupState::PreparingRebalance)
        || group.join_deadline_ms.is_none_or(|d| d > fx.now_ms)
    {
        return;
    }
    if let Some(delay) = group.initial_delay {
        if group.new_member_added && delay.remaining_ms != 0 {
            group.new_member_added = false;
            let next_delay_ms = delay.delay_ms.min(delay.remaining_ms);
            group.initial_delay = Some(InitialDelay {
                delay_ms: delay.delay_ms,
                remaining_ms: (delay.remaining_ms - next_delay_ms).max(0),
            });
            group.join_deadline_ms = Some(fx.now_ms + next_delay_ms);
            return;
        }
    }
    complete_join(group, fx);
}

/// Members that joined but never sent SyncGroup within the rebalance timeout (Kafka's
/// `onExpirePendingSync`) are removed and the group rebalances.
fn expire_pending_sync(group: &mut GroupMetadata, fx: &mut Effects) {
    if group.sync_deadline_ms.is_none_or(|d| d > fx.now_ms) {
        return;
    }
    group.sync_deadline_ms = None;
    let syncing = matches!(
        group.state,
        GroupState::CompletingRebalance | GroupState::Stable
    );
    if !syncing || group.pending_sync_members.is_empty() {
        return;
    }
    let pending: Vec<String> = group.pending_sync_members.iter().cloned().collect();
    for member_id in pending {
        if let Some(member) = group.members.get_mut(&member_id) {
            member.complete_join(JoinResult::error("", ResponseError::UnknownMemberId));
        }
        group.remove(&member_id);
    }
    prepare_rebalance(group, fx);
}
