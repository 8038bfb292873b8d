//! Zigzag varints, as the record format v2 encodes record fields (Kafka protocol guide,
//! "Record"; the same encoding as protobuf's `sint64`).

/// Most bytes a zigzag varlong takes (64 bits in 7-bit groups).
pub const VARLONG_MAX_BYTES: usize = 10;

/// Writes `value` as a zigzag varlong at the start of `out` and returns the bytes written.
///
/// `out` must have room for [`VARLONG_MAX_BYTES`] (or the encoded length) bytes; a shorter
/// slice is a caller bug and panics.
pub fn put_varlong(out: &mut [u8], value: i64) -> usize {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    let mut i = 0;
    while v >= 0x80 {
        out[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}

/// Reads a zigzag varlong from `input` at `*at`, advancing `*at` past it; `None` when the input
/// ends first or the varint is longer than [`VARLONG_MAX_BYTES`].
pub fn get_varlong(input: &[u8], at: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *input.get(*at)?;
        *at += 1;
        value |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varlong_round_trips() {
        for value in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ] {
            let mut buf = [0u8; VARLONG_MAX_BYTES];
            let n = put_varlong(&mut buf, value);
            let mut at = 0;
            assert_eq!(get_varlong(&buf[..n], &mut at), Some(value));
            assert_eq!(at, n);
        }
    }

    #[test]
    fn truncated_and_overlong_varlongs_are_none() {
        let mut at = 0;
        assert_eq!(get_varlong(&[0x80], &mut at), None);
        let mut at = 0;
        assert_eq!(get_varlong(&[0xff; 11], &mut at), None);
    }
}
