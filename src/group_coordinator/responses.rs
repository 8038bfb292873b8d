//! Builds the Kafka response structs from coordinator results, per request version.
//!
//! Version rules are Kafka's `KafkaApis` and response classes: JoinGroup < v7 has a
//! non-nullable protocol name (empty when none); LeaveGroup < v3 carries the first member
//! error at the top; OffsetFetch v1 has per-partition errors only, v2-7 a top-level error,
//! v8+ one error per group; DescribeGroups v6 reports a missing group as GROUP_ID_NOT_FOUND.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup as WireListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    GroupId, JoinGroupResponse, LeaveGroupResponse, OffsetCommitResponse, OffsetDeleteResponse,
    OffsetFetchResponse, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::code;
use super::coordinator_state::{FetchedOffsets, GroupSummary, ListedGroup};
use super::group::{JoinResult, SyncResult};
use super::records::OffsetCommitValue;

/// Kafka's `AclOperation` bits a group supports: READ (3), DELETE (6), DESCRIBE (8),
/// DESCRIBE_CONFIGS (10), ALTER_CONFIGS (11). Everything is allowed: there are no ACLs.
const GROUP_AUTHORIZED_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11);

pub(super) fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub(super) fn join_group(result: JoinResult, version: i16) -> JoinGroupResponse {
    let members = result
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(text(m.member_id))
                .with_group_instance_id(if version >= 5 {
                    m.group_instance_id.map(text)
                } else {
                    None
                })
                .with_metadata(m.metadata)
        })
        .collect();
    let protocol_name = match result.protocol_name {
        Some(name) => Some(text(name)),
        None if version >= 7 => None,
        None => Some(StrBytes::default()),
    };
    JoinGroupResponse::default()
        .with_error_code(code(result.error))
        .with_generation_id(result.generation_id)
        .with_protocol_type(result.protocol_type.map(text))
        .with_protocol_name(protocol_name)
        .with_leader(text(result.leader_id))
        .with_skip_assignment(version >= 9 && result.skip_assignment)
        .with_member_id(text(result.member_id))
        .with_members(members)
}

pub(super) fn sync_group(result: SyncResult, _version: i16) -> SyncGroupResponse {
    SyncGroupResponse::default()
        .with_error_code(code(result.error))
        .with_protocol_type(result.protocol_type.map(text))
        .with_protocol_name(result.protocol_name.map(text))
        .with_assignment(result.assignment)
}

pub(super) fn leave_group(
    members: &[(String, Option<String>)],
    result: Result<Vec<Option<ResponseError>>, ResponseError>,
    version: i16,
) -> LeaveGroupResponse {
    match result {
        Err(error) => LeaveGroupResponse::default().with_error_code(error.code()),
        Ok(errors) if version >= 3 => {
            let members = members
                .iter()
                .zip(errors)
                .map(|((member_id, group_instance_id), error)| {
                    MemberResponse::default()
                        .with_member_id(text(member_id.clone()))
                        .with_group_instance_id(group_instance_id.clone().map(text))
                        .with_error_code(code(error))
                })
                .collect();
            LeaveGroupResponse::default().with_members(members)
        }
        Ok(errors) => {
            let first_error = errors.into_iter().flatten().next();
            LeaveGroupResponse::default().with_error_code(code(first_error))
        }
    }
}

