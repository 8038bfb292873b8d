//! Group APIs: FindCoordinator (10), JoinGroup (11), Heartbeat (12), LeaveGroup (13),
//! SyncGroup (14), DescribeGroups (15), ListGroups (16), OffsetFetch (9), OffsetCommit (8),
//! DeleteGroups (42), OffsetDelete (47).
//!
//! Every group lives on the shard owning its `__consumer_offsets` partition
//! (`group_coordinator::shard_for_group`). A single-group request is sent whole to that shard
//! with `shard::invoke_on`; multi-group requests (OffsetFetch v8+, DescribeGroups,
//! DeleteGroups) are split by owner and merged in request order; ListGroups asks every shard.
//! FindCoordinator always names this broker: shards are not separate nodes.

use std::collections::BTreeMap;
use std::rc::Rc;

use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::authorize;
use crate::group_coordinator::ClientInfo;
use crate::security::authorizer::{AclOperation, ResourceType};
use crate::security::Session;
use crate::shard::{invoke_on, ShardContext};

/// FindCoordinator `key_type` of consumer groups.
const COORDINATOR_TYPE_GROUP: i8 = 0;
/// FindCoordinator `key_type` of transactional ids.
const COORDINATOR_TYPE_TRANSACTION: i8 = 1;

/// FindCoordinator v0-6: this broker for every key (v4+ answers each of `coordinator_keys`).
pub async fn handle_find_coordinator(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    // Kafka answers with the endpoints of the listener the client connected on.
    let listener = &ctx.config.advertised_listener(&session.listener_name);
    let key_type = request.key_type;
    let denied_keys: Vec<bool> = if version >= 4 {
        request
            .coordinator_keys
            .iter()
            .map(|k| !may_describe_key(&ctx, &session, key_type, k))
            .collect()
    } else {
        vec![!may_describe_key(&ctx, &session, key_type, &request.key)]
    };
    let mut response = find_coordinator(
        request,
        version,
        ctx.config.node_id,
        &listener.host,
        listener.port as i32,
    );
    // ACLs (KafkaApis.handleFindCoordinatorRequest): DESCRIBE on the GROUP (key type 0) or
    // TRANSACTIONAL_ID (key type 1), else that key answers its *_AUTHORIZATION_FAILED with no
    // node.
    let error = if key_type == COORDINATOR_TYPE_TRANSACTION {
        (
            ResponseError::TransactionalIdAuthorizationFailed,
            "Transactional Id authorization failed.",
        )
    } else {
        (
            ResponseError::GroupAuthorizationFailed,
            "Group authorization failed.",
        )
    };
    if version >= 4 {
        for (coordinator, denied) in response.coordinators.iter_mut().zip(denied_keys) {
            if denied {
                coordinator.node_id = BrokerId(-1);
                coordinator.host = StrBytes::default();
                coordinator.port = -1;
                coordinator.error_code = error.0.code();
                coordinator.error_message = Some(StrBytes::from_static_str(error.1));
            }
        }
    } else if denied_keys.first() == Some(&true) {
        response.node_id = BrokerId(-1);
        response.host = StrBytes::default();
        response.port = -1;
        response.error_code = error.0.code();
        response.error_message = (version >= 1).then(|| StrBytes::from_static_str(error.1));
    }
    response
}

/// DESCRIBE on the key of a FindCoordinator (unknown key types are refused later anyway).
fn may_describe_key(ctx: &ShardContext, session: &Session, key_type: i8, key: &str) -> bool {
    let resource_type = match key_type {
        COORDINATOR_TYPE_GROUP => ResourceType::Group,
        COORDINATOR_TYPE_TRANSACTION => ResourceType::TransactionalId,
        _ => return true,
    };
    authorize::authorize(ctx, session, AclOperation::Describe, resource_type, key)
}

/// `op` on group `group_id` (ACLs; always true with no authorizer).
pub(super) fn may_group(ctx: &ShardContext, session: &Session, op: AclOperation, group_id: &str) -> bool {
    authorize::authorize(ctx, session, op, ResourceType::Group, group_id)
}

fn may_topic(ctx: &ShardContext, session: &Session, op: AclOperation, topic: &str) -> bool {
    authorize::authorize(ctx, session, op, ResourceType::Topic, topic)
}

pub(super) const GROUP_DENIED: i16 = ResponseError::GroupAuthorizationFailed.code();
const TOPIC_DENIED: i16 = ResponseError::TopicAuthorizationFailed.code();

