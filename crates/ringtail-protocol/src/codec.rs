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
            lz4_flex::frame::FrameDecoder::new(input)
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
