//! Fuzz entry points: every decoder of untrusted bytes, as the broker calls it (issue 14,
//! "Fuzzing").
//!
//! Each `pub fn <target>(data: &[u8])` is what `fuzz/fuzz_targets/<target>.rs` (cargo-fuzz,
//! nightly) calls, and what `tests/fuzz_replay.rs` (stable, in `cargo test`) calls for every
//! committed file of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`. A target returns
//! normally for any input; a panic, an abort, or a broken allocation bound is a finding.
//!
//! The module is always compiled (it has no cost unless called) so that the same functions run
//! under libFuzzer and on stable without a feature to keep in sync.
//!
//! Allocation bound: [`CountingAllocator`] (installed as the global allocator of the fuzz
//! targets and of the replay test) records the peak of live heap bytes during one call, and
//! [`check_alloc_bound`] asserts `peak <= input_len * ALLOC_BOUND_FACTOR + ALLOC_BOUND_SLACK_BYTES
//! (+ the decompression cap of targets that decompress)`, whatever the counts and lengths
//! inside the input claim. The exception is [`request`]: kafka-protocol 0.18's array decoder
//! reserves `Vec::with_capacity(count)` from the wire count (`protocol/types.rs`, `Array`), which
//! only [`crate::alloc::LazyHugeAllocator`] defuses (address space, not memory); that target
//! counts such reservations separately ([`AllocStats::largest`]) -- see `results/fuzz/`.

use std::alloc::{GlobalAlloc, Layout};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

use crate::alloc::LazyHugeAllocator;
use crate::protocol::codec;
use crate::protocol::control_record;
use crate::protocol::frame::RequestPrefix;
use crate::protocol::record_batch::{self, BatchIter, Compression, RecordBatchHeader};
use crate::protocol::records;
use crate::protocol::{consumer_offsets, consumer_offsets_txn, produce_legacy, transaction_state};

/// Multiplier of the input size in the allocation bound: peak live heap bytes of one decoder
/// call may be at most `input_len * ALLOC_BOUND_FACTOR + ALLOC_BOUND_SLACK_BYTES`.
pub const ALLOC_BOUND_FACTOR: usize = 16;
/// Fixed slack of the allocation bound (decoder contexts: zstd's ~ 100 KiB, gzip's 32 KiB
/// window, lz4's block buffers; parsed structs), bytes.
pub const ALLOC_BOUND_SLACK_BYTES: usize = 1 << 20;
/// The decompressed-size cap the fuzz targets use (as `max.message.bytes`-derived caps do in
/// the broker, `log_validator::decompressed_max_bytes`), bytes; added to the bound of targets
/// that decompress.
pub const FUZZ_DECOMPRESSED_MAX_BYTES: usize = 1 << 20;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// A global allocator that counts live heap bytes (peak and largest single allocation) over
/// [`LazyHugeAllocator`], the broker's own allocator, so huge reservations behave as in the
/// broker. Counters are process-wide: measure on one thread at a time.
pub struct CountingAllocator;

