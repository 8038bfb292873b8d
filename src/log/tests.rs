//! Tests of [`Log`] against real files in a temporary directory, one glommio executor each.

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};

use super::*;
use crate::protocol::record_batch::{set_base_offset, validate_batch};
use crate::test_support::{encode_batch, BatchSpec};

/// Runs `future` on a fresh executor with little pinned memory (`ulimit -l` is small).
pub(super) fn run<F: std::future::Future<Output = ()> + 'static>(
    make: impl FnOnce() -> F + Send + 'static,
) {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(1 << 20)
        .make()
        .expect("executor")
        .run(make());
}

fn config(segment_bytes: u64, index_interval_bytes: u32) -> LogConfig {
    LogConfig {
        segment_bytes,
        segment_ms: u64::MAX,
        index_interval_bytes,
        segment_index_bytes: 1 << 20,
        preallocate: false,
    }
}

/// A batch of `count` records with timestamps `first_timestamp + 10 * i` and `value_bytes` values.
fn batch(count: usize, first_timestamp: i64, value_bytes: usize) -> BytesMut {
    encode_batch(&BatchSpec {
        count,
        value_bytes,
        first_timestamp,
        timestamp_step_ms: 10,
        ..BatchSpec::default()
    })
}

/// Assigns offsets from the log end and appends the batches as one chunk; returns the bytes.
async fn append(log: &Log, batches: Vec<BytesMut>) -> Vec<u8> {
    let mut chunk = Vec::new();
    let mut headers = Vec::new();
    let mut next = log.log_end_offset();
    for mut bytes in batches {
        set_base_offset(&mut bytes, next);
        let header = validate_batch(&bytes, 1 << 24).expect("valid batch");
        next = header.next_offset();
        headers.push(header);
        chunk.extend_from_slice(&bytes);
    }
    log.append(&chunk, &headers).await.expect("append");
    assert_eq!(log.log_end_offset(), next);
    chunk
}

/// Appends `n` batches of `records` records each, one append per batch; returns each batch.
async fn append_many(log: &Log, n: usize, records: usize, value_bytes: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(
            append(
                log,
                vec![batch(records, 1000 + 100 * i as i64, value_bytes)],
            )
            .await,
        );
    }
    out
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("metadata").len()
}

/// The position in its `.log` of the last entry of the `.index` beside `log`, read with
/// [`OffsetIndex::from_bytes`]; 0 when the index is missing, empty or rejected.
fn last_index_entry_position(log: &Path) -> u64 {
    let base_offset: i64 = log
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("a segment file name is its base offset");
    let bytes = std::fs::read(log.with_extension("index")).unwrap_or_default();
    super::offset_index::OffsetIndex::from_bytes(base_offset, 1 << 20, &bytes, file_len(log))
        .ok()
        .and_then(|index| index.last_entry())
        .map_or(0, |entry| entry.position as u64)
}

#[test]
fn append_read_round_trip_with_kip74() {
    run(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("topic-0");
        let log = Log::open(path.clone(), config(1 << 20, 4096), false)
            .await
            .expect("open");
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
        let batches = append_many(&log, 3, 5, 200).await;
        let all: Vec<u8> = batches.concat();
        assert_eq!(log.log_end_offset(), 15);
        assert_eq!(log.size_bytes(), all.len() as u64);

        let check =
            |got: Bytes, expected: &[u8], what: &str| assert_eq!(&got[..], expected, "{what}");
        check(log.read(0, 1 << 20, 15).await.unwrap(), &all, "everything");
        check(
            log.read(0, 10, 15).await.unwrap(),
            &batches[0],
            "KIP-74 first batch whole",
        );
        let two = batches[0].len() + batches[1].len();
        check(
            log.read(0, two, 15).await.unwrap(),
            &all[..two],
            "two batches fit exactly",
        );
        check(
            log.read(0, two - 1, 15).await.unwrap(),
            &batches[0],
            "third byte short",
        );
        check(
            log.read(7, 1 << 20, 15).await.unwrap(),
            &all[batches[0].len()..],
            "inside batch 2",
        );
        check(
            log.read(0, 1 << 20, 5).await.unwrap(),
            &batches[0],
            "high watermark at batch 2",
        );
        check(
            log.read(3, 1 << 20, 3).await.unwrap(),
            &[],
            "offset at high watermark",
        );
        check(log.read(15, 1 << 20, 15).await.unwrap(), &[], "at log end");
        assert!(matches!(
            log.read(16, 100, 16).await,
            Err(LogError::OffsetOutOfRange { offset: 16, .. })
        ));
        assert!(matches!(
            log.read(-1, 100, 16).await,
            Err(LogError::OffsetOutOfRange { .. })
        ));

        let chunk = append(&log, vec![batch(2, 5000, 10), batch(3, 5100, 10)]).await;
        assert_eq!(log.log_end_offset(), 20);
        check(
            log.read(15, 1 << 20, 20).await.unwrap(),
            &chunk,
            "multi-batch chunk",
        );
        log.flush().await.expect("flush");
        log.close().await.expect("close");
        assert!(matches!(
            log.read(0, 1, 1).await,
            Err(LogError::Closed { .. })
        ));
    });
}

