//! Request dispatch: frame -> header -> typed request -> handler -> encoded response.
//!
//! Kafka error codes are chosen only in this module tree. One file per API. Versions advertised
//! come from each message's own `VERSIONS` (the crate's `ApiKey::valid_versions` overstates some,
//! see kafka-protocol-notes.md), clipped to what Kafka 4.x still serves (KIP-896), except that
//! Produce is advertised from v0 as Kafka does (KAFKA-18659; librdkafka's compression check needs
//! it) and v0-2 are answered with UNSUPPORTED_VERSION.
//!
//! An unknown API key, an unsupported version of any API but ApiVersions/Produce, or a request
//! that does not decode closes the connection with a log line (Kafka's `RequestContext` does the
//! same by throwing `InvalidRequestException`).

mod acls;
mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod admin;
pub(crate) mod api_versions; // fuzzing::request checks versions as dispatch does
pub mod authorize;
mod configs;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_partitions;
mod delete_records;
mod describe_log_dirs;
mod describe_producers;
mod describe_transactions;
mod elect_leaders;
mod end_txn;
mod fetch;
mod fetch_session;
pub mod group;
mod leader_hint;
mod list_offsets;
mod list_transactions;
mod metadata;
mod offset_for_leader_epoch;
mod produce;
pub(crate) mod request_metrics;
pub mod sasl;
mod scram_credentials;
mod transactions;
mod txn_acls;
mod txn_offset_commit;

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message};
use ringtail_protocol::frame::{self, RequestPrefix};

use crate::security::Session;
use crate::shard::ShardContext;

pub use api_versions::supported_versions;
pub use ringtail_protocol::frame::UNSUPPORTED_VERSION;
pub use transactions::transaction_services;

/// What the connection writer does for one request.
pub enum Response {
    /// A complete frame, size prefix included.
    Frame(BytesMut),
    /// A complete frame in pieces to send one after the other, size prefix included: encoded
    /// fields and, unchanged, the stored record batches of a Fetch (not copied again).
    Parts(Vec<Bytes>),
    /// Nothing is sent (Produce with acks=0).
    None,
    /// Close the connection after the responses before this one, logging the reason.
    Close(CloseReason),
    /// Send this complete frame, then close the connection, logging the reason (a failed
    /// SASL authentication).
    FrameThenClose(BytesMut, CloseReason),
}

