//! ApiVersions (key 18), v0-4, with the KIP-511 fallback handled in `dispatch`.

use std::rc::Rc;

use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Message;
use kafka_protocol::protocol::StrBytes;

use crate::shard::ShardContext;

/// The `(min, max)` versions this broker serves for `api_key`, or `None` when it is not served.
///
/// Minimums follow Kafka 4.x (KIP-896) except Produce, advertised from v0 (see module docs of
/// `request_handler`). Maximums are the decoder's own `VERSIONS.max`.
pub fn supported_versions(api_key: ApiKey) -> Option<(i16, i16)> {
    let range = match api_key {
        ApiKey::Produce => (0, ProduceRequest::VERSIONS.max),
        ApiKey::Fetch => (4, FetchRequest::VERSIONS.max),
        ApiKey::ListOffsets => (1, ListOffsetsRequest::VERSIONS.max),
        ApiKey::Metadata => (0, MetadataRequest::VERSIONS.max),
        ApiKey::ApiVersions => (0, ApiVersionsRequest::VERSIONS.max),
        ApiKey::CreateTopics => (2, CreateTopicsRequest::VERSIONS.max),
        ApiKey::DeleteTopics => (1, DeleteTopicsRequest::VERSIONS.max),
        ApiKey::DescribeConfigs => (1, DescribeConfigsRequest::VERSIONS.max),
        ApiKey::AlterConfigs => (0, AlterConfigsRequest::VERSIONS.max),
        ApiKey::IncrementalAlterConfigs => (0, IncrementalAlterConfigsRequest::VERSIONS.max),
        ApiKey::DescribeCluster => (0, DescribeClusterRequest::VERSIONS.max),
        ApiKey::InitProducerId => (0, InitProducerIdRequest::VERSIONS.max),
        // Group APIs (KIP-896 minimums: OffsetCommit v2+, OffsetFetch v1+), and KIP-848's
        // consumer group protocol (Kafka 4.1: ConsumerGroupHeartbeat v0-1, Describe v0-1).
        ApiKey::ConsumerGroupHeartbeat => (0, ConsumerGroupHeartbeatRequest::VERSIONS.max),
        ApiKey::ConsumerGroupDescribe => (0, ConsumerGroupDescribeRequest::VERSIONS.max),
        ApiKey::FindCoordinator => (0, FindCoordinatorRequest::VERSIONS.max),
        ApiKey::JoinGroup => (0, JoinGroupRequest::VERSIONS.max),
        ApiKey::SyncGroup => (0, SyncGroupRequest::VERSIONS.max),
        ApiKey::Heartbeat => (0, HeartbeatRequest::VERSIONS.max),
        ApiKey::LeaveGroup => (0, LeaveGroupRequest::VERSIONS.max),
        ApiKey::OffsetCommit => (2, OffsetCommitRequest::VERSIONS.max),
        ApiKey::OffsetFetch => (1, OffsetFetchRequest::VERSIONS.max),
        ApiKey::ListGroups => (0, ListGroupsRequest::VERSIONS.max),
        ApiKey::DescribeGroups => (0, DescribeGroupsRequest::VERSIONS.max),
        ApiKey::DeleteGroups => (0, DeleteGroupsRequest::VERSIONS.max),
        ApiKey::OffsetDelete => (0, OffsetDeleteRequest::VERSIONS.max),
        // Operator APIs (issue 9), the ranges a Kafka 4.1 broker advertises.
        ApiKey::CreatePartitions => (0, CreatePartitionsRequest::VERSIONS.max),
        ApiKey::DeleteRecords => (0, DeleteRecordsRequest::VERSIONS.max),
        ApiKey::DescribeLogDirs => (1, DescribeLogDirsRequest::VERSIONS.max),
        ApiKey::OffsetForLeaderEpoch => (2, OffsetForLeaderEpochRequest::VERSIONS.max),
        ApiKey::ElectLeaders => (0, ElectLeadersRequest::VERSIONS.max),
        // Transactions (issue 10), Kafka 4.1's ranges.
        ApiKey::AddPartitionsToTxn => (0, AddPartitionsToTxnRequest::VERSIONS.max),
        ApiKey::AddOffsetsToTxn => (0, AddOffsetsToTxnRequest::VERSIONS.max),
        ApiKey::EndTxn => (0, EndTxnRequest::VERSIONS.max),
        ApiKey::DescribeTransactions => (0, DescribeTransactionsRequest::VERSIONS.max),
        ApiKey::ListTransactions => (0, ListTransactionsRequest::VERSIONS.max),
        ApiKey::TxnOffsetCommit => (0, TxnOffsetCommitRequest::VERSIONS.max),
        // Transactions (issue 10), log side: Kafka 4.1 advertises v0.
        ApiKey::DescribeProducers => (0, DescribeProducersRequest::VERSIONS.max),
        // ACLs (issue 11); v0 was removed in Kafka 4 (KIP-896).
        ApiKey::CreateAcls => (1, CreateAclsRequest::VERSIONS.max),
        ApiKey::DescribeAcls => (1, DescribeAclsRequest::VERSIONS.max),
        ApiKey::DeleteAcls => (1, DeleteAclsRequest::VERSIONS.max),
        // SASL (issue 11): SaslHandshake v0-1, SaslAuthenticate v0-2, SCRAM credential APIs v0.
        ApiKey::SaslHandshake => (0, SaslHandshakeRequest::VERSIONS.max),
        ApiKey::SaslAuthenticate => (0, SaslAuthenticateRequest::VERSIONS.max),
        ApiKey::AlterUserScramCredentials => (0, AlterUserScramCredentialsRequest::VERSIONS.max),
        ApiKey::DescribeUserScramCredentials => {
            (0, DescribeUserScramCredentialsRequest::VERSIONS.max)
        }
        _ => return None,
    };
    Some(range)
}

