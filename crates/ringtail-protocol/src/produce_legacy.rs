//! Produce v0-2: parsed by hand and answered with UNSUPPORTED_VERSION for every partition.
//!
//! kafka-protocol's message classes start at v3 (Kafka 4.0 removed v0-2, KIP-896), yet Kafka
//! still advertises Produce from v0 (KAFKA-18659), so a client may send them.
//!
//! v0-2 request body: acks int16, timeout int32, [topic string, [partition int32, records bytes]].
//! Response: [topic string, [partition int32, error int16, base_offset int64,
//! log_append_time int64 (v2)]], throttle_time_ms int32 (v1+).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::frame::{get_legacy_string, UNSUPPORTED_VERSION};

/// The complete response frame (size prefix included) refusing a Produce v0-2 request.
///
/// `frame` is the request after its size prefix (header included), `version` its API version
/// (0-2) and `correlation_id` the header's. Returns `None` when the request is malformed
/// (truncated or a length that overruns it); Kafka closes the connection then.
pub fn unsupported_version_response(
    frame: &Bytes,
    version: i16,
    correlation_id: i32,
) -> Option<BytesMut> {
    let mut buf = frame.get(8..).map(|_| frame.slice(8..))?;
    get_legacy_string(&mut buf)?; // client_id
    if buf.remaining() < 10 {
        return None;
    }
    buf.advance(6); // acks, timeout
    let topics = buf.get_i32();
    let mut out = BytesMut::new();
    out.put_i32(0);
    out.put_i32(correlation_id);
    out.put_i32(topics.max(0));
    for _ in 0..topics.max(0) {
        let name = get_legacy_string(&mut buf)?.unwrap_or_default();
        if buf.remaining() < 4 {
            return None;
        }
        let partitions = buf.get_i32();
        out.put_i16(name.len() as i16);
        out.put_slice(&name);
        out.put_i32(partitions.max(0));
        for _ in 0..partitions.max(0) {
            if buf.remaining() < 8 {
                return None;
            }
            let partition = buf.get_i32();
            let size = buf.get_i32();
            if size > 0 {
                if buf.remaining() < size as usize {
                    return None;
                }
                buf.advance(size as usize);
            }
            out.put_i32(partition);
            out.put_i16(UNSUPPORTED_VERSION);
            out.put_i64(-1);
            if version >= 2 {
                out.put_i64(-1);
            }
        }
    }
    if version >= 1 {
        out.put_i32(0);
    }
    let length = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&length.to_be_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: i16) -> Bytes {
        let mut out = BytesMut::new();
        out.put_i16(0); // api key
        out.put_i16(version);
        out.put_i32(41);
        out.put_i16(3);
        out.put_slice(b"cli");
        out.put_i16(1); // acks
        out.put_i32(1000);
        out.put_i32(1); // topics
        out.put_i16(1);
        out.put_slice(b"t");
        out.put_i32(1); // partitions
        out.put_i32(5);
        out.put_i32(3);
        out.put_slice(b"abc");
        out.freeze()
    }

    #[test]
    fn answers_every_partition_with_unsupported_version() {
        let frame = unsupported_version_response(&request(2), 2, 41).unwrap();
        let mut body = &frame[..];
        assert_eq!(body.get_i32() as usize, frame.len() - 4);
        assert_eq!(body.get_i32(), 41);
        assert_eq!(body.get_i32(), 1);
        assert_eq!(body.get_i16(), 1);
        assert_eq!(body.get_u8(), b't');
        assert_eq!(body.get_i32(), 1);
        assert_eq!(body.get_i32(), 5);
        assert_eq!(body.get_i16(), UNSUPPORTED_VERSION);
        assert_eq!(body.get_i64(), -1);
        assert_eq!(body.get_i64(), -1);
        assert_eq!(body.get_i32(), 0);
        assert!(body.is_empty());
    }

    #[test]
    fn truncated_requests_are_none() {
        let full = request(1);
        for cut in 0..full.len() {
            assert!(unsupported_version_response(&full.slice(..cut), 1, 1).is_none());
        }
    }
}