/// FindCoordinator answered with node `node_id` at `host:port`.
pub fn find_coordinator(
    request: FindCoordinatorRequest,
    version: i16,
    node_id: i32,
    host: &str,
    port: i32,
) -> FindCoordinatorResponse {
    let known_type = matches!(
        request.key_type,
        COORDINATOR_TYPE_GROUP | COORDINATOR_TYPE_TRANSACTION
    );
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let coordinator = Coordinator::default().with_key(key);
                if known_type {
                    coordinator
                        .with_node_id(BrokerId(node_id))
                        .with_host(StrBytes::from_string(host.to_owned()))
                        .with_port(port)
                        .with_error_message(None)
                } else {
                    coordinator
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(StrBytes::from_static_str(
                            "unknown coordinator type",
                        )))
                }
            })
            .collect();
        return FindCoordinatorResponse::default()
            .with_error_message(None)
            .with_coordinators(coordinators);
    }
    if !known_type {
        return FindCoordinatorResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_node_id(BrokerId(-1))
            .with_port(-1)
            .with_error_message(if version >= 1 {
                Some(StrBytes::from_static_str("unknown coordinator type"))
            } else {
                None
            });
    }
    FindCoordinatorResponse::default()
        .with_node_id(BrokerId(node_id))
        .with_host(StrBytes::from_string(host.to_owned()))
        .with_port(port)
        .with_error_message(None)
}

/// JoinGroup v0-9 on the group's shard; `client_id` (request header) and `peer` (the
/// connection's address) show up in DescribeGroups as Kafka's `client_id` and `/host`.
pub async fn handle_join_group(
    ctx: Rc<ShardContext>,
    request: JoinGroupRequest,
    version: i16,
    client_id: Option<StrBytes>,
    session: Rc<Session>,
) -> JoinGroupResponse {
    if !may_group(&ctx, &session, AclOperation::Read, &request.group_id) {
        return JoinGroupResponse::default()
            .with_error_code(GROUP_DENIED)
            .with_generation_id(-1)
            .with_member_id(request.member_id);
    }
    let peer = session.client_address;
    let client = ClientInfo {
        client_id: client_id.map(|c| c.to_string()).unwrap_or_default(),
        client_host: peer.map_or_else(String::new, |p| format!("/{}", p.ip())),
    };
    let target = ctx.group_coordinator.shard_for(&request.group_id);
    invoke_on(target, move |ctx| {
        Box::pin(async move {
            ctx.group_coordinator
                .join_group(request, version, &client)
                .await
        })
    })
    .await
}

/// SyncGroup v0-5 on the group's shard.
pub async fn handle_sync_group(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    if !may_group(&ctx, &session, AclOperation::Read, &request.group_id) {
        return SyncGroupResponse::default().with_error_code(GROUP_DENIED);
    }
    let target = ctx.group_coordinator.shard_for(&request.group_id);
    invoke_on(target, move |ctx| {
        Box::pin(async move { ctx.group_coordinator.sync_group(request, version).await })
    })
    .await
}

/// Heartbeat v0-4 on the group's shard.
pub async fn handle_heartbeat(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: HeartbeatRequest,
    version: i16,
) -> HeartbeatResponse {
    if !may_group(&ctx, &session, AclOperation::Read, &request.group_id) {
        return HeartbeatResponse::default().with_error_code(GROUP_DENIED);
    }
    let target = ctx.group_coordinator.shard_for(&request.group_id);
    invoke_on(target, move |ctx| {
        Box::pin(async move { ctx.group_coordinator.heartbeat(request, version).await })
    })
    .await
}

/// LeaveGroup v0-5 on the group's shard.
pub async fn handle_leave_group(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    if !may_group(&ctx, &session, AclOperation::Read, &request.group_id) {
        return LeaveGroupResponse::default().with_error_code(GROUP_DENIED);
    }
    let target = ctx.group_coordinator.shard_for(&request.group_id);
    invoke_on(target, move |ctx| {
        Box::pin(async move { ctx.group_coordinator.leave_group(request, version).await })
    })
    .await
}

