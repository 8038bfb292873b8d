//! The async face of consumer groups on [`GroupCoordinator`]: decodes ConsumerGroupHeartbeat
//! and ConsumerGroupDescribe into the sans-io calls and answers once the records a change
//! produced are flushed to `__consumer_offsets` (Kafka answers after the write commits).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member, TopicPartitions as DescribedTopic,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as HeartbeatAssignment, TopicPartitions as HeartbeatTopic,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::coordinator::{HeartbeatParams, HeartbeatResult};
use super::member::Assignment;
use super::{TopicsView, MEMBER_TYPE_CONSUMER};
use crate::group_coordinator::coordinator_state::Reply;
use crate::group_coordinator::{now_ms, ClientInfo, GroupCoordinator};

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

impl GroupCoordinator {
    /// ConsumerGroupHeartbeat v0-1 (KIP-848). `topics` is the broker's topic metadata now.
    pub async fn consumer_group_heartbeat(
        &self,
        request: ConsumerGroupHeartbeatRequest,
        version: i16,
        client: &ClientInfo,
        topics: TopicsView,
    ) -> ConsumerGroupHeartbeatResponse {
        let params = HeartbeatParams {
            group_id: request.group_id.to_string(),
            member_id: request.member_id.to_string(),
            member_epoch: request.member_epoch,
            instance_id: request.instance_id.as_ref().map(|s| s.to_string()),
            rack_id: request.rack_id.as_ref().map(|s| s.to_string()),
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            subscribed_topic_names: request
                .subscribed_topic_names
                .as_ref()
                .map(|names| names.iter().map(|n| n.to_string()).collect()),
            subscribed_topic_regex: if version >= 1 {
                request.subscribed_topic_regex.as_ref().map(|s| s.to_string())
            } else {
                None
            },
            server_assignor: request.server_assignor.as_ref().map(|s| s.to_string()),
            topic_partitions: request.topic_partitions.as_ref().map(|tps| {
                tps.iter()
                    .map(|tp| (tp.topic_id, tp.partitions.clone()))
                    .collect()
            }),
            client_id: client.client_id.clone(),
            client_host: client.client_host.clone(),
            version,
        };
        let reply = self
            .inner
            .state
            .borrow_mut()
            .consumer_group_heartbeat(params, &topics, now_ms());
        let mut result = match reply {
            Reply::Ready(result) => result,
            Reply::Pending(receiver) => receiver.await.unwrap_or_else(|_| HeartbeatResult {
                error: Some(ResponseError::CoordinatorNotAvailable),
                ..Default::default()
            }),
        };
        if self.inner.submit_pending_durable().await.is_err() && result.error.is_none() {
            result = HeartbeatResult {
                error: Some(ResponseError::CoordinatorNotAvailable),
                ..Default::default()
            };
        }
        heartbeat_response(result)
    }

    /// ConsumerGroupDescribe v0-1 for the groups of the request (all this shard's).
    pub async fn consumer_group_describe(
        &self,
        request: ConsumerGroupDescribeRequest,
        version: i16,
        topics: TopicsView,
    ) -> ConsumerGroupDescribeResponse {
        let state = self.inner.state.borrow();
        let default_assignor = state
            .settings()
            .group_consumer_assignors
            .first()
            .cloned()
            .unwrap_or_else(|| super::assignor::UNIFORM.to_owned());
        let groups = request
            .group_ids
            .iter()
            .map(|group_id| {
                let described = DescribedGroup::default()
                    .with_group_id(group_id.clone())
                    .with_authorized_operations(i32::MIN);
                match state.consumer_group_describe(group_id, &default_assignor) {
                    Err((error, message)) => described
                        .with_error_code(error.code())
                        .with_error_message(message.map(text)),
                    Ok(d) => described
                        .with_group_state(StrBytes::from_static_str(d.state.name()))
                        .with_group_epoch(d.group_epoch)
                        .with_assignment_epoch(d.assignment_epoch)
                        .with_assignor_name(text(d.assignor_name))
                        .with_members(
                            d.members
                                .into_iter()
                                .map(|(m, current, target)| {
                                    let member = Member::default()
                                        .with_member_id(text(m.member_id))
                                        .with_instance_id(m.instance_id.map(text))
                                        .with_rack_id(m.rack_id.map(text))
                                        .with_member_epoch(m.member_epoch)
                                        .with_client_id(text(m.client_id))
                                        .with_client_host(text(m.client_host))
                                        .with_subscribed_topic_names(
                                            m.subscribed_topic_names
                                                .into_iter()
                                                .map(|n| TopicName(text(n)))
                                                .collect(),
                                        )
                                        .with_subscribed_topic_regex(
                                            m.subscribed_topic_regex.map(text),
                                        )
                                        .with_assignment(described_assignment(&current, &topics))
                                        .with_target_assignment(described_assignment(
                                            &target, &topics,
                                        ));
                                    if version >= 1 {
                                        member.with_member_type(MEMBER_TYPE_CONSUMER)
                                    } else {
                                        member
                                    }
                                })
                                .collect(),
                        ),
                }
            })
            .collect();
        ConsumerGroupDescribeResponse::default().with_groups(groups)
    }
}

fn heartbeat_response(result: HeartbeatResult) -> ConsumerGroupHeartbeatResponse {
    let response = ConsumerGroupHeartbeatResponse::default()
        .with_error_code(result.error.map_or(0, |e| e.code()))
        .with_error_message(result.error_message.map(text))
        .with_member_id(result.member_id.map(text))
        .with_member_epoch(result.member_epoch)
        .with_heartbeat_interval_ms(result.heartbeat_interval_ms);
    match result.assignment {
        Some(assignment) if result.error.is_none() => response.with_assignment(Some(
            HeartbeatAssignment::default().with_topic_partitions(
                assignment
                    .iter()
                    .map(|(topic_id, ps)| {
                        HeartbeatTopic::default()
                            .with_topic_id(*topic_id)
                            .with_partitions(ps.iter().copied().collect())
                    })
                    .collect(),
            ),
        )),
        _ => response,
    }
}

/// An assignment with topic names; partitions of topics that no longer exist are left out.
fn described_assignment(a: &Assignment, topics: &TopicsView) -> DescribedAssignment {
    DescribedAssignment::default().with_topic_partitions(
        a.iter()
            .filter_map(|(topic_id, ps)| {
                let name = topics.name_of(topic_id)?;
                Some(
                    DescribedTopic::default()
                        .with_topic_id(*topic_id)
                        .with_topic_name(TopicName(text(name)))
                        .with_partitions(ps.iter().copied().collect()),
                )
            })
            .collect(),
    )
}