#[test]
fn roll_by_segment_bytes_uses_kafka_names_and_reads_across_segments() {
    run(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("topic-1");
        let one = batch(4, 0, 300).len() as u64;
        let log = Log::open(path.clone(), config(one * 5 / 2, 1), false)
            .await
            .expect("open");
        let batches = append_many(&log, 10, 4, 300).await;
        assert_eq!(log.segment_count(), 5);
        for base in [0i64, 8, 16, 24, 32] {
            for suffix in ["log", "index", "timeindex"] {
                let file = path.join(format!("{base:020}.{suffix}"));
                assert!(file.exists() || (base == 32 && suffix != "log"), "{file:?}");
            }
        }
        assert_eq!(
            file_len(&path.join("00000000000000000000.log")),
            2 * one,
            "sealed segment trimmed"
        );
        for offset in 0..40i64 {
            let i = offset as usize / 4;
            let got = log.read(offset, 1, 40).await.unwrap();
            assert_eq!(&got[..], &batches[i][..], "offset {offset}");
            let got = log.read(offset, 1 << 20, 40).await.unwrap();
            let segment_end = (i / 2) * 2 + 2;
            assert_eq!(
                &got[..],
                &batches[i..segment_end].concat()[..],
                "segment rest from {offset}"
            );
        }
        log.close().await.expect("close");
    });
}

#[test]
fn reopen_after_close_keeps_data_and_continues() {
    run(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("topic-2");
        let one = batch(3, 0, 500).len() as u64;
        let log = Log::open(path.clone(), config(one * 3, 64), false)
            .await
            .expect("open");
        let batches = append_many(&log, 7, 3, 500).await;
        let all = log.read(0, 1 << 20, 21).await.unwrap();
        log.close().await.expect("close");
        drop(log);
        assert_eq!(
            file_len(&path.join(format!("{:020}.log", 18))),
            one,
            "active trimmed at close"
        );

        let log = Log::open(path.clone(), config(one * 3, 64), false)
            .await
            .expect("reopen");
        assert_eq!(log.log_end_offset(), 21);
        assert_eq!(log.segment_count(), 3);
        assert_eq!(log.read(0, 1 << 20, 21).await.unwrap(), all);
        assert_eq!(&log.read(19, 1, 21).await.unwrap()[..], &batches[6][..]);
        let more = append(&log, vec![batch(2, 9000, 10)]).await;
        assert_eq!(&log.read(21, 1 << 20, 23).await.unwrap()[..], &more[..]);
        let headers = log.active_segment_batch_headers().await.unwrap();
        assert_eq!(
            headers.iter().map(|h| h.base_offset).collect::<Vec<_>>(),
            vec![18, 21]
        );
        log.close().await.expect("close");
    });
}

#[test]
fn recovery_truncates_torn_tail_and_keeps_complete_batches() {
    use std::os::unix::fs::FileExt;
    // (what is written after the last complete batch, expected batches kept out of 5)
    type Tail = fn(&[u8]) -> Vec<u8>;
    let cases: Vec<(&str, Tail, usize)> = vec![
        ("partial batch", |next| next[..100].to_vec(), 5),
        ("header only", |next| next[..61].to_vec(), 5),
        ("garbage", |_| vec![0xab; 3000], 5),
        ("nothing (zero padding)", |_| Vec::new(), 5),
    ];
    for (name, tail, kept) in cases {
        let logs = capture_logs(|| {
            run(move || async move {
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().join("topic-3");
                let log = Log::open(path.clone(), config(1 << 20, 256), false)
                    .await
                    .expect("open");
                let batches = append_many(&log, 5, 3, 100).await;
                log.flush().await.expect("flush");
                drop(log); // crash: no close
                let log_file = path.join("00000000000000000000.log");
                let logical: u64 = batches.iter().map(|b| b.len() as u64).sum();
                let mut next = batch(3, 0, 100);
                set_base_offset(&mut next, 15);
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&log_file)
                    .unwrap();
                file.write_all_at(&tail(&next), logical).unwrap();
                drop(file);

                let log = Log::open(path.clone(), config(1 << 20, 256), true)
                    .await
                    .expect("recover");
                let kept_bytes: u64 = batches[..kept].iter().map(|b| b.len() as u64).sum();
                assert_eq!(log.log_end_offset(), 3 * kept as i64, "{name}");
                assert_eq!(file_len(&log_file), kept_bytes, "{name}: file truncated");
                assert_eq!(
                    &log.read(0, 1 << 20, 15).await.unwrap()[..],
                    &batches[..kept].concat()[..],
                    "{name}"
                );
                let more = append(&log, vec![batch(1, 0, 10)]).await;
                assert_eq!(
                    &log.read(15, 1 << 20, 16).await.unwrap()[..],
                    &more[..],
                    "{name}"
                );
                log.close().await.expect("close");
            })
        });
        let warned = logs.contains("WARN");
        if name.starts_with("nothing") {
            assert!(
                !warned,
                "{name}: zero padding is expected, not a warning:\n{logs}"
            );
            assert!(logs.contains("bytes of zero padding"), "{name}:\n{logs}");
        } else {
            assert!(warned, "{name}: torn data is a warning:\n{logs}");
            assert!(
                logs.contains("truncating torn or corrupt tail"),
                "{name}:\n{logs}"
            );
        }
    }
}

