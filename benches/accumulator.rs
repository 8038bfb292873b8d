//! The producer's batch accumulator: appending 1 KiB and 100-byte records into per-partition
//! batches (8 partitions, `batch.size` 64 KiB) and draining full batches, plus closing a 64 KiB
//! batch into wire bytes (header, CRC-32C, optional lz4) as the sender does.

mod common;

use std::time::{Duration, Instant};

use criterion::{black_box, BenchmarkId, Criterion, Throughput};
use ringtail_bench::accumulator::RecordAccumulator;
use ringtail_bench::batch::BatchBuilder;
use ringtail_bench::payload::{PayloadKind, Payloads};
use ringtail_protocol::record_batch::Compression;

const RECORDS: u64 = 10_000;

fn accumulator(c: &mut Criterion) {
    let mut group = c.benchmark_group("accumulator");
    for record_size in [100usize, 1024] {
        let payloads = Payloads::generate(PayloadKind::Json, record_size, 3);
        group.throughput(Throughput::Elements(RECORDS));
        group.bench_with_input(
            BenchmarkId::new("append_drain", record_size),
            &record_size,
            |b, _| {
                let partitions: Vec<usize> = (0..8).collect();
                b.iter(|| {
                    let now = Instant::now();
                    let mut acc = RecordAccumulator::new(
                        8,
                        65_536,
                        Duration::from_millis(5),
                        Compression::None,
                    );
                    let mut drained = 0;
                    for i in 0..RECORDS {
                        let outcome =
                            acc.append((i % 8) as usize, None, payloads.get(i), 0, now, now);
                        if outcome.batch_full {
                            drained += acc.drain(&partitions, now, 1 << 20).len();
                        }
                    }
                    acc.begin_flush();
                    drained += acc.drain(&partitions, now, usize::MAX).len();
                    black_box(drained)
                })
            },
        );
    }
    let payloads = Payloads::generate(PayloadKind::Json, 1024, 3);
    let now = Instant::now();
    let mut batch = BatchBuilder::new(now, 65_536);
    let mut i = 0;
    while batch.uncompressed_bytes() + 1100 <= 65_536 {
        batch.append(None, payloads.get(i), 0, now);
        i += 1;
    }
    group.throughput(Throughput::Bytes(batch.uncompressed_bytes() as u64));
    for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
        group.bench_function(format!("finish_64KiB/{}", codec.name()), |b| {
            b.iter(|| batch.finish(codec, None, 1, 0, 0).expect("encode"))
        });
    }
    group.finish();
}

fn main() {
    let mut c = common::criterion();
    accumulator(&mut c);
    c.final_summary();
    common::write_summary("accumulator", &["accumulator"]);
}
