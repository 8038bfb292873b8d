//! The ACL checks of the request handlers (issue 11): [`authorize`] answers one Kafka
//! `Action` for a connection with the shard's current ACL set
//! ([`crate::metadata::MetadataImage::acls`]) and the rule of
//! [`crate::security::authorizer::authorize`]. With `authorizer.class.name` empty (Kafka's
//! default) every check passes and authorized-operations fields list every supported
//! operation, as in Kafka.
//!
//! Which check each API makes, as Kafka 4.1's `KafkaApis` / `AclApis` / `AuthHelper`
//! (error code when refused; handlers marked * are added by other branches and get their
//! checks at merge with these helpers):
//!
//! | API | check | refused |
//! |---|---|---|
//! | Produce | WRITE TOPIC per topic; WRITE TRANSACTIONAL_ID when `transactional_id` is set | TOPIC_AUTHORIZATION_FAILED per partition / TRANSACTIONAL_ID_AUTHORIZATION_FAILED for all |
//! | Fetch (consumer) | READ TOPIC per topic | TOPIC_AUTHORIZATION_FAILED per partition |
//! | Fetch (follower: replica id >= 0) | CLUSTER_ACTION CLUSTER | TOPIC_AUTHORIZATION_FAILED for every partition |
//! | ListOffsets | DESCRIBE TOPIC | TOPIC_AUTHORIZATION_FAILED per partition |
//! | Metadata | DESCRIBE TOPIC; a full listing leaves unauthorized topics out; auto-creation needs CREATE on CLUSTER or on the topic | TOPIC_AUTHORIZATION_FAILED for a named topic |
//! | OffsetForLeaderEpoch | DESCRIBE TOPIC | TOPIC_AUTHORIZATION_FAILED per partition |
//! | CreateTopics | CREATE CLUSTER, else CREATE TOPIC; DESCRIBE_CONFIGS TOPIC for the configs in the answer | TOPIC_AUTHORIZATION_FAILED per topic |
//! | DeleteTopics | DELETE TOPIC (DESCRIBE for unknown ids) | TOPIC_AUTHORIZATION_FAILED per topic |
//! | CreatePartitions | ALTER TOPIC | TOPIC_AUTHORIZATION_FAILED per topic |
//! | DeleteRecords | DELETE TOPIC | TOPIC_AUTHORIZATION_FAILED per partition |
//! | DescribeConfigs | DESCRIBE_CONFIGS on TOPIC / CLUSTER (broker resources) | TOPIC_ / CLUSTER_AUTHORIZATION_FAILED per resource |
//! | AlterConfigs, IncrementalAlterConfigs | ALTER_CONFIGS on TOPIC / CLUSTER | TOPIC_ / CLUSTER_AUTHORIZATION_FAILED per resource |
//! | FindCoordinator | DESCRIBE GROUP (key type 0) / DESCRIBE TRANSACTIONAL_ID (key type 1) | GROUP_ / TRANSACTIONAL_ID_AUTHORIZATION_FAILED per key |
//! | JoinGroup, SyncGroup, Heartbeat, LeaveGroup | READ GROUP | GROUP_AUTHORIZATION_FAILED |
//! | OffsetCommit | READ GROUP, then READ TOPIC per topic | GROUP_AUTHORIZATION_FAILED / TOPIC_AUTHORIZATION_FAILED per partition |
//! | OffsetFetch | DESCRIBE GROUP, then DESCRIBE TOPIC (unauthorized topics left out of an all-topics answer) | GROUP_ / TOPIC_AUTHORIZATION_FAILED |
//! | OffsetDelete | DELETE GROUP, then READ TOPIC | GROUP_ / TOPIC_AUTHORIZATION_FAILED |
//! | DescribeGroups | DESCRIBE GROUP; authorized operations of the group | GROUP_AUTHORIZATION_FAILED per group |
//! | ListGroups | DESCRIBE CLUSTER lists every group, else only groups with DESCRIBE GROUP | (filtered) |
//! | DeleteGroups | DELETE GROUP | GROUP_AUTHORIZATION_FAILED per group |
//! | InitProducerId | with `transactional_id`: WRITE TRANSACTIONAL_ID; without: IDEMPOTENT_WRITE CLUSTER or WRITE on any topic | TRANSACTIONAL_ID_ / CLUSTER_AUTHORIZATION_FAILED |
//! | DescribeCluster | DESCRIBE CLUSTER; authorized operations of the cluster | CLUSTER_AUTHORIZATION_FAILED |
//! | DescribeLogDirs | DESCRIBE CLUSTER | CLUSTER_AUTHORIZATION_FAILED |
//! | ElectLeaders | ALTER CLUSTER | CLUSTER_AUTHORIZATION_FAILED |
//! | CreateAcls, DeleteAcls | ALTER CLUSTER | CLUSTER_AUTHORIZATION_FAILED |
//! | DescribeAcls | DESCRIBE CLUSTER | CLUSTER_AUTHORIZATION_FAILED |
//! | AddPartitionsToTxn * | WRITE TRANSACTIONAL_ID, then WRITE TOPIC per topic | TRANSACTIONAL_ID_ / TOPIC_AUTHORIZATION_FAILED |
//! | AddOffsetsToTxn * | WRITE TRANSACTIONAL_ID, then READ GROUP | TRANSACTIONAL_ID_ / GROUP_AUTHORIZATION_FAILED |
//! | EndTxn * | WRITE TRANSACTIONAL_ID | TRANSACTIONAL_ID_AUTHORIZATION_FAILED |
//! | TxnOffsetCommit * | WRITE TRANSACTIONAL_ID, READ GROUP, READ TOPIC per topic | TRANSACTIONAL_ID_ / GROUP_ / TOPIC_AUTHORIZATION_FAILED |
//! | DescribeTransactions * | DESCRIBE TRANSACTIONAL_ID (and DESCRIBE TOPIC of its partitions) | TRANSACTIONAL_ID_AUTHORIZATION_FAILED |
//! | ListTransactions * | DESCRIBE TRANSACTIONAL_ID per id (filtered) | (filtered) |
//! | DescribeProducers * | READ TOPIC | TOPIC_AUTHORIZATION_FAILED |
//! | AlterUserScramCredentials * | ALTER CLUSTER | CLUSTER_AUTHORIZATION_FAILED |
//! | DescribeUserScramCredentials * | DESCRIBE CLUSTER | CLUSTER_AUTHORIZATION_FAILED |
//! | ApiVersions, SaslHandshake, SaslAuthenticate | none | |

