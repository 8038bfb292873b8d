//! Process-wide health for `/healthz`: each shard's start-up phase and offline partitions.
//!
//! Written by the shards (atomics, no lock on any request path; the offline reason is taken
//! under a mutex only when a partition goes offline) and read by the HTTP listener, which must
//! answer while shards are still recovering and cannot yet run work sent over the mesh.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// Where a shard is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardPhase {
    /// The executor runs; the mesh is not connected yet.
    Starting = 0,
    /// Opening its partitions (recovering their logs after an unclean stop).
    LoadingPartitions = 1,
    /// Replaying its `__consumer_offsets` partitions.
    LoadingGroups = 2,
    /// Serving.
    Ready = 3,
    /// Shutting down.
    Stopping = 4,
}

impl ShardPhase {
    fn from_u8(value: u8) -> ShardPhase {
        match value {
            1 => ShardPhase::LoadingPartitions,
            2 => ShardPhase::LoadingGroups,
            3 => ShardPhase::Ready,
            4 => ShardPhase::Stopping,
            _ => ShardPhase::Starting,
        }
    }

    /// What `/healthz` says about a shard in this phase.
    pub fn describe(self) -> &'static str {
        match self {
            ShardPhase::Starting => "starting",
            ShardPhase::LoadingPartitions => "loading partitions (log recovery in progress)",
            ShardPhase::LoadingGroups => "loading consumer groups from __consumer_offsets",
            ShardPhase::Ready => "ready",
            ShardPhase::Stopping => "shutting down",
        }
    }
}

struct Health {
    started: Instant,
    recovering: bool,
    shards: Vec<AtomicU8>,
    offline_partitions: AtomicUsize,
    offline_reason: Mutex<Option<String>>,
}

static HEALTH: OnceLock<Health> = OnceLock::new();

/// Sets up the health state for `shard_count` shards; `recovering` is true when the last stop
/// was unclean. Called once by `server` before the shards start; later calls are ignored.
pub fn init(shard_count: usize, recovering: bool) {
    let _ = HEALTH.set(Health {
        started: Instant::now(),
        recovering,
        shards: (0..shard_count)
            .map(|_| AtomicU8::new(ShardPhase::Starting as u8))
            .collect(),
        offline_partitions: AtomicUsize::new(0),
        offline_reason: Mutex::new(None),
    });
}

/// Records that `shard` entered `phase`.
pub fn set_phase(shard: usize, phase: ShardPhase) {
    if let Some(shard) = HEALTH.get().and_then(|h| h.shards.get(shard)) {
        shard.store(phase as u8, Ordering::SeqCst);
    }
}

/// Records that a partition went offline (a failed write or fdatasync: Kafka takes the log dir
/// offline on such an `IOException`).
pub fn partition_offline(topic: &str, partition: i32, reason: &str) {
    let Some(health) = HEALTH.get() else { return };
    health.offline_partitions.fetch_add(1, Ordering::SeqCst);
    let mut first = health
        .offline_reason
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    first.get_or_insert_with(|| format!("{topic}-{partition}: {reason}"));
}

/// The health state now.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReport {
    /// Each shard's phase, by shard id.
    pub shards: Vec<ShardPhase>,
    /// Partitions that went offline since start-up.
    pub offline_partitions: usize,
    /// The first offline partition and its error.
    pub offline_reason: Option<String>,
    /// Seconds since start-up began.
    pub uptime_seconds: f64,
    /// The last stop was unclean and the logs are (or were) recovered.
    pub recovering: bool,
}

impl HealthReport {
    /// Every shard is ready.
    pub fn all_ready(&self) -> bool {
        !self.shards.is_empty() && self.shards.iter().all(|p| *p == ShardPhase::Ready)
    }

    /// `None` when healthy, else why not (the `/healthz` 503 body).
    pub fn problem(&self) -> Option<String> {
        if let Some(reason) = &self.offline_reason {
            return Some(format!(
                "log dir offline: {} partition(s) offline after a storage error, first {reason}",
                self.offline_partitions
            ));
        }
        let waiting: Vec<String> = self
            .shards
            .iter()
            .enumerate()
            .filter(|(_, p)| **p != ShardPhase::Ready)
            .map(|(i, p)| format!("shard {i}: {}", p.describe()))
            .collect();
        if self.shards.is_empty() {
            return Some("starting".to_string());
        }
        if waiting.is_empty() {
            None
        } else {
            Some(waiting.join("; "))
        }
    }
}

/// The health state now (empty shards before [`init`]).
pub fn report() -> HealthReport {
    match HEALTH.get() {
        Some(h) => HealthReport {
            shards: h
                .shards
                .iter()
                .map(|s| ShardPhase::from_u8(s.load(Ordering::SeqCst)))
                .collect(),
            offline_partitions: h.offline_partitions.load(Ordering::SeqCst),
            offline_reason: h
                .offline_reason
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            uptime_seconds: h.started.elapsed().as_secs_f64(),
            recovering: h.recovering,
        },
        None => HealthReport {
            shards: Vec::new(),
            offline_partitions: 0,
            offline_reason: None,
            uptime_seconds: 0.0,
            recovering: false,
        },
    }
}