/// Runs `f` with a debug-level subscriber on this thread; returns what it logged.
///
/// tracing-core caches each callsite's interest globally. While a single dispatcher is
/// registered it computes that cache from the *calling thread's* default (`has_just_one` in
/// tracing-core's `callsite::dispatchers`): a callsite first hit by another test thread then
/// caches "never" from that thread's `NoSubscriber`, and this thread's events there are lost.
/// A second dispatcher that lives for the whole test binary keeps tracing-core on the locked
/// list of all dispatchers, so every interest is computed with the capturing one included.
fn capture_logs(f: impl FnOnce()) -> String {
    static KEEP_MULTIPLE_DISPATCHERS: std::sync::OnceLock<tracing::Dispatch> =
        std::sync::OnceLock::new();
    KEEP_MULTIPLE_DISPATCHERS
        .get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        // Tests on other threads may have cached "never" for these callsites; recompute.
        tracing::callsite::rebuild_interest_cache();
        f()
    });
    let bytes = captured.0.lock().expect("lock").clone();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn recovery_stops_at_bad_crc_and_wrong_offset() {
    use std::os::unix::fs::FileExt;
    for corrupt_crc in [true, false] {
        run(move || async move {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("topic-4");
            let log = Log::open(path.clone(), config(1 << 20, 256), false)
                .await
                .expect("open");
            let batches = append_many(&log, 4, 2, 50).await;
            drop(log);
            let log_file = path.join("00000000000000000000.log");
            let third: u64 = batches[..2].iter().map(|b| b.len() as u64).sum();
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&log_file)
                .unwrap();
            if corrupt_crc {
                file.write_all_at(&[0xff], third + 70).unwrap();
            } else {
                file.write_all_at(&99i64.to_be_bytes(), third).unwrap();
            }
            drop(file);
            let log = Log::open(path.clone(), config(1 << 20, 256), true)
                .await
                .expect("recover");
            assert_eq!(log.log_end_offset(), 4, "crc {corrupt_crc}");
            assert_eq!(file_len(&log_file), third);
            log.close().await.expect("close");
        });
    }
}

#[test]
fn deleted_index_is_rebuilt() {
    run(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("topic-5");
        let one = batch(2, 0, 400).len() as u64;
        let cfg = config(one * 4, 600);
        let log = Log::open(path.clone(), cfg.clone(), false)
            .await
            .expect("open");
        let batches = append_many(&log, 10, 2, 400).await;
        log.close().await.expect("close");
        drop(log);
        let index = path.join("00000000000000000000.index");
        let time_index = path.join("00000000000000000000.timeindex");
        let original = (
            std::fs::read(&index).unwrap(),
            std::fs::read(&time_index).unwrap(),
        );
        assert!(!original.0.is_empty(), "index has entries");
        std::fs::remove_file(&index).unwrap();
        std::fs::write(&time_index, [1u8; 5]).unwrap(); // bad size

        let log = Log::open(path.clone(), cfg, false).await.expect("reopen");
        assert_eq!(
            std::fs::read(&index).unwrap(),
            original.0,
            "offset index rebuilt"
        );
        assert_eq!(
            std::fs::read(&time_index).unwrap(),
            original.1,
            "time index rebuilt"
        );
        for offset in 0..20 {
            assert_eq!(
                &log.read(offset, 1, 20).await.unwrap()[..],
                &batches[offset as usize / 2][..]
            );
        }
        log.close().await.expect("close");
    });
}

#[test]
fn offset_for_timestamp_and_max_timestamp() {
    run(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("topic-6");
        let one = batch(5, 0, 100).len() as u64;
        let log = Log::open(path.clone(), config(one * 3, 1), false)
            .await
            .expect("open");
        assert_eq!(log.offset_for_timestamp(0).await.unwrap(), None);
        assert_eq!(log.max_timestamp_offset().await.unwrap(), None);
        // batch i holds offsets 5i..5i+4 with timestamps 1000 + 100 i + 10 j
        append_many(&log, 8, 5, 100).await;
        let cases = [
            (0, Some((0, 1000))),
            (1000, Some((0, 1000))),
            (1001, Some((1, 1010))),
            (1041, Some((5, 1100))),
            (1135, Some((9, 1140))),
            (1500, Some((25, 1500))),
            (1735, Some((39, 1740))),
            (1741, None),
        ];
        for (target, expected) in cases {
            assert_eq!(
                log.offset_for_timestamp(target).await.unwrap(),
                expected,
                "target {target}"
            );
        }
        assert_eq!(log.max_timestamp_offset().await.unwrap(), Some((39, 1740)));
        log.close().await.expect("close");
        let log = Log::open(path.clone(), config(one * 3, 1), false)
            .await
            .expect("reopen");
        assert_eq!(
            log.offset_for_timestamp(1135).await.unwrap(),
            Some((9, 1140))
        );
        assert_eq!(log.max_timestamp_offset().await.unwrap(), Some((39, 1740)));
        log.close().await.expect("close");
    });
}