use crate::security::authorizer::{self, AclOperation, Requester, ResourceType};
use crate::security::Session;
use crate::shard::ShardContext;

pub use crate::security::authorizer::CLUSTER_NAME;

/// True when ACLs are on (`authorizer.class.name` is the StandardAuthorizer).
pub fn enabled(ctx: &ShardContext) -> bool {
    ctx.config.authorizer.enabled
}

/// Kafka's `AuthHelper.authorize` for one action: may `session`'s principal, from its
/// client address, perform `op` on the resource (`resource_type`, `name`)? Always true with
/// no authorizer configured. For CLUSTER pass [`CLUSTER_NAME`].
pub fn authorize(
    ctx: &ShardContext,
    session: &Session,
    op: AclOperation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    let config = &ctx.config.authorizer;
    if !config.enabled {
        return true;
    }
    let image = ctx.metadata();
    let principal = session.principal();
    let host = client_ip(session);
    let who = Requester {
        principal: &principal,
        host: &host,
    };
    authorizer::authorize(config, &image.acls, who, op, resource_type, name)
}

/// [`authorize`] for a topic on the produce and fetch paths, answered from the connection's
/// [`crate::security::authorizer::AuthorizationCache`] while the ACL set is unchanged.
pub fn authorize_topic_cached(
    ctx: &ShardContext,
    session: &Session,
    op: AclOperation,
    topic: &str,
) -> bool {
    if !ctx.config.authorizer.enabled {
        return true;
    }
    let acl_version = ctx.metadata().acl_version;
    session
        .authorization_cache
        .borrow_mut()
        .get_or_decide(acl_version, op, topic, || {
            authorize(ctx, session, op, ResourceType::Topic, topic)
        })
}

/// Kafka's `authorizeByResourceType`: may the session perform `op` on some resource of
/// `resource_type` ([`authorizer::authorize_by_resource_type`])? True with no authorizer.
pub fn authorize_any(
    ctx: &ShardContext,
    session: &Session,
    op: AclOperation,
    resource_type: ResourceType,
) -> bool {
    let config = &ctx.config.authorizer;
    if !config.enabled {
        return true;
    }
    let image = ctx.metadata();
    let principal = session.principal();
    let host = client_ip(session);
    let who = Requester {
        principal: &principal,
        host: &host,
    };
    authorizer::authorize_by_resource_type(config, &image.acls, who, op, resource_type)
}

/// [`authorize`] on the CLUSTER resource.
pub fn authorize_cluster(ctx: &ShardContext, session: &Session, op: AclOperation) -> bool {
    authorize(ctx, session, op, ResourceType::Cluster, CLUSTER_NAME)
}

/// Kafka's `authorizedOperations` bit field for a resource (the `*_authorized_operations`
/// fields): every supported operation the session may perform; all of them with no
/// authorizer.
pub fn authorized_operations(
    ctx: &ShardContext,
    session: &Session,
    resource_type: ResourceType,
    name: &str,
) -> i32 {
    let config = &ctx.config.authorizer;
    if !config.enabled {
        return authorizer::all_operations(resource_type);
    }
    let image = ctx.metadata();
    let principal = session.principal();
    let host = client_ip(session);
    let who = Requester {
        principal: &principal,
        host: &host,
    };
    authorizer::authorized_operations(config, &image.acls, who, resource_type, name)
}

/// The client's IP address as Kafka matches ACL hosts (`InetAddress.getHostAddress()`).
fn client_ip(session: &Session) -> String {
    session
        .client_address
        .map_or_else(String::new, |a| a.ip().to_string())
}
