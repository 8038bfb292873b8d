//! One classic consumer group: its members, generation, protocol and committed offsets.
//!
//! Mirrors Kafka's `GroupMetadata` and `MemberMetadata` (core `kafka.coordinator.group`, and
//! `group-coordinator/.../classic/ClassicGroup.java` since Kafka 3.7). The transitions allowed
//! between [`GroupState`]s are Kafka's; a transition Kafka forbids is a bug here and asserts.
//! Pending responses are `oneshot` senders held by the member they belong to, so completing a
//! rebalance is plain bookkeeping with no I/O.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use futures::channel::oneshot;
use kafka_protocol::error::ResponseError;

use super::records::{GroupMetadataValue, MemberMetadataValue, OffsetCommitValue};

/// A classic group's state (Kafka's `GroupState`; the names are what DescribeGroups and
/// ListGroups return).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members; offsets may still be committed (by `assign()` users or after everyone left).
    Empty,
    /// Waiting for members to (re)join until everyone has or the rebalance timeout passes.
    PreparingRebalance,
    /// Join is done; waiting for the leader's SyncGroup with the assignment.
    CompletingRebalance,
    /// Every member has its assignment and heartbeats.
    Stable,
    /// Deleted or unloaded; no request succeeds against it.
    Dead,
}

impl GroupState {
    /// Kafka's state name, as DescribeGroups and ListGroups return it.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// States a group may come from to enter `self` (Kafka's `validPreviousStates`).
    fn valid_previous(self) -> &'static [GroupState] {
        use GroupState::*;
        match self {
            Empty => &[PreparingRebalance],
            PreparingRebalance => &[Stable, CompletingRebalance, Empty],
            CompletingRebalance => &[PreparingRebalance],
            Stable => &[CompletingRebalance],
            Dead => &[Stable, PreparingRebalance, CompletingRebalance, Empty, Dead],
        }
    }
}

/// What a JoinGroup request is answered with (Kafka's `JoinGroupResult`).
#[derive(Clone, Debug, PartialEq)]
pub struct JoinResult {
    pub error: Option<ResponseError>,
    pub member_id: String,
    /// -1 on errors.
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// Empty on errors.
    pub leader_id: String,
    /// Every member's metadata for the selected protocol; only the leader gets it.
    pub members: Vec<JoinedMember>,
    /// KIP-814 (JoinGroup v9): the leader must not compute a new assignment.
    pub skip_assignment: bool,
}

