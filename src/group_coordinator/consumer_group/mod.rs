//! KIP-848 consumer groups (`group.protocol=consumer`), sans-io like
//! [`super::coordinator_state`]: the broker computes the assignment, members heartbeat with
//! ConsumerGroupHeartbeat.
//!
//! Kafka's model (group-coordinator `GroupMetadataManager`, `ConsumerGroup`):
//! - the **group epoch** rises whenever the group's membership, a member's subscription, or the
//!   metadata of a subscribed topic (its id or partition count; a topic a regex now matches)
//!   changes;
//! - the **target assignment** is computed by the server assignor ([`assignor`]) for a group
//!   epoch and carries that epoch as the **assignment epoch**;
//! - each member reconciles towards its target ([`reconcile`]): it gives up partitions before
//!   it receives new ones, and its **member epoch** becomes the assignment epoch once it owns
//!   exactly what it may own.
//!
//! Every change emits the `ConsumerGroup*` records of `__consumer_offsets` through the
//! coordinator's pending records; [`coordinator`] replays them. Offsets of a consumer group live
//! in the classic [`super::group::GroupMetadata`] of the same id (an offsets holder with no
//! members), so the offset paths are shared.

pub mod assignor;
pub mod coordinator;
pub mod member;
pub mod reconcile;
mod service;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

use member::{Assignment, ConsumerGroupMember, MemberState};

/// ConsumerGroupHeartbeat `member_epoch` of a member leaving the group (Kafka's
/// `LEAVE_GROUP_MEMBER_EPOCH`).
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// `member_epoch` of a static member leaving temporarily (`LEAVE_GROUP_STATIC_MEMBER_EPOCH`).
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;
/// ConsumerGroupDescribe v1 `member_type` of a member using ConsumerGroupHeartbeat.
pub const MEMBER_TYPE_CONSUMER: i8 = 1;

/// The topics an assignment may use: name -> (topic id, partition count), internal topics
/// excluded. Built from the broker's metadata image for each request.
#[derive(Clone, Debug, Default)]
pub struct TopicsView {
    pub by_name: BTreeMap<String, (Uuid, i32)>,
}

impl TopicsView {
    /// Every non-internal topic of `image`.
    pub fn from_image(image: &crate::metadata::MetadataImage) -> TopicsView {
        TopicsView {
            by_name: image
                .topics
                .values()
                .filter(|t| !t.internal)
                .map(|t| (t.name.clone(), (t.topic_id, t.partitions.len() as i32)))
                .collect(),
        }
    }

    /// The name of topic `topic_id`, if it exists.
    pub fn name_of(&self, topic_id: &Uuid) -> Option<&str> {
        self.by_name
            .iter()
            .find(|(_, (id, _))| id == topic_id)
            .map(|(name, _)| name.as_str())
    }
}

/// Kafka's `ConsumerGroup.ConsumerGroupState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    /// The group epoch is ahead of the assignment epoch.
    Assigning,
    /// Some member has not reached the assignment epoch or owns less than its target.
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    /// The name ListGroups and ConsumerGroupDescribe show (Kafka's `toString`).
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

/// The topics a regular expression matched when it was last resolved (Kafka's
/// `ResolvedRegularExpression`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedRegex {
    pub topics: BTreeSet<String>,
    /// Raised each time the set changes.
    pub version: i64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
}

/// One consumer group.
#[derive(Clone, Debug)]
pub struct ConsumerGroup {
    pub group_id: String,
    pub group_epoch: i32,
    /// Hash of the subscribed topics' metadata at `group_epoch` (see [`metadata_hash`]).
    pub metadata_hash: i64,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerGroupMember>,
    /// Member id -> target assignment at `assignment_epoch`.
    pub target_assignment: BTreeMap<String, Assignment>,
    /// Regular expression -> resolution.
    pub resolved_regexes: BTreeMap<String, ResolvedRegex>,
    /// Compiled regular expressions (not persisted).
    compiled: HashMap<String, regex::Regex>,
    /// When every regular expression was last resolved, ms since the Unix epoch (`None`: never
    /// in this process, so the first heartbeat after a restart re-resolves them).
    last_regex_refresh_ms: Option<i64>,
    /// [`topic_names_fingerprint`] of the topics at that resolution.
    last_regex_topics: u64,
}

/// Kafka's `REGEX_BATCH_REFRESH_MIN_INTERVAL_MS`: resolved regular expressions are refreshed at
/// most this often (10 s), unless one of them has never been resolved.
pub const REGEX_REFRESH_MIN_INTERVAL_MS: i64 = 10_000;

