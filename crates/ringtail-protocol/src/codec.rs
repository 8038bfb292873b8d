//! Compression of a batch's records section, as Kafka's producer writes it.
//!
//! gzip is RFC 1952; snappy uses the xerial framing the Java client writes (`\x82SNAPPY\0`,
//! version 1, compatible 1, then `[i32 length][raw snappy block]` of at most 32 KiB input each);
//! lz4 is the standard LZ4 frame (KIP-57); zstd is a standard zstd frame (KIP-110). Decoding
//! accepts raw snappy too, as librdkafka may write it.

use std::io::{Read, Write};

use crate::record_batch::Compression;

/// A codec failed on data that was supposed to be valid.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The codec library reported an error.
    #[error("{codec} {op} failed: {source}")]
    Io {
        /// The codec's `compression.type` name.
        codec: &'static str,
        /// `compress` or `decompress`.
        op: &'static str,
        /// The library's error.
        #[source]
        source: std::io::Error,
    },
    /// Snappy framing was malformed.
    #[error("malformed snappy data: {0}")]
    Snappy(String),
    /// The data is not a standard LZ4 frame (its magic number or descriptor).
    #[error("malformed lz4 data: {0}")]
    Lz4(String),
    /// The output would pass the caller's bound ([`decompress_bounded`]) or a batch's
    /// `batch_length` range.
    #[error("output exceeds {max_bytes} bytes")]
    TooLarge {
        /// The bound in bytes.
        max_bytes: usize,
    },
}

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\0";
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

/// Compresses `input` with `compression` at `level` (the codec's default when `None`),
/// appending to `output`.
pub fn compress(
    compression: Compression,
    level: Option<i32>,
    input: &[u8],
    output: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let io = |codec, source| CodecError::Io {
        codec,
        op: "compress",
        source,
    };
    match compression {
        Compression::None => output.extend_from_slice(input),
        Compression::Gzip => {
            let level = flate2::Compression::new(level.unwrap_or(6).clamp(1, 9) as u32);
            let mut encoder = flate2::write::GzEncoder::new(output, level);
            encoder.write_all(input).map_err(|e| io("gzip", e))?;
            encoder.finish().map_err(|e| io("gzip", e))?;
        }
        Compression::Snappy => {
            output.extend_from_slice(XERIAL_MAGIC);
            output.extend_from_slice(&1i32.to_be_bytes());
            output.extend_from_slice(&1i32.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for block in input.chunks(XERIAL_BLOCK_BYTES) {
                let compressed = encoder
                    .compress_vec(block)
                    .map_err(|e| CodecError::Snappy(e.to_string()))?;
                output.extend_from_slice(&(compressed.len() as i32).to_be_bytes());
                output.extend_from_slice(&compressed);
            }
        }
        Compression::Lz4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(output);
            encoder.write_all(input).map_err(|e| io("lz4", e))?;
            encoder
                .finish()
                .map_err(|e| io("lz4", std::io::Error::other(e)))?;
        }
        Compression::Zstd => {
            let compressed =
                zstd::bulk::compress(input, level.unwrap_or(3)).map_err(|e| io("zstd", e))?;
            output.extend_from_slice(&compressed);
        }
    }
    Ok(())
}

/// Decompresses a records section written with `compression`, appending to `output`.
pub fn decompress(
    compression: Compression,
    input: &[u8],
    output: &mut Vec<u8>,
) -> Result<(), CodecError> {
    decompress_bounded(compression, input, output, usize::MAX)
}

/// Like [`decompress`], but appends at most `max_bytes`: decompression stops as soon as the
/// output would pass the bound (before snappy blocks are inflated, from their stated length), so
/// input crafted to inflate enormously costs at most `max_bytes` of memory.
///
/// Errors: [`CodecError::TooLarge`] past the bound; [`CodecError::Io`] / [`CodecError::Snappy`]
/// when the input is not valid for the codec.
pub fn decompress_bounded(
    compression: Compression,
    input: &[u8],
    output: &mut Vec<u8>,
    max_bytes: usize,
) -> Result<(), CodecError> {
    let io = |codec, source| CodecError::Io {
        codec,
        op: "decompress",
        source,
    };
    let start = output.len();
    // One byte past the bound is read, so that reaching it exactly is told from passing it.
    let limit = max_bytes.saturating_add(1) as u64;
    match compression {
        Compression::None => {
            if input.len() > max_bytes {
                return Err(CodecError::TooLarge { max_bytes });
            }
            output.extend_from_slice(input);
        }
        Compression::Gzip => {
            flate2::read::GzDecoder::new(input)
                .take(limit)
                .read_to_end(output)
                .map_err(|e| io("gzip", e))?;
        }
        Compression::Snappy => {
            if let Err(error) = decompress_snappy(input, output, max_bytes) {
                output.truncate(start);
                return Err(error);
            }
        }
        Compression::Lz4 => {
            let header = lz4_header_fitting(input).map_err(CodecError::Lz4)?;
            lz4_flex::frame::FrameDecoder::new(header.as_slice().chain(&input[header.len()..]))
                .take(limit)
                .read_to_end(output)
                .map_err(|e| io("lz4", e))?;
        }
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(input)
                .and_then(|d| d.take(limit).read_to_end(output))
                .map_err(|e| io("zstd", e))?;
        }
    }
    if output.len() - start > max_bytes {
        output.truncate(start);
        return Err(CodecError::TooLarge { max_bytes });
    }
    Ok(())
}

