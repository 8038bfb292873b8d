//! The broker's record pass on append (issue 9): what a topic `compression.type` that differs
//! from the producer's codec costs per batch, against the header-only validation every batch gets
//! (`validate_batch`: header and CRC-32C). One batch of 64 records of 1 KiB JSON events (what
//! `batch.size=65536` carries): decompress (bounded), walk the records (keys, timestamps), and
//! recompress with the topic's codec (`records::recompress_batch`); MiB/s of uncompressed records.

mod common;

use criterion::{black_box, Criterion, Throughput};
use ringtail_bench::payload::{PayloadKind, Payloads};
use ringtail_protocol::record_batch::{validate_batch, Compression, RecordBatchHeader};
use ringtail_protocol::records::{
    recompress_batch, records_section, walk_section, RecordBatchBuilder,
};

/// Bound on the decompressed records section, as the broker's `log_validator` sets it.
const DECOMPRESSED_MAX_BYTES: usize = 64 << 20;

fn batch(codec: Compression, payloads: &Payloads) -> Vec<u8> {
    let mut builder = RecordBatchBuilder::new(80 * 1024);
    for i in 0..64 {
        builder.append(Some(b"key"), payloads.get(i), 1_700_000_000_000 + i as i64);
    }
    builder
        .finish(codec, None, 7, 0, 0)
        .expect("encode")
        .to_vec()
}

/// The record pass of one batch: records out (bounded), every record walked, recompressed.
fn record_pass(bytes: &[u8], target: Option<Compression>, scratch: &mut Vec<u8>) -> usize {
    let header = RecordBatchHeader::parse(bytes).expect("header");
    let section =
        records_section(&header, bytes, scratch, DECOMPRESSED_MAX_BYTES).expect("records");
    let mut keyless = 0;
    walk_section(&header, section, |record| {
        keyless += record.key.is_none() as usize
    })
    .expect("walk");
    match target {
        Some(target) => recompress_batch(bytes, section, target, None)
            .expect("recompress")
            .len(),
        None => keyless,
    }
}

fn recompress(c: &mut Criterion) {
    let payloads = Payloads::generate(PayloadKind::Json, 1024, 7);
    let uncompressed_bytes = batch(Compression::None, &payloads).len();
    let mut group = c.benchmark_group("recompress");
    group.throughput(Throughput::Bytes(uncompressed_bytes as u64));
    let cases: &[(&str, Compression, Option<Compression>)] = &[
        ("none/validate_only", Compression::None, None),
        ("none/walk_keys", Compression::None, None),
        ("none_to_zstd", Compression::None, Some(Compression::Zstd)),
        ("none_to_lz4", Compression::None, Some(Compression::Lz4)),
        ("none_to_gzip", Compression::None, Some(Compression::Gzip)),
        ("lz4_to_zstd", Compression::Lz4, Some(Compression::Zstd)),
        (
            "snappy_to_zstd",
            Compression::Snappy,
            Some(Compression::Zstd),
        ),
        (
            "zstd_to_uncompressed",
            Compression::Zstd,
            Some(Compression::None),
        ),
        ("zstd/walk_keys", Compression::Zstd, None),
    ];
    for (name, source, target) in cases {
        let bytes = batch(*source, &payloads);
        if *name == "none/validate_only" {
            group.bench_function(*name, |b| {
                b.iter(|| validate_batch(black_box(&bytes), 1 << 20).expect("valid"))
            });
            continue;
        }
        let mut scratch = Vec::with_capacity(uncompressed_bytes);
        let out = record_pass(&bytes, *target, &mut scratch);
        eprintln!("{name}: {} -> {out} bytes", bytes.len());
        group.bench_function(*name, |b| {
            b.iter(|| record_pass(black_box(&bytes), *target, &mut scratch))
        });
    }
    group.finish();
}

fn main() {
    let mut c = common::criterion();
    recompress(&mut c);
    c.final_summary();
    common::write_summary("recompress", &["recompress"]);
}