/// A fingerprint of the topic names in `topics` (FNV-1a over the sorted names), to see that
/// topics were created or deleted since the last regex resolution.
fn topic_names_fingerprint(topics: &TopicsView) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for name in topics.by_name.keys() {
        for b in name.as_bytes().iter().chain(std::iter::once(&0u8)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

impl ConsumerGroup {
    /// An empty group at epoch 0.
    pub fn new(group_id: String) -> ConsumerGroup {
        ConsumerGroup {
            group_id,
            group_epoch: 0,
            metadata_hash: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target_assignment: BTreeMap::new(),
            resolved_regexes: BTreeMap::new(),
            compiled: HashMap::new(),
            last_regex_refresh_ms: None,
            last_regex_topics: 0,
        }
    }

    /// Kafka's `ConsumerGroup.updateState` rules, derived instead of stored.
    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self.members.values().any(|m| {
            m.state != MemberState::Stable
                || (m.member_epoch != self.assignment_epoch
                    && m.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH)
        }) {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    /// The member holding `group.instance.id` `instance_id`.
    pub fn static_member(&self, instance_id: &str) -> Option<&ConsumerGroupMember> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance_id))
    }

    /// The compiled form of `pattern` (full match, RE2 syntax as Kafka's re2j); `Err` is the
    /// parser's message.
    pub fn compile(pattern: &str) -> Result<regex::Regex, String> {
        regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| e.to_string())
    }

    /// Resolves every member's regular expression against `topics`; true when a resolution
    /// changed (the caller then records it and bumps the group epoch via the metadata hash).
    ///
    /// When they are resolved follows Kafka 4.1's `maybeUpdateRegularExpressions`: at once when
    /// some pattern has never been resolved; otherwise only after
    /// [`REGEX_REFRESH_MIN_INTERVAL_MS`] since the last resolution, and then only if topics
    /// were created or deleted since, or `refresh_interval_ms`
    /// (`group.consumer.regex.refresh.interval.ms`) has passed.
    pub fn refresh_regexes(
        &mut self,
        topics: &TopicsView,
        now_ms: i64,
        refresh_interval_ms: i64,
    ) -> Vec<String> {
        let patterns: BTreeSet<String> = self
            .members
            .values()
            .filter_map(|m| m.subscribed_topic_regex.clone())
            .collect();
        let mut changed = Vec::new();
        self.resolved_regexes.retain(|p, _| patterns.contains(p));
        self.compiled.retain(|p, _| patterns.contains(p));
        if patterns.is_empty() {
            return changed;
        }
        let unresolved = patterns
            .iter()
            .any(|p| !self.resolved_regexes.contains_key(p) || !self.compiled.contains_key(p));
        let fingerprint = topic_names_fingerprint(topics);
        let due = self.last_regex_refresh_ms.is_none_or(|last| {
            let since = now_ms.saturating_sub(last);
            since >= REGEX_REFRESH_MIN_INTERVAL_MS
                && (fingerprint != self.last_regex_topics || since >= refresh_interval_ms)
        });
        if !unresolved && !due {
            return changed;
        }
        self.last_regex_refresh_ms = Some(now_ms);
        self.last_regex_topics = fingerprint;
        for pattern in patterns {
            if !self.compiled.contains_key(&pattern) {
                match ConsumerGroup::compile(&pattern) {
                    Ok(re) => {
                        self.compiled.insert(pattern.clone(), re);
                    }
                    Err(_) => continue,
                }
            }
            let re = &self.compiled[&pattern];
            let matched: BTreeSet<String> = topics
                .by_name
                .keys()
                .filter(|name| re.is_match(name))
                .cloned()
                .collect();
            match self.resolved_regexes.get_mut(&pattern) {
                Some(resolved) if resolved.topics == matched => {}
                Some(resolved) => {
                    resolved.topics = matched;
                    resolved.version += 1;
                    resolved.timestamp = now_ms;
                    changed.push(pattern);
                }
                None => {
                    self.resolved_regexes.insert(
                        pattern.clone(),
                        ResolvedRegex {
                            topics: matched,
                            version: 1,
                            timestamp: now_ms,
                        },
                    );
                    changed.push(pattern);
                }
            }
        }
        changed
    }

    /// Topic names `member` subscribes to: its names and what its regex resolved to.
    pub fn member_topics(&self, member: &ConsumerGroupMember) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = member.subscribed_topic_names.iter().cloned().collect();
        if let Some(resolved) = member
            .subscribed_topic_regex
            .as_ref()
            .and_then(|p| self.resolved_regexes.get(p))
        {
            names.extend(resolved.topics.iter().cloned());
        }
        names
    }

    /// Every topic name some member subscribes to.
    pub fn subscribed_topic_names(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| self.member_topics(m))
            .collect()
    }

    /// The assignor of the group: the `server_assignor` most members name (ties: by name),
    /// else `default` (Kafka's `computePreferredServerAssignor`).
    pub fn preferred_assignor(&self, default: &str) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(name) = member.server_assignor.as_deref() {
                *counts.entry(name).or_default() += 1;
            }
        }
        counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(name, _)| (*name).to_owned())
            .unwrap_or_else(|| default.to_owned())
    }

    /// Recomputes the target assignment for the group epoch; returns the members whose target
    /// changed (including members now absent from it).
    pub fn compute_target_assignment(
        &mut self,
        topics: &TopicsView,
        default_assignor: &str,
    ) -> Vec<String> {
        let assignor = self.preferred_assignor(default_assignor);
        let mut partitions: BTreeMap<Uuid, i32> = BTreeMap::new();
        let mut members = BTreeMap::new();
        for (id, member) in &self.members {
            let mut subscribed = BTreeSet::new();
            for name in self.member_topics(member) {
                if let Some((topic_id, count)) = topics.by_name.get(&name) {
                    subscribed.insert(*topic_id);
                    partitions.insert(*topic_id, *count);
                }
            }
            members.insert(
                id.clone(),
                assignor::AssignorMember {
                    subscribed_topic_ids: subscribed,
                    previous: self.target_assignment.get(id).cloned().unwrap_or_default(),
                },
            );
        }
        let result = assignor::assign(&assignor, &members, &partitions);
        let mut changed = Vec::new();
        for (id, assignment) in &result {
            let assignment = member::normalized(assignment);
            if self.target_assignment.get(id) != Some(&assignment) {
                changed.push(id.clone());
            }
        }
        self.target_assignment = result
            .into_iter()
            .map(|(id, a)| (id, member::normalized(&a)))
            .collect();
        self.assignment_epoch = self.group_epoch;
        changed
    }

    /// (topic id, partition) -> member id holding it (assigned or pending revocation).
    pub fn partition_owners(&self) -> HashMap<(Uuid, i32), String> {
        let mut owners = HashMap::new();
        for member in self.members.values() {
            for assignment in [
                &member.assigned_partitions,
                &member.partitions_pending_revocation,
            ] {
                for (topic_id, partitions) in assignment {
                    for partition in partitions {
                        owners.insert((*topic_id, *partition), member.member_id.clone());
                    }
                }
            }
        }
        owners
    }
}