fn note_alloc(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(live, Ordering::Relaxed);
    LARGEST.fetch_max(size, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to LazyHugeAllocator with the same arguments; the counters
// are atomics and never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { LazyHugeAllocator.alloc(layout) };
        if !ptr.is_null() {
            note_alloc(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { LazyHugeAllocator.alloc_zeroed(layout) };
        if !ptr.is_null() {
            note_alloc(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { LazyHugeAllocator.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_ptr = unsafe { LazyHugeAllocator.realloc(ptr, layout, new_size) };
        if !new_ptr.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            note_alloc(new_size);
        }
        new_ptr
    }
}

/// What one measured call allocated (only meaningful with [`CountingAllocator`] installed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// Peak of live heap bytes above the level at the start of the call.
    pub peak: usize,
    /// The largest single allocation (or reallocation target), bytes.
    pub largest: usize,
}

/// Runs `f` and returns what it allocated at its peak.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, AllocStats) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    LARGEST.store(0, Ordering::Relaxed);
    let result = f();
    let stats = AllocStats {
        peak: PEAK.load(Ordering::Relaxed).saturating_sub(base),
        largest: LARGEST.load(Ordering::Relaxed),
    };
    (result, stats)
}

/// The bound of peak heap bytes for a decoder given `input_len` bytes, plus `extra` (the
/// decompression cap for targets that decompress).
pub fn alloc_bound(input_len: usize, extra: usize) -> usize {
    input_len
        .saturating_mul(ALLOC_BOUND_FACTOR)
        .saturating_add(ALLOC_BOUND_SLACK_BYTES)
        .saturating_add(extra)
}

/// Runs `f` on `data` under [`measure`] and panics if its peak passes [`alloc_bound`].
pub fn check_alloc_bound(target: &str, data: &[u8], extra: usize, f: impl FnOnce(&[u8])) {
    let ((), stats) = measure(|| f(data));
    let bound = alloc_bound(data.len(), extra);
    assert!(
        stats.peak <= bound,
        "invariant: decoder {target} allocated {} bytes at its peak (largest block {}) for {} \
         input bytes; the bound is {bound}",
        stats.peak,
        stats.largest,
        data.len()
    );
}

/// One fuzz target: (name, function, extra bytes of the allocation bound, whether the bound
/// is asserted).
pub type FuzzTarget = (&'static str, fn(&[u8]), usize, bool);

/// The fuzz targets by name, for the replay test and `scripts/fuzz.sh`: (name, function,
/// extra bytes of the allocation bound, whether the bound is asserted).
pub const TARGETS: &[FuzzTarget] = &[
    ("request", request, 0, false),
    ("frame", frame, 0, true),
    ("produce_legacy", produce_legacy, 0, true),
    (
        "record_batch",
        record_batch,
        2 * FUZZ_DECOMPRESSED_MAX_BYTES,
        true,
    ),
    ("codecs", codecs, 2 * FUZZ_DECOMPRESSED_MAX_BYTES, true),
    ("internal_records", internal_records, 0, true),
    ("indexes", indexes, 0, true),
    ("log_files", log_files, 0, true),
    ("log_recovery", log_recovery, 0, false),
    ("sasl", sasl, 0, true),
    ("jaas", jaas, 0, true),
    ("principal_rules", principal_rules, 0, false),
];

/// Runs the target `name` on `data` with its allocation bound (if asserted); `false` if there
/// is no such target.
pub fn run_target(name: &str, data: &[u8]) -> bool {
    let Some(&(_, f, extra, bounded)) = TARGETS.iter().find(|(n, ..)| *n == name) else {
        return false;
    };
    if bounded {
        check_alloc_bound(name, data, extra, f);
    } else {
        f(data);
    }
    true
}

/// A request frame (the bytes after the size prefix) as `request_handler::dispatch` decodes
/// it: the fixed prefix, the API key and version check, the request header for that version,
/// then the body as the API's kafka-protocol type (the types `route` decodes), or the Produce
/// v0-2 parser for those versions.
pub fn request(data: &[u8]) {
    let Ok(prefix) = RequestPrefix::parse(data) else {
        return;
    };
    let Ok(api_key) = ApiKey::try_from(prefix.api_key) else {
        return;
    };
    let Some((min, max)) = crate::request_handler::api_versions::supported_versions(api_key) else {
        return;
    };
    let version = prefix.api_version;
    let frame = Bytes::copy_from_slice(data);
    if api_key == ApiKey::Produce && (0..3).contains(&version) {
        let _ =
            produce_legacy::unsupported_version_response(&frame, version, prefix.correlation_id);
        return;
    }
    if version < min || version > max {
        return;
    }
    let mut body = frame;
    if RequestHeader::decode(&mut body, api_key.request_header_version(version)).is_err() {
        return;
    }
    decode_body(api_key, &mut body, version);
}

/// Decodes `body` as the request type `request_handler::route` decodes for `api_key` (the
/// same list; an API `route` does not handle is not decoded). A Produce request's record sets
/// then go through the validation `Partition::append` runs.
fn decode_body(api_key: ApiKey, body: &mut Bytes, version: i16) {
    macro_rules! decode {
        ($type:ty) => {{
            let _ = <$type>::decode(body, version);
        }};
    }
    match api_key {
        ApiKey::Produce => {
            if let Ok(produce) = ProduceRequest::decode(body, version) {
                for topic in &produce.topic_data {
                    for partition in &topic.partition_data {
                        if let Some(records) = &partition.records {
                            record_batch_set(records);
                        }
                    }
                }
            }
        }
        ApiKey::ApiVersions => decode!(ApiVersionsRequest),
        ApiKey::Metadata => decode!(MetadataRequest),
        ApiKey::Fetch => decode!(FetchRequest),
        ApiKey::ListOffsets => decode!(ListOffsetsRequest),
        ApiKey::CreateTopics => decode!(CreateTopicsRequest),
        ApiKey::DeleteTopics => decode!(DeleteTopicsRequest),
        ApiKey::DescribeConfigs => decode!(DescribeConfigsRequest),
        ApiKey::AlterConfigs => decode!(AlterConfigsRequest),
        ApiKey::IncrementalAlterConfigs => decode!(IncrementalAlterConfigsRequest),
        ApiKey::DescribeCluster => decode!(DescribeClusterRequest),
        ApiKey::InitProducerId => decode!(InitProducerIdRequest),
        ApiKey::FindCoordinator => decode!(FindCoordinatorRequest),
        ApiKey::JoinGroup => decode!(JoinGroupRequest),
        ApiKey::SyncGroup => decode!(SyncGroupRequest),
        ApiKey::Heartbeat => decode!(HeartbeatRequest),
        ApiKey::LeaveGroup => decode!(LeaveGroupRequest),
        ApiKey::OffsetCommit => decode!(OffsetCommitRequest),
        ApiKey::OffsetFetch => decode!(OffsetFetchRequest),
        ApiKey::ListGroups => decode!(ListGroupsRequest),
        ApiKey::DescribeGroups => decode!(DescribeGroupsRequest),
        ApiKey::DeleteGroups => decode!(DeleteGroupsRequest),
        ApiKey::OffsetDelete => decode!(OffsetDeleteRequest),
        ApiKey::CreatePartitions => decode!(CreatePartitionsRequest),
        ApiKey::DeleteRecords => decode!(DeleteRecordsRequest),
        ApiKey::DescribeLogDirs => decode!(DescribeLogDirsRequest),
        ApiKey::OffsetForLeaderEpoch => decode!(OffsetForLeaderEpochRequest),
        ApiKey::AddPartitionsToTxn => decode!(AddPartitionsToTxnRequest),
        ApiKey::AddOffsetsToTxn => decode!(AddOffsetsToTxnRequest),
        ApiKey::EndTxn => decode!(EndTxnRequest),
        ApiKey::DescribeTransactions => decode!(DescribeTransactionsRequest),
        ApiKey::ListTransactions => decode!(ListTransactionsRequest),
        ApiKey::TxnOffsetCommit => decode!(TxnOffsetCommitRequest),
        ApiKey::DescribeProducers => decode!(DescribeProducersRequest),
        ApiKey::ElectLeaders => decode!(ElectLeadersRequest),
        ApiKey::CreateAcls => decode!(CreateAclsRequest),
        ApiKey::DescribeAcls => decode!(DescribeAclsRequest),
        ApiKey::DeleteAcls => decode!(DeleteAclsRequest),
        ApiKey::SaslHandshake => decode!(SaslHandshakeRequest),
        ApiKey::SaslAuthenticate => decode!(SaslAuthenticateRequest),
        ApiKey::AlterUserScramCredentials => decode!(AlterUserScramCredentialsRequest),
        ApiKey::DescribeUserScramCredentials => decode!(DescribeUserScramCredentialsRequest),
        // Every other API: `route` closes the connection without decoding (NotHandled).
        _ => {}
    }
}

/// The size prefix of a frame as `network::read_frame` reads it (negative, too small, too
/// large, truncated), then the frame through [`request`].
pub fn frame(data: &[u8]) {
    let mut reader = futures::io::Cursor::new(data);
    let mut buffer = bytes::BytesMut::new();
    let max_frame = 1 << 20;
    loop {
        let read = futures::executor::block_on(crate::network::read_frame(
            &mut reader,
            &mut buffer,
            max_frame,
            crate::network::MIN_REQUEST_BYTES,
        ));
        match read {
            Ok(Some(frame)) => request(&frame),
            Ok(None) | Err(_) => return,
        }
    }
}

/// The Produce v0-2 parser (`produce_legacy`): the first byte picks the version (0-2), the
/// rest is the frame after the size prefix.
pub fn produce_legacy(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let frame = Bytes::copy_from_slice(rest);
    let _ =
        produce_legacy::unsupported_version_response(&frame, (selector % 3) as i16, 0x0102_0304);
}

/// The partition config the record targets validate with: every record-level rule on
/// (compaction needs keys, timestamp bounds, a recompression codec), so that every batch is
/// decompressed and walked.
///
/// `TopicConfig::default()` builds a whole `BrokerConfig` from its property table (sorting
/// every property name); that was 12% of the log_recovery target's time per input, so the
/// defaults are built once.
fn fuzz_partition_config(compression: Option<Compression>) -> crate::partition::PartitionConfig {
    static TOPIC_DEFAULTS: std::sync::LazyLock<crate::config::TopicConfig> =
        std::sync::LazyLock::new(crate::config::TopicConfig::default);
    let mut config = crate::partition::PartitionConfig::new(&TOPIC_DEFAULTS, 0);
    config.compacted = true;
    config.compression = compression;
    config.timestamp_before_max_ms = 1_000_000;
    config.timestamp_after_max_ms = 1_000_000;
    config
}

/// A produce record set as `Partition::append` validates it (`Partition::validate` tiling the
/// batches, `validate_batch`, then `log_validator::validate_records`), without the log.
fn record_batch_set(records: &[u8]) {
    const MAX_MESSAGE_BYTES: usize = 1 << 20;
    let mut position = 0;
    let mut headers = Vec::new();
    while position < records.len() {
        let rest = &records[position..];
        if rest.len() < record_batch::LOG_OVERHEAD {
            return;
        }
        let length = i32::from_be_bytes(rest[8..12].try_into().expect("4 bytes"));
        let size = (length.max(0) as usize)
            .saturating_add(record_batch::LOG_OVERHEAD)
            .min(rest.len());
        let Ok(header) = record_batch::validate_batch(&rest[..size], MAX_MESSAGE_BYTES) else {
            return;
        };
        headers.push((position, header));
        position += size;
    }
    let mut scratch = Vec::new();
    for (position, header) in headers {
        let batch = &records[position..position + header.size_bytes()];
        validate_one(batch, &header, &mut scratch);
    }
}

fn validate_one(batch: &[u8], header: &RecordBatchHeader, scratch: &mut Vec<u8>) {
    let now_ms = header.max_timestamp;
    // Recompress to a codec other than the batch's own, so that `recompress_batch` runs too.
    let target = match header.compression() {
        Some(Compression::Zstd) => Compression::Lz4,
        _ => Compression::Zstd,
    };
    let config = fuzz_partition_config(Some(target));
    let _ = crate::partition::log_validator::needs_record_pass(&config, header, now_ms);
    let _ = crate::partition::log_validator::validate_records(
        &config, "fuzz-0", batch, header, now_ms, scratch,
    );
    if header.is_control() {
        let _ = control_record::parse_control_batch(batch);
    }
}

/// Record batch validation and record iteration for every codec: the input as a produce
/// record set, then again with each batch's CRC-32C recomputed (so that the fuzzer reaches the
/// decompressors and the record walk), then as stored batches (`BatchIter`, as fetch and
/// recovery read them) with `walk_records` bounded by [`FUZZ_DECOMPRESSED_MAX_BYTES`].
pub fn record_batch(data: &[u8]) {
    record_batch_set(data);
    let mut fixed = data.to_vec();
    fix_crcs(&mut fixed);
    record_batch_set(&fixed);
    let mut scratch = Vec::new();
    for (position, header) in BatchIter::new(&fixed) {
        let batch = &fixed[position..position + header.size_bytes()];
        let _ = records::records_section(&header, batch, &mut scratch, FUZZ_DECOMPRESSED_MAX_BYTES)
            .and_then(|section| {
                let section = section.to_vec();
                records::walk_section(&header, &section, |_| {})
            });
    }
    for _ in BatchIter::with_crc(data) {}
}

/// Recomputes the CRC-32C of every v2 batch in `bytes` that fits, in place.
pub fn fix_crcs(bytes: &mut [u8]) {
    let mut position = 0;
    while bytes.len() - position >= record_batch::RECORD_BATCH_HEADER_BYTES {
        let rest = &mut bytes[position..];
        let length = i32::from_be_bytes(rest[8..12].try_into().expect("4 bytes"));
        let Some(size) = usize::try_from(length)
            .ok()
            .and_then(|l| l.checked_add(record_batch::LOG_OVERHEAD))
            .filter(|&s| s >= record_batch::RECORD_BATCH_HEADER_BYTES && s <= rest.len())
        else {
            return;
        };
        let crc = crc32c::crc32c(&rest[21..size]);
        rest[17..21].copy_from_slice(&crc.to_be_bytes());
        position += size;
    }
}

/// Each decompressor on hostile input with bounded output: the first byte picks the codec
/// (1 gzip, 2 snappy raw or xerial, 3 lz4, 4 zstd), the rest is the compressed data.
pub fn codecs(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some(compression) = Compression::from_id(i16::from(selector % 5)) else {
        return;
    };
    let mut output = Vec::new();
    let _ = codec::decompress_bounded(compression, rest, &mut output, FUZZ_DECOMPRESSED_MAX_BYTES);
}

/// The internal-topic record schemas as the coordinators load them at start-up: the first
/// byte picks `__consumer_offsets` (group records; with transactional batches and markers) or
/// `__transaction_state` (batches; a key alone; a value alone) or control records (key, end
/// marker value, control batch); the rest is the input, decoded as is and with CRCs fixed.
pub fn internal_records(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut fixed = rest.to_vec();
    fix_crcs(&mut fixed);
    for bytes in [rest, &fixed[..]] {
        match selector % 8 {
            0 => {
                let _ = consumer_offsets::decode_batches(Bytes::copy_from_slice(bytes));
            }
            1 => {
                let _ = consumer_offsets_txn::decode_log_batches(Bytes::copy_from_slice(bytes));
            }
            2 => {
                let _ = transaction_state::decode_batches(Bytes::copy_from_slice(bytes));
            }
            3 => {
                let _ = transaction_state::decode_key(bytes);
            }
            4 => {
                let _ = transaction_state::decode_value(bytes);
            }
            5 => {
                let _ = control_record::parse_key(bytes);
                let _ = consumer_offsets_txn::control_record_is_commit(bytes);
            }
            6 => {
                let _ = control_record::parse_end_txn_marker(bytes);
            }
            _ => {
                let _ = control_record::parse_control_batch(bytes);
            }
        }
    }
}

/// The pure index parsers: the first byte picks `.index` (`OffsetIndex::from_bytes`),
/// `.timeindex` (`TimeIndex::from_bytes`) or `.txnindex` entries (`AbortedTxn::decode`).
pub fn indexes(data: &[u8]) {
    use crate::log::{AbortedTxn, OffsetIndex, TimeIndex, ABORTED_TXN_BYTES};
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let max_index_bytes = 10 << 20;
    match selector % 3 {
        0 => {
            let _ = OffsetIndex::from_bytes(100, max_index_bytes, rest, 1 << 30);
        }
        1 => {
            let _ = TimeIndex::from_bytes(100, max_index_bytes, rest, Some(1 << 20));
            let _ = TimeIndex::from_bytes(100, max_index_bytes, rest, None);
        }
        _ => {
            for chunk in rest.chunks(ABORTED_TXN_BYTES) {
                let _ = AbortedTxn::decode(chunk);
            }
        }
    }
}

/// A fresh empty directory for one input: `$TMPDIR/ringtail-fuzz-<pid>-<thread>/p`, emptied
/// each time (scripts/fuzz.sh points TMPDIR at a directory it removes afterwards).
fn with_scratch_dir<R>(f: impl FnOnce(&Path) -> R) -> R {
    let path = std::env::temp_dir()
        .join(format!(
            "ringtail-fuzz-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ))
        .join("p");
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).expect("create the fuzz input dir");
    let result = f(&path);
    let _ = std::fs::remove_dir_all(&path);
    result
}

/// Splits `data` into files: repeated `[file id u8][length u16 big-endian][bytes]`; a short
/// last piece takes what is left.
fn split_files(data: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 3 {
        let id = rest[0];
        let length = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let end = (3 + length).min(rest.len());
        out.push((id, &rest[3..end]));
        rest = &rest[end..];
    }
    out
}

fn write_file(path: &Path, bytes: &[u8]) {
    let mut file = std::fs::File::create(path).expect("create a fuzz input file");
    file.write_all(bytes).expect("write a fuzz input file");
}

/// The synchronous start-up readers on arbitrary file contents: the metadata file
/// (`TopicStore::load`), the leader-epoch checkpoint (`LeaderEpochCache::load`), the
/// log-start-offset checkpoint and the cleaner-offset checkpoint. The first byte picks the
/// file; the rest is its contents.
pub fn log_files(data: &[u8]) {
    use crate::log::{
        checkpointed_log_start_offset, read_cleaner_checkpoint, LeaderEpochCache,
        CLEANER_OFFSET_CHECKPOINT_FILE, LEADER_EPOCH_CHECKPOINT_FILE,
        LOG_START_OFFSET_CHECKPOINT_FILE,
    };
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    with_scratch_dir(|dir| match selector % 4 {
        0 => {
            write_file(&dir.join(crate::metadata::METADATA_FILE), rest);
            let _ = crate::metadata::TopicStore::load(dir, 2);
        }
        1 => {
            write_file(&dir.join(LEADER_EPOCH_CHECKPOINT_FILE), rest);
            if let Ok(mut cache) = LeaderEpochCache::load(dir) {
                let _ = cache.truncate_from_end(1000);
                let _ = cache.truncate_from_start(10);
                let _ = cache.end_offset_for(3, 1000);
            }
        }
        2 => {
            write_file(&dir.join(LOG_START_OFFSET_CHECKPOINT_FILE), rest);
            let _ = checkpointed_log_start_offset(dir);
        }
        _ => {
            write_file(&dir.join(CLEANER_OFFSET_CHECKPOINT_FILE), rest);
            let _ = read_cleaner_checkpoint(dir);
        }
    })
}

thread_local! {
    static EXECUTOR: glommio::LocalExecutor = glommio::LocalExecutorBuilder::new(
        glommio::Placement::Unbound,
    )
    .make()
    .expect("a glommio executor for the log_recovery target");
}

/// Partition start-up on arbitrary file contents, as the broker opens a partition
/// (`Partition::open`: segment recovery, offset / time / txn index loading and rebuilding,
/// leader-epoch and log-start-offset checkpoints, the producer-state snapshot), on glommio.
/// The first byte's low bit is `recover` (unclean shutdown); the rest is
/// [`split_files`] pieces: 0 `.log`, 1 `.index`, 2 `.timeindex`, 3 `.txnindex` (all of
/// segment 0), 4 leader-epoch-checkpoint, 5 log-start-offset-checkpoint, 6 the producer
/// snapshot (named at the log end the batches imply), 7 a second segment's `.log` (base offset
/// from its first batch).
pub fn log_recovery(data: &[u8]) {
    use crate::log::{
        segment_file_path, INDEX_FILE_SUFFIX, LEADER_EPOCH_CHECKPOINT_FILE, LOG_FILE_SUFFIX,
        LOG_START_OFFSET_CHECKPOINT_FILE, PRODUCER_SNAPSHOT_SUFFIX, TIME_INDEX_FILE_SUFFIX,
        TXN_INDEX_FILE_SUFFIX,
    };
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let recover = flags & 1 == 1;
    with_scratch_dir(|dir| {
        let mut log_end = 0i64;
        for (id, bytes) in split_files(rest) {
            let path = match id % 8 {
                0 => {
                    log_end = BatchIter::new(bytes)
                        .last()
                        .map_or(log_end, |(_, h)| h.next_offset());
                    segment_file_path(dir, 0, LOG_FILE_SUFFIX)
                }
                1 => segment_file_path(dir, 0, INDEX_FILE_SUFFIX),
                2 => segment_file_path(dir, 0, TIME_INDEX_FILE_SUFFIX),
                3 => segment_file_path(dir, 0, TXN_INDEX_FILE_SUFFIX),
                4 => dir.join(LEADER_EPOCH_CHECKPOINT_FILE),
                5 => dir.join(LOG_START_OFFSET_CHECKPOINT_FILE),
                6 => segment_file_path(dir, log_end, PRODUCER_SNAPSHOT_SUFFIX),
                _ => {
                    let base = BatchIter::new(bytes)
                        .next()
                        .map_or(1, |(_, h)| h.base_offset.clamp(1, i64::MAX / 2));
                    segment_file_path(dir, base, LOG_FILE_SUFFIX)
                }
            };
            write_file(&path, bytes);
        }
        let config = fuzz_partition_config(None);
        let dir = dir.to_path_buf();
        EXECUTOR.with(|executor| {
            executor.run(async move {
                if let Ok(partition) = crate::partition::Partition::open(
                    "fuzz",
                    0,
                    uuid::Uuid::nil(),
                    dir,
                    config,
                    recover,
                )
                .await
                {
                    let _ = partition.close().await;
                }
            })
        });
    })
}

/// SASL client messages: the first byte picks PLAIN (`plain::authenticate` against one user)
/// or a SCRAM-SHA-256 / SCRAM-SHA-512 exchange (`ScramServer::evaluate` with the client-first
/// message, then the client-final message: the rest split at the first 0 byte; the user
/// `alice` exists), or Kafka's `--add-scram` argument syntax (`parse_add_scram`).
pub fn sasl(data: &[u8]) {
    use crate::security::sasl::scram::{ScramServer, ScramStep};
    use crate::security::scram_credentials::{parse_add_scram, ScramCredential, ScramMechanism};
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => {
            let users = std::collections::BTreeMap::from([(
                "alice".to_string(),
                "alice-secret".to_string(),
            )]);
            let _ = crate::security::sasl::plain::authenticate(rest, &users);
        }
        1 | 2 => {
            let mechanism = if selector % 4 == 1 {
                ScramMechanism::ScramSha256
            } else {
                ScramMechanism::ScramSha512
            };
            // A salted password computed once: the exchange itself never runs Hi().
            let credential = ScramCredential::from_salted_password(
                mechanism,
                b"fuzz-salt".to_vec(),
                &mechanism.hmac(b"fuzz-salted-password", b"x"),
                4096,
            );
            let (first, last) = match rest.iter().position(|&b| b == 0) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            let mut server = ScramServer::new(mechanism);
            let lookup = |user: &str| (user == "alice").then(|| credential.clone());
            if let ScramStep::Challenge(_) = server.evaluate(first, lookup) {
                let _ = server.evaluate(last, |_| None);
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = parse_add_scram(text);
            }
        }
    }
}

/// JAAS configuration text (`sasl.jaas.config` and `listener.name.*.sasl.jaas.config` values,
/// JAAS files): `jaas::parse_entries`, `jaas::parse_jaas_config`, then the PLAIN users.
pub fn jaas(data: &[u8]) {
    use crate::security::sasl::jaas;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(entries) = jaas::parse_entries(text) {
        for entry in &entries {
            let _ = jaas::plain_users(entry);
        }
    }
    if let Ok(entry) = jaas::parse_jaas_config(text) {
        let _ = jaas::plain_users(&entry);
    }
}

/// `ssl.principal.mapping.rules` (Kafka's `SslPrincipalMapper`): the text before the first
/// newline-newline is the rules, the rest a distinguished name mapped through them. Not
/// allocation-bounded: a rule is a regular expression, whose compiled size the regex crate
/// bounds by its own limit (10 MiB), not by the input size.
pub fn principal_rules(data: &[u8]) {
    use crate::security::tls::SslPrincipalMapper;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (rules, dn) = text
        .split_once("\n\n")
        .unwrap_or((text, "CN=alice,OU=eng,O=example"));
    if let Ok(mapper) = SslPrincipalMapper::parse(rules) {
        let _ = mapper.name(dn);
    }
}