/// OffsetCommit v2-9 on the group's shard; answered once durable. Partitions of topics or
/// partitions that do not exist get UNKNOWN_TOPIC_OR_PARTITION here, as Kafka's `KafkaApis`
/// answers them before the coordinator sees the request.
///
/// ACLs: READ on the group (else every partition GROUP_AUTHORIZATION_FAILED), READ on each
/// topic (else its partitions TOPIC_AUTHORIZATION_FAILED), as KafkaApis.handleOffsetCommitRequest.
pub async fn handle_offset_commit(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    mut request: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let metadata = ctx.metadata();
    let group_denied = !may_group(&ctx, &session, AclOperation::Read, &request.group_id);
    let mut unknown: Vec<offset_commit_response::OffsetCommitResponseTopic> = Vec::new();
    for topic in request.topics.iter_mut() {
        let denied = if group_denied {
            Some(GROUP_DENIED)
        } else {
            (!may_topic(&ctx, &session, AclOperation::Read, topic.name.as_str()))
                .then_some(TOPIC_DENIED)
        };
        if let Some(code) = denied {
            unknown.push(
                offset_commit_response::OffsetCommitResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_partitions(
                        std::mem::take(&mut topic.partitions)
                            .iter()
                            .map(|p| {
                                offset_commit_response::OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code)
                            })
                            .collect(),
                    ),
            );
            continue;
        }
        let known = metadata.topic(topic.name.as_str());
        let (kept, missing): (Vec<_>, Vec<_>) = std::mem::take(&mut topic.partitions)
            .into_iter()
            .partition(|p| {
                known.is_some_and(|t| (0..t.partitions.len() as i32).contains(&p.partition_index))
            });
        topic.partitions = kept;
        if !missing.is_empty() {
            unknown.push(
                offset_commit_response::OffsetCommitResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_partitions(
                        missing
                            .iter()
                            .map(|p| {
                                offset_commit_response::OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            })
                            .collect(),
                    ),
            );
        }
    }
    request.topics.retain(|t| !t.partitions.is_empty());
    let mut response = if request.topics.is_empty() {
        OffsetCommitResponse::default()
    } else {
        let target = ctx.group_coordinator.shard_for(&request.group_id);
        invoke_on(target, move |ctx| {
            Box::pin(async move { ctx.group_coordinator.offset_commit(request, version).await })
        })
        .await
    };
    response.topics.extend(unknown);
    response
}

/// OffsetDelete v0 on the group's shard.
pub async fn handle_offset_delete(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: OffsetDeleteRequest,
    version: i16,
) -> OffsetDeleteResponse {
    // ACLs: DELETE on the group (KafkaApis.handleOffsetDeleteRequest).
    if !may_group(&ctx, &session, AclOperation::Delete, &request.group_id) {
        return OffsetDeleteResponse::default().with_error_code(GROUP_DENIED);
    }
    let target = ctx.group_coordinator.shard_for(&request.group_id);
    invoke_on(target, move |ctx| {
        Box::pin(async move { ctx.group_coordinator.offset_delete(request, version).await })
    })
    .await
}

/// OffsetFetch v1-9: v1-7 name one group; v8+ name several, split by owner shard and merged
/// back in request order.
///
/// ACLs: DESCRIBE on each group (else GROUP_AUTHORIZATION_FAILED), DESCRIBE on each topic
/// (named topics: partitions TOPIC_AUTHORIZATION_FAILED; all topics: left out).
pub async fn handle_offset_fetch(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    mut request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    if version < 8 {
        if !may_group(&ctx, &session, AclOperation::Describe, &request.group_id) {
            return OffsetFetchResponse::default().with_error_code(GROUP_DENIED);
        }
        let named = request.topics.is_some();
        let target = ctx.group_coordinator.shard_for(&request.group_id);
        let mut response = invoke_on(target, move |ctx| {
            Box::pin(async move { ctx.group_coordinator.offset_fetch(request, version).await })
        })
        .await;
        response.topics.retain_mut(|topic| {
            if may_topic(&ctx, &session, AclOperation::Describe, topic.name.as_str()) {
                return true;
            }
            for p in topic.partitions.iter_mut() {
                p.error_code = TOPIC_DENIED;
                p.committed_offset = -1;
                p.metadata = None;
            }
            named
        });
        return response;
    }
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut request.groups)
        .into_iter()
        .partition(|g| may_group(&ctx, &session, AclOperation::Describe, &g.group_id));
    let denied: Vec<String> = denied.iter().map(|g| g.group_id.to_string()).collect();
    let named: BTreeMap<String, bool> = allowed
        .iter()
        .map(|g| (g.group_id.to_string(), g.topics.is_some()))
        .collect();
    let order: Vec<String> = allowed
        .iter()
        .map(|g| g.group_id.to_string())
        .chain(denied.iter().cloned())
        .collect();
    request.groups = allowed;
    let parts = split_by_shard(&ctx, request.groups.clone(), |g| g.group_id.as_str());
    let answers = join_all(parts.into_iter().map(|(target, groups)| {
        let part = request.clone().with_groups(groups);
        invoke_on(target, move |ctx| {
            Box::pin(async move {
                ctx.group_coordinator
                    .offset_fetch(part, version)
                    .await
                    .groups
            })
        })
    }))
    .await;
    let mut by_id: BTreeMap<String, offset_fetch_response::OffsetFetchResponseGroup> = answers
        .into_iter()
        .flatten()
        .map(|g| (g.group_id.to_string(), g))
        .collect();
    for group in by_id.values_mut() {
        let named = named.get(group.group_id.as_str()).copied().unwrap_or(true);
        group.topics.retain_mut(|topic| {
            if may_topic(&ctx, &session, AclOperation::Describe, topic.name.as_str()) {
                return true;
            }
            for p in topic.partitions.iter_mut() {
                p.error_code = TOPIC_DENIED;
                p.committed_offset = -1;
                p.metadata = None;
            }
            named
        });
    }
    for id in denied {
        by_id.insert(
            id.clone(),
            offset_fetch_response::OffsetFetchResponseGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(id)))
                .with_error_code(GROUP_DENIED),
        );
    }
    let groups = order
        .iter()
        .filter_map(|id| by_id.remove(id.as_str()))
        .collect();
    OffsetFetchResponse::default().with_groups(groups)
}