#[test]
fn retention_by_bytes_and_time() {
    run(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("topic-7");
        let one = batch(2, 0, 200).len() as u64;
        let log = Log::open(path.clone(), config(one * 2, 4096), false)
            .await
            .expect("open");
        append_many(&log, 9, 2, 200).await; // segments at 0, 4, 8, 12, 16 (active, 1 batch)
        assert_eq!(log.segment_count(), 5);
        assert_eq!(log.apply_retention(-1, -1, i64::MAX).await.unwrap(), 0);
        // keep at most 5 batches: deleting whole segments of 2 leaves 2 + 2 + 1
        assert_eq!(
            log.apply_retention(-1, (one * 5) as i64, 18).await.unwrap(),
            2
        );
        assert_eq!(log.log_start_offset(), 8);
        assert!(!path.join("00000000000000000000.log").exists());
        assert!(!path.join("00000000000000000004.index").exists());
        assert!(matches!(
            log.read(7, 100, 18).await,
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert_eq!(log.read(8, 1, 18).await.unwrap().len() as u64, one);
        // timestamps are from 1970: all is past one day, but the active segment ends above a
        // high watermark of 16 (Kafka's upperBoundOffset rule)
        assert_eq!(
            log.apply_retention(24 * 3600 * 1000, -1, 16).await.unwrap(),
            2
        );
        assert_eq!(log.log_start_offset(), 16);
        assert_eq!(log.segment_count(), 1);
        // Kafka's deletableSegments: nothing at or past the high watermark goes ...
        assert_eq!(log.apply_retention(0, 0, 17).await.unwrap(), 0);
        assert_eq!(log.segment_count(), 1);
        // ... and once it covers the log, the expired active segment is rolled and deleted too.
        assert_eq!(log.apply_retention(0, -1, 18).await.unwrap(), 1);
        assert_eq!(log.log_start_offset(), 18);
        assert_eq!(log.log_end_offset(), 18);
        assert_eq!(log.segment_count(), 1);
        assert!(!path.join("00000000000000000016.log").exists());
        assert!(path.join("00000000000000000018.log").exists());
        assert!(log.read(18, 1 << 20, 18).await.unwrap().is_empty());
        // An empty active segment is never deleted.
        assert_eq!(log.apply_retention(0, 0, 18).await.unwrap(), 0);
        assert_eq!(log.segment_count(), 1);
        append(&log, vec![batch(2, 0, 200)]).await;
        assert_eq!(log.log_end_offset(), 20);
        // retention.bytes = 0 with the whole log committed: every record goes.
        assert_eq!(log.apply_retention(-1, 0, 20).await.unwrap(), 1);
        assert_eq!(log.log_start_offset(), 20);
        log.close().await.expect("close");
        let log = Log::open(path.clone(), config(one * 2, 4096), false)
            .await
            .expect("reopen");
        assert_eq!(log.log_start_offset(), 20);
        assert_eq!(log.log_end_offset(), 20);
        log.delete().await.expect("delete");
        assert!(!path.exists());
    });
}

#[test]
fn flush_runs_alongside_append() {
    run(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = std::rc::Rc::new(
            Log::open(dir.path().join("t-8"), config(1 << 20, 4096), false)
                .await
                .unwrap(),
        );
        append_many(&log, 2, 1, 10).await;
        let flusher = {
            let log = log.clone();
            glommio::spawn_local(async move { log.flush().await })
        };
        append_many(&log, 2, 1, 10).await;
        flusher.await.expect("flush");
        log.flush().await.expect("flush");
        assert_eq!(log.log_end_offset(), 4);
    });
}

#[test]
fn batches_larger_than_scan_and_read_windows() {
    use std::os::unix::fs::FileExt;
    run(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("topic-9");
        let log = Log::open(path.clone(), config(1 << 24, 4096), false)
            .await
            .expect("open");
        let small = append(&log, vec![batch(1, 0, 10)]).await;
        let big = append(&log, vec![batch(3, 0, 100_000)]).await; // > SCAN_CHUNK_BYTES
        let tail = append(&log, vec![batch(1, 0, 10)]).await;
        assert!(big.len() > 2 * segment::SCAN_CHUNK_BYTES);
        assert_eq!(
            &log.read(1, 100, 5).await.unwrap()[..],
            &big[..],
            "KIP-74 big batch"
        );
        assert_eq!(&log.read(0, 100, 5).await.unwrap()[..], &small[..]);
        assert_eq!(&log.read(4, usize::MAX, 5).await.unwrap()[..], &tail[..]);
        drop(log); // crash with a torn copy of the big batch after the tail
        let log_file = path.join("00000000000000000000.log");
        let logical = (small.len() + big.len() + tail.len()) as u64;
        let mut torn = batch(3, 0, 100_000);
        set_base_offset(&mut torn, 5);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&log_file)
            .unwrap();
        file.write_all_at(&torn[..torn.len() - 1], logical).unwrap();
        drop(file);
        let log = Log::open(path.clone(), config(1 << 24, 4096), true)
            .await
            .expect("recover");
        assert_eq!(log.log_end_offset(), 5);
        assert_eq!(file_len(&log_file), logical);
        let all = [small, big, tail].concat();
        assert_eq!(&log.read(0, usize::MAX, 5).await.unwrap()[..], &all[..]);
        log.close().await.expect("close");
    });
}

#[test]
fn roll_by_segment_ms_uses_batch_timestamps() {
    run(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig {
            segment_ms: 1000,
            ..config(1 << 20, 4096)
        };
        let log = Log::open(dir.path().join("t-10"), cfg, false)
            .await
            .expect("open");
        for (timestamp, segments) in [
            (10_000, 1),
            (10_900, 1),
            (11_000, 1),
            (11_001, 2),
            (11_500, 2),
            (12_002, 3),
        ] {
            append(&log, vec![batch(1, timestamp, 10)]).await;
            assert_eq!(log.segment_count(), segments, "after timestamp {timestamp}");
        }
        log.close().await.expect("close");
    });
}

#[test]
fn truncated_middle_segment_drops_later_segments() {
    use std::os::unix::fs::FileExt;
    run(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("topic-11");
        let one = batch(2, 0, 100).len() as u64;
        let log = Log::open(path.clone(), config(one * 2, 4096), false)
            .await
            .expect("open");
        append_many(&log, 6, 2, 100).await; // segments 0, 4, 8
        log.close().await.expect("close");
        drop(log);
        std::fs::remove_file(path.join("00000000000000000004.index")).unwrap();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path.join("00000000000000000004.log"))
            .unwrap();
        file.write_all_at(&[0xee], one + 80).unwrap(); // corrupt the second batch of segment 4
        drop(file);
        let log = Log::open(path.clone(), config(one * 2, 4096), true)
            .await
            .expect("recover");
        assert_eq!(log.log_end_offset(), 6);
        assert_eq!(log.segment_count(), 2);
        assert!(!path.join("00000000000000000008.log").exists());
        let more = append(&log, vec![batch(1, 0, 10)]).await;
        assert_eq!(&log.read(6, 1 << 20, 7).await.unwrap()[..], &more[..]);
        log.close().await.expect("close");
    });
}