/// The result of dispatching one frame, decided in request order.
pub enum Dispatched {
    /// Send what the future gives, after the responses before it.
    Respond(LocalBoxFuture<'static, Response>),
    /// Close the connection (after the responses before this one), logging the reason.
    Close(CloseReason),
    /// Send what the future gives, after the responses before it, and read no further
    /// request (a failed SASL authentication: the answer, then the connection is closed).
    Final(LocalBoxFuture<'static, Response>),
}

/// Why a connection is closed instead of answered: Kafka closes the connection on a request it
/// cannot parse or does not serve (the protocol guide has no error response for these). The
/// connection writer logs it; no other connection is affected.
#[derive(Debug, thiserror::Error)]
pub enum CloseReason {
    /// The frame is too short for the request prefix (api key, version, correlation id).
    #[error(transparent)]
    Prefix(frame::FrameError),
    /// An API key Kafka does not define, or one Ringtail does not serve.
    #[error("unknown or unsupported API key {api_key}")]
    UnknownApi {
        /// The raw api key of the request.
        api_key: i16,
    },
    /// A version outside the range advertised in ApiVersions.
    #[error("unsupported version {version} of {api_key:?} (supported {min}-{max})")]
    UnsupportedVersion {
        /// The API of the request.
        api_key: ApiKey,
        /// The version the client sent.
        version: i16,
        /// The lowest version served.
        min: i16,
        /// The highest version served.
        max: i16,
    },
    /// The request header did not decode.
    #[error("malformed {api_key:?} header: {source}")]
    MalformedHeader {
        /// The API of the request.
        api_key: ApiKey,
        /// kafka-protocol's decode error.
        #[source]
        source: anyhow::Error,
    },
    /// The request body did not decode for its version.
    #[error("malformed {api_key:?} v{version} request: {source}")]
    MalformedRequest {
        /// The API of the request.
        api_key: ApiKey,
        /// The version the client sent.
        version: i16,
        /// kafka-protocol's decode error.
        #[source]
        source: anyhow::Error,
    },
    /// A Produce v0-2 request whose legacy body did not parse.
    #[error("malformed Produce v{version} request")]
    MalformedLegacyProduce {
        /// The version the client sent (0-2).
        version: i16,
    },
    /// An API that is advertised but has no handler (a bug: ApiVersions and routing disagree).
    #[error("API {0:?} is not handled")]
    NotHandled(ApiKey),
    /// The response could not be encoded (a response field does not fit the version).
    #[error(transparent)]
    Encode(frame::FrameError),
    /// SASL (issue 11): a failed authentication, a request before authentication, an expired
    /// session; the message says which.
    #[error("SASL: {0}")]
    Sasl(String),
}

/// Decodes `frame` (the bytes after the size prefix) and starts handling it. `session` is the
/// connection's listener, security protocol, principal and client address (JoinGroup records
/// the address for DescribeGroups; Metadata answers with the listener's advertised address).
///
/// The part of Produce handling that must follow request order (validation, offset
/// assignment) runs before this returns; everything else runs in the returned future, which
/// the connection awaits in order.
pub async fn dispatch(ctx: &Rc<ShardContext>, frame: Bytes, session: &Rc<Session>) -> Dispatched {
    let prefix = match RequestPrefix::parse(&frame) {
        Ok(prefix) => prefix,
        Err(e) => return Dispatched::Close(CloseReason::Prefix(e)),
    };
    let api_key = match check_version(prefix, &frame) {
        Ok(api_key) => api_key,
        Err(answered) => return answered,
    };
    if let Err(reason) = sasl::gate(session, api_key) {
        return Dispatched::Close(reason);
    }
    let version = prefix.api_version;
    let mut body = frame;
    let header = match RequestHeader::decode(&mut body, api_key.request_header_version(version)) {
        Ok(header) => header,
        Err(source) => {
            return Dispatched::Close(CloseReason::MalformedHeader { api_key, source });
        }
    };
    let request = Request {
        ctx: ctx.clone(),
        session: session.clone(),
        api_key,
        version,
        correlation_id: prefix.correlation_id,
        body,
    };
    route(request, header).await
}

/// Maps the raw API key and checks the version. `Err` is the whole answer: a close for an
/// unknown API or version, or the frames Kafka sends for a too new ApiVersions (KIP-511) and
/// for Produce v0-2.
fn check_version(prefix: RequestPrefix, frame: &Bytes) -> Result<ApiKey, Dispatched> {
    let RequestPrefix {
        api_key: raw_key,
        api_version: version,
        correlation_id,
    } = prefix;
    let Some((api_key, (min, max))) = ApiKey::try_from(raw_key)
        .ok()
        .and_then(|key| Some((key, supported_versions(key)?)))
    else {
        return Err(Dispatched::Close(CloseReason::UnknownApi {
            api_key: raw_key,
        }));
    };
    if api_key == ApiKey::ApiVersions && version > max {
        // KIP-511: answer in v0 with UNSUPPORTED_VERSION and our ranges; the client retries.
        let response = api_versions::response(UNSUPPORTED_VERSION);
        return Err(ready(encode_frame(
            ApiKey::ApiVersions,
            0,
            correlation_id,
            &response,
        )));
    }
    if api_key == ApiKey::Produce && (0..3).contains(&version) {
        return Err(ready(produce::unsupported_legacy_version(
            frame,
            version,
            correlation_id,
        )));
    }
    if version < min || version > max {
        return Err(Dispatched::Close(CloseReason::UnsupportedVersion {
            api_key,
            version,
            min,
            max,
        }));
    }
    Ok(api_key)
}

/// A request whose header was read: what every handler needs to decode and answer it.
struct Request {
    ctx: Rc<ShardContext>,
    /// The connection the request came on.
    session: Rc<Session>,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    /// The request body, after the header.
    body: Bytes,
}

impl Request {
    /// Decodes the body as `T`; the error is the reason to close the connection.
    fn decode<T: Decodable>(&mut self) -> Result<T, CloseReason> {
        decode(&mut self.body, self.version, self.api_key)
    }

    /// Encodes `response` as the answer to this request.
    fn encode<T: Encodable + HeaderVersion + Message>(&self, response: &T) -> Response {
        encode_frame(self.api_key, self.version, self.correlation_id, response)
    }
}

/// Decodes the body as `$request`, runs `$handler(ctx, request, version)` in the returned
/// future and encodes its response.
macro_rules! handle {
    ($request:expr, $type:ty, $handler:path) => {{
        let mut request = $request;
        // From the request being read, as Kafka's TotalTimeMs (answers go out in order).
        let started = std::time::Instant::now();
        match request.decode::<$type>() {
            Ok(decoded) => Dispatched::Respond(Box::pin(async move {
                let response = $handler(request.ctx.clone(), decoded, request.version).await;
                request_metrics::record!(request.api_key, started, &response);
                request.encode(&response)
            })),
            Err(reason) => Dispatched::Close(reason),
        }
    }};
}

/// Like `handle!`, for handlers that need the connection's [`Session`] (listener, principal):
/// runs `$handler(ctx, session, request, version)`.
macro_rules! handle_with_session {
    ($request:expr, $type:ty, $handler:path) => {{
        let mut request = $request;
        let started = std::time::Instant::now();
        match request.decode::<$type>() {
            Ok(decoded) => Dispatched::Respond(Box::pin(async move {
                let response = $handler(
                    request.ctx.clone(),
                    request.session.clone(),
                    decoded,
                    request.version,
                )
                .await;
                request_metrics::record!(request.api_key, started, &response);
                request.encode(&response)
            })),
            Err(reason) => Dispatched::Close(reason),
        }
    }};
}

/// Hands the request to its API's handler.
async fn route(request: Request, header: RequestHeader) -> Dispatched {
    match request.api_key {
        ApiKey::Produce => produce(request).await,
        ApiKey::ApiVersions => handle!(request, ApiVersionsRequest, api_versions::handle),
        ApiKey::Metadata => handle_with_session!(request, MetadataRequest, metadata::handle),
        ApiKey::Fetch => fetch(request),
        ApiKey::ListOffsets => {
            handle_with_session!(request, ListOffsetsRequest, list_offsets::handle)
        }
        ApiKey::CreateTopics => {
            handle_with_session!(request, CreateTopicsRequest, admin::create_topics)
        }
        ApiKey::DeleteTopics => {
            handle_with_session!(request, DeleteTopicsRequest, admin::delete_topics)
        }
        ApiKey::DescribeConfigs => {
            handle_with_session!(request, DescribeConfigsRequest, configs::describe_configs)
        }
        ApiKey::AlterConfigs => {
            handle_with_session!(request, AlterConfigsRequest, configs::alter_configs)
        }
        ApiKey::IncrementalAlterConfigs => {
            handle_with_session!(
                request,
                IncrementalAlterConfigsRequest,
                configs::incremental_alter_configs
            )
        }
        ApiKey::DescribeCluster => {
            handle_with_session!(request, DescribeClusterRequest, admin::describe_cluster)
        }
        ApiKey::InitProducerId => {
            handle_with_session!(request, InitProducerIdRequest, admin::init_producer_id)
        }
        ApiKey::FindCoordinator => {
            handle_with_session!(
                request,
                FindCoordinatorRequest,
                group::handle_find_coordinator
            )
        }
        ApiKey::JoinGroup => join_group(request, header),
        ApiKey::ConsumerGroupHeartbeat => consumer_group_heartbeat(request, header),
        ApiKey::ConsumerGroupDescribe => handle_with_session!(
            request,
            ConsumerGroupDescribeRequest,
            consumer_group_describe::handle
        ),
        ApiKey::SyncGroup => {
            handle_with_session!(request, SyncGroupRequest, group::handle_sync_group)
        }
        ApiKey::Heartbeat => {
            handle_with_session!(request, HeartbeatRequest, group::handle_heartbeat)
        }
        ApiKey::LeaveGroup => {
            handle_with_session!(request, LeaveGroupRequest, group::handle_leave_group)
        }
        ApiKey::OffsetCommit => {
            handle_with_session!(request, OffsetCommitRequest, group::handle_offset_commit)
        }
        ApiKey::OffsetFetch => {
            handle_with_session!(request, OffsetFetchRequest, group::handle_offset_fetch)
        }
        ApiKey::ListGroups => {
            handle_with_session!(request, ListGroupsRequest, group::handle_list_groups)
        }
        ApiKey::DescribeGroups => {
            handle_with_session!(
                request,
                DescribeGroupsRequest,
                group::handle_describe_groups
            )
        }
        ApiKey::DeleteGroups => {
            handle_with_session!(request, DeleteGroupsRequest, group::handle_delete_groups)
        }
        ApiKey::OffsetDelete => {
            handle_with_session!(request, OffsetDeleteRequest, group::handle_offset_delete)
        }
        ApiKey::CreatePartitions => {
            handle_with_session!(request, CreatePartitionsRequest, create_partitions::handle)
        }
        ApiKey::DeleteRecords => {
            handle_with_session!(request, DeleteRecordsRequest, delete_records::handle)
        }
        ApiKey::DescribeLogDirs => {
            handle_with_session!(request, DescribeLogDirsRequest, describe_log_dirs::handle)
        }
        ApiKey::OffsetForLeaderEpoch => {
            handle_with_session!(
                request,
                OffsetForLeaderEpochRequest,
                offset_for_leader_epoch::handle
            )
        }
        // Transactions (issue 10).
        ApiKey::AddPartitionsToTxn => {
            handle_with_session!(
                request,
                AddPartitionsToTxnRequest,
                txn_acls::add_partitions_to_txn
            )
        }
        ApiKey::AddOffsetsToTxn => {
            handle_with_session!(
                request,
                AddOffsetsToTxnRequest,
                txn_acls::add_offsets_to_txn
            )
        }
        ApiKey::EndTxn => handle_with_session!(request, EndTxnRequest, txn_acls::end_txn),
        ApiKey::DescribeTransactions => {
            handle!(
                request,
                DescribeTransactionsRequest,
                describe_transactions::handle
            )
        }
        ApiKey::ListTransactions => {
            handle!(request, ListTransactionsRequest, list_transactions::handle)
        }
        ApiKey::TxnOffsetCommit => {
            handle_with_session!(request, TxnOffsetCommitRequest, txn_acls::txn_offset_commit)
        }
        // Transactions (issue 10), log side.
        ApiKey::DescribeProducers => {
            handle!(
                request,
                DescribeProducersRequest,
                describe_producers::handle
            )
        }
        ApiKey::ElectLeaders => {
            handle_with_session!(request, ElectLeadersRequest, elect_leaders::handle)
        }
        // ACLs (issue 11)
        ApiKey::CreateAcls => handle_with_session!(request, CreateAclsRequest, acls::create_acls),
        ApiKey::DescribeAcls => {
            handle_with_session!(request, DescribeAclsRequest, acls::describe_acls)
        }
        ApiKey::DeleteAcls => handle_with_session!(request, DeleteAclsRequest, acls::delete_acls),
        // SASL (issue 11)
        ApiKey::SaslHandshake => sasl::handshake(request),
        ApiKey::SaslAuthenticate => sasl::authenticate(request),
        ApiKey::AlterUserScramCredentials => handle_with_session!(
            request,
            AlterUserScramCredentialsRequest,
            txn_acls::alter_user_scram_credentials
        ),
        ApiKey::DescribeUserScramCredentials => handle_with_session!(
            request,
            DescribeUserScramCredentialsRequest,
            txn_acls::describe_user_scram_credentials
        ),
        other => Dispatched::Close(CloseReason::NotHandled(other)),
    }
}

/// Produce: validation and offset assignment now, in request order; the answer once written
/// (acks=1) or durable (acks=-1); nothing for acks=0.
async fn produce(mut request: Request) -> Dispatched {
    let decoded = match request.decode::<ProduceRequest>() {
        Ok(decoded) => decoded,
        Err(reason) => return Dispatched::Close(reason),
    };
    let acks = decoded.acks;
    let started = std::time::Instant::now();
    let pending = produce::dispatch(&request.ctx, &request.session, decoded, request.version).await;
    Dispatched::Respond(Box::pin(async move {
        let response = pending.await;
        request_metrics::record!(request.api_key, started, &response);
        if acks == 0 {
            return Response::None;
        }
        request.encode(&response)
    }))
}

/// Fetch: the stored record sets go out as they are, not copied into the response.
fn fetch(mut request: Request) -> Dispatched {
    let decoded = match request.decode::<FetchRequest>() {
        Ok(decoded) => decoded,
        Err(reason) => return Dispatched::Close(reason),
    };
    let started = std::time::Instant::now();
    Dispatched::Respond(Box::pin(async move {
        let response = fetch::handle(
            request.ctx.clone(),
            request.session.clone(),
            decoded,
            request.version,
        )
        .await;
        request_metrics::record!(request.api_key, started, &response);
        let records = fetch::shareable_records(&response);
        encode_frame_sharing(
            request.api_key,
            request.version,
            request.correlation_id,
            &response,
            &records,
        )
    }))
}

/// JoinGroup also records the member's `client.id` and address (for DescribeGroups).
fn join_group(mut request: Request, header: RequestHeader) -> Dispatched {
    let decoded = match request.decode::<JoinGroupRequest>() {
        Ok(decoded) => decoded,
        Err(reason) => return Dispatched::Close(reason),
    };
    let client_id = header.client_id;
    let started = std::time::Instant::now();
    Dispatched::Respond(Box::pin(async move {
        let response = group::handle_join_group(
            request.ctx.clone(),
            decoded,
            request.version,
            client_id,
            request.session.clone(),
        )
        .await;
        request_metrics::record!(request.api_key, started, &response);
        request.encode(&response)
    }))
}

/// ConsumerGroupHeartbeat (KIP-848) also records the member's `client.id` and address.
fn consumer_group_heartbeat(mut request: Request, header: RequestHeader) -> Dispatched {
    let decoded = match request.decode::<ConsumerGroupHeartbeatRequest>() {
        Ok(decoded) => decoded,
        Err(reason) => return Dispatched::Close(reason),
    };
    let client_id = header.client_id;
    let started = std::time::Instant::now();
    Dispatched::Respond(Box::pin(async move {
        let response = consumer_group_heartbeat::handle(
            request.ctx.clone(),
            decoded,
            request.version,
            client_id,
            request.session.clone(),
        )
        .await;
        request_metrics::record!(request.api_key, started, &response);
        request.encode(&response)
    }))
}

/// The open partition `topic`/`partition` of this shard, or Kafka's error for one it cannot
/// serve (`ReplicaManager.getPartitionOrError`): KAFKA_STORAGE_ERROR when it is placed in an
/// offline log dir (not opened at start-up) or went offline after a storage error
/// (`HostedPartition.Offline`), NOT_LEADER_OR_FOLLOWER when this shard does not host it.
pub(crate) fn online_partition(
    ctx: &ShardContext,
    topic: &str,
    partition: i32,
) -> Result<Rc<crate::partition::Partition>, kafka_protocol::error::ResponseError> {
    use kafka_protocol::error::ResponseError;
    match ctx.replica_manager.get(topic, partition) {
        Some(open) if open.is_offline() => Err(ResponseError::KafkaStorageError),
        Some(open) => Ok(open),
        None if crate::log::log_dirs::partition_offline(topic, partition) => {
            Err(ResponseError::KafkaStorageError)
        }
        None => Err(ResponseError::NotLeaderOrFollower),
    }
}

fn decode<T: Decodable>(body: &mut Bytes, version: i16, api_key: ApiKey) -> Result<T, CloseReason> {
    T::decode(body, version).map_err(|source| CloseReason::MalformedRequest {
        api_key,
        version,
        source,
    })
}

fn ready(response: Response) -> Dispatched {
    Dispatched::Respond(Box::pin(async move { response }))
}

/// Encodes size prefix, response header (v0, or v1 for flexible versions) and body
/// ([`frame::encode_response`]); a failure to encode closes the connection.
pub fn encode_frame<T: Encodable + HeaderVersion + Message>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Response {
    match frame::encode_response(api_key, version, correlation_id, body) {
        Ok(out) => Response::Frame(out),
        Err(e) => Response::Close(CloseReason::Encode(e)),
    }
}

/// Like [`encode_frame`], but the bytes of `shared` (in the order the encoder writes them) are
/// referenced instead of copied when the encoder writes one of them whole
/// ([`frame::encode_response_sharing`]).
pub fn encode_frame_sharing<T: Encodable + HeaderVersion + Message>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
    shared: &[Bytes],
) -> Response {
    if shared.is_empty() {
        return encode_frame(api_key, version, correlation_id, body);
    }
    match frame::encode_response_sharing(api_key, version, correlation_id, body, shared) {
        Ok(parts) => Response::Parts(parts),
        Err(e) => Response::Close(CloseReason::Encode(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    fn bytes_of(response: Response) -> Vec<u8> {
        match response {
            Response::Frame(frame) => frame.to_vec(),
            Response::Parts(parts) => parts.concat(),
            Response::None | Response::Close(_) | Response::FrameThenClose(..) => {
                panic!("no frame")
            }
        }
    }

    fn check(sizes: &[usize], version: i16) {
        let partitions = sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_records(Some(Bytes::from(vec![i as u8 + 1; size])))
            })
            .collect();
        let response =
            FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(partitions)]);
        let records = fetch::shareable_records(&response);
        let copied = bytes_of(encode_frame(ApiKey::Fetch, version, 7, &response));
        let shared = encode_frame_sharing(ApiKey::Fetch, version, 7, &response, &records);
        if let Response::Parts(parts) = &shared {
            assert_eq!(parts.len() > 1, !records.is_empty(), "v{version} {sizes:?}");
        }
        assert_eq!(bytes_of(shared), copied, "v{version} {sizes:?}");
    }

    #[test]
    fn shared_fetch_records_encode_like_copied_ones() {
        for version in 4..=18 {
            check(&[], version);
            check(&[100], version);
            check(&[1 << 20], version);
            check(&[1 << 20, 10, 70_000, 0, 16 * 1024], version);
        }
    }
}
