//! Request/response framing and headers (Kafka protocol guide, "Network" and "Headers").
//!
//! Every message is `[size i32][header][body]`, `size` counting the bytes after itself. A
//! request header starts with `api_key i16, api_version i16, correlation_id i32`; which header
//! version follows (v1 non-flexible, v2 flexible with tagged fields) is decided by the API's
//! version. A response header is `correlation_id i32` (v0), plus tagged fields (v1) for flexible
//! versions.
//!
//! This module encodes responses with kafka-protocol's message types, either into one buffer
//! ([`encode_response`]) or into pieces that reference large `Bytes` of the body instead of
//! copying them ([`encode_response_sharing`], used for the stored record sets of a Fetch).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Encodable, HeaderVersion, Message};

/// Kafka's UNSUPPORTED_VERSION error code.
pub const UNSUPPORTED_VERSION: i16 = 35;

/// Bytes of the fixed request header prefix: api_key, api_version, correlation_id.
pub const REQUEST_PREFIX_BYTES: usize = 8;

/// Upper bound on the up-front capacity of an encoding buffer (it grows past it if needed).
const ENCODE_CAPACITY_MAX_BYTES: usize = 1 << 20;

/// Why a frame could not be read or written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A request shorter than the fixed header prefix.
    #[error("request of {length} bytes has no header")]
    NoHeader {
        /// Bytes in the frame (after the size prefix).
        length: usize,
    },
    /// kafka-protocol could not encode the response (a field out of its version's range).
    #[error("cannot encode {api_key:?} v{version} response: {reason}")]
    Encode {
        /// The response's API.
        api_key: ApiKey,
        /// The response's version.
        version: i16,
        /// kafka-protocol's message.
        reason: String,
    },
}

/// The fixed start of every request header, readable before the API's version is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestPrefix {
    /// The raw API key (may be one this broker does not know).
    pub api_key: i16,
    /// The request's API version.
    pub api_version: i16,
    /// Echoed in the response header.
    pub correlation_id: i32,
}

impl RequestPrefix {
    /// Reads the prefix at the start of `frame` (the bytes after the size prefix).
    ///
    /// Errors: [`FrameError::NoHeader`] when `frame` is shorter than 8 bytes.
    pub fn parse(frame: &[u8]) -> Result<RequestPrefix, FrameError> {
        let Some(prefix) = frame.get(..REQUEST_PREFIX_BYTES) else {
            return Err(FrameError::NoHeader {
                length: frame.len(),
            });
        };
        Ok(RequestPrefix {
            api_key: i16::from_be_bytes([prefix[0], prefix[1]]),
            api_version: i16::from_be_bytes([prefix[2], prefix[3]]),
            correlation_id: i32::from_be_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]),
        })
    }
}

/// Encodes size prefix, response header (v0, or v1 for flexible versions) and `body` into one
/// buffer: the complete frame.
///
/// Errors: [`FrameError::Encode`] when kafka-protocol refuses a field for `version`.
pub fn encode_response<T: Encodable + HeaderVersion + Message>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<BytesMut, FrameError> {
    let header_version = api_key.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let size = header
        .compute_size(header_version)
        .and_then(|h| Ok(h + body.compute_size(version)?));
    let mut out = BytesMut::with_capacity(4 + size.as_ref().copied().unwrap_or(64));
    out.put_i32(0);
    header
        .encode(&mut out, header_version)
        .and_then(|()| body.encode(&mut out, version))
        .map_err(|e| encode_error(api_key, version, e))?;
    let length = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&length.to_be_bytes());
    Ok(out)
}

/// Like [`encode_response`], but the bytes of `shared` (in the order the encoder writes them)
/// are referenced instead of copied when the encoder writes one of them whole. Returns the
/// frame as pieces to send one after the other; the first holds the size prefix. Pieces are
/// never empty.
///
/// Errors: [`FrameError::Encode`] when kafka-protocol refuses a field for `version`.
pub fn encode_response_sharing<T: Encodable + HeaderVersion + Message>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
    shared: &[Bytes],
) -> Result<Vec<Bytes>, FrameError> {
    let header_version = api_key.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let shared_bytes: usize = shared.iter().map(Bytes::len).sum();
    let size = header
        .compute_size(header_version)
        .and_then(|h| Ok(h + body.compute_size(version)?));
    let encoded_bytes = size.as_ref().map_or(64, |s| s.saturating_sub(shared_bytes));
    let mut out = SharingBuf::new(shared, encoded_bytes.min(ENCODE_CAPACITY_MAX_BYTES) + 4);
    out.put_i32(0);
    header
        .encode(&mut out, header_version)
        .and_then(|()| body.encode(&mut out, version))
        .map_err(|e| encode_error(api_key, version, e))?;
    Ok(out.finish())
}