#[test]
fn reads_interleave_with_appends() {
    run(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = std::rc::Rc::new(
            Log::open(dir.path().join("t-12"), config(1 << 16, 128), false)
                .await
                .unwrap(),
        );
        let writer = {
            let log = log.clone();
            glommio::spawn_local(async move { append_many(&log, 200, 2, 300).await })
        };
        let mut reads = 0;
        while log.log_end_offset() < 400 {
            let end = log.log_end_offset();
            if end > 0 {
                let offset = (reads * 7) % end;
                let bytes = log.read(offset, 1000, end).await.expect("read");
                let mut iter = crate::protocol::record_batch::BatchIter::with_crc(&bytes);
                let first = iter.next().expect("at least one batch").1;
                assert!(first.base_offset <= offset && offset <= first.last_offset());
                assert!(iter.all(|(_, h)| h.next_offset() <= end));
                assert!(iter.error().is_none());
                reads += 1;
            }
            glommio::yield_if_needed().await;
            futures_lite::future::yield_now().await;
        }
        let batches = writer.await;
        assert!(reads > 0, "reads ran while appends were in flight");
        assert!(log.segment_count() > 1);
        for (i, batch) in batches.iter().enumerate() {
            assert_eq!(
                &log.read(2 * i as i64 + 1, 1, 400).await.unwrap()[..],
                &batch[..]
            );
        }
        log.close().await.expect("close");
    });
}

#[test]
fn clean_reopen_scans_only_the_tail_and_survives_a_wrong_index() {
    run(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("topic-13");
        let cfg = config(1 << 20, 200);
        let log = Log::open(path.clone(), cfg.clone(), false)
            .await
            .expect("open");
        let batches = append_many(&log, 12, 2, 150).await;
        log.close().await.expect("close");
        drop(log);
        let index = path.join("00000000000000000000.index");
        let original = std::fs::read(&index).unwrap();
        assert!(original.len() >= 16, "several index entries");

        let log = Log::open(path.clone(), cfg.clone(), false)
            .await
            .expect("reopen");
        assert!(
            !log.active_segment().state().indexes_dirty,
            "indexes trusted, tail scanned"
        );
        assert_eq!(log.log_end_offset(), 24);
        log.close().await.expect("close");
        drop(log);

        // A well-formed index whose last entry names the wrong offset for its position.
        let mut wrong = original.clone();
        let last = wrong.len() - 8;
        let relative = i32::from_be_bytes(wrong[last..last + 4].try_into().unwrap());
        wrong[last..last + 4].copy_from_slice(&(relative + 1).to_be_bytes());
        std::fs::write(&index, &wrong).unwrap();
        let log = Log::open(path.clone(), cfg, false)
            .await
            .expect("reopen with wrong index");
        assert_eq!(log.log_end_offset(), 24);
        for (i, batch) in batches.iter().enumerate() {
            assert_eq!(
                &log.read(2 * i as i64, 1, 24).await.unwrap()[..],
                &batch[..]
            );
        }
        log.close().await.expect("close");
        assert_eq!(std::fs::read(&index).unwrap(), original, "index rewritten");
    });
}

/// Random damage to any file of a log never panics: open either fails with an error or gives a
/// log whose reads and lookups answer `Ok` or `Err`. After recovery the active segment is
/// contiguous unless the damage hit bytes recovery trusts without re-reading them (README,
/// "Durability"): a sealed segment with good indexes, or the active segment below its last
/// offset-index entry. Replay with `RINGTAIL_TEST_SEED=<seed>`.
#[test]
fn random_damage_never_panics() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("RINGTAIL_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| segment::now_ms() as u64);
    println!("random_damage_never_panics seed {seed}");
    run(move || async move {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().expect("tempdir");
        for round in 0..25 {
            let path = dir.path().join(format!("topic-{round}"));
            let one = batch(3, 0, 60).len() as u64;
            let cfg = config(one * 3, rng.gen_range(1..600));
            let log = Log::open(path.clone(), cfg.clone(), false)
                .await
                .expect("open");
            append_many(&log, rng.gen_range(1..12), 3, 60).await;
            if rng.gen_bool(0.5) {
                log.close().await.expect("close");
            }
            drop(log);
            let mut files: Vec<_> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            let logs: Vec<&PathBuf> = files
                .iter()
                .filter(|f| f.extension().is_some_and(|e| e == "log"))
                .collect();
            let last_log = (*logs.last().expect("a segment")).clone();
            // Recovery starts its CRC-checked scan of the last segment at its last index entry.
            let trusted_end = last_index_entry_position(&last_log);
            // The .log files whose bytes recovery would trust after this damage.
            let mut trusted_damage: Vec<PathBuf> = Vec::new();
            for _ in 0..rng.gen_range(1..4) {
                let file = &files[rng.gen_range(0..files.len())];
                let len = file_len(file);
                let handle = std::fs::OpenOptions::new().write(true).open(file).unwrap();
                let is_log = logs.contains(&file);
                if rng.gen_bool(0.3) {
                    handle.set_len(rng.gen_range(0..=len)).unwrap();
                    if is_log && *file != last_log {
                        trusted_damage.push(file.clone());
                    }
                } else {
                    use std::os::unix::fs::FileExt;
                    let junk: Vec<u8> = (0..rng.gen_range(1..80)).map(|_| rng.gen()).collect();
                    let at = rng.gen_range(0..=len);
                    handle.write_all_at(&junk, at).unwrap();
                    if is_log && (*file != last_log || at < trusted_end) {
                        trusted_damage.push(file.clone());
                    }
                }
            }
            let recover = rng.gen_bool(0.5);
            let Ok(log) = Log::open(path.clone(), cfg, recover).await else {
                continue;
            };
            let end = log.log_end_offset();
            let start = log.log_start_offset();
            // Damage that recovery trusts (a clean stop's tail, a checkpointed prefix) can claim
            // an end up to i32::MAX offsets away: read every offset of a short log, else both
            // ends and a sample between.
            let offsets: Vec<i64> = if end - start <= 200 {
                (start..=end).collect()
            } else {
                let mut sample: Vec<i64> = (0..200).map(|_| rng.gen_range(start..=end)).collect();
                sample.extend([start, end - 1, end]);
                sample
            };
            for offset in offsets {
                let _ = log.read(offset, rng.gen_range(1..4000), end).await;
            }
            let _ = log.offset_for_timestamp(rng.gen_range(0..2000)).await;
            let _ = log.max_timestamp_offset().await;
            let _ = log.active_segment_batch_headers().await;
            let active_log = segment_file_path(&path, log.active_segment().base_offset(), "log");
            if recover && !trusted_damage.contains(&active_log) {
                // After recovery the active segment holds only CRC-checked, contiguous batches
                // from its last index entry on, and undamaged ones before it.
                let headers = log
                    .active_segment_batch_headers()
                    .await
                    .expect("clean active segment");
                assert!(
                    headers
                        .windows(2)
                        .all(|w| w[0].next_offset() == w[1].base_offset),
                    "seed {seed}"
                );
                append(&log, vec![batch(1, 0, 5)]).await;
            }
            let _ = log.close().await;
        }
    });
}

