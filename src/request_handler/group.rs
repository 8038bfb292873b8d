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
use std::net::SocketAddr;
use std::rc::Rc;

use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::group_coordinator::ClientInfo;
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
    find_coordinator(
        request,
        version,
        ctx.config.node_id,
        &listener.host,
        listener.port as i32,
    )
}

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
    peer: Option<SocketAddr>,
) -> JoinGroupResponse {
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
    request: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    let target = ctx.group_coordinator.shard_for(&request.group_id);
    invoke_on(target, move |ctx| {
        Box::pin(async move { ctx.group_coordinator.sync_group(request, version).await })
    })
    .await
}

/// Heartbeat v0-4 on the group's shard.
pub async fn handle_heartbeat(
    ctx: Rc<ShardContext>,
    request: HeartbeatRequest,
    version: i16,
) -> HeartbeatResponse {
    let target = ctx.group_coordinator.shard_for(&request.group_id);
    invoke_on(target, move |ctx| {
        Box::pin(async move { ctx.group_coordinator.heartbeat(request, version).await })
    })
    .await
}

/// LeaveGroup v0-5 on the group's shard.
pub async fn handle_leave_group(
    ctx: Rc<ShardContext>,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let target = ctx.group_coordinator.shard_for(&request.group_id);
    invoke_on(target, move |ctx| {
        Box::pin(async move { ctx.group_coordinator.leave_group(request, version).await })
    })
    .await
}

/// OffsetCommit v2-9 on the group's shard; answered once durable. Partitions of topics or
/// partitions that do not exist get UNKNOWN_TOPIC_OR_PARTITION here, as Kafka's `KafkaApis`
/// answers them before the coordinator sees the request.
pub async fn handle_offset_commit(
    ctx: Rc<ShardContext>,
    mut request: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let metadata = ctx.metadata();
    let mut unknown: Vec<offset_commit_response::OffsetCommitResponseTopic> = Vec::new();
    for topic in request.topics.iter_mut() {
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
    request: OffsetDeleteRequest,
    version: i16,
) -> OffsetDeleteResponse {
    let target = ctx.group_coordinator.shard_for(&request.group_id);
    invoke_on(target, move |ctx| {
        Box::pin(async move { ctx.group_coordinator.offset_delete(request, version).await })
    })
    .await
}

/// OffsetFetch v1-9: v1-7 name one group; v8+ name several, split by owner shard and merged
/// back in request order.
pub async fn handle_offset_fetch(
    ctx: Rc<ShardContext>,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    if version < 8 {
        let target = ctx.group_coordinator.shard_for(&request.group_id);
        return invoke_on(target, move |ctx| {
            Box::pin(async move { ctx.group_coordinator.offset_fetch(request, version).await })
        })
        .await;
    }
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
    let groups = request
        .groups
        .iter()
        .filter_map(|g| by_id.remove(g.group_id.as_str()))
        .collect();
    OffsetFetchResponse::default().with_groups(groups)
}

/// DescribeGroups v0-6: split by owner shard, merged in request order.
pub async fn handle_describe_groups(
    ctx: Rc<ShardContext>,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let parts = split_by_shard(&ctx, request.groups.clone(), |g| g.as_str());
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
    let groups = in_request_order(&request.groups, answers, |g| &g.group_id);
    DescribeGroupsResponse::default().with_groups(groups)
}

/// DeleteGroups v0-2: split by owner shard, merged in request order.
pub async fn handle_delete_groups(
    ctx: Rc<ShardContext>,
    request: DeleteGroupsRequest,
    version: i16,
) -> DeleteGroupsResponse {
    let parts = split_by_shard(&ctx, request.groups_names.clone(), |g| g.as_str());
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
    let results = in_request_order(&request.groups_names, answers, |r| &r.group_id);
    DeleteGroupsResponse::default().with_results(results)
}

/// ListGroups v0-5: every shard's groups, sorted by id; the first shard error (loading) wins.
pub async fn handle_list_groups(
    ctx: Rc<ShardContext>,
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
    ListGroupsResponse::default()
        .with_error_code(error_code)
        .with_groups(groups)
}

/// Groups items by the shard coordinating their group id, keeping request order within each.
/// Merges per-shard answers back into the order the request named the groups (a group named
/// twice is answered twice only if a shard answered it twice).
fn in_request_order<T, K: PartialEq>(
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

fn split_by_shard<T>(
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
