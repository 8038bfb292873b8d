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
mod list_offsets;
mod metadata;
mod produce;

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

/// Decodes `frame` (the bytes after the size prefix) and starts handling it.
///
/// The part of Produce handling that must follow request order (validation, offset
/// assignment) runs before this returns; everything else runs in the returned future, which
/// the connection awaits in order.
pub async fn dispatch(ctx: &Rc<ShardContext>, frame: Bytes) -> Dispatched {
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
        ApiKey::Fetch => handle!(FetchRequest, fetch::handle),
        ApiKey::ListOffsets => handle!(ListOffsetsRequest, list_offsets::handle),
        ApiKey::CreateTopics => handle!(CreateTopicsRequest, admin::create_topics),
        ApiKey::DeleteTopics => handle!(DeleteTopicsRequest, admin::delete_topics),
        ApiKey::DescribeConfigs => handle!(DescribeConfigsRequest, admin::describe_configs),
        ApiKey::DescribeCluster => handle!(DescribeClusterRequest, admin::describe_cluster),
        ApiKey::InitProducerId => handle!(InitProducerIdRequest, admin::init_producer_id),
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