#[test]
fn tail_batch_headers_reach_back_past_a_small_active_segment() {
    run(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let one = batch(3, 0, 60).len() as u64;
        // Three batches per segment: offsets 0,3,6 | 9,12,15 | 18 (active).
        let log = Log::open(dir.path().join("t-13"), config(one * 3, 64), false)
            .await
            .expect("open");
        append_many(&log, 7, 3, 60).await;
        assert_eq!(log.segment_count(), 3);
        let check = |min_batches: usize, expected: Vec<i64>| {
            let log = &log;
            async move {
                let headers = log.tail_batch_headers(min_batches).await.expect("headers");
                let bases: Vec<i64> = headers.iter().map(|h| h.base_offset).collect();
                assert_eq!(bases, expected, "min_batches {min_batches}");
            }
        };
        check(0, vec![18]).await;
        check(1, vec![18]).await;
        check(2, vec![9, 12, 15, 18]).await;
        check(4, vec![9, 12, 15, 18]).await;
        check(5, vec![0, 3, 6, 9, 12, 15, 18]).await;
        check(100, vec![0, 3, 6, 9, 12, 15, 18]).await;
        log.close().await.expect("close");
    });
}

#[test]
fn producer_snapshots_keep_the_newest_inside_the_log() {
    run(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t-14");
        let log = Log::open(path.clone(), config(1 << 20, 64), false)
            .await
            .expect("open");
        append_many(&log, 3, 3, 10).await;
        let offsets = |log: &Log| -> Vec<i64> {
            log.producer_snapshots()
                .unwrap()
                .into_iter()
                .map(|(o, _)| o)
                .collect()
        };
        for (offset, bytes) in [
            (0, &b"at 0"[..]),
            (3, b"at 3"),
            (6, b"first"),
            (6, b"second"),
        ] {
            log.write_producer_snapshot(offset, bytes)
                .await
                .expect("write");
        }
        assert_eq!(offsets(&log), vec![3, 6], "the newest two are kept");
        let at_six = segment_file_path(&path, 6, PRODUCER_SNAPSHOT_SUFFIX);
        assert_eq!(std::fs::read(&at_six).unwrap(), b"second", "replaced whole");
        // A snapshot may be taken beyond the log end (batches still pending); if the log never
        // reached it, opening removes it, and a leftover temporary file too.
        log.write_producer_snapshot(12, b"pending")
            .await
            .expect("write");
        assert_eq!(offsets(&log), vec![6, 12]);
        log.close().await.expect("close");
        let temporary = path.join(format!("{:020}.{PRODUCER_SNAPSHOT_SUFFIX}.tmp", 9));
        std::fs::write(&temporary, b"torn").unwrap();

        let log = Log::open(path.clone(), config(1 << 20, 64), false)
            .await
            .expect("reopen");
        assert_eq!(log.log_end_offset(), 9);
        assert_eq!(offsets(&log), vec![6], "beyond the log end: removed");
        assert!(!temporary.exists(), "temporary files are removed");
        // The replay after a snapshot reads only the batches at or after its offset.
        let bases = |batches: Vec<(RecordBatchHeader, _)>| -> Vec<i64> {
            batches.iter().map(|(h, _)| h.base_offset).collect()
        };
        assert_eq!(bases(log.batches_from(0).await.unwrap()), vec![0, 3, 6]);
        assert_eq!(bases(log.batches_from(3).await.unwrap()), vec![3, 6]);
        assert_eq!(bases(log.batches_from(4).await.unwrap()), vec![6]);
        assert_eq!(bases(log.batches_from(9).await.unwrap()), Vec::<i64>::new());
        log.close().await.expect("close");
    });
}