fn encode_error(api_key: ApiKey, version: i16, error: impl std::fmt::Display) -> FrameError {
    FrameError::Encode {
        api_key,
        version,
        reason: error.to_string(),
    }
}

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

// SAFETY: `BufMut`'s contract is about the three required methods agreeing with each other:
// `chunk_mut` returns writable memory of the buffer's spare capacity, `advance_mut(cnt)` may be
// called only after the first `cnt` bytes of it were initialised, and then marks exactly those
// bytes as written; `remaining_mut` bounds how much can be written. All three delegate to the
// same `BytesMut`, `current`, which upholds that contract itself. The only other method that
// touches `current`, `put_slice`, either writes through `BytesMut`'s safe `extend_from_slice` or
// replaces `current` by a new empty `BytesMut` (`mem::take`) after moving the old one out whole:
// no chunk handed out by `chunk_mut` can outlive a `&mut self` borrow, so a later `advance_mut`
// always refers to the `current` its chunk came from. No method reads uninitialised memory.
unsafe impl BufMut for SharingBuf<'_> {
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

impl ByteBufMut for SharingBuf<'_> {
    fn offset(&self) -> usize {
        self.head.as_ref().map_or(0, BytesMut::len) + self.done_bytes + self.current.len()
    }

    fn seek(&mut self, offset: usize) {
        let start = self.offset() - self.current.len();
        // kafka-protocol seeks back only to patch lengths it wrote into the current piece.
        assert!(offset >= start, "encoder seeks back into a sent piece");
        self.current.resize(offset - start, 0);
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        let start = self.offset() - self.current.len();
        assert!(r.start >= start, "encoder rewrites a sent piece");
        &mut self.current[r.start - start..r.end - start]
    }
}

/// Reads a non-flexible protocol string (int16 length, -1 = null): `None` when `buf` ends
/// first, `Some(None)` for null, `Some(Some(bytes))` otherwise (not checked for UTF-8).
pub fn get_legacy_string(buf: &mut Bytes) -> Option<Option<Bytes>> {
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
    use kafka_protocol::messages::{FetchResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;

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
        let records: Vec<Bytes> = response
            .responses
            .iter()
            .flat_map(|topic| &topic.partitions)
            .filter_map(|partition| partition.records.clone())
            .filter(|records| records.len() >= 1024)
            .collect();
        let copied = encode_response(ApiKey::Fetch, version, 7, &response).unwrap();
        let parts =
            encode_response_sharing(ApiKey::Fetch, version, 7, &response, &records).unwrap();
        assert_eq!(parts.len() > 1, !records.is_empty(), "v{version} {sizes:?}");
        assert!(parts.iter().all(|part| !part.is_empty()));
        assert_eq!(parts.concat(), copied.to_vec(), "v{version} {sizes:?}");
    }

    #[test]
    fn shared_pieces_encode_like_copied_ones() {
        for version in 4..=18 {
            check(&[], version);
            check(&[100], version);
            check(&[1 << 20], version);
            check(&[1 << 20, 10, 70_000, 0, 16 * 1024], version);
        }
    }

    #[test]
    fn request_prefix_needs_eight_bytes() {
        assert_eq!(
            RequestPrefix::parse(&[0, 18, 0, 3, 0, 0]),
            Err(FrameError::NoHeader { length: 6 })
        );
        let prefix = RequestPrefix::parse(&[0, 18, 0, 3, 0, 0, 1, 2, 9]).unwrap();
        assert_eq!(
            prefix,
            RequestPrefix {
                api_key: 18,
                api_version: 3,
                correlation_id: 258
            }
        );
    }

    #[test]
    fn legacy_strings() {
        let mut buf = Bytes::from_static(&[0, 2, b'h', b'i', 0xff, 0xff, 0, 5, b'x']);
        assert_eq!(
            get_legacy_string(&mut buf),
            Some(Some(Bytes::from_static(b"hi")))
        );
        assert_eq!(get_legacy_string(&mut buf), Some(None));
        assert_eq!(get_legacy_string(&mut buf), None);
    }
}