/// The group's metadata hash as Kafka 4.1 computes it (KIP-1101, `ModernGroup
/// .computeMetadataHash` and `Utils.computeGroupHash`): XXH3-64 (seed 0) over the
/// [`topic_hash`] of each subscribed topic that exists, in topic-name order, each as an
/// 8-byte little-endian long; 0 when none exists. The group epoch moves when it changes, and a
/// group moved between Kafka and Ringtail keeps its epoch: the value is the same.
///
/// Kafka sorts by `String.compareTo` (UTF-16 units), `BTreeSet` by UTF-8 bytes; topic names are
/// ASCII (`[a-zA-Z0-9._-]`), where both orders agree.
pub fn metadata_hash(subscribed: &BTreeSet<String>, topics: &TopicsView) -> i64 {
    let mut topic_hashes = Vec::with_capacity(8 * subscribed.len());
    for name in subscribed {
        if let Some((topic_id, partitions)) = topics.by_name.get(name) {
            topic_hashes.extend_from_slice(&topic_hash(topic_id, name, *partitions).to_le_bytes());
        }
    }
    if topic_hashes.is_empty() {
        return 0;
    }
    twox_hash::XxHash3_64::oneshot(&topic_hashes) as i64
}

/// Kafka 4.1's `Utils.computeTopicHash`, fed as hash4j's `HashStream64` feeds XXH3 (little
/// endian; a string is its UTF-16 code units, then their count as an int): the magic byte 0,
/// the topic id's most and least significant longs, the name, the partition count, then each
/// partition's number followed by the sorted racks of its replicas' brokers. Ringtail's one
/// broker has no rack (Kafka without `broker.rack` feeds none either).
fn topic_hash(topic_id: &Uuid, name: &str, partitions: i32) -> i64 {
    fn put_string(bytes: &mut Vec<u8>, value: &str) {
        let mut units: i32 = 0;
        for unit in value.encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
            units = units.saturating_add(1);
        }
        bytes.extend_from_slice(&units.to_le_bytes());
    }
    let partitions = partitions.max(0);
    let mut bytes = Vec::with_capacity(1 + 16 + 2 * name.len() + 8 + 4 * partitions as usize);
    bytes.push(0); // TOPIC_HASH_MAGIC_BYTE
    let (most, least) = topic_id.as_u64_pair();
    bytes.extend_from_slice(&most.to_le_bytes());
    bytes.extend_from_slice(&least.to_le_bytes());
    put_string(&mut bytes, name);
    bytes.extend_from_slice(&partitions.to_le_bytes());
    for partition in 0..partitions {
        bytes.extend_from_slice(&partition.to_le_bytes());
    }
    twox_hash::XxHash3_64::oneshot(&bytes) as i64
}

/// A consumer group as a ListGroups entry (protocol type "consumer", v4+ state, v5+ type).
pub fn listed_group(
    group: coordinator::ListedConsumerGroup,
    version: i16,
) -> kafka_protocol::messages::list_groups_response::ListedGroup {
    use kafka_protocol::protocol::StrBytes;
    let listed = kafka_protocol::messages::list_groups_response::ListedGroup::default()
        .with_group_id(kafka_protocol::messages::GroupId(StrBytes::from_string(
            group.group_id,
        )))
        .with_protocol_type(StrBytes::from_static_str("consumer"));
    let listed = if version >= 4 {
        listed.with_group_state(StrBytes::from_static_str(group.state.name()))
    } else {
        listed
    };
    if version >= 5 {
        listed.with_group_type(StrBytes::from_static_str("consumer"))
    } else {
        listed
    }
}

#[cfg(test)]
mod tests;