/// Recovery truncation leaves a segment that ends with a whole, CRC-valid batch (the invariant
/// `recovery::truncate_to_valid` asserts), on every path that truncates: a full CRC scan after
/// a crash, the tail scan of a cleanly closed segment, and a segment with no valid batch at all.
#[test]
fn recovery_truncation_ends_with_a_whole_valid_batch() {
    use crate::protocol::record_batch::BatchIter;
    use std::os::unix::fs::FileExt;
    // (name, clean close before the damage, recover, damage(file, batches), batches kept of 6,
    //  text the warning must contain, or "" for none)
    type Damage = fn(&std::fs::File, &[Vec<u8>]);
    let cases: Vec<(&str, bool, bool, Damage, usize, &str)> = vec![
        (
            "crash, torn last batch",
            false,
            true,
            |file, batches| {
                let end: u64 = batches.iter().map(|b| b.len() as u64).sum();
                file.set_len(end - 7).unwrap();
            },
            5,
            "incomplete batch",
        ),
        (
            "crash, wrong base offset in the middle",
            false,
            true,
            |file, batches| {
                let at: u64 = batches[..3].iter().map(|b| b.len() as u64).sum();
                file.write_all_at(&77i64.to_be_bytes(), at).unwrap();
            },
            3,
            "base offset 77 where 6 was expected",
        ),
        (
            "crash, bad CRC in the first batch",
            false,
            true,
            |file, _| file.write_all_at(&[0x5a], 70).unwrap(),
            0,
            "CRC-32C mismatch",
        ),
        (
            "clean close, garbage appended",
            true,
            false,
            |file, batches| {
                let end: u64 = batches.iter().map(|b| b.len() as u64).sum();
                file.write_all_at(&[0xab; 500], end).unwrap();
            },
            6,
            "truncating torn or corrupt tail",
        ),
        (
            "clean close, torn last batch",
            true,
            false,
            |file, batches| {
                let end: u64 = batches.iter().map(|b| b.len() as u64).sum();
                file.set_len(end - 1).unwrap();
            },
            5,
            "incomplete batch",
        ),
    ];
    for (name, clean, recover, damage, kept, warning) in cases {
        let logs = capture_logs(|| {
            run(move || async move {
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().join("topic-9");
                let log = Log::open(path.clone(), config(1 << 20, 200), false)
                    .await
                    .expect("open");
                let batches = append_many(&log, 6, 2, 120).await;
                if clean {
                    log.close().await.expect("close");
                } else {
                    log.flush().await.expect("flush");
                }
                drop(log);
                let log_file = path.join("00000000000000000000.log");
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&log_file)
                    .unwrap();
                damage(&file, &batches);
                drop(file);
                let log = Log::open(path.clone(), config(1 << 20, 200), recover)
                    .await
                    .expect("recover");
                let kept_bytes = batches[..kept].concat();
                assert_eq!(log.log_end_offset(), 2 * kept as i64, "{name}");
                assert_eq!(file_len(&log_file), kept_bytes.len() as u64, "{name}");
                let on_disk = std::fs::read(&log_file).unwrap();
                let mut iter = BatchIter::with_crc(&on_disk);
                let count = iter.by_ref().count();
                assert_eq!(count, kept, "{name}: whole CRC-valid batches");
                assert!(iter.error().is_none(), "{name}: {:?}", iter.error());
                assert_eq!(iter.valid_bytes(), on_disk.len(), "{name}: nothing after");
                assert_eq!(
                    on_disk, kept_bytes,
                    "{name}: the bytes kept are the ones written"
                );
                append(&log, vec![batch(1, 5000, 10)]).await;
                log.close().await.expect("close");
            })
        });
        assert!(
            logs.contains(warning),
            "{name}: expected {warning:?} in:\n{logs}"
        );
    }
}

/// A read whose first batch would end past `max_offset` returns nothing, so what a read
/// returns always ends at or below it (the invariant `assert_read` checks).
#[test]
fn reads_never_end_past_max_offset() {
    run(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::open(dir.path().join("topic-8"), config(1 << 20, 100), false)
            .await
            .expect("open");
        append_many(&log, 4, 3, 40).await;
        // (offset, max_offset) -> (first base offset, next offset after the read) or None.
        let check = |offset: i64, max_offset: i64, expected: Option<(i64, i64)>| {
            let log = &log;
            async move {
                let bytes = log.read(offset, 1 << 20, max_offset).await.expect("read");
                let got = (!bytes.is_empty()).then(|| {
                    let headers: Vec<_> = crate::protocol::record_batch::BatchIter::new(&bytes)
                        .map(|(_, h)| h)
                        .collect();
                    (
                        headers[0].base_offset,
                        headers.last().unwrap().next_offset(),
                    )
                });
                assert_eq!(got, expected, "read({offset}, max_offset {max_offset})");
            }
        };
        check(0, 12, Some((0, 12))).await;
        check(0, 11, Some((0, 9))).await;
        check(4, 9, Some((3, 9))).await;
        check(4, 5, None).await;
        check(11, 12, Some((9, 12))).await;
        log.close().await.expect("close");
    });
}

/// Reads the log from offset 0 up to `end` in order, each read starting where the last ended.
async fn read_sequentially(log: &Log, max_bytes: usize, end: i64) -> Vec<Bytes> {
    let mut offset = 0;
    let mut reads = Vec::new();
    while offset < end {
        let bytes = log.read(offset, max_bytes, end).await.expect("read");
        // Empty when the batch holding `offset` ends past `end`.
        let Some((_, last)) = crate::protocol::record_batch::BatchIter::new(&bytes).last() else {
            break;
        };
        offset = last.next_offset();
        reads.push(bytes);
    }
    reads
}