impl JoinResult {
    /// An error answer (Kafka: `JoinGroupResult(memberId, error)`).
    pub fn error(member_id: impl Into<String>, error: ResponseError) -> JoinResult {
        JoinResult {
            error: Some(error),
            member_id: member_id.into(),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader_id: String::new(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

/// One member as the leader sees it in its JoinGroup response.
#[derive(Clone, Debug, PartialEq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// What a SyncGroup request is answered with (Kafka's `SyncGroupResult`).
#[derive(Clone, Debug, PartialEq)]
pub struct SyncResult {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    /// An error answer with an empty assignment.
    pub fn error(error: ResponseError) -> SyncResult {
        SyncResult {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// One member of a group (Kafka's `MemberMetadata`).
#[derive(Debug)]
pub struct MemberMetadata {
    pub member_id: String,
    /// `group.instance.id` of a static member (KIP-345).
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Milliseconds a rebalance may take for this member to rejoin.
    pub rebalance_timeout_ms: i32,
    /// Milliseconds without a heartbeat after which the member is removed.
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// Assignment from the leader's last SyncGroup.
    pub assignment: Bytes,
    /// The member's JoinGroup waiting for the join phase to complete.
    pub awaiting_join: Option<oneshot::Sender<JoinResult>>,
    /// The member's SyncGroup waiting for the leader's assignment.
    pub awaiting_sync: Option<oneshot::Sender<SyncResult>>,
    /// Joined during the current rebalance and not yet part of a generation.
    pub is_new: bool,
    /// Milliseconds since the Unix epoch after which the member expires, unless it is awaiting
    /// a join or sync (Kafka's `hasSatisfiedHeartbeat`). `None` while nothing is scheduled.
    pub heartbeat_deadline_ms: Option<i64>,
}

impl MemberMetadata {
    /// The member's metadata for `protocol`, empty when it does not support it.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    /// True when the member sent exactly these protocols before (Kafka's `matches`).
    pub fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// The first of the member's protocols that is among `candidates` (Kafka's `vote`).
    fn vote<'a>(&'a self, candidates: &HashSet<&str>) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .find(|name| candidates.contains(name))
    }

    /// Answers a waiting JoinGroup, if any.
    pub fn complete_join(&mut self, result: JoinResult) -> bool {
        match self.awaiting_join.take() {
            Some(sender) => {
                // The receiver is gone when the client disconnected; nothing to answer then.
                let _ = sender.send(result);
                true
            }
            None => false,
        }
    }

    /// Answers a waiting SyncGroup, if any.
    pub fn complete_sync(&mut self, result: SyncResult) -> bool {
        match self.awaiting_sync.take() {
            Some(sender) => {
                let _ = sender.send(result);
                true
            }
            None => false,
        }
    }
}

/// Delay state of a new group's first rebalance (Kafka's `InitialDelayedJoin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitialDelay {
    /// `group.initial.rebalance.delay.ms`.
    pub delay_ms: i64,
    /// Milliseconds the join may still be extended by while new members keep arriving.
    pub remaining_ms: i64,
}

/// A classic group and its committed offsets (Kafka's `GroupMetadata`).
#[derive(Debug)]
pub struct GroupMetadata {
    pub group_id: String,
    pub state: GroupState,
    /// Milliseconds since the Unix epoch of the last state transition.
    pub state_timestamp_ms: i64,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    /// Members by member id.
    pub members: BTreeMap<String, MemberMetadata>,
    /// KIP-394: member ids handed out with MEMBER_ID_REQUIRED, with the deadline (ms since the
    /// Unix epoch) by which they must join.
    pub pending_members: HashMap<String, i64>,
    /// Members of the current generation that have not sent SyncGroup yet.
    pub pending_sync_members: HashSet<String>,
    /// `group.instance.id` -> member id (KIP-345).
    pub static_members: HashMap<String, String>,
    /// A member joined the first rebalance of a new group, extending the initial delay.
    pub new_member_added: bool,
    /// When the join phase expires (ms since the Unix epoch), while PreparingRebalance.
    pub join_deadline_ms: Option<i64>,
    /// Set while the first rebalance of an Empty group is delayed.
    pub initial_delay: Option<InitialDelay>,
    /// When members still missing from SyncGroup are removed (ms since the Unix epoch).
    pub sync_deadline_ms: Option<i64>,
    /// Committed offsets by (topic, partition).
    pub offsets: HashMap<(String, i32), OffsetCommitValue>,
}

impl GroupMetadata {
    /// A new group in `Empty` with generation 0.
    pub fn new(group_id: impl Into<String>, now_ms: i64) -> GroupMetadata {
        GroupMetadata {
            group_id: group_id.into(),
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            pending_members: HashMap::new(),
            pending_sync_members: HashSet::new(),
            static_members: HashMap::new(),
            new_member_added: false,
            join_deadline_ms: None,
            initial_delay: None,
            sync_deadline_ms: None,
            offsets: HashMap::new(),
        }
    }

    /// Moves to `target`; asserts that Kafka allows the transition.
    pub fn transition_to(&mut self, target: GroupState, now_ms: i64) {
        assert!(
            target.valid_previous().contains(&self.state),
            "group {}: illegal transition {:?} -> {:?}",
            self.group_id,
            self.state,
            target
        );
        self.state = target;
        self.state_timestamp_ms = now_ms;
    }

    pub fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    pub fn has(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    /// True when a rebalance may start from the current state (Kafka's `canRebalance`).
    pub fn can_rebalance(&self) -> bool {
        GroupState::PreparingRebalance
            .valid_previous()
            .contains(&self.state)
    }

    /// The member id currently holding `group_instance_id`.
    pub fn static_member_id(&self, group_instance_id: &str) -> Option<&str> {
        self.static_members
            .get(group_instance_id)
            .map(String::as_str)
    }

    /// True when `group_instance_id` is held by a member other than `member_id` (Kafka's
    /// `isStaticMemberFenced`).
    pub fn is_static_member_fenced(
        &self,
        group_instance_id: Option<&str>,
        member_id: &str,
    ) -> bool {
        match group_instance_id.and_then(|id| self.static_member_id(id)) {
            Some(current) => current != member_id,
            None => false,
        }
    }

    /// Members whose JoinGroup is waiting.
    pub fn num_members_awaiting_join(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.awaiting_join.is_some())
            .count()
    }

    /// Every member rejoined and no KIP-394 member id is outstanding (Kafka's
    /// `hasAllMembersJoined`).
    pub fn has_all_members_joined(&self) -> bool {
        self.members.len() == self.num_members_awaiting_join() && self.pending_members.is_empty()
    }

    /// Largest rebalance timeout among the members, in milliseconds.
    pub fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms as i64)
            .max()
            .unwrap_or(0)
    }

    /// Adds a member (Kafka's `GroupMetadata.add`): the first member sets the protocol type
    /// and becomes leader.
    pub fn add(&mut self, member: MemberMetadata) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.member_id.clone());
        }
        if let Some(instance_id) = &member.group_instance_id {
            self.static_members
                .insert(instance_id.clone(), member.member_id.clone());
        }
        self.pending_members.remove(&member.member_id);
        self.members.insert(member.member_id.clone(), member);
    }

    /// Removes a member (Kafka's `GroupMetadata.remove`); a removed leader is replaced by any
    /// remaining member.
    pub fn remove(&mut self, member_id: &str) -> Option<MemberMetadata> {
        let member = self.members.remove(member_id)?;
        if let Some(instance_id) = &member.group_instance_id {
            if self.static_member_id(instance_id) == Some(member_id) {
                self.static_members.remove(instance_id);
            }
        }
        self.pending_sync_members.remove(member_id);
        if self.is_leader(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
        Some(member)
    }

    /// Gives a static member's slot to `new_member_id`, fencing whatever the old member id is
    /// waiting for (Kafka's `replaceStaticMember`).
    pub fn replace_static_member(
        &mut self,
        group_instance_id: &str,
        old_member_id: &str,
        new_member_id: &str,
    ) {
        let Some(mut member) = self.members.remove(old_member_id) else {
            panic!(
                "group {}: static member {old_member_id} is not a member",
                self.group_id
            );
        };
        member.complete_join(JoinResult::error(
            old_member_id,
            ResponseError::FencedInstanceId,
        ));
        member.complete_sync(SyncResult::error(ResponseError::FencedInstanceId));
        member.member_id = new_member_id.to_owned();
        if self.pending_sync_members.remove(old_member_id) {
            self.pending_sync_members.insert(new_member_id.to_owned());
        }
        self.members.insert(new_member_id.to_owned(), member);
        if self.is_leader(old_member_id) {
            self.leader_id = Some(new_member_id.to_owned());
        }
        self.static_members
            .insert(group_instance_id.to_owned(), new_member_id.to_owned());
    }

    /// True when a member with these protocols may join (Kafka's `supportsProtocols`): an Empty
    /// group needs a protocol type and at least one protocol; otherwise the type must match and
    /// one of the protocols must be supported by every current member.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.is(GroupState::Empty) {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .all(|member| member.protocols.iter().any(|(own, _)| own == name))
        })
    }

    /// The protocol every member supports with the most first-choice votes (Kafka's
    /// `selectProtocol`); ties go to the candidate voted for first in member order.
    pub fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: HashSet<&str> = first
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| {
                self.members
                    .values()
                    .all(|member| member.protocols.iter().any(|(own, _)| own == name))
            })
            .collect();
        let mut votes: Vec<(&str, usize)> = Vec::new();
        for member in self.members.values() {
            if let Some(choice) = member.vote(&candidates) {
                match votes.iter_mut().find(|(name, _)| *name == choice) {
                    Some((_, count)) => *count += 1,
                    None => votes.push((choice, 1)),
                }
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for (name, count) in votes {
            if best.is_none_or(|(_, top)| count > top) {
                best = Some((name, count));
            }
        }
        best.map(|(name, _)| name.to_owned())
    }

    /// Every member's metadata for the selected protocol, as the leader receives it.
    pub fn current_member_metadata(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|member| JoinedMember {
                member_id: member.member_id.clone(),
                group_instance_id: member.group_instance_id.clone(),
                metadata: member.metadata(protocol),
            })
            .collect()
    }

    /// If the leader has not rejoined, makes the first rejoined member leader (Kafka's
    /// `maybeElectNewJoinedLeader`). False when no member has rejoined.
    pub fn maybe_elect_new_joined_leader(&mut self) -> bool {
        if let Some(leader) = &self.leader_id {
            if self
                .members
                .get(leader)
                .is_some_and(|m| m.awaiting_join.is_some())
            {
                return true;
            }
        }
        match self.members.values().find(|m| m.awaiting_join.is_some()) {
            Some(member) => {
                self.leader_id = Some(member.member_id.clone());
                true
            }
            None => {
                self.leader_id = None;
                false
            }
        }
    }

    /// Starts the next generation (Kafka's `initNextGeneration`).
    pub fn init_next_generation(&mut self, now_ms: i64) {
        self.generation_id += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition_to(GroupState::Empty, now_ms);
        } else {
            self.protocol_name = self.select_protocol();
            self.transition_to(GroupState::CompletingRebalance, now_ms);
        }
        self.pending_sync_members.clear();
    }

    /// Topics the members subscribe to, when the group uses the consumer protocol and every
    /// subscription decodes (Kafka's `computeSubscribedTopics`). `None` means unknown.
    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for member in self.members.values() {
            for topic in decode_subscription_topics(&member.metadata(protocol))? {
                topics.insert(topic);
            }
        }
        Some(topics)
    }

    /// The group as stored in `__consumer_offsets` (Kafka's `groupMetadataValue`).
    pub fn to_value(&self) -> GroupMetadataValue {
        let protocol = self.protocol_name.clone();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol: protocol.clone(),
            leader: self.leader_id.clone(),
            current_state_timestamp: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|member| MemberMetadataValue {
                    member_id: member.member_id.clone(),
                    group_instance_id: member.group_instance_id.clone(),
                    client_id: member.client_id.clone(),
                    client_host: member.client_host.clone(),
                    rebalance_timeout: member.rebalance_timeout_ms,
                    session_timeout: member.session_timeout_ms,
                    subscription: member.metadata(protocol.as_deref().unwrap_or_default()),
                    assignment: member.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Restores membership from a stored value (Kafka's `GroupMetadata.loadGroup`): Empty
    /// without members, else Stable, and every member must heartbeat within its session
    /// timeout from `now_ms`.
    pub fn load(&mut self, value: GroupMetadataValue, now_ms: i64) {
        self.generation_id = value.generation;
        self.protocol_type = (!value.protocol_type.is_empty()).then_some(value.protocol_type);
        self.protocol_name = value.protocol.clone();
        self.leader_id = value.leader;
        self.state_timestamp_ms = if value.current_state_timestamp >= 0 {
            value.current_state_timestamp
        } else {
            now_ms
        };
        self.members.clear();
        self.static_members.clear();
        self.state = if value.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        let protocol_type = self.protocol_type.clone().unwrap_or_default();
        let protocol = value.protocol.unwrap_or_default();
        for stored in value.members {
            if let Some(instance_id) = &stored.group_instance_id {
                self.static_members
                    .insert(instance_id.clone(), stored.member_id.clone());
            }
            let member = MemberMetadata {
                member_id: stored.member_id.clone(),
                group_instance_id: stored.group_instance_id,
                client_id: stored.client_id,
                client_host: stored.client_host,
                rebalance_timeout_ms: stored.rebalance_timeout,
                session_timeout_ms: stored.session_timeout,
                protocol_type: protocol_type.clone(),
                protocols: vec![(protocol.clone(), stored.subscription)],
                assignment: stored.assignment,
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
                heartbeat_deadline_ms: Some(now_ms + stored.session_timeout as i64),
            };
            self.members.insert(stored.member_id, member);
        }
        if self
            .leader_id
            .as_ref()
            .is_some_and(|leader| !self.members.contains_key(leader))
        {
            self.leader_id = self.members.keys().next().cloned();
        }
    }
}

/// Topics of a `ConsumerProtocolSubscription` (version i16, then the topic array, the same in
/// every version 0-3), `None` when the bytes do not decode. Parsed by hand so that a hostile
/// array length cannot make us allocate: each topic needs at least its 2-byte length.
fn decode_subscription_topics(metadata: &Bytes) -> Option<Vec<String>> {
    let bytes: &[u8] = metadata;
    let count = i32::from_be_bytes(bytes.get(2..6)?.try_into().ok()?);
    let mut rest = &bytes[6..];
    if count < 0 || count as usize > rest.len() / 2 {
        return None;
    }
    let mut topics = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let length = i16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
        if length < 0 {
            return None;
        }
        let name = rest.get(2..2 + length as usize)?;
        topics.push(std::str::from_utf8(name).ok()?.to_owned());
        rest = &rest[2 + length as usize..];
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, protocols: &[&str]) -> MemberMetadata {
        MemberMetadata {
            member_id: id.into(),
            group_instance_id: None,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 300_000,
            session_timeout_ms: 10_000,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|name| (name.to_string(), Bytes::from(name.to_string())))
                .collect(),
            assignment: Bytes::new(),
            awaiting_join: None,
            awaiting_sync: None,
            is_new: false,
            heartbeat_deadline_ms: None,
        }
    }

    fn check_selection(members: &[&[&str]], expected: Option<&str>) {
        let mut group = GroupMetadata::new("g", 0);
        for (i, protocols) in members.iter().enumerate() {
            group.add(member(&format!("m{i}"), protocols));
        }
        assert_eq!(group.select_protocol().as_deref(), expected, "{members:?}");
    }

    #[test]
    fn selects_protocol_by_votes_among_common_ones() {
        check_selection(&[&["range", "roundrobin"]], Some("range"));
        check_selection(
            &[
                &["range", "roundrobin"],
                &["roundrobin", "range"],
                &["roundrobin"],
            ],
            Some("roundrobin"),
        );
        check_selection(
            &[
                &["cooperative-sticky", "range"],
                &["cooperative-sticky", "range"],
                &["range"],
            ],
            Some("range"),
        );
        check_selection(&[&["a", "b"], &["b", "a"], &["a", "b"]], Some("a"));
        check_selection(&[&["a"], &["b"]], None);
    }

    #[test]
    fn supports_protocols_needs_one_common_protocol() {
        let mut group = GroupMetadata::new("g", 0);
        assert!(!group.supports_protocols("", &member("x", &["range"]).protocols));
        assert!(!group.supports_protocols("consumer", &[]));
        group.add(member("a", &["range", "roundrobin"]));
        group.transition_to(GroupState::PreparingRebalance, 0);
        assert!(group.supports_protocols("consumer", &member("x", &["roundrobin"]).protocols));
        assert!(!group.supports_protocols("consumer", &member("x", &["sticky"]).protocols));
        assert!(!group.supports_protocols("connect", &member("x", &["range"]).protocols));
    }

    #[test]
    fn removing_leader_elects_another() {
        let mut group = GroupMetadata::new("g", 0);
        group.add(member("a", &["range"]));
        group.add(member("b", &["range"]));
        assert!(group.is_leader("a"));
        group.remove("a");
        assert!(group.is_leader("b"));
        group.remove("b");
        assert_eq!(group.leader_id, None);
    }

    #[test]
    #[should_panic(expected = "illegal transition")]
    fn forbidden_transition_asserts() {
        let mut group = GroupMetadata::new("g", 0);
        group.transition_to(GroupState::Stable, 0);
    }

    #[test]
    fn subscription_topics_decode() {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::{Encodable, StrBytes};
        let subscription = ConsumerProtocolSubscription::default().with_topics(vec![
            StrBytes::from_static_str("orders"),
            StrBytes::from_static_str("payments"),
        ]);
        let mut buf = bytes::BytesMut::new();
        bytes::BufMut::put_i16(&mut buf, 1);
        subscription.encode(&mut buf, 1).expect("encode");
        let topics = decode_subscription_topics(&buf.freeze()).expect("decodes");
        assert_eq!(topics, vec!["orders".to_string(), "payments".to_string()]);
        assert_eq!(
            decode_subscription_topics(&Bytes::from_static(b"\x00")),
            None
        );
        assert_eq!(
            decode_subscription_topics(&Bytes::from_static(b"\x00\x00\x00\x05ab")),
            None
        );
        assert_eq!(
            decode_subscription_topics(&Bytes::from_static(b"ra\x7f\xff\xff\xffmeta")),
            None
        );
        assert_eq!(
            decode_subscription_topics(&Bytes::from_static(b"\x00\x00\x00\x00\x00\x01\x00\x09ab")),
            None
        );
    }
}
