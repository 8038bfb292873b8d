//! The ACL checks of the transaction and SCRAM credential APIs (Kafka's `KafkaApis`
//! handle*Request, see the table in [`super::authorize`]), in front of their handlers: a denied
//! request is answered here with Kafka's error codes and never reaches the coordinator.
//! With no authorizer configured every check passes and the handler runs unchanged.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::authorize::{authorize, authorize_cluster};
use crate::security::authorizer::{AclOperation, ResourceType};
use crate::security::Session;
use crate::shard::ShardContext;

fn may_write_transactional_id(ctx: &ShardContext, session: &Session, id: &str) -> bool {
    authorize(
        ctx,
        session,
        AclOperation::Write,
        ResourceType::TransactionalId,
        id,
    )
}

/// AddPartitionsToTxn: v0-3 (clients) need WRITE on the transactional id (else every partition
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and WRITE on each topic (else TOPIC_AUTHORIZATION_FAILED
/// for its partitions and OPERATION_NOT_ATTEMPTED for the rest); v4+ (broker-to-broker, KIP-890)
/// need CLUSTER_ACTION on the cluster.
pub async fn add_partitions_to_txn(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    if version >= 4 {
        if !authorize_cluster(&ctx, &session, AclOperation::ClusterAction) {
            return AddPartitionsToTxnResponse::default()
                .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
        }
        return super::add_partitions_to_txn::handle(ctx, request, version).await;
    }
    let id_denied =
        !may_write_transactional_id(&ctx, &session, &request.v3_and_below_transactional_id);
    let denied_topics: Vec<bool> = request
        .v3_and_below_topics
        .iter()
        .map(|t| {
            !authorize(
                &ctx,
                &session,
                AclOperation::Write,
                ResourceType::Topic,
                &t.name,
            )
        })
        .collect();
    if !id_denied && !denied_topics.contains(&true) {
        return super::add_partitions_to_txn::handle(ctx, request, version).await;
    }
    let results = request
        .v3_and_below_topics
        .iter()
        .zip(&denied_topics)
        .map(|(topic, denied)| {
            let error = if id_denied {
                ResponseError::TransactionalIdAuthorizationFailed
            } else if *denied {
                ResponseError::TopicAuthorizationFailed
            } else {
                ResponseError::OperationNotAttempted
            };
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic.name.clone())
                .with_results_by_partition(
                    topic
                        .partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(error.code())
                        })
                        .collect(),
                )
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

/// AddOffsetsToTxn: WRITE on the transactional id, then READ on the group.
pub async fn add_offsets_to_txn(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let error = if !may_write_transactional_id(&ctx, &session, &request.transactional_id) {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else if !authorize(
        &ctx,
        &session,
        AclOperation::Read,
        ResourceType::Group,
        &request.group_id,
    ) {
        Some(ResponseError::GroupAuthorizationFailed)
    } else {
        None
    };
    match error {
        Some(error) => AddOffsetsToTxnResponse::default().with_error_code(error.code()),
        None => super::add_offsets_to_txn::handle(ctx, request, version).await,
    }
}

/// EndTxn: WRITE on the transactional id.
pub async fn end_txn(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: EndTxnRequest,
    version: i16,
) -> EndTxnResponse {
    if !may_write_transactional_id(&ctx, &session, &request.transactional_id) {
        return EndTxnResponse::default()
            .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    super::end_txn::handle(ctx, request, version).await
}

/// TxnOffsetCommit: WRITE on the transactional id and READ on the group (else every partition
/// gets that error), then READ on each topic: unauthorized topics answer
/// TOPIC_AUTHORIZATION_FAILED and the others are committed.
pub async fn txn_offset_commit(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    mut request: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let whole_error = if !may_write_transactional_id(&ctx, &session, &request.transactional_id) {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else if !authorize(
        &ctx,
        &session,
        AclOperation::Read,
        ResourceType::Group,
        &request.group_id,
    ) {
        Some(ResponseError::GroupAuthorizationFailed)
    } else {
        None
    };
    let error_topic = |topic: &txn_offset_commit_request::TxnOffsetCommitRequestTopic,
                       error: ResponseError| {
        TxnOffsetCommitResponseTopic::default()
            .with_name(topic.name.clone())
            .with_partitions(
                topic
                    .partitions
                    .iter()
                    .map(|p| {
                        TxnOffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(error.code())
                    })
                    .collect(),
            )
    };
    if let Some(error) = whole_error {
        let topics = request
            .topics
            .iter()
            .map(|t| error_topic(t, error))
            .collect();
        return TxnOffsetCommitResponse::default().with_topics(topics);
    }
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut request.topics)
        .into_iter()
        .partition(|t| {
            authorize(
                &ctx,
                &session,
                AclOperation::Read,
                ResourceType::Topic,
                &t.name,
            )
        });
    let denied: Vec<_> = denied
        .iter()
        .map(|t| error_topic(t, ResponseError::TopicAuthorizationFailed))
        .collect();
    if allowed.is_empty() {
        return TxnOffsetCommitResponse::default().with_topics(denied);
    }
    request.topics = allowed;
    let mut response = super::txn_offset_commit::handle(ctx, request, version).await;
    response.topics.extend(denied);
    response
}

/// AlterUserScramCredentials: ALTER on the cluster, else every user
/// CLUSTER_AUTHORIZATION_FAILED.
pub async fn alter_user_scram_credentials(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: AlterUserScramCredentialsRequest,
    version: i16,
) -> AlterUserScramCredentialsResponse {
    if authorize_cluster(&ctx, &session, AclOperation::Alter) {
        return super::scram_credentials::alter(ctx, request, version).await;
    }
    let mut users: Vec<StrBytes> = Vec::new();
    let names = request
        .deletions
        .iter()
        .map(|d| d.name.clone())
        .chain(request.upsertions.iter().map(|u| u.name.clone()));
    for name in names {
        if !users.contains(&name) {
            users.push(name);
        }
    }
    AlterUserScramCredentialsResponse::default().with_results(
        users
            .into_iter()
            .map(|user| {
                AlterUserScramCredentialsResult::default()
                    .with_user(user)
                    .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            })
            .collect(),
    )
}

/// DescribeUserScramCredentials: DESCRIBE on the cluster, else CLUSTER_AUTHORIZATION_FAILED.
pub async fn describe_user_scram_credentials(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: DescribeUserScramCredentialsRequest,
    version: i16,
) -> DescribeUserScramCredentialsResponse {
    if authorize_cluster(&ctx, &session, AclOperation::Describe) {
        return super::scram_credentials::describe(ctx, request, version).await;
    }
    DescribeUserScramCredentialsResponse::default()
        .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
}