/// DescribeGroups v0-6: split by owner shard, merged in request order.
///
/// ACLs: DESCRIBE on each group (else GROUP_AUTHORIZATION_FAILED); the authorized operations
/// (v3+, when asked) are the session's on the group.
pub async fn handle_describe_groups(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let allowed: Vec<GroupId> = request
        .groups
        .iter()
        .filter(|g| may_group(&ctx, &session, AclOperation::Describe, g))
        .cloned()
        .collect();
    let parts = split_by_shard(&ctx, allowed, |g| g.as_str());
    let answers = join_all(parts.into_iter().map(|(target, groups)| {
        let part = request.clone().with_groups(groups);
        invoke_on(target, move |ctx| {
            Box::pin(async move {
                ctx.group_coordinator
                    .describe_groups(part, version)
                    .await
                    .groups
            })
        })
    }))
    .await;
    let mut answers = answers;
    answers.push(
        request
            .groups
            .iter()
            .filter(|g| !may_group(&ctx, &session, AclOperation::Describe, g))
            .map(|g| {
                describe_groups_response::DescribedGroup::default()
                    .with_group_id(g.clone())
                    .with_error_code(GROUP_DENIED)
                    .with_authorized_operations(i32::MIN)
            })
            .collect(),
    );
    let mut groups = in_request_order(&request.groups, answers, |g| &g.group_id);
    if version >= 3 && request.include_authorized_operations {
        for group in groups.iter_mut().filter(|g| g.error_code == 0) {
            group.authorized_operations = authorize::authorized_operations(
                &ctx,
                &session,
                ResourceType::Group,
                &group.group_id,
            );
        }
    }
    DescribeGroupsResponse::default().with_groups(groups)
}

/// DeleteGroups v0-2: split by owner shard, merged in request order.
///
/// ACLs: DELETE on each group (else GROUP_AUTHORIZATION_FAILED).
pub async fn handle_delete_groups(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: DeleteGroupsRequest,
    version: i16,
) -> DeleteGroupsResponse {
    let (allowed, denied): (Vec<GroupId>, Vec<GroupId>) = request
        .groups_names
        .iter()
        .cloned()
        .partition(|g| may_group(&ctx, &session, AclOperation::Delete, g));
    let parts = split_by_shard(&ctx, allowed, |g| g.as_str());
    let answers = join_all(parts.into_iter().map(|(target, groups)| {
        let part = request.clone().with_groups_names(groups);
        invoke_on(target, move |ctx| {
            Box::pin(async move {
                ctx.group_coordinator
                    .delete_groups(part, version)
                    .await
                    .results
            })
        })
    }))
    .await;
    let mut answers = answers;
    answers.push(
        denied
            .into_iter()
            .map(|g| {
                delete_groups_response::DeletableGroupResult::default()
                    .with_group_id(g)
                    .with_error_code(GROUP_DENIED)
            })
            .collect(),
    );
    let results = in_request_order(&request.groups_names, answers, |r| &r.group_id);
    DeleteGroupsResponse::default().with_results(results)
}