/// Every API with its supported range, and `error_code`.
pub fn response(error_code: i16) -> ApiVersionsResponse {
    let mut api_keys: Vec<ApiVersion> = ApiKey::iter()
        .filter_map(|key| {
            let (min, max) = supported_versions(key)?;
            Some(
                ApiVersion::default()
                    .with_api_key(key as i16)
                    .with_min_version(min)
                    .with_max_version(max),
            )
        })
        .collect();
    api_keys.sort_by_key(|v| v.api_key);
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
        .with_supported_features(vec![
            SupportedFeatureKey::default()
                .with_name(StrBytes::from_static_str(GROUP_VERSION))
                .with_min_version(0)
                .with_max_version(GROUP_VERSION_LATEST),
            SupportedFeatureKey::default()
                .with_name(StrBytes::from_static_str(METADATA_VERSION))
                .with_min_version(METADATA_VERSION_MIN)
                .with_max_version(METADATA_VERSION_LATEST),
        ])
        .with_finalized_features_epoch(FINALIZED_FEATURES_EPOCH)
        .with_finalized_features(vec![
            FinalizedFeatureKey::default()
                .with_name(StrBytes::from_static_str(GROUP_VERSION))
                .with_min_version_level(GROUP_VERSION_LATEST)
                .with_max_version_level(GROUP_VERSION_LATEST),
            FinalizedFeatureKey::default()
                .with_name(StrBytes::from_static_str(METADATA_VERSION))
                .with_min_version_level(METADATA_VERSION_LATEST)
                .with_max_version_level(METADATA_VERSION_LATEST),
        ])
}

/// KIP-584 features (ApiVersions v3+ tagged fields). A Kafka 4.1 broker reports
/// `metadata.version` 7-27 supported and 27 (4.1-IV1) finalized on a fresh cluster; the API
/// ranges above are 4.1's, so Ringtail reports the same, and `group.version` 0-1 supported,
/// 1 finalized (KIP-848's consumer protocol, `GroupVersion.GV_1`) as Kafka 4.1 does. Kafka 4.1
/// also reports `transaction.version` 2 (KIP-890 part 2 transactions), `share.version`,
/// `eligible.leader.replicas.version` and `kraft.version`; Ringtail has none of those
/// (transactions of transaction version 0 only, no share groups, no KRaft quorum), so it
/// reports them neither supported nor finalized, and clients stay on transaction version 0 (no
/// epoch bump per EndTxn).
const METADATA_VERSION: &str = "metadata.version";
/// KIP-848's feature (`GroupVersion.FEATURE_NAME`); 1 enables the consumer protocol.
const GROUP_VERSION: &str = "group.version";
const GROUP_VERSION_LATEST: i16 = 1;
/// `MetadataVersion.MINIMUM_VERSION` (3.3-IV3) in Kafka 4.1.
const METADATA_VERSION_MIN: i16 = 7;
/// `MetadataVersion.LATEST_PRODUCTION` (4.1-IV1) in Kafka 4.1.
const METADATA_VERSION_LATEST: i16 = 27;
/// The finalized features never change on Ringtail: one epoch for the whole broker life.
const FINALIZED_FEATURES_EPOCH: i64 = 0;

pub async fn handle(
    _ctx: Rc<ShardContext>,
    _request: ApiVersionsRequest,
    _version: i16,
) -> ApiVersionsResponse {
    response(0)
}
