//! ElectLeaders (key 43), v0-2, as one node can answer it: every partition already has its only
//! replica, this broker, as leader, so each known partition gets ELECTION_NOT_NEEDED (Kafka's
//! `ReplicationControlManager.electLeader` when the preferred/any leader already leads) and an
//! unknown one UNKNOWN_TOPIC_OR_PARTITION. A null partition list means every partition; Kafka
//! then answers only the partitions that needed an election, which is none here. An election
//! type other than 0 (preferred) or 1 (unclean) -> INVALID_REQUEST for every partition.

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::authorize;
use crate::security::authorizer::{AclOperation, ResourceType};
use crate::security::Session;
use crate::shard::ShardContext;

/// ACLs: ALTER on the cluster, else CLUSTER_AUTHORIZATION_FAILED for the request and each
/// partition (KafkaApis.handleElectLeaders).
pub async fn handle(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    let response = ElectLeadersResponse::default();
    let denied = !authorize::authorize(
        &ctx,
        &session,
        AclOperation::Alter,
        ResourceType::Cluster,
        authorize::CLUSTER_NAME,
    );
    let Some(topics) = request.topic_partitions else {
        return response;
    };
    let image = ctx.metadata();
    let valid_type = version == 0 || matches!(request.election_type, 0 | 1);
    let results = topics
        .into_iter()
        .map(|topic| {
            let metadata = image.topic(topic.topic.as_str());
            let partition_result = topic
                .partitions
                .iter()
                .map(|&partition| {
                    let known = metadata.is_some_and(|m| m.shard_of(partition).is_some());
                    let (error, message) = if denied {
                        (
                            ResponseError::ClusterAuthorizationFailed,
                            "Cluster authorization failed.".to_string(),
                        )
                    } else if !valid_type {
                        (
                            ResponseError::InvalidRequest,
                            "Unknown election type".to_string(),
                        )
                    } else if known {
                        (
                            ResponseError::ElectionNotNeeded,
                            "Leader election not needed for topic partition.".to_string(),
                        )
                    } else {
                        (
                            ResponseError::UnknownTopicOrPartition,
                            "The topic or partition does not exist.".to_string(),
                        )
                    };
                    PartitionResult::default()
                        .with_partition_id(partition)
                        .with_error_code(error.code())
                        .with_error_message(Some(StrBytes::from_string(message)))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(topic.topic)
                .with_partition_result(partition_result)
        })
        .collect();
    let code = if denied {
        ResponseError::ClusterAuthorizationFailed.code()
    } else {
        0
    };
    response
        .with_error_code(code)
        .with_replica_election_results(results)
}
