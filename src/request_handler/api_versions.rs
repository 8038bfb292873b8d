//! ApiVersions (key 18), v0-4, with the KIP-511 fallback handled in `dispatch`.

use std::rc::Rc;

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Message;

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
        // Group APIs (KIP-896 minimums: OffsetCommit v2+, OffsetFetch v1+). ConsumerGroupHeartbeat
        // (KIP-848) is not advertised: only the classic protocol is implemented.
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
}

pub async fn handle(
    _ctx: Rc<ShardContext>,
    _request: ApiVersionsRequest,
    _version: i16,
) -> ApiVersionsResponse {
    response(0)
}
