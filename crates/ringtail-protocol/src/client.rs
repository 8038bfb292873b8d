//! The client side of the framing, sans-io: turn a request into the bytes of a frame, and the
//! bytes of a response frame back into a response.
//!
//! A transport (the bench's glommio connection, a blocking `std::net::TcpStream` in tests) does
//! the reading and writing: it writes what [`ClientCodec::encode`] returns, reads 4 bytes and
//! asks [`response_frame_size`] how many follow, reads those and hands them to
//! [`ClientCodec::decode`]. Responses come back in request order (Kafka protocol guide,
//! "Network"), so the codec matches them to requests with a FIFO of correlation ids.

use std::collections::VecDeque;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// Largest response frame accepted, in bytes (a Fetch answer is bounded by `fetch.max.bytes`).
pub const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// Why a request could not be encoded or a response frame not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientCodecError {
    /// kafka-protocol could not encode the request (a field out of its version's range).
    #[error("{api:?} v{version}: cannot encode: {reason}")]
    Encode {
        /// The request's API.
        api: ApiKey,
        /// The request's version.
        version: i16,
        /// kafka-protocol's message.
        reason: String,
    },
    /// The response body did not decode as the expected message.
    #[error("{api:?} v{version}: cannot decode: {reason}")]
    Decode {
        /// The response's API.
        api: ApiKey,
        /// The response's version.
        version: i16,
        /// kafka-protocol's message.
        reason: String,
    },
    /// A size prefix below 4 (no correlation id) or above [`MAX_RESPONSE_BYTES`].
    #[error("response frame of {size} bytes (bytes {:?}: is this a Kafka broker?)", size.to_be_bytes())]
    FrameSize {
        /// The size prefix as read.
        size: i32,
    },
    /// A response frame arrived while no request was waiting for one.
    #[error("a response to no request")]
    Unexpected,
    /// The response's correlation id is not the oldest pending request's.
    #[error("correlation id {actual}, expected {expected}")]
    CorrelationMismatch {
        /// The id in the response header.
        actual: i32,
        /// The id of the oldest request without a response.
        expected: i32,
    },
    /// The response header did not decode.
    #[error("response header: {reason}")]
    Header {
        /// kafka-protocol's message.
        reason: String,
    },
}

/// The API of request type `R` (ApiVersions for a key kafka-protocol does not know, which
/// cannot happen for its own message types).
pub fn api_of<R: Request>() -> ApiKey {
    ApiKey::try_from(R::KEY).unwrap_or(ApiKey::ApiVersions)
}

/// Encodes one request frame: size prefix, request header (v1 or v2 by `version`) with
/// `correlation_id` and `client_id`, and the body.
///
/// Errors: [`ClientCodecError::Encode`] when kafka-protocol refuses a field for `version`.
pub fn encode_request<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: Option<&StrBytes>,
) -> Result<BytesMut, ClientCodecError> {
    let error = |e: anyhow::Error| ClientCodecError::Encode {
        api: api_of::<R>(),
        version,
        reason: e.to_string(),
    };
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id.cloned());
    let header_version = R::header_version(version);
    let size = header.compute_size(header_version).map_err(error)?
        + request.compute_size(version).map_err(error)?;
    let mut frame = BytesMut::with_capacity(4 + size);
    frame.put_i32(size as i32);
    header.encode(&mut frame, header_version).map_err(error)?;
    request.encode(&mut frame, version).map_err(error)?;
    Ok(frame)
}

/// The response header version of `R`'s response at `version`.
pub fn response_header_version<R: Request>(version: i16) -> i16 {
    <R::Response as HeaderVersion>::header_version(version)
}

/// Bytes that follow a response's 4-byte size prefix.
///
/// Errors: [`ClientCodecError::FrameSize`] below 4 or above [`MAX_RESPONSE_BYTES`] (a peer
/// that is not a Kafka broker, or a broken stream).
pub fn response_frame_size(prefix: [u8; 4]) -> Result<usize, ClientCodecError> {
    let size = i32::from_be_bytes(prefix);
    if size < 4 || size as usize > MAX_RESPONSE_BYTES {
        return Err(ClientCodecError::FrameSize { size });
    }
    Ok(size as usize)
}

/// Checks and strips the response header at the start of `frame` (the bytes after the size
/// prefix), leaving the body.
///
/// Errors: [`ClientCodecError::CorrelationMismatch`] when the correlation id is not
/// `expected_correlation_id`, [`ClientCodecError::Header`] when the header does not decode.
pub fn strip_response_header(
    frame: &mut Bytes,
    expected_correlation_id: i32,
    header_version: i16,
) -> Result<(), ClientCodecError> {
    let header_error = |reason: String| ClientCodecError::Header { reason };
    if frame.remaining() < 4 {
        return Err(header_error(format!("{} bytes", frame.len())));
    }
    let correlation_id = (&frame[..4]).get_i32();
    if correlation_id != expected_correlation_id {
        return Err(ClientCodecError::CorrelationMismatch {
            actual: correlation_id,
            expected: expected_correlation_id,
        });
    }
    ResponseHeader::decode(frame, header_version).map_err(|e| header_error(e.to_string()))?;
    Ok(())
}

/// Decodes a response body (header stripped) as `R`'s response at `version`.
///
/// Errors: [`ClientCodecError::Decode`].
pub fn decode_response<R: Request>(
    body: &mut Bytes,
    version: i16,
) -> Result<R::Response, ClientCodecError> {
    R::Response::decode(body, version).map_err(|e| ClientCodecError::Decode {
        api: api_of::<R>(),
        version,
        reason: e.to_string(),
    })
}

