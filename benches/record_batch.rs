//! Record batch header parse + CRC-32C validation (`validate_batch`, what the broker does per
//! produced batch) for batch sizes from 1 KiB to 1 MiB.

mod common;

use std::time::Instant;

use criterion::{black_box, BenchmarkId, Criterion, Throughput};
use ringtail_bench::batch::BatchBuilder;
use ringtail_protocol::record_batch::{validate_batch, Compression};

fn batch_of(bytes: usize) -> bytes::Bytes {
    let now = Instant::now();
    let mut builder = BatchBuilder::new(now, bytes);
    let value = vec![b'x'; 100];
    while builder.uncompressed_bytes() + 110 <= bytes {
        builder.append(None, &value, 1_700_000_000_000, now);
    }
    builder
        .finish(Compression::None, None, -1, -1, -1)
        .expect("encode")
}

fn record_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("record_batch");
    for size in [1 << 10, 16 << 10, 64 << 10, 1 << 20] {
        let batch = batch_of(size);
        group.throughput(Throughput::Bytes(batch.len() as u64));
        group.bench_with_input(BenchmarkId::new("validate", size), &batch, |b, batch| {
            b.iter(|| validate_batch(black_box(batch), 1 << 21).expect("valid"))
        });
    }
    group.finish();
}

fn main() {
    let mut c = common::criterion();
    record_batch(&mut c);
    c.final_summary();
    common::write_summary("record_batch", &["record_batch"]);
}
