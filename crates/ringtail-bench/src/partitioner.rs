//! Partition choice as the Java client makes it (`BuiltInPartitioner`, KIP-794).
//!
//! Keyed records go to `toPositive(murmur2(key)) % partitions` (`Utils.murmur2`,
//! `Utils.toPositive`), so a key lands on the same partition as with the Java producer. Records
//! with a null key stick to one partition until `batch.size` bytes were produced to it, then move
//! to another partition chosen at random (KIP-794's uniform sticky partitioner, without the
//! adaptive load weighting).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Kafka's `Utils.murmur2`: MurmurHash2, 32 bits, seed `0x9747b28c`, as a signed Java int.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h: u32 = SEED ^ length as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= (tail[2] as u32) << 16;
    }
    if tail.len() >= 2 {
        h ^= (tail[1] as u32) << 8;
    }
    if !tail.is_empty() {
        h ^= tail[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition for a keyed record: `(murmur2(key) & 0x7fffffff) % partitions`
/// (`BuiltInPartitioner.partitionForKey`).
pub fn partition_for_key(key: &[u8], partitions: usize) -> usize {
    assert!(partitions > 0, "a topic has at least one partition");
    ((murmur2(key) & 0x7fff_ffff) as usize) % partitions
}

/// Sticky choice for null-key records, switching after `batch_size` bytes (KIP-794).
#[derive(Debug)]
pub struct StickyPartitioner {
    partitions: usize,
    batch_size: usize,
    current: usize,
    produced_bytes: usize,
    rng: StdRng,
}

impl StickyPartitioner {
    /// A partitioner over `partitions` partitions that switches after `batch_size` bytes
    /// (`batch.size`); `seed` makes the random choices reproducible.
    pub fn new(partitions: usize, batch_size: usize, seed: u64) -> StickyPartitioner {
        assert!(partitions > 0, "a topic has at least one partition");
        let mut rng = StdRng::seed_from_u64(seed);
        let current = rng.gen_range(0..partitions);
        StickyPartitioner {
            partitions,
            batch_size: batch_size.max(1),
            current,
            produced_bytes: 0,
            rng,
        }
    }

    /// The partition for the next null-key record of `record_bytes` bytes.
    pub fn partition(&mut self, record_bytes: usize) -> usize {
        if self.produced_bytes >= self.batch_size {
            self.switch();
        }
        self.produced_bytes += record_bytes;
        self.current
    }

    /// The record that made the current partition's batch full was sent; move on at once
    /// (`BuiltInPartitioner.updatePartitionInfo` with `enableSwitch`).
    pub fn on_new_batch(&mut self) {
        self.switch();
    }

    fn switch(&mut self) {
        self.produced_bytes = 0;
        if self.partitions > 1 {
            let next = self.rng.gen_range(0..self.partitions - 1);
            self.current = if next >= self.current { next + 1 } else { next };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &[u8], expected: i32) {
        assert_eq!(
            murmur2(input),
            expected,
            "murmur2({:?})",
            String::from_utf8_lossy(input)
        );
    }

    /// Kafka's `UtilsTest.testMurmur2` vectors.
    #[test]
    fn murmur2_matches_java() {
        check(b"21", -973_932_308);
        check(b"foobar", -790_332_482);
        check(b"a-little-bit-long-string", -985_981_536);
        check(b"a-little-bit-longer-string", -1_486_304_829);
        check(
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
        );
        check(b"abc", 479_470_107);
    }

    #[test]
    fn partition_for_key_is_positive_modulo() {
        // toPositive(-790332482) = 1357151166; 1357151166 % 50 = 16.
        assert_eq!(partition_for_key(b"foobar", 50), 16);
        for partitions in 1..64 {
            assert!(partition_for_key(b"21", partitions) < partitions);
        }
    }

    #[test]
    fn sticky_stays_until_batch_size_then_switches() {
        let mut sticky = StickyPartitioner::new(8, 1000, 42);
        let first = sticky.partition(100);
        for _ in 0..9 {
            assert_eq!(sticky.partition(100), first, "stays below batch.size");
        }
        let second = sticky.partition(100);
        assert_ne!(
            second, first,
            "switches once batch.size bytes were produced"
        );
        sticky.on_new_batch();
        assert_ne!(sticky.partition(1), second, "switches on a new batch");
    }

    #[test]
    fn sticky_spreads_over_all_partitions() {
        let mut sticky = StickyPartitioner::new(4, 10, 7);
        let mut seen = [0usize; 4];
        for _ in 0..4000 {
            seen[sticky.partition(10)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 500), "{seen:?}");
    }

    #[test]
    fn sticky_with_one_partition() {
        let mut sticky = StickyPartitioner::new(1, 10, 1);
        for _ in 0..10 {
            assert_eq!(sticky.partition(100), 0);
        }
    }
}