pub(super) fn offset_commit(
    results: Vec<(String, i32, Option<ResponseError>)>,
) -> OffsetCommitResponse {
    let mut topics: Vec<OffsetCommitResponseTopic> = Vec::new();
    for (topic, partition, error) in results {
        let partition = OffsetCommitResponsePartition::default()
            .with_partition_index(partition)
            .with_error_code(code(error));
        match topics.last_mut() {
            Some(last) if last.name.as_str() == topic => last.partitions.push(partition),
            _ => topics.push(
                OffsetCommitResponseTopic::default()
                    .with_name(TopicName(text(topic)))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    OffsetCommitResponse::default().with_topics(topics)
}

/// One group of an OffsetFetch v8+ response.
pub(super) fn offset_fetch_group(
    group_id: GroupId,
    _requested: Option<Vec<(String, Vec<i32>)>>,
    result: Result<FetchedOffsets, ResponseError>,
) -> OffsetFetchResponseGroup {
    let group = OffsetFetchResponseGroup::default().with_group_id(group_id);
    match result {
        Err(error) => group.with_error_code(error.code()),
        Ok(topics) => group.with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(text(topic)))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|(partition, value)| {
                                    let (offset, epoch, metadata) = committed(value);
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(partition)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(epoch)
                                        .with_metadata(Some(metadata))
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    }
}

/// An OffsetFetch v1-7 response for one group.
pub(super) fn offset_fetch_single(
    requested: Option<Vec<(String, Vec<i32>)>>,
    result: Result<FetchedOffsets, ResponseError>,
    version: i16,
) -> OffsetFetchResponse {
    let topics: Vec<OffsetFetchResponseTopic> = match &result {
        Ok(topics) => topics
            .iter()
            .map(|(topic, partitions)| {
                wire_topic(
                    topic,
                    partitions
                        .iter()
                        .map(|(p, v)| (*p, v.clone(), None))
                        .collect(),
                    version,
                )
            })
            .collect(),
        // v1 has no top-level error: every requested partition carries it.
        Err(error) if version < 2 => requested
            .unwrap_or_default()
            .into_iter()
            .map(|(topic, partitions)| {
                wire_topic(
                    &topic,
                    partitions
                        .into_iter()
                        .map(|p| (p, None, Some(*error)))
                        .collect(),
                    version,
                )
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let error_code = match result {
        Err(error) if version >= 2 => error.code(),
        _ => 0,
    };
    OffsetFetchResponse::default()
        .with_topics(topics)
        .with_error_code(error_code)
}

fn wire_topic(
    topic: &str,
    partitions: Vec<(i32, Option<OffsetCommitValue>, Option<ResponseError>)>,
    version: i16,
) -> OffsetFetchResponseTopic {
    OffsetFetchResponseTopic::default()
        .with_name(TopicName(text(topic)))
        .with_partitions(
            partitions
                .into_iter()
                .map(|(partition, value, error)| {
                    let (offset, epoch, metadata) = committed(value);
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(if version >= 5 { epoch } else { -1 })
                        .with_metadata(Some(metadata))
                        .with_error_code(code(error))
                })
                .collect(),
        )
}

/// (offset, leader epoch, metadata) of a commit, or Kafka's "no offset": -1, -1, "".
fn committed(value: Option<OffsetCommitValue>) -> (i64, i32, StrBytes) {
    match value {
        Some(value) => (value.offset, value.leader_epoch, text(value.metadata)),
        None => (-1, -1, StrBytes::default()),
    }
}

pub(super) fn listed_groups(groups: Vec<ListedGroup>, version: i16) -> Vec<WireListedGroup> {
    groups
        .into_iter()
        .map(|group| {
            let listed = WireListedGroup::default()
                .with_group_id(GroupId(text(group.group_id)))
                .with_protocol_type(text(group.protocol_type));
            let listed = if version >= 4 {
                listed.with_group_state(StrBytes::from_static_str(group.state.name()))
            } else {
                listed
            };
            if version >= 5 {
                listed.with_group_type(StrBytes::from_static_str("classic"))
            } else {
                listed
            }
        })
        .collect()
}

pub(super) fn described_group(
    group_id: GroupId,
    summary: Result<Option<GroupSummary>, ResponseError>,
    include_authorized_operations: bool,
    version: i16,
) -> DescribedGroup {
    let described = DescribedGroup::default().with_group_id(group_id.clone());
    match summary {
        Err(error) => described.with_error_code(error.code()),
        Ok(None) if version >= 6 => described
            .with_error_code(ResponseError::GroupIdNotFound.code())
            .with_error_message(Some(text(format!(
                "Group {} not found.",
                group_id.as_str()
            ))))
            .with_group_state(StrBytes::from_static_str("Dead")),
        Ok(None) => described.with_group_state(StrBytes::from_static_str("Dead")),
        Ok(Some(summary)) => {
            let members = summary
                .members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(text(m.member_id))
                        .with_group_instance_id(if version >= 4 {
                            m.group_instance_id.map(text)
                        } else {
                            None
                        })
                        .with_client_id(text(m.client_id))
                        .with_client_host(text(m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect();
            let operations = if version >= 3 && include_authorized_operations {
                GROUP_AUTHORIZED_OPERATIONS
            } else {
                i32::MIN
            };
            described
                .with_group_state(StrBytes::from_static_str(summary.state.name()))
                .with_protocol_type(text(summary.protocol_type))
                .with_protocol_data(text(summary.protocol))
                .with_members(members)
                .with_authorized_operations(operations)
        }
    }
}

#[allow(clippy::type_complexity)]
pub(super) fn offset_delete(
    result: Result<Vec<(String, Vec<(i32, Option<ResponseError>)>)>, ResponseError>,
) -> OffsetDeleteResponse {
    match result {
        Err(error) => OffsetDeleteResponse::default().with_error_code(error.code()),
        Ok(topics) => OffsetDeleteResponse::default().with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(TopicName(text(topic)))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|(partition, error)| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(partition)
                                        .with_error_code(code(error))
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    //! Every response encodes in every version the request decoder accepts: a field set that
    //! a version lacks makes kafka-protocol refuse to encode, which would close the connection.

    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Encodable, Message};

    use super::*;
    use crate::group_coordinator::coordinator_state::MemberSummary;
    use crate::group_coordinator::group::{GroupState, JoinedMember};

    fn encodes<T: Encodable>(response: &T, version: i16, what: &str) {
        let mut buf = BytesMut::new();
        response
            .encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("{what} v{version} does not encode: {e}"));
    }

    fn versions<T: Message>() -> std::ops::RangeInclusive<i16> {
        T::VERSIONS.min..=T::VERSIONS.max
    }

    #[test]
    fn every_version_encodes() {
        let joined = JoinResult {
            error: None,
            member_id: "m-1".into(),
            generation_id: 3,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            leader_id: "m-1".into(),
            members: vec![JoinedMember {
                member_id: "m-1".into(),
                group_instance_id: Some("i-1".into()),
                metadata: Bytes::from_static(b"meta"),
            }],
            skip_assignment: true,
        };
        for version in versions::<JoinGroupRequest>() {
            encodes(&join_group(joined.clone(), version), version, "JoinGroup");
            let error = JoinResult::error("m-2", ResponseError::MemberIdRequired);
            encodes(&join_group(error, version), version, "JoinGroup error");
        }
        for version in versions::<SyncGroupRequest>() {
            let synced = SyncResult {
                error: None,
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                assignment: Bytes::from_static(b"a"),
            };
            encodes(&sync_group(synced, version), version, "SyncGroup");
            encodes(
                &sync_group(
                    SyncResult::error(ResponseError::RebalanceInProgress),
                    version,
                ),
                version,
                "SyncGroup error",
            );
        }
        let members = vec![("m-1".to_string(), Some("i-1".to_string()))];
        for version in versions::<LeaveGroupRequest>() {
            let ok = leave_group(
                &members,
                Ok(vec![Some(ResponseError::UnknownMemberId)]),
                version,
            );
            encodes(&ok, version, "LeaveGroup");
            encodes(
                &leave_group(&members, Err(ResponseError::NotCoordinator), version),
                version,
                "LeaveGroup error",
            );
        }
        for version in versions::<OffsetCommitRequest>() {
            let committed = offset_commit(vec![
                ("t".into(), 0, None),
                ("t".into(), 1, Some(ResponseError::IllegalGeneration)),
            ]);
            encodes(&committed, version, "OffsetCommit");
        }
        let value = OffsetCommitValue {
            offset: 5,
            leader_epoch: 2,
            metadata: "md".into(),
            commit_timestamp: 0,
        };
        let fetched = vec![("t".to_string(), vec![(0, Some(value)), (1, None)])];
        let requested = Some(vec![("t".to_string(), vec![0, 1])]);
        for version in versions::<OffsetFetchRequest>() {
            if version >= 8 {
                let group =
                    offset_fetch_group(GroupId(text("g")), requested.clone(), Ok(fetched.clone()));
                let failed = offset_fetch_group(
                    GroupId(text("h")),
                    None,
                    Err(ResponseError::CoordinatorLoadInProgress),
                );
                encodes(
                    &OffsetFetchResponse::default().with_groups(vec![group, failed]),
                    version,
                    "OffsetFetch",
                );
            } else {
                encodes(
                    &offset_fetch_single(requested.clone(), Ok(fetched.clone()), version),
                    version,
                    "OffsetFetch",
                );
                let failed = offset_fetch_single(
                    requested.clone(),
                    Err(ResponseError::NotCoordinator),
                    version,
                );
                encodes(&failed, version, "OffsetFetch error");
            }
        }
        let listed = vec![ListedGroup {
            group_id: "g".into(),
            protocol_type: "consumer".into(),
            state: GroupState::Stable,
        }];
        for version in versions::<ListGroupsRequest>() {
            let response =
                ListGroupsResponse::default().with_groups(listed_groups(listed.clone(), version));
            encodes(&response, version, "ListGroups");
        }
        let summary = GroupSummary {
            state: GroupState::Stable,
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            members: vec![MemberSummary {
                member_id: "m-1".into(),
                group_instance_id: Some("i-1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                metadata: Bytes::from_static(b"m"),
                assignment: Bytes::from_static(b"a"),
            }],
        };
        for version in versions::<DescribeGroupsRequest>() {
            let groups = vec![
                described_group(GroupId(text("g")), Ok(Some(summary.clone())), true, version),
                described_group(GroupId(text("h")), Ok(None), false, version),
                described_group(
                    GroupId(text("i")),
                    Err(ResponseError::NotCoordinator),
                    false,
                    version,
                ),
            ];
            encodes(
                &DescribeGroupsResponse::default().with_groups(groups),
                version,
                "DescribeGroups",
            );
        }
        for version in versions::<OffsetDeleteRequest>() {
            let deleted = offset_delete(Ok(vec![(
                "t".into(),
                vec![(0, Some(ResponseError::GroupSubscribedToTopic))],
            )]));
            encodes(&deleted, version, "OffsetDelete");
            encodes(
                &offset_delete(Err(ResponseError::GroupIdNotFound)),
                version,
                "OffsetDelete error",
            );
        }
    }
}
