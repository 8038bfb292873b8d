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

mod admin;
mod api_versions;
mod fetch;
pub mod group;
mod list_offsets;
mod metadata;
mod produce;

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message};

use crate::shard::ShardContext;

pub use api_versions::supported_versions;

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
    Close(String),
}

/// The result of dispatching one frame, decided in request order.
pub enum Dispatched {
    Respond(LocalBoxFuture<'static, Response>),
    Close(String),
}

/// Kafka's UNSUPPORTED_VERSION error code.
pub const UNSUPPORTED_VERSION: i16 = 35;

/// Decodes `frame` (the bytes after the size prefix) and starts handling it. `peer` is the
/// client's address (JoinGroup records it for DescribeGroups).
///
/// The part of Produce handling that must follow request order (validation, offset
/// assignment) runs before this returns; everything else runs in the returned future, which
/// the connection awaits in order.
pub async fn dispatch(
    ctx: &Rc<ShardContext>,
    frame: Bytes,
    peer: Option<SocketAddr>,
) -> Dispatched {
    if frame.len() < 8 {
        return Dispatched::Close(format!("request of {} bytes has no header", frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Some((api_key, (min, max))) = ApiKey::try_from(raw_key)
        .ok()
        .and_then(|key| Some((key, supported_versions(key)?)))
    else {
        return Dispatched::Close(format!("unknown or unsupported API key {raw_key}"));
    };
    if api_key == ApiKey::ApiVersions && version > max {
        // KIP-511: answer in v0 with UNSUPPORTED_VERSION and our ranges; the client retries.
        let response = api_versions::response(UNSUPPORTED_VERSION);
        return ready(encode_frame(
            ApiKey::ApiVersions,
            0,
            correlation_id,
            &response,
        ));
    }
    if api_key == ApiKey::Produce && (0..3).contains(&version) {
        return ready(produce::unsupported_legacy_version(
            frame,
            version,
            correlation_id,
        ));
    }
    if version < min || version > max {
        return Dispatched::Close(format!(
            "unsupported version {version} of {api_key:?} (supported {min}-{max})"
        ));
    }
    let mut body = frame;
    let header = match RequestHeader::decode(&mut body, api_key.request_header_version(version)) {
        Ok(header) => header,
        Err(e) => return Dispatched::Close(format!("malformed {api_key:?} header: {e}")),
    };
    let ctx = ctx.clone();
    macro_rules! handle {
        ($request:ty, $handler:path) => {{
            let request = match decode::<$request>(&mut body, version, api_key) {
                Ok(request) => request,
                Err(reason) => return Dispatched::Close(reason),
            };
            Dispatched::Respond(Box::pin(async move {
                let response = $handler(ctx, request, version).await;
                encode_frame(api_key, version, correlation_id, &response)
            }))
        }};
    }
    match api_key {
        ApiKey::Produce => {
            let request = match decode::<ProduceRequest>(&mut body, version, api_key) {
                Ok(request) => request,
                Err(reason) => return Dispatched::Close(reason),
            };
            let acks = request.acks;
            let pending = produce::dispatch(&ctx, request, version).await;
            Dispatched::Respond(Box::pin(async move {
                let response = pending.await;
                if acks == 0 {
                    return Response::None;
                }
                encode_frame(api_key, version, correlation_id, &response)
            }))
        }
        ApiKey::ApiVersions => handle!(ApiVersionsRequest, api_versions::handle),
        ApiKey::Metadata => handle!(MetadataRequest, metadata::handle),
        ApiKey::Fetch => {
            let request = match decode::<FetchRequest>(&mut body, version, api_key) {
                Ok(request) => request,
                Err(reason) => return Dispatched::Close(reason),
            };
            Dispatched::Respond(Box::pin(async move {
                let response = fetch::handle(ctx, request, version).await;
                let records = fetch::shareable_records(&response);
                encode_frame_sharing(api_key, version, correlation_id, &response, &records)
            }))
        }
        ApiKey::ListOffsets => handle!(ListOffsetsRequest, list_offsets::handle),
        ApiKey::CreateTopics => handle!(CreateTopicsRequest, admin::create_topics),
        ApiKey::DeleteTopics => handle!(DeleteTopicsRequest, admin::delete_topics),
        ApiKey::DescribeConfigs => handle!(DescribeConfigsRequest, admin::describe_configs),
        ApiKey::DescribeCluster => handle!(DescribeClusterRequest, admin::describe_cluster),
        ApiKey::InitProducerId => handle!(InitProducerIdRequest, admin::init_producer_id),
        ApiKey::FindCoordinator => handle!(FindCoordinatorRequest, group::handle_find_coordinator),
        ApiKey::JoinGroup => {
            let request = match decode::<JoinGroupRequest>(&mut body, version, api_key) {
                Ok(request) => request,
                Err(reason) => return Dispatched::Close(reason),
            };
            let client_id = header.client_id.clone();
            Dispatched::Respond(Box::pin(async move {
                let response =
                    group::handle_join_group(ctx, request, version, client_id, peer).await;
                encode_frame(api_key, version, correlation_id, &response)
            }))
        }
        ApiKey::SyncGroup => handle!(SyncGroupRequest, group::handle_sync_group),
        ApiKey::Heartbeat => handle!(HeartbeatRequest, group::handle_heartbeat),
        ApiKey::LeaveGroup => handle!(LeaveGroupRequest, group::handle_leave_group),
        ApiKey::OffsetCommit => handle!(OffsetCommitRequest, group::handle_offset_commit),
        ApiKey::OffsetFetch => handle!(OffsetFetchRequest, group::handle_offset_fetch),
        ApiKey::ListGroups => handle!(ListGroupsRequest, group::handle_list_groups),
        ApiKey::DescribeGroups => handle!(DescribeGroupsRequest, group::handle_describe_groups),
        ApiKey::DeleteGroups => handle!(DeleteGroupsRequest, group::handle_delete_groups),
        ApiKey::OffsetDelete => handle!(OffsetDeleteRequest, group::handle_offset_delete),
        other => {
            let _ = header;
            Dispatched::Close(format!("API {other:?} is not handled"))
        }
    }
}

fn decode<T: Decodable>(body: &mut Bytes, version: i16, api_key: ApiKey) -> Result<T, String> {
    T::decode(body, version).map_err(|e| format!("malformed {api_key:?} v{version} request: {e}"))
}

fn ready(response: Response) -> Dispatched {
    Dispatched::Respond(Box::pin(async move { response }))
}

/// Encodes size prefix, response header (v0, or v1 for flexible versions) and body.
pub fn encode_frame<T: Encodable + HeaderVersion + Message>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Response {
    let header_version = api_key.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let size = header
        .compute_size(header_version)
        .and_then(|h| Ok(h + body.compute_size(version)?));
    let mut out = BytesMut::with_capacity(4 + size.as_ref().copied().unwrap_or(64));
    out.put_i32(0);
    let encoded = header
        .encode(&mut out, header_version)
        .and_then(|()| body.encode(&mut out, version));
    match encoded {
        Ok(()) => {
            let length = (out.len() - 4) as i32;
            out[..4].copy_from_slice(&length.to_be_bytes());
            Response::Frame(out)
        }
        Err(e) => Response::Close(format!(
            "cannot encode {api_key:?} v{version} response: {e}"
        )),
    }
}

/// Like [`encode_frame`], but the bytes of `shared` (in the order the encoder writes them) are
/// referenced instead of copied when the encoder writes one of them whole.
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
    let header_version = api_key.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let shared_bytes: usize = shared.iter().map(Bytes::len).sum();
    let size = header
        .compute_size(header_version)
        .and_then(|h| Ok(h + body.compute_size(version)?));
    let encoded_bytes = size.as_ref().map_or(64, |s| s.saturating_sub(shared_bytes));
    let mut out = SharingBuf::new(shared, encoded_bytes.min(ENCODE_CAPACITY_MAX_BYTES) + 4);
    out.put_i32(0);
    let encoded = header
        .encode(&mut out, header_version)
        .and_then(|()| body.encode(&mut out, version));
    match encoded {
        Ok(()) => Response::Parts(out.finish()),
        Err(e) => Response::Close(format!(
            "cannot encode {api_key:?} v{version} response: {e}"
        )),
    }
}

/// Upper bound on the up-front capacity of an encoding buffer (it grows past it if needed).
const ENCODE_CAPACITY_MAX_BYTES: usize = 1 << 20;

/// An encoding buffer whose pieces are owned encoded bytes or whole shared `Bytes`.
struct SharingBuf<'a> {
    shared: &'a [Bytes],
    /// Index in `shared` of the next slice expected.
    next_shared: usize,
    /// Pieces before `current`, in order: the first is the frame's start (size prefix).
    done: Vec<Bytes>,
    /// Length of all of `done`.
    done_bytes: usize,
    /// The frame's first piece, kept mutable to patch the size prefix.
    head: Option<BytesMut>,
    current: BytesMut,
}

impl<'a> SharingBuf<'a> {
    fn new(shared: &'a [Bytes], capacity: usize) -> SharingBuf<'a> {
        SharingBuf {
            shared,
            next_shared: 0,
            done: Vec::with_capacity(2 * shared.len() + 1),
            done_bytes: 0,
            head: None,
            current: BytesMut::with_capacity(capacity),
        }
    }

    /// The next expected shared piece when `src` is exactly it.
    fn shared_piece(&self, src: &[u8]) -> Option<Bytes> {
        let candidate = self.shared.get(self.next_shared)?;
        (candidate.as_ptr() == src.as_ptr() && candidate.len() == src.len())
            .then(|| candidate.clone())
    }

    fn finish(mut self) -> Vec<Bytes> {
        let current = std::mem::take(&mut self.current);
        let mut head = match self.head.take() {
            Some(head) => {
                self.done_bytes += current.len();
                self.done.push(current.freeze());
                head
            }
            None => current,
        };
        let length = (head.len() + self.done_bytes - 4) as i32;
        head[..4].copy_from_slice(&length.to_be_bytes());
        let mut parts = Vec::with_capacity(self.done.len() + 1);
        parts.push(head.freeze());
        parts.extend(self.done.into_iter().filter(|part| !part.is_empty()));
        parts
    }
}

// SAFETY: every method delegates to `current`, a `BytesMut`, which upholds `BufMut`'s contract.
unsafe impl bytes::BufMut for SharingBuf<'_> {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's guarantee about `chunk_mut` (from `current`) is passed on.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut bytes::buf::UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        let Some(piece) = self.shared_piece(src) else {
            self.current.extend_from_slice(src);
            return;
        };
        self.next_shared += 1;
        let current = std::mem::take(&mut self.current);
        if self.head.is_none() {
            self.head = Some(current);
        } else {
            self.done_bytes += current.len();
            self.done.push(current.freeze());
        }
        self.done_bytes += piece.len();
        self.done.push(piece);
    }
}

impl kafka_protocol::protocol::buf::ByteBufMut for SharingBuf<'_> {
    fn offset(&self) -> usize {
        self.head.as_ref().map_or(0, BytesMut::len) + self.done_bytes + self.current.len()
    }

    fn seek(&mut self, offset: usize) {
        let start = self.offset() - self.current.len();
        assert!(offset >= start, "encoder seeks back into a sent piece");
        self.current.resize(offset - start, 0);
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        let start = self.offset() - self.current.len();
        assert!(r.start >= start, "encoder rewrites a sent piece");
        &mut self.current[r.start - start..r.end - start]
    }
}

/// Reads a non-flexible protocol string (int16 length, -1 = null).
fn get_legacy_string(buf: &mut Bytes) -> Option<Option<Bytes>> {
    if buf.remaining() < 2 {
        return None;
    }
    let length = buf.get_i16();
    if length < 0 {
        return Some(None);
    }
    if buf.remaining() < length as usize {
        return None;
    }
    Some(Some(buf.split_to(length as usize)))
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
            Response::None | Response::Close(_) => panic!("no frame"),
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