/// Sequential reads answered by read-ahead (`read_ahead`) return exactly what reads of the
/// segment files return, for several `max_bytes` and a `max_offset` below the end, across
/// segment boundaries; a budget too small for a read turns it off; the shard's store keeps
/// one per reader, evicts the oldest to fit its budget and forgets a closed log's.
#[test]
fn read_ahead_serves_the_same_bytes_as_the_segments() {
    run(|| async {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Log::open(dir.path().join("topic-9"), config(1 << 20, 4096), false)
            .await
            .expect("open");
        append_many(&log, 300, 10, 1000).await;
        assert!(log.segments.borrow().len() >= 3, "reads cross segment ends");
        let end = log.log_end_offset();
        for (max_bytes, max_offset) in [(100_000, end), (250_000, end), (500_000, end - 25)] {
            read_ahead::set_shard_budget(0);
            let reference = read_sequentially(&log, max_bytes, max_offset).await;
            assert_eq!(read_ahead::held_bytes(), 0);
            read_ahead::set_shard_budget(max_bytes - 1);
            let starved = read_sequentially(&log, max_bytes, max_offset).await;
            assert_eq!(
                starved, reference,
                "max_bytes {max_bytes}: budget below a read"
            );
            read_ahead::set_shard_budget(64 << 20);
            let first = log.read(0, max_bytes, max_offset).await.expect("read");
            assert!(
                read_ahead::held_bytes() > 0,
                "a read-ahead follows a large read"
            );
            assert_eq!(first, reference[0]);
            let ahead = read_sequentially(&log, max_bytes, max_offset).await;
            assert_eq!(
                ahead, reference,
                "max_bytes {max_bytes}, max_offset {max_offset}"
            );
        }
        // Two readers at different offsets keep one read-ahead each; a budget for one evicts
        // the older; closing the log drops its read-aheads.
        read_ahead::set_shard_budget(0);
        read_ahead::set_shard_budget(64 << 20);
        log.read(0, 100_000, end).await.expect("read");
        log.read(300, 100_000, end).await.expect("read");
        assert_eq!(read_ahead::held_bytes(), 200_000);
        read_ahead::set_shard_budget(150_000);
        assert_eq!(read_ahead::held_bytes(), 100_000, "the older is evicted");
        log.read(500, 100_000, end).await.expect("read");
        assert_eq!(
            read_ahead::held_bytes(),
            100_000,
            "a new one evicts the oldest to fit"
        );
        log.close().await.expect("close");
        assert_eq!(
            read_ahead::held_bytes(),
            0,
            "closing the log drops its read-aheads"
        );
        read_ahead::set_shard_budget(read_ahead::DEFAULT_SHARD_BUDGET_BYTES);
    });
}

#[test]
fn preallocation_writes_zeros_ahead_and_never_over_data() {
    // Every append overwrites zeros a fill wrote; the data reads back whole, a roll and a
    // clean close cut the zeros, and after a crash recovery trims them as zero padding.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("topic-3");
    let segment_bytes = 8 << 20;
    let cfg = LogConfig {
        preallocate: true,
        ..config(segment_bytes, 4096)
    };
    let (end, data, active_base) = {
        let (path, cfg) = (path.clone(), cfg.clone());
        let result = std::sync::Arc::new(std::sync::Mutex::new(None));
        let out = result.clone();
        run(move || async move {
            let log = Log::open(path.clone(), cfg, false).await.expect("open");
            // No yield between appends but their own writes: fills often still run when the
            // next append reaches the zeroed end, and it must wait.
            let batches = append_many(&log, 3000, 4, 3000).await;
            assert!(log.segment_count() >= 2, "rolled at 8 MiB");
            let active = log.active_segment();
            for _ in 0..500 {
                if active.preallocated_end() > segment::align_up(active.size_bytes(), 4096) {
                    break;
                }
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
            assert!(active.preallocation_fills() > 0, "fills ran");
            let log_file = segment_file_path(&path, active.base_offset(), "log");
            assert!(
                file_len(&log_file) > active.size_bytes(),
                "zeros ahead: file {} data {}",
                file_len(&log_file),
                active.size_bytes()
            );
            assert!(
                file_len(&log_file) <= segment::align_up(segment_bytes, 4096),
                "never past segment.bytes"
            );
            let end = log.log_end_offset();
            let read_back: Vec<u8> = read_sequentially(&log, 1 << 20, end).await.concat();
            assert_eq!(read_back, batches.concat(), "every batch reads back whole");
            log.flush().await.expect("flush");
            // Crash: no close.
            *out.lock().unwrap() = Some((end, batches.concat(), active.base_offset()));
        });
        let value = result.lock().unwrap().take().expect("first phase ran");
        value
    };
    let first = segment_file_path(&path, 0, "log");
    assert!(file_len(&first) < segment_bytes, "a roll cut the zeros");
    let logs = capture_logs(|| {
        let (path, cfg, data) = (path.clone(), cfg.clone(), data.clone());
        run(move || async move {
            let log = Log::open(path, cfg, true).await.expect("recover");
            assert_eq!(log.log_end_offset(), end);
            let read_back: Vec<u8> = read_sequentially(&log, 1 << 20, end).await.concat();
            assert_eq!(read_back, data, "nothing lost after the crash");
            log.close().await.expect("close");
        })
    });
    assert!(!logs.contains("truncating torn or corrupt tail"), "{logs}");
    assert!(logs.contains("zero padding"), "{logs}");
    let active = segment_file_path(&path, active_base, "log");
    let on_disk: u64 = std::fs::read_dir(&path)
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            (path.extension()? == "log").then(|| file_len(&path))
        })
        .sum();
    assert_eq!(on_disk, data.len() as u64, "the clean close left only data");
    assert!(file_len(&active) > 0);
}