/// The LZ4 frame magic number (LZ4 Frame Format 1.6.x, section "Frame descriptor"); Kafka's
/// `KafkaLZ4BlockInputStream` accepts no other (not the legacy frame's `0x184C2102`).
const LZ4_FRAME_MAGIC: u32 = 0x184D_2204;

/// The frame descriptor of an LZ4 frame `input` with a block maximum size no larger than its
/// blocks can need: a block of `n` compressed bytes inflates to at most 255 bytes per byte
/// (LZ4 block format: a match length byte adds at most 255), so a frame of `input.len()` bytes
/// never needs a block above `256 * input.len()`. lz4_flex's decoder reserves buffers for the
/// declared size (up to three times 4 MiB in linked mode) before reading a block; a small
/// frame that declares 4 MiB blocks gets a smaller declared size and a recomputed header
/// checksum (xxHash32 of the descriptor, second byte), so memory follows the input's size.
/// Returns the descriptor (magic to header checksum) to decode in place of the input's own.
///
/// Errors: a reason when the input is not a standard LZ4 frame (wrong magic, a descriptor
/// cut short); the decoder reports every other defect, the header checksum included.
fn lz4_header_fitting(input: &[u8]) -> Result<Vec<u8>, String> {
    let magic = input
        .get(..4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        .ok_or("an LZ4 frame shorter than its magic number")?;
    if magic != LZ4_FRAME_MAGIC {
        return Err(format!("not an LZ4 frame: magic number {magic:#010x}"));
    }
    let (flags, block_descriptor) = match input.get(4..6) {
        Some(&[flags, block_descriptor]) => (flags, block_descriptor),
        _ => return Err("an LZ4 frame descriptor cut short".into()),
    };
    let content_size_bytes = if flags & 0x08 != 0 { 8 } else { 0 };
    let dictionary_id_bytes = if flags & 0x01 != 0 { 4 } else { 0 };
    let header_len = 4 + 2 + content_size_bytes + dictionary_id_bytes + 1;
    let mut header = input
        .get(..header_len)
        .ok_or("an LZ4 frame descriptor cut short")?
        .to_vec();
    // Block maximum size ids 4..=7 are 64 KiB, 256 KiB, 1 MiB, 4 MiB; others the decoder refuses.
    let declared_id = (block_descriptor >> 4) & 0x07;
    let needed = input.len().saturating_mul(256);
    let fitting_id = (4..=7u8)
        .find(|id| (1usize << (8 + 2 * usize::from(*id))) >= needed)
        .unwrap_or(7);
    let checksum = |descriptor: &[u8]| (twox_hash::XxHash32::oneshot(0, descriptor) >> 8) as u8;
    let checksum_holds = checksum(&header[4..header_len - 1]) == header[header_len - 1];
    if checksum_holds && (4..=7).contains(&declared_id) && fitting_id < declared_id {
        header[5] = (block_descriptor & !0x70) | (fitting_id << 4);
        header[header_len - 1] = checksum(&header[4..header_len - 1]);
    }
    Ok(header)
}

/// The most a snappy block can inflate, output bytes per input byte, with margin. From the
/// format (snappy's `format_description.txt`): every element takes at least one tag byte; a
/// literal writes no more bytes than it carries; a copy writes at most 64 bytes and takes at
/// least 3 bytes for that (a 2-byte-offset copy), or 2 bytes for at most 11. So no block
/// exceeds 64/3 ≈ 21.3 times its length.
const SNAPPY_MAX_RATIO: usize = 32;

fn decompress_snappy(
    input: &[u8],
    output: &mut Vec<u8>,
    max_bytes: usize,
) -> Result<(), CodecError> {
    let mut decoder = snap::raw::Decoder::new();
    let snappy = |e: snap::Error| CodecError::Snappy(e.to_string());
    let start = output.len();
    let check = |output: &Vec<u8>, block: &[u8]| -> Result<(), CodecError> {
        let length = snap::raw::decompress_len(block).map_err(snappy)?;
        // snap allocates the length a block declares before it decodes a byte. No valid block
        // inflates by more than SNAPPY_MAX_RATIO, so a larger claim is refused unallocated
        // (found by the record_batch fuzz target: 78 bytes declaring 26 MiB).
        if length > block.len().saturating_mul(SNAPPY_MAX_RATIO) {
            return Err(CodecError::Snappy(format!(
                "a block of {} bytes declares {length} bytes uncompressed, more than snappy \
                 can encode in it",
                block.len()
            )));
        }
        if (output.len() - start).saturating_add(length) > max_bytes {
            return Err(CodecError::TooLarge { max_bytes });
        }
        Ok(())
    };
    if !input.starts_with(XERIAL_MAGIC) {
        check(output, input)?;
        output.extend_from_slice(&decoder.decompress_vec(input).map_err(snappy)?);
        return Ok(());
    }
    let mut rest = input
        .get(16..)
        .ok_or_else(|| CodecError::Snappy("short xerial header".into()))?;
    while !rest.is_empty() {
        let length_bytes: [u8; 4] = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| CodecError::Snappy("truncated block length".into()))?;
        let length = i32::from_be_bytes(length_bytes);
        let block = usize::try_from(length)
            .ok()
            .and_then(|l| rest.get(4..4 + l))
            .ok_or_else(|| {
                CodecError::Snappy(format!("block of {length} bytes overruns the data"))
            })?;
        check(output, block)?;
        output.extend_from_slice(&decoder.decompress_vec(block).map_err(snappy)?);
        rest = &rest[4 + block.len()..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The most compressible input snappy knows (zeros) compresses to about 1/21 of its size:
    /// inside [`SNAPPY_MAX_RATIO`], so it decodes, raw and in xerial framing. A raw block that
    /// declares 26 MiB in 10 bytes is refused before anything is allocated for it.
    #[test]
    fn snappy_refuses_blocks_declaring_more_than_they_can_hold() {
        let zeros = vec![0u8; 1 << 20];
        let block = snap::raw::Encoder::new().compress_vec(&zeros).unwrap();
        assert!(block.len() * 22 > zeros.len(), "{} bytes", block.len());
        let mut output = Vec::new();
        decompress_bounded(Compression::Snappy, &block, &mut output, 1 << 21).unwrap();
        assert_eq!(output, zeros);
        let mut xerial = XERIAL_MAGIC.to_vec();
        xerial.resize(16, 0);
        xerial.extend_from_slice(&(block.len() as i32).to_be_bytes());
        xerial.extend_from_slice(&block);
        output.clear();
        decompress_bounded(Compression::Snappy, &xerial, &mut output, 1 << 21).unwrap();
        assert_eq!(output, zeros);

        // varint 27,262,975 (26 MiB - 1), then a few bytes: far more than 10 bytes can say.
        let mut claim = vec![0xff, 0xff, 0xff, 0x0c];
        claim.extend_from_slice(&[0u8; 6]);
        let mut output = Vec::new();
        let error = decompress_bounded(Compression::Snappy, &claim, &mut output, 1 << 30)
            .expect_err("refused");
        assert!(
            matches!(error, CodecError::Snappy(ref m) if m.contains("declares")),
            "{error}"
        );
        assert_eq!(output.capacity(), 0, "nothing allocated for the claim");
    }

    /// An LZ4 frame from a producer that declares 4 MiB blocks (linked or independent, with
    /// the optional content size, checksums on) decodes to the same bytes once the declared
    /// size is shrunk to fit; a frame declaring a size its bytes could need keeps it.
    #[test]
    fn lz4_frames_with_large_declared_blocks_decode_unchanged() {
        use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
        // Compresses well: a small frame whose blocks still hold hundreds of KiB.
        let input: Vec<u8> = (0..30_000u32)
            .flat_map(|i| format!("{{\"id\":{},\"ok\":true}}", i % 7).into_bytes())
            .collect();
        for mode in [BlockMode::Linked, BlockMode::Independent] {
            for content_size in [None, Some(input.len() as u64)] {
                let info = FrameInfo::new()
                    .block_size(BlockSize::Max4MB)
                    .block_mode(mode)
                    .block_checksums(true)
                    .content_checksum(true)
                    .content_size(content_size);
                let mut encoder = FrameEncoder::with_frame_info(info, Vec::new());
                encoder.write_all(&input).unwrap();
                let frame = encoder.finish().unwrap();
                let header = lz4_header_fitting(&frame).unwrap();
                assert!(
                    (header[5] >> 4) & 7 < 7,
                    "{mode:?}: a {}-byte frame gets a smaller block size",
                    frame.len()
                );
                let mut output = Vec::new();
                decompress(Compression::Lz4, &frame, &mut output).unwrap();
                assert_eq!(output, input, "{mode:?} {content_size:?}");
            }
        }
        let big: Vec<u8> = (0..(1u32 << 20)).flat_map(|i| i.to_le_bytes()).collect();
        let mut compressed = Vec::new();
        compress(Compression::Lz4, None, &big, &mut compressed).unwrap();
        let header = lz4_header_fitting(&compressed).unwrap();
        assert_eq!(
            header,
            compressed[..header.len()],
            "a size it may need is kept"
        );
    }

    /// Not a standard LZ4 frame: the legacy frame's magic and a cut descriptor are refused
    /// before the decoder reserves anything; a wrong header checksum is still the decoder's
    /// error (the descriptor is not rewritten over it).
    #[test]
    fn lz4_refuses_what_is_not_a_standard_frame() {
        let mut output = Vec::new();
        let legacy = [0x02, 0x21, 0x4c, 0x18, 0, 0, 0, 0];
        let error = decompress(Compression::Lz4, &legacy, &mut output).unwrap_err();
        assert!(matches!(error, CodecError::Lz4(_)), "{error}");
        let cut = [0x04, 0x22, 0x4d, 0x18, 0x6c];
        let error = decompress(Compression::Lz4, &cut, &mut output).unwrap_err();
        assert!(matches!(error, CodecError::Lz4(_)), "{error}");
        let mut frame = Vec::new();
        compress(Compression::Lz4, None, b"hello hello hello", &mut frame).unwrap();
        frame[5] = (frame[5] & !0x70) | (7 << 4);
        let checksum_at = lz4_header_fitting(&frame).unwrap().len() - 1;
        let right = (twox_hash::XxHash32::oneshot(0, &frame[4..checksum_at]) >> 8) as u8;
        frame[checksum_at] = !right;
        assert_eq!(lz4_header_fitting(&frame).unwrap(), frame[..=checksum_at]);
        let error = decompress(Compression::Lz4, &frame, &mut output).unwrap_err();
        assert!(matches!(error, CodecError::Io { .. }), "{error}");
        assert!(output.is_empty());
    }

    #[test]
    fn every_codec_round_trips() {
        let input: Vec<u8> = (0..100_000u32)
            .flat_map(|i| format!("{{\"id\":{i},\"ok\":true}}").into_bytes())
            .collect();
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut compressed = Vec::new();
            compress(compression, None, &input, &mut compressed).unwrap();
            let mut output = Vec::new();
            decompress(compression, &compressed, &mut output).unwrap();
            assert_eq!(output, input, "{compression:?}");
            let mut bounded = Vec::new();
            decompress_bounded(compression, &compressed, &mut bounded, input.len()).unwrap();
            assert_eq!(bounded, input, "{compression:?} at exactly the bound");
            let mut bounded = Vec::new();
            let error = decompress_bounded(compression, &compressed, &mut bounded, input.len() - 1)
                .expect_err("one byte past the bound");
            assert!(matches!(error, CodecError::TooLarge { .. }), "{error}");
            assert!(
                bounded.is_empty(),
                "{compression:?}: nothing kept past the bound"
            );
        }
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_bound() {
        // 64 MiB of zeros compress to at most a few MiB; the bound stops decompression at 1 MiB.
        let zeros = vec![0u8; 64 << 20];
        for compression in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut compressed = Vec::new();
            compress(compression, None, &zeros, &mut compressed).unwrap();
            assert!(compressed.len() < zeros.len() / 10, "{compression:?}");
            let mut output = Vec::new();
            let error = decompress_bounded(compression, &compressed, &mut output, 1 << 20)
                .expect_err("bounded");
            assert!(matches!(error, CodecError::TooLarge { max_bytes } if max_bytes == 1 << 20));
            assert!(
                output.capacity() < 8 << 20,
                "{compression:?}: {}",
                output.capacity()
            );
        }
    }
}
