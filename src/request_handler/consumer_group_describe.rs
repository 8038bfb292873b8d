//! ConsumerGroupDescribe (69, KIP-848) v0-1: split by owner shard, merged in request order.
//!
//! ACLs (Kafka's `KafkaApis.handleConsumerGroupDescribe`): DESCRIBE on each group, else
//! GROUP_AUTHORIZATION_FAILED; the authorized operations, when asked, are the session's on the
//! group.

use std::rc::Rc;

use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse};

use super::authorize;
use super::group::{in_request_order, may_group, split_by_shard, GROUP_DENIED};
use crate::group_coordinator::consumer_group::TopicsView;
use crate::security::authorizer::{AclOperation, ResourceType};
use crate::security::Session;
use crate::shard::{invoke_on, ShardContext};

/// ConsumerGroupDescribe v0-1. Every group answers UNSUPPORTED_VERSION when
/// `group.coordinator.rebalance.protocols` leaves out `consumer` (Kafka's
/// `ConsumerGroupDescribeRequest.getErrorResponse`).
pub async fn handle(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: ConsumerGroupDescribeRequest,
    version: i16,
) -> ConsumerGroupDescribeResponse {
    if !ctx.group_coordinator.consumer_protocol_enabled() {
        let groups = request
            .group_ids
            .iter()
            .map(|g| {
                DescribedGroup::default()
                    .with_group_id(g.clone())
                    .with_error_code(ResponseError::UnsupportedVersion.code())
                    .with_authorized_operations(i32::MIN)
            })
            .collect();
        return ConsumerGroupDescribeResponse::default().with_groups(groups);
    }
    let (allowed, denied): (Vec<_>, Vec<_>) = request
        .group_ids
        .iter()
        .cloned()
        .partition(|g| may_group(&ctx, &session, AclOperation::Describe, g));
    let parts = split_by_shard(&ctx, allowed, |g| g.as_str());
    let mut answers = join_all(parts.into_iter().map(|(target, groups)| {
        let part = request.clone().with_group_ids(groups);
        invoke_on(target, move |ctx| {
            Box::pin(async move {
                let topics = TopicsView::from_image(&ctx.metadata());
                ctx.group_coordinator
                    .consumer_group_describe(part, version, topics)
                    .await
                    .groups
            })
        })
    }))
    .await;
    answers.push(
        denied
            .into_iter()
            .map(|g| {
                DescribedGroup::default()
                    .with_group_id(g)
                    .with_error_code(GROUP_DENIED)
                    .with_authorized_operations(i32::MIN)
            })
            .collect(),
    );
    let mut groups = in_request_order(&request.group_ids, answers, |g| &g.group_id);
    if request.include_authorized_operations {
        for group in groups.iter_mut().filter(|g| g.error_code == 0) {
            group.authorized_operations = authorize::authorized_operations(
                &ctx,
                &session,
                ResourceType::Group,
                &group.group_id,
            );
        }
    }
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