/// One request without a response yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingRequest {
    /// The request's correlation id.
    pub correlation_id: i32,
    /// The API of the request.
    pub api: ApiKey,
    /// The request's version (the response's too).
    pub version: i16,
    /// The response header version to expect.
    pub header_version: i16,
}

/// The state of one client connection's framing: the client id, the next correlation id and
/// the requests sent without a response yet, oldest first. Owns no I/O.
#[derive(Clone, Debug)]
pub struct ClientCodec {
    client_id: StrBytes,
    next_correlation_id: i32,
    pending: VecDeque<PendingRequest>,
}

impl ClientCodec {
    /// A codec whose requests carry `client_id`; correlation ids start at 1.
    pub fn new(client_id: &str) -> ClientCodec {
        ClientCodec {
            client_id: StrBytes::from_string(client_id.to_string()),
            next_correlation_id: 1,
            pending: VecDeque::new(),
        }
    }

    /// Encodes `request` at `version` with the next correlation id. When `expect_response` is
    /// true (false only for Produce with acks=0) the request joins the pending FIFO.
    ///
    /// Errors: [`ClientCodecError::Encode`]; the correlation id is used up either way.
    pub fn encode<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        expect_response: bool,
    ) -> Result<(BytesMut, PendingRequest), ClientCodecError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = correlation_id.wrapping_add(1);
        let frame = encode_request(request, version, correlation_id, Some(&self.client_id))?;
        let pending = PendingRequest {
            correlation_id,
            api: api_of::<R>(),
            version,
            header_version: response_header_version::<R>(version),
        };
        if expect_response {
            self.pending.push_back(pending);
        }
        Ok((frame, pending))
    }

    /// Matches a response frame (the bytes after the size prefix) to the oldest pending request
    /// and strips its header; returns that request and the response body.
    ///
    /// Errors: [`ClientCodecError::Unexpected`] with nothing pending, else those of
    /// [`strip_response_header`]. The request leaves the FIFO either way: after an error the
    /// stream cannot be trusted and should be closed.
    pub fn decode_frame(
        &mut self,
        mut frame: Bytes,
    ) -> Result<(PendingRequest, Bytes), ClientCodecError> {
        let pending = self
            .pending
            .pop_front()
            .ok_or(ClientCodecError::Unexpected)?;
        strip_response_header(&mut frame, pending.correlation_id, pending.header_version)?;
        Ok((pending, frame))
    }

    /// Decodes a response frame as `R`'s response: [`ClientCodec::decode_frame`] then
    /// [`decode_response`].
    ///
    /// Errors: as those two; [`ClientCodecError::Decode`] also when the oldest pending request
    /// was not an `R`.
    pub fn decode<R: Request>(&mut self, frame: Bytes) -> Result<R::Response, ClientCodecError> {
        let (pending, mut body) = self.decode_frame(frame)?;
        if pending.api != api_of::<R>() {
            return Err(ClientCodecError::Decode {
                api: api_of::<R>(),
                version: pending.version,
                reason: format!("the oldest pending request is {:?}", pending.api),
            });
        }
        decode_response::<R>(&mut body, pending.version)
    }

    /// Requests sent and still waiting for their response.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

    #[test]
    fn request_frames_carry_header_and_size() {
        let mut codec = ClientCodec::new("me");
        let (frame, pending) = codec
            .encode(&ApiVersionsRequest::default(), 3, true)
            .unwrap();
        assert_eq!(pending.correlation_id, 1);
        assert_eq!(
            i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize,
            frame.len() - 4
        );
        let mut body = Bytes::copy_from_slice(&frame[4..]);
        let header = RequestHeader::decode(&mut body, 2).unwrap();
        assert_eq!(header.request_api_key, 18);
        assert_eq!(header.correlation_id, 1);
        assert_eq!(header.client_id.as_deref(), Some("me"));
    }

    #[test]
    fn responses_match_in_order() {
        let mut codec = ClientCodec::new("me");
        codec
            .encode(&ApiVersionsRequest::default(), 0, true)
            .unwrap();
        let response = ApiVersionsResponse::default().with_error_code(35);
        let frame = crate::frame::encode_response(ApiKey::ApiVersions, 0, 1, &response).unwrap();
        let size = response_frame_size(frame[..4].try_into().unwrap()).unwrap();
        assert_eq!(size, frame.len() - 4);
        let body = Bytes::copy_from_slice(&frame[4..]);
        let decoded = codec.decode::<ApiVersionsRequest>(body.clone()).unwrap();
        assert_eq!(decoded.error_code, 35);
        assert_eq!(codec.pending(), 0);
        assert_eq!(
            codec.decode::<ApiVersionsRequest>(body),
            Err(ClientCodecError::Unexpected)
        );
        codec
            .encode(&ApiVersionsRequest::default(), 0, true)
            .unwrap();
        let stale = crate::frame::encode_response(ApiKey::ApiVersions, 0, 1, &response).unwrap();
        assert_eq!(
            codec.decode::<ApiVersionsRequest>(Bytes::copy_from_slice(&stale[4..])),
            Err(ClientCodecError::CorrelationMismatch {
                actual: 1,
                expected: 2
            })
        );
    }

    #[test]
    fn frame_sizes_are_bounded() {
        assert!(response_frame_size(3i32.to_be_bytes()).is_err());
        assert!(response_frame_size((-1i32).to_be_bytes()).is_err());
        assert!(response_frame_size(((MAX_RESPONSE_BYTES + 1) as i32).to_be_bytes()).is_err());
        assert_eq!(response_frame_size(4i32.to_be_bytes()), Ok(4));
    }
}
