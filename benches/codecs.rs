//! Each compression codec on realistic JSON event payloads (a 64 KiB records section of 1 KiB
//! documents, what one `batch.size=65536` batch carries): compress and decompress, MiB/s of
//! uncompressed data.

mod common;

use criterion::{black_box, Criterion, Throughput};
use ringtail_bench::codec::{compress, decompress};
use ringtail_bench::payload::{PayloadKind, Payloads};
use ringtail_protocol::record_batch::Compression;

fn codecs(c: &mut Criterion) {
    let payloads = Payloads::generate(PayloadKind::Json, 1024, 7);
    let input: Vec<u8> = (0..64).flat_map(|i| payloads.get(i).to_vec()).collect();
    let mut group = c.benchmark_group("codecs");
    group.throughput(Throughput::Bytes(input.len() as u64));
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut compressed = Vec::new();
        compress(codec, None, &input, &mut compressed).expect("compress");
        eprintln!(
            "{}: ratio {:.3}",
            codec.name(),
            compressed.len() as f64 / input.len() as f64
        );
        group.bench_function(format!("{}/compress", codec.name()), |b| {
            let mut out = Vec::with_capacity(input.len());
            b.iter(|| {
                out.clear();
                compress(codec, None, black_box(&input), &mut out).expect("compress");
            })
        });
        group.bench_function(format!("{}/decompress", codec.name()), |b| {
            let mut out = Vec::with_capacity(input.len());
            b.iter(|| {
                out.clear();
                decompress(codec, black_box(&compressed), &mut out).expect("decompress");
            })
        });
    }
    group.finish();
}

fn main() {
    let mut c = common::criterion();
    codecs(&mut c);
    c.final_summary();
    common::write_summary("codecs", &["codecs"]);
}
