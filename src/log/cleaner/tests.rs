//! Unit tests of the sans-io cleaner rules: data-driven `check` helpers over batches built by
//! ringtail-protocol's `RecordBatchBuilder` (the producer side's encoder).

use super::*;
use crate::protocol::record_batch::{set_base_offset, validate_batch, RecordBatchHeader};
use crate::protocol::records::{walk_records, RecordBatchBuilder};

/// A record to build: key, value (None = tombstone), timestamp.
type Spec<'a> = (Option<&'a str>, Option<&'a str>, i64);

/// A batch of `records` at `base_offset` with `compression`, producer 7 epoch 1 sequence 3.
fn batch(base_offset: i64, compression: Compression, records: &[Spec<'_>]) -> Vec<u8> {
    let mut builder = RecordBatchBuilder::new(1024);
    for (key, value, timestamp) in records {
        builder.append(
            key.map(str::as_bytes),
            value.unwrap_or("").as_bytes(),
            *timestamp,
        );
    }
    let mut bytes = builder
        .finish(compression, None, 7, 1, 3)
        .expect("encode")
        .to_vec();
    set_base_offset(&mut bytes, base_offset);
    // RecordBatchBuilder writes only non-null values; null the tombstones' values in place by
    // rebuilding the records through the cleaner's own encoder is circular, so tombstones are
    // made by `tombstone_batch` instead.
    bytes
}

/// A batch where the records listed in `tombstones` (by index) have null values.
fn tombstone_batch(base_offset: i64, records: &[Spec<'_>]) -> Vec<u8> {
    // Build uncompressed, then re-encode each record with value length -1.
    let plain = batch(base_offset, Compression::None, records);
    let header = RecordBatchHeader::parse(&plain).unwrap();
    let section = plain[RECORD_BATCH_HEADER_BYTES..].to_vec();
    let raw = split_records(&header, &section).unwrap();
    let mut out_records = Vec::new();
    for (record, spec) in raw.iter().zip(records) {
        if spec.1.is_some() {
            out_records.extend_from_slice(record.bytes);
            continue;
        }
        // body = attributes, ts delta, offset delta, key length, key, value length (-1), headers 0
        let mut body = vec![0u8];
        let mut buf = [0u8; 10];
        let n = put_varlong(&mut buf, record.timestamp_delta);
        body.extend_from_slice(&buf[..n]);
        let n = put_varlong(&mut buf, record.offset - base_offset);
        body.extend_from_slice(&buf[..n]);
        let key = record.key.unwrap_or_default();
        let n = put_varlong(&mut buf, key.len() as i64);
        body.extend_from_slice(&buf[..n]);
        body.extend_from_slice(key);
        let n = put_varlong(&mut buf, -1);
        body.extend_from_slice(&buf[..n]);
        body.push(0);
        let n = put_varlong(&mut buf, body.len() as i64);
        out_records.extend_from_slice(&buf[..n]);
        out_records.extend_from_slice(&body);
    }
    let mut out = plain[..RECORD_BATCH_HEADER_BYTES].to_vec();
    out.extend_from_slice(&out_records);
    let attributes = header.attributes;
    write_header(
        &mut out,
        &header,
        attributes,
        header.base_timestamp,
        header.max_timestamp,
        header.record_count,
    );
    out
}

/// (offset, key, value) of every record of a batch, decoded by the consumer-side walker.
fn contents(bytes: &[u8]) -> Vec<(i64, Option<String>, Option<String>)> {
    let header = RecordBatchHeader::parse(bytes).unwrap();
    let mut scratch = Vec::new();
    let mut out = Vec::new();
    walk_records(&header, bytes, &mut scratch, |r| {
        out.push((
            r.offset,
            r.key.map(|k| String::from_utf8_lossy(k).into_owned()),
            r.value.map(|v| String::from_utf8_lossy(v).into_owned()),
        ))
    })
    .unwrap();
    out
}

fn map_of(entries: &[(&str, i64)]) -> OffsetMap {
    let mut map = OffsetMap::new(1 << 20);
    for (key, offset) in entries {
        map.put(key.as_bytes(), *offset);
    }
    map
}

fn context(map: &OffsetMap, now_ms: i64) -> FilterContext<'_> {
    FilterContext {
        map,
        map_end_offset: 1_000,
        now_ms,
        delete_retention_ms: 100,
        last_batch_of_producer: false,
    }
}

/// Filters `bytes` and checks the outcome: `None` = dropped, `Some(records)` = what a consumer
/// reads back (a kept-whole batch must be the same bytes).
fn check(
    bytes: &[u8],
    context: &FilterContext<'_>,
    expected: Option<&[(i64, &str, Option<&str>)]>,
) {
    let header = RecordBatchHeader::parse(bytes).unwrap();
    let mut scratch = Vec::new();
    let outcome = filter_batch(&header, bytes, context, &mut scratch).unwrap();
    let out = match (&outcome, expected) {
        (BatchOutcome::Drop, None) => return,
        (BatchOutcome::KeepWhole, Some(_)) => bytes.to_vec(),
        (BatchOutcome::Rewrite(b), Some(_)) => b.clone(),
        (other, expected) => panic!("outcome {other:?}, expected {expected:?}"),
    };
    let expected = expected.unwrap();
    let out_header = RecordBatchHeader::parse(&out).unwrap();
    // Stored cleaned batches keep the offset range, so record_count may be below it; check the
    // CRC and shape the way recovery and consumers do.
    crate::protocol::record_batch::check_crc(&out, &out_header).expect("CRC");
    assert_eq!(out_header.size_bytes(), out.len());
    assert_eq!(out_header.base_offset, header.base_offset);
    assert_eq!(out_header.last_offset_delta, header.last_offset_delta);
    assert_eq!(out_header.producer_id, header.producer_id);
    assert_eq!(out_header.producer_epoch, header.producer_epoch);
    assert_eq!(out_header.base_sequence, header.base_sequence);
    assert_eq!(out_header.compression(), header.compression());
    assert_eq!(out_header.record_count as usize, expected.len());
    let got = contents(&out);
    let want: Vec<_> = expected
        .iter()
        .map(|(o, k, v)| (*o, Some(k.to_string()), v.map(str::to_string)))
        .collect();
    assert_eq!(got, want);
}

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

#[test]
fn keeps_the_latest_record_per_key_in_every_codec() {
    let map = map_of(&[("a", 12), ("b", 11)]);
    for codec in CODECS {
        let bytes = batch(
            10,
            codec,
            &[
                (Some("a"), Some("1"), 5),
                (Some("b"), Some("2"), 6),
                (Some("a"), Some("3"), 7),
            ],
        );
        check(
            &bytes,
            &context(&map, 0),
            Some(&[(11, "b", Some("2")), (12, "a", Some("3"))]),
        );
    }
}

#[test]
fn batches_losing_nothing_are_copied_as_bytes() {
    let map = map_of(&[("a", 10), ("b", 11)]);
    let bytes = batch(
        10,
        Compression::Lz4,
        &[(Some("a"), Some("1"), 5), (Some("b"), Some("2"), 6)],
    );
    let header = RecordBatchHeader::parse(&bytes).unwrap();
    let outcome = filter_batch(&header, &bytes, &context(&map, 0), &mut Vec::new()).unwrap();
    assert_eq!(outcome, BatchOutcome::KeepWhole);
}

#[test]
fn superseded_batches_are_dropped_unless_last_of_their_producer() {
    let map = map_of(&[("a", 50)]);
    let bytes = batch(
        10,
        Compression::Zstd,
        &[(Some("a"), Some("1"), 5), (Some("a"), Some("2"), 6)],
    );
    check(&bytes, &context(&map, 0), None);
    let last = FilterContext {
        last_batch_of_producer: true,
        ..context(&map, 0)
    };
    let header = RecordBatchHeader::parse(&bytes).unwrap();
    let BatchOutcome::Rewrite(empty) =
        filter_batch(&header, &bytes, &last, &mut Vec::new()).unwrap()
    else {
        panic!("expected an empty batch");
    };
    let empty_header = RecordBatchHeader::parse(&empty).unwrap();
    assert_eq!(empty.len(), RECORD_BATCH_HEADER_BYTES);
    assert_eq!(empty_header.record_count, 0);
    assert_eq!(empty_header.last_offset(), 11);
    assert_eq!(empty_header.last_sequence(), header.last_sequence());
    assert_eq!(empty_header.compression(), Some(Compression::None));
    crate::protocol::record_batch::check_crc(&empty, &empty_header).unwrap();
}

#[test]
fn records_past_the_map_and_unmapped_keys_stay_keyless_go() {
    let map = map_of(&[("a", 30)]);
    let bytes = batch(
        10,
        Compression::None,
        &[
            (Some("a"), Some("1"), 5),
            (Some("z"), Some("2"), 6),
            (None, Some("3"), 7),
        ],
    );
    check(&bytes, &context(&map, 0), Some(&[(11, "z", Some("2"))]));
    let past = FilterContext {
        map_end_offset: 10,
        ..context(&map, 0)
    };
    let header = RecordBatchHeader::parse(&bytes).unwrap();
    assert_eq!(
        filter_batch(&header, &bytes, &past, &mut Vec::new()).unwrap(),
        BatchOutcome::KeepWhole
    );
}

#[test]
fn tombstones_get_a_horizon_then_go_after_it() {
    let map = map_of(&[("a", 10), ("b", 11)]);
    let bytes = tombstone_batch(
        10,
        &[(Some("a"), None, 1_000), (Some("b"), Some("x"), 1_005)],
    );
    let header = RecordBatchHeader::parse(&bytes).unwrap();
    // First pass at t=5000: kept, rewritten with horizon 5000 + 100, timestamps unchanged.
    let BatchOutcome::Rewrite(first) =
        filter_batch(&header, &bytes, &context(&map, 5_000), &mut Vec::new()).unwrap()
    else {
        panic!("expected the horizon to be set");
    };
    let first_header = RecordBatchHeader::parse(&first).unwrap();
    assert_eq!(delete_horizon(&first_header), Some(5_100));
    assert_eq!(first_header.max_timestamp, 1_005);
    let section = first[RECORD_BATCH_HEADER_BYTES..].to_vec();
    let records = split_records(&first_header, &section).unwrap();
    let timestamps: Vec<i64> = records
        .iter()
        .map(|r| first_header.base_timestamp + r.timestamp_delta)
        .collect();
    assert_eq!(timestamps, vec![1_000, 1_005]);
    check(
        &first,
        &context(&map, 5_050),
        Some(&[(10, "a", None), (11, "b", Some("x"))]),
    );
    // After the horizon the tombstone goes; the horizon bit stays with the rest.
    check(&first, &context(&map, 5_100), Some(&[(11, "b", Some("x"))]));
}

#[test]
fn control_and_transactional_batches_are_kept_whole() {
    let map = map_of(&[("a", 99)]);
    let mut bytes = batch(10, Compression::None, &[(Some("a"), Some("1"), 5)]);
    let header = RecordBatchHeader::parse(&bytes).unwrap();
    write_header(
        &mut bytes,
        &header,
        header.attributes | 0x10,
        header.base_timestamp,
        header.max_timestamp,
        1,
    );
    let header = RecordBatchHeader::parse(&bytes).unwrap();
    assert!(header.is_transactional());
    assert_eq!(
        filter_batch(&header, &bytes, &context(&map, 0), &mut Vec::new()).unwrap(),
        BatchOutcome::KeepWhole
    );
}

#[test]
fn malformed_records_are_errors_not_panics() {
    let map = map_of(&[("a", 99)]);
    let mut bytes = batch(10, Compression::None, &[(Some("a"), Some("1"), 5)]);
    let header = RecordBatchHeader::parse(&bytes).unwrap();
    write_header(
        &mut bytes,
        &header,
        header.attributes,
        header.base_timestamp,
        header.max_timestamp,
        9,
    );
    let header = RecordBatchHeader::parse(&bytes).unwrap();
    assert!(filter_batch(&header, &bytes, &context(&map, 0), &mut Vec::new()).is_err());
    assert!(
        validate_batch(&bytes, 1 << 20).is_err(),
        "the forged count does not validate either"
    );
}

#[test]
fn offset_map_is_bounded_by_its_buffer() {
    let mut map = OffsetMap::new(1_000);
    let key = [7u8; 10];
    let entry = key.len() + OFFSET_MAP_ENTRY_OVERHEAD_BYTES;
    assert!(
        map.has_room(100_000),
        "an empty map takes one batch whatever its size"
    );
    map.put(&key, 1);
    assert_eq!(
        map.bytes_needed([key.as_slice()]),
        0,
        "a mapped key costs nothing more"
    );
    let fits = (900 - entry) / entry;
    assert!(map.has_room(fits * entry));
    assert!(!map.has_room((fits + 1) * entry));
    map.put(&key, 5);
    assert_eq!(map.get(&key), Some(5));
}

#[test]
fn cleanable_by_ratio_or_max_lag() {
    let config = CleanerConfig {
        delete_retention_ms: 0,
        min_cleanable_dirty_ratio: 0.5,
        min_compaction_lag_ms: 0,
        max_compaction_lag_ms: 1_000,
        dedupe_buffer_bytes: 1 << 20,
    };
    let check = |clean, cleanable, first, now, expected| {
        let stats = DirtyStats {
            clean_bytes: clean,
            cleanable_bytes: cleanable,
            first_dirty_timestamp_ms: first,
        };
        assert_eq!(
            is_cleanable(&stats, &config, now),
            expected,
            "{stats:?} at {now}"
        );
    };
    check(100, 100, 5_000, 5_500, false); // ratio 0.5 is not above 0.5
    check(99, 101, 5_000, 5_500, true);
    check(900, 100, 5_000, 6_001, true); // overdue by max.compaction.lag.ms
    check(900, 100, 5_000, 6_000, false);
    check(900, 0, 5_000, 9_000, false); // overdue but nothing cleanable
    check(0, 0, -1, 0, false);
}

#[test]
fn groups_stay_within_segment_bytes() {
    let check = |segments: &[(i64, i64, u64)], max, expected: &[usize]| {
        assert_eq!(
            group_segments_by_size(segments, max),
            expected,
            "{segments:?}"
        );
    };
    check(&[(0, 10, 40), (10, 20, 40), (20, 30, 40)], 100, &[2, 1]);
    check(&[(0, 10, 40), (10, 20, 0), (20, 30, 60)], 100, &[3]);
    check(&[(0, 10, 200), (10, 20, 1)], 100, &[1, 1]);
    check(&[(0, 10, 1), (10, i32::MAX as i64 + 5, 1)], 100, &[1, 1]);
    check(&[], 100, &[]);
}
