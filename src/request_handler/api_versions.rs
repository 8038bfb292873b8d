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
        ApiKey::DescribeCluster => (0, DescribeClusterRequest::VERSIONS.max),
        ApiKey::InitProducerId => (0, InitProducerIdRequest::VERSIONS.max),
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
