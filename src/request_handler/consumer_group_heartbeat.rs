//! ConsumerGroupHeartbeat (68, KIP-848) v0-1: sent whole to the shard coordinating the group.
//!
//! Refused whole with UNSUPPORTED_VERSION when `group.coordinator.rebalance.protocols` leaves
//! out `consumer` (Kafka's `KafkaApis.handleConsumerGroupHeartbeat`).
//!
//! ACLs (Kafka's `KafkaApis.handleConsumerGroupHeartbeat`): READ on the group, else
//! GROUP_AUTHORIZATION_FAILED; DESCRIBE on every subscribed topic name, else
//! TOPIC_AUTHORIZATION_FAILED.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;

use super::authorize;
use super::group::{may_group, GROUP_DENIED};
use crate::group_coordinator::consumer_group::TopicsView;
use crate::group_coordinator::ClientInfo;
use crate::security::authorizer::{AclOperation, ResourceType};
use crate::security::Session;
use crate::shard::invoke_on;
use crate::shard::ShardContext;

/// ConsumerGroupHeartbeat v0-1 on the group's shard; `client_id` (request header) and the
/// peer address show up in ConsumerGroupDescribe as `client_id` and `/host`.
pub async fn handle(
    ctx: Rc<ShardContext>,
    request: ConsumerGroupHeartbeatRequest,
    version: i16,
    client_id: Option<StrBytes>,
    session: Rc<Session>,
) -> ConsumerGroupHeartbeatResponse {
    if !ctx.group_coordinator.consumer_protocol_enabled() {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "The consumer group protocol is not enabled: group.coordinator.rebalance.protocols \
                 does not list consumer.",
            )));
    }
    if !may_group(&ctx, &session, AclOperation::Read, &request.group_id) {
        return ConsumerGroupHeartbeatResponse::default().with_error_code(GROUP_DENIED);
    }
    let denied_topic = request
        .subscribed_topic_names
        .iter()
        .flatten()
        .any(|topic| {
            !authorize::authorize(
                &ctx,
                &session,
                AclOperation::Describe,
                ResourceType::Topic,
                topic.as_str(),
            )
        });
    if denied_topic {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "The group member is not authorized to access some topics.",
            )));
    }
    let client = ClientInfo {
        client_id: client_id.map(|c| c.to_string()).unwrap_or_default(),
        client_host: session
            .client_address
            .map_or_else(String::new, |p| format!("/{}", p.ip())),
    };
    let target = ctx.group_coordinator.shard_for(&request.group_id);
    invoke_on(target, move |ctx| {
        Box::pin(async move {
            let topics = TopicsView::from_image(&ctx.metadata());
            ctx.group_coordinator
                .consumer_group_heartbeat(request, version, &client, topics)
                .await
        })
    })
    .await
}