/// ListGroups v0-5: every shard's groups, sorted by id; the first shard error (loading) wins.
///
/// ACLs: DESCRIBE on the cluster lists every group, else only the groups the session may
/// DESCRIBE (KafkaApis.handleListGroupsRequest).
pub async fn handle_list_groups(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let answers = join_all((0..ctx.shard_count).map(|target| {
        let part = request.clone();
        invoke_on(target, move |ctx| {
            Box::pin(async move { ctx.group_coordinator.list_groups(part, version).await })
        })
    }))
    .await;
    let error_code = answers
        .iter()
        .map(|a| a.error_code)
        .find(|c| *c != 0)
        .unwrap_or(0);
    let mut groups: Vec<list_groups_response::ListedGroup> =
        answers.into_iter().flat_map(|a| a.groups).collect();
    groups.sort_by(|a, b| a.group_id.as_str().cmp(b.group_id.as_str()));
    if !authorize::authorize_cluster(&ctx, &session, AclOperation::Describe) {
        groups.retain(|g| may_group(&ctx, &session, AclOperation::Describe, &g.group_id));
    }
    ListGroupsResponse::default()
        .with_error_code(error_code)
        .with_groups(groups)
}

/// Groups items by the shard coordinating their group id, keeping request order within each.
/// Merges per-shard answers back into the order the request named the groups (a group named
/// twice is answered twice only if a shard answered it twice).
pub(super) fn in_request_order<T, K: PartialEq>(
    requested: &[K],
    answers: Vec<Vec<T>>,
    key: impl Fn(&T) -> &K,
) -> Vec<T> {
    let mut answers: Vec<Option<T>> = answers.into_iter().flatten().map(Some).collect();
    requested
        .iter()
        .filter_map(|id| {
            answers
                .iter_mut()
                .find(|a| a.as_ref().is_some_and(|a| key(a) == id))
                .and_then(Option::take)
        })
        .collect()
}

pub(super) fn split_by_shard<T>(
    ctx: &ShardContext,
    items: Vec<T>,
    group_id: impl Fn(&T) -> &str,
) -> BTreeMap<usize, Vec<T>> {
    let mut parts: BTreeMap<usize, Vec<T>> = BTreeMap::new();
    for item in items {
        let target = ctx.group_coordinator.shard_for(group_id(&item));
        parts.entry(target).or_default().push(item);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_coordinator_names_this_broker_in_each_form() {
        let v3 = find_coordinator(
            FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")),
            3,
            7,
            "localhost",
            9092,
        );
        assert_eq!(
            (v3.error_code, v3.node_id.0, v3.host.as_str(), v3.port),
            (0, 7, "localhost", 9092)
        );
        let v4 = find_coordinator(
            FindCoordinatorRequest::default().with_coordinator_keys(vec![
                StrBytes::from_static_str("a"),
                StrBytes::from_static_str("b"),
            ]),
            4,
            7,
            "localhost",
            9092,
        );
        let keys: Vec<(&str, i32, i16)> = v4
            .coordinators
            .iter()
            .map(|c| (c.key.as_str(), c.node_id.0, c.error_code))
            .collect();
        assert_eq!(keys, vec![("a", 7, 0), ("b", 7, 0)]);
        let bad = find_coordinator(
            FindCoordinatorRequest::default().with_key_type(5),
            2,
            7,
            "h",
            1,
        );
        assert_eq!(bad.error_code, ResponseError::InvalidRequest.code());
    }

    #[test]
    fn find_coordinator_encodes_in_every_version() {
        use kafka_protocol::protocol::{Encodable, Message};
        for version in FindCoordinatorRequest::VERSIONS.min..=FindCoordinatorRequest::VERSIONS.max {
            for key_type in [COORDINATOR_TYPE_GROUP, 9] {
                let request = if version >= 4 {
                    FindCoordinatorRequest::default()
                        .with_coordinator_keys(vec![StrBytes::from_static_str("g")])
                        .with_key_type(key_type)
                } else {
                    FindCoordinatorRequest::default()
                        .with_key(StrBytes::from_static_str("g"))
                        .with_key_type(if version >= 1 { key_type } else { 0 })
                };
                let response = find_coordinator(request, version, 1, "localhost", 9092);
                let mut buf = bytes::BytesMut::new();
                response
                    .encode(&mut buf, version)
                    .unwrap_or_else(|e| panic!("FindCoordinator v{version} does not encode: {e}"));
            }
        }
    }
}
