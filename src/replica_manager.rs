//! The partitions one shard owns, by topic name and partition number.
//!
//! Partitions appear and disappear only through [`ReplicaManager::apply_image`], which runs one
//! at a time per shard (a semaphore) so a partition is never opened twice. A topic deleted and
//! re-created under the same name is told apart by its topic id.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use futures::StreamExt;
use glommio::sync::Semaphore;

use crate::config::{BrokerConfig, CleanupPolicy, TopicConfig};
use crate::log::LogError;
use crate::metadata::{MetadataImage, TopicMetadata};
use crate::partition::{Partition, PartitionConfig};

/// Bound on the tail caches of all partitions of one shard together: each partition keeps at
/// most `ringtail.partition.cache.bytes`, and less when the shard owns so many partitions that
/// their caches would exceed this (1,000 partitions x 4 MiB filled 4 GB of fresh pages: page
/// faults were half the broker's CPU).
pub const SHARD_CACHE_MAX_BYTES: usize = 256 << 20;
const _: () = assert!(SHARD_CACHE_MAX_BYTES > 0);

/// The open partitions of one topic on one shard, indexed by partition number (`None`: owned
/// by another shard, or not open). Shared by `Rc` so that a fetch of many partitions looks its
/// topic up once ([`ReplicaManager::topic`]); replaced, never mutated while shared.
pub type TopicPartitions = Rc<Vec<Option<Rc<Partition>>>>;

/// How many partitions a shard opens at once at start-up (Kafka recovers a dir's logs with
/// `num.recovery.threads.per.data.dir` threads; here a shard interleaves the opens on its one
/// executor, so the read of one overlaps with the CRC checks of another).
pub const PARTITIONS_OPENED_AT_ONCE: usize = 8;

/// Owned partitions of one shard.
pub struct ReplicaManager {
    shard_id: usize,
    log_dir: PathBuf,
    config: Arc<BrokerConfig>,
    /// Topic name -> its open partitions here. hashbrown (foldhash) looked up by a borrowed
    /// `&str`: no allocation, and no SipHash, per lookup. Invariant: no topic maps to a list
    /// without an open partition.
    partitions: RefCell<hashbrown::HashMap<String, TopicPartitions>>,
    /// The latest metadata of each topic with a partition here (topic config overrides).
    topics: RefCell<HashMap<String, Arc<TopicMetadata>>>,
    /// Held while partitions are opened, deleted, closed or trimmed by retention.
    applying: Semaphore,
    /// The static config with the latest image's dynamic broker configs applied.
    broker_config: RefCell<Arc<BrokerConfig>>,
}

impl ReplicaManager {
    pub fn new(shard_id: usize, config: Arc<BrokerConfig>) -> ReplicaManager {
        crate::log::read_ahead::set_shard_budget(
            usize::try_from(config.fetch_read_ahead_bytes).unwrap_or(usize::MAX),
        );
        ReplicaManager {
            shard_id,
            log_dir: config.log_dir().to_path_buf(),
            broker_config: RefCell::new(config.clone()),
            config,
            partitions: RefCell::new(hashbrown::HashMap::new()),
            topics: RefCell::new(HashMap::new()),
            applying: Semaphore::new(1),
        }
    }

    /// The partition if this shard owns it and it is open. Allocates nothing.
    pub fn get(&self, topic: &str, partition: i32) -> Option<Rc<Partition>> {
        let partitions = self.partitions.borrow();
        let topic = partitions.get(topic)?;
        topic.get(usize::try_from(partition).ok()?)?.clone()
    }

    /// The partitions of `topic` this shard has open, by partition number, or `None` when it
    /// has none: one lookup for a request that names many partitions of a topic.
    pub fn topic(&self, topic: &str) -> Option<TopicPartitions> {
        self.partitions.borrow().get(topic).cloned()
    }

    fn insert(&self, partition: Rc<Partition>) {
        let Ok(index) = usize::try_from(partition.partition) else {
            return;
        };
        let mut partitions = self.partitions.borrow_mut();
        let topic = partitions.entry(partition.topic.clone()).or_default();
        let list = Rc::make_mut(topic);
        if list.len() <= index {
            list.resize(index + 1, None);
        }
        list[index] = Some(partition);
    }

    fn remove(&self, topic: &str, partition: i32) {
        let mut partitions = self.partitions.borrow_mut();
        let Some(list) = partitions.get_mut(topic) else {
            return;
        };
        if let Some(slot) = usize::try_from(partition)
            .ok()
            .and_then(|index| Rc::make_mut(list).get_mut(index))
        {
            *slot = None;
        }
        if list.iter().all(Option::is_none) {
            partitions.remove(topic);
        }
    }

    /// Every open partition, by reference (no `Rc` clone), in no particular order.
    fn for_each(&self, mut f: impl FnMut(&Rc<Partition>)) {
        for list in self.partitions.borrow().values() {
            list.iter().flatten().for_each(&mut f);
        }
    }

    /// The effective broker configuration: static properties with the dynamic broker configs
    /// of the latest metadata image (cluster default "" under this node's), as Kafka's
    /// `DynamicBrokerConfig`. Topic defaults come from here.
    pub fn broker_config(&self) -> Arc<BrokerConfig> {
        self.broker_config.borrow().clone()
    }

    pub fn partition_count(&self) -> usize {
        let mut count = 0;
        self.for_each(|_| count += 1);
        count
    }

    /// Every open partition of this shard, in no particular order (for metrics scrapes).
    pub fn partitions(&self) -> Vec<Rc<Partition>> {
        let mut all = Vec::new();
        self.for_each(|p| all.push(p.clone()));
        all
    }

    /// Opens every partition the image assigns to this shard that is not open yet (recovering
    /// those in `recover_dirs`, the log dirs without a clean-shutdown marker), and closes and
    /// deletes the ones whose topic is gone.
    pub async fn apply_image(
        &self,
        image: &MetadataImage,
        recover_dirs: &[PathBuf],
    ) -> Result<(), LogError> {
        let _permit = self
            .applying
            .acquire_permit(1)
            .await
            .expect("semaphore open");
        let removed: Vec<Rc<Partition>> = self
            .partitions()
            .into_iter()
            .filter(|p| {
                image.topic(&p.topic).is_none_or(|t| {
                    t.topic_id != p.topic_id || t.shard_of(p.partition) != Some(self.shard_id)
                })
            })
            .collect();
        for partition in removed {
            self.remove(&partition.topic, partition.partition);
            tracing::info!(topic = %partition.topic, partition = partition.partition, "deleting partition");
            partition.log().delete().await?;
            crate::log::log_dirs::partition_deleted(&partition.topic, partition.partition);
        }
        self.apply_dynamic_broker_configs(image);
        let defaults = self.broker_config().default_topic_config();
        *self.topics.borrow_mut() = image
            .partitions_of_shard(self.shard_id)
            .map(|(topic, _)| (topic.name.clone(), topic.clone()))
            .collect();
        let mut to_open = Vec::new();
        for (topic, partition) in image.partitions_of_shard(self.shard_id) {
            let topic_config = topic_config(&defaults, topic);
            if let Some(open) = self.get(&topic.name, partition) {
                self.apply_topic_config(&open, &topic_config);
                continue;
            }
            // JBOD: the log dir holding it, or for a new partition the one with the fewest
            // partitions (`log_dirs`, Kafka's nextLogDirs); no registered dirs (unit tests):
            // the first `log.dirs` entry.
            let log_dir = crate::log::log_dirs::dir_for_partition(
                &self.config.log_dirs,
                &topic.name,
                partition,
            )
            .unwrap_or_else(|| self.log_dir.clone());
            if let Some(reason) = crate::log::log_dirs::offline_reason(&log_dir) {
                tracing::warn!(topic = %topic.name, partition, dir = %log_dir.display(), "not opening a partition in an offline log dir ({reason})");
                continue;
            }
            to_open.push((topic, partition, topic_config, log_dir));
        }
        // Several at once (recovery reads overlap with another partition's CRC checks), each
        // handled in the image's order once all are open.
        let opening = to_open
            .into_iter()
            .map(|(topic, partition, topic_config, log_dir)| {
                let recover = recover_dirs.contains(&log_dir);
                let config =
                    PartitionConfig::new(&topic_config, self.config.partition_cache_bytes as usize);
                async move {
                    let dir = log_dir.join(format!("{}-{}", topic.name, partition));
                    let opened = Partition::open(
                        &topic.name,
                        partition,
                        topic.topic_id,
                        dir,
                        config,
                        recover,
                    )
                    .await;
                    (topic, partition, log_dir, opened)
                }
            });
        let opened: Vec<_> = futures::stream::iter(opening)
            .buffered(PARTITIONS_OPENED_AT_ONCE)
            .collect()
            .await;
        for (topic, partition, log_dir, opened) in opened {
            let opened = match opened {
                Ok(opened) => opened,
                // Kafka's LogManager.loadLogs: an I/O error in one of several dirs takes that
                // dir offline and the broker goes on with the others; the first dir (metadata)
                // or the only one stops start-up.
                Err(error @ LogError::Io { .. })
                    if self.config.log_dirs.len() > 1 && log_dir != self.log_dir =>
                {
                    crate::log::log_dirs::mark_offline(&log_dir, &error.to_string());
                    continue;
                }
                Err(error) => return Err(error),
            };
            if crate::log::log_dirs::offline_reason(&log_dir).is_some() {
                // Another partition of its dir failed to open meanwhile.
                let _ = opened.close().await;
                continue;
            }
            opened.become_leader(image.leader_epoch(&topic.name, partition).unwrap_or(0))?;
            debug_assert_eq!(
                (opened.topic.as_str(), opened.partition),
                (topic.name.as_str(), partition),
                "invariant: a partition is filed under its own topic and number"
            );
            self.insert(opened);
        }
        let cache_bytes = partition_cache_bytes(
            self.config.partition_cache_bytes as usize,
            self.partition_count(),
        );
        self.for_each(|partition| partition.set_cache_bytes(cache_bytes));
        Ok(())
    }

    /// Takes offline every partition of this shard whose log dir went offline (Kafka's
    /// `ReplicaManager.handleLogDirFailure`): from then on produce and fetch answer
    /// KAFKA_STORAGE_ERROR and pending waiters fail. Returns how many went offline now.
    pub fn handle_log_dir_failures(&self) -> usize {
        let partitions = self.partitions();
        let mut count = 0;
        for partition in partitions {
            if !partition.is_offline() {
                partition.check_log_dir();
                count += usize::from(partition.is_offline());
            }
        }
        count
    }

    /// Applies `retention.ms` / `retention.bytes` of each partition's topic config (Kafka's
    /// `LogManager.cleanupLogs`, run every `log.retention.check.interval.ms`). Topics whose
    /// `cleanup.policy` is only `compact` keep everything, as in Kafka. Deletions are logged at
    /// info, failures at warn (the partition stays online). Also expires idle producers
    /// ([`Partition::expire_producers`]). Returns the segments deleted.
    pub async fn apply_retention(&self) -> usize {
        let _permit = self
            .applying
            .acquire_permit(1)
            .await
            .expect("semaphore open");
        let defaults = self.broker_config().default_topic_config();
        let targets: Vec<(Rc<Partition>, TopicConfig)> = {
            let topics = self.topics.borrow();
            self.partitions()
                .into_iter()
                .filter_map(|partition| {
                    let topic = topics.get(&partition.topic)?;
                    let config = topic_config(&defaults, topic);
                    Some((partition, config))
                })
                .collect()
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut deleted_total = 0;
        for (partition, config) in targets {
            let expired = partition.expire_producers(now_ms);
            if expired > 0 {
                tracing::debug!(topic = %partition.topic, partition = partition.partition, expired, "expired idle producers");
            }
            if config.cleanup_policy == CleanupPolicy::Compact {
                continue;
            }
            let result = partition
                .apply_retention(config.retention_ms, config.retention_bytes)
                .await;
            match result {
                Ok(0) => {}
                Ok(deleted) => {
                    deleted_total += deleted;
                    tracing::info!(
                        topic = %partition.topic,
                        partition = partition.partition,
                        segments = deleted,
                        log_start_offset = partition.log_start_offset(),
                        retention_ms = config.retention_ms,
                        retention_bytes = config.retention_bytes,
                        "deleted segments by retention"
                    );
                }
                Err(e) => tracing::warn!(
                    topic = %partition.topic,
                    partition = partition.partition,
                    "retention failed: {e}"
                ),
            }
        }
        deleted_total
    }

    /// Rebuilds [`Self::broker_config`] from `image`'s dynamic broker configs. They were
    /// validated when altered; a stored value that no longer parses is logged and the static
    /// configuration kept.
    fn apply_dynamic_broker_configs(&self, image: &MetadataImage) {
        let node = self.config.node_id.to_string();
        let effective = self
            .config
            .with_dynamic(image.broker_configs(""), image.broker_configs(&node));
        match effective {
            Ok(config) => *self.broker_config.borrow_mut() = Arc::new(config),
            Err(e) => tracing::warn!("ignoring invalid stored dynamic broker configs: {e}"),
        }
    }

    /// Gives an open partition its topic's current config, if it changed (Kafka's
    /// `LogManager.updateTopicConfig`: applied at once, retention at the next check).
    fn apply_topic_config(&self, partition: &Partition, topic_config: &TopicConfig) {
        let config = PartitionConfig::new(topic_config, self.config.partition_cache_bytes as usize);
        if partition.config() == config {
            return;
        }
        match partition.set_config(config) {
            Ok(()) => tracing::info!(
                topic = %partition.topic,
                partition = partition.partition,
                "applied new topic config"
            ),
            Err(e) => tracing::warn!(
                topic = %partition.topic,
                partition = partition.partition,
                "topic config not applied: {e}"
            ),
        }
    }

    /// One log-cleaner round over this shard's partitions with `cleanup.policy` compact or
    /// compact,delete (Kafka's `LogCleaner` thread picks the filthiest log; each shard here
    /// visits each of its own): their topic config is read anew, the first dirty offsets come
    /// from and go to `cleaner-offset-checkpoint`. Returns the partitions cleaned; failures are
    /// logged at warn and leave the partition online (Kafka marks such a log uncleanable).
    pub async fn clean_logs(&self) -> usize {
        let broker = self.broker_config();
        if !broker.log_cleaner_enable {
            return 0;
        }
        let defaults = broker.default_topic_config();
        let targets: Vec<(Rc<Partition>, TopicConfig)> = {
            let topics = self.topics.borrow();
            self.partitions()
                .into_iter()
                .filter_map(|partition| {
                    let topic = topics.get(&partition.topic)?;
                    let config = topic_config(&defaults, topic);
                    let compact = matches!(
                        config.cleanup_policy,
                        CleanupPolicy::Compact | CleanupPolicy::CompactDelete
                    );
                    compact.then_some((partition, config))
                })
                .collect()
        };
        if targets.is_empty() {
            return 0;
        }
        // One `cleaner-offset-checkpoint` per log dir, as Kafka keeps.
        let mut checkpoints: HashMap<PathBuf, BTreeMap<(String, i32), i64>> = HashMap::new();
        let mut cleaned = 0;
        for (partition, topic) in targets {
            if partition.is_offline() {
                continue;
            }
            let log_dir = partition.log_dir().to_path_buf();
            let checkpoint = checkpoints.entry(log_dir.clone()).or_insert_with(|| {
                crate::log::read_cleaner_checkpoint(&log_dir).unwrap_or_else(|e| {
                    tracing::warn!("reading the cleaner checkpoint failed: {e}");
                    Default::default()
                })
            });
            let config = cleaner_config(&topic, &broker);
            let key = (partition.topic.clone(), partition.partition);
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            match partition
                .clean(&config, checkpoint.get(&key).copied(), now_ms)
                .await
            {
                Ok(None) => {}
                Ok(Some(summary)) => {
                    cleaned += 1;
                    tracing::info!(
                        topic = %partition.topic,
                        partition = partition.partition,
                        segments = summary.segments_cleaned,
                        bytes_before = summary.bytes_before,
                        bytes_after = summary.bytes_after,
                        batches_rewritten = summary.batches_rewritten,
                        keys = summary.keys_mapped,
                        first_dirty_offset = summary.first_dirty_offset,
                        "cleaned log"
                    );
                    let update = [(key, Some(summary.first_dirty_offset))];
                    if let Err(e) = crate::log::write_cleaner_checkpoint(&log_dir, &update) {
                        tracing::warn!("writing the cleaner checkpoint failed: {e}");
                    }
                }
                Err(e) => tracing::warn!(
                    topic = %partition.topic,
                    partition = partition.partition,
                    "log cleaning failed: {e}"
                ),
            }
            glommio::yield_if_needed().await;
        }
        cleaned
    }

    /// Closes every partition cleanly (flush, truncate padding, write indexes). Waits for a
    /// running [`Self::apply_image`] or [`Self::apply_retention`] first.
    pub async fn shutdown(&self) -> Result<(), LogError> {
        let _permit = self
            .applying
            .acquire_permit(1)
            .await
            .expect("semaphore open");
        let partitions = self.partitions();
        self.partitions.borrow_mut().clear();
        let mut first_error = None;
        for partition in partitions {
            if let Err(e) = partition.close().await {
                tracing::error!(topic = %partition.topic, partition = partition.partition, "close failed: {e}");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// The effective config of a topic: broker defaults with the topic's overrides applied.
pub fn topic_config(defaults: &TopicConfig, topic: &crate::metadata::TopicMetadata) -> TopicConfig {
    defaults
        .with_override_map(&topic.configs)
        .unwrap_or_else(|e| {
            tracing::warn!(topic = %topic.name, "ignoring invalid stored topic config: {e}");
            defaults.clone()
        })
}

/// The cleaner settings of one topic (`delete.retention.ms`, `min.cleanable.dirty.ratio`,
/// `min.compaction.lag.ms`, `max.compaction.lag.ms`) and the broker's dedupe buffer.
pub fn cleaner_config(topic: &TopicConfig, broker: &BrokerConfig) -> crate::log::CleanerConfig {
    crate::log::CleanerConfig {
        delete_retention_ms: topic.delete_retention_ms,
        min_cleanable_dirty_ratio: topic.min_cleanable_dirty_ratio.0,
        min_compaction_lag_ms: topic.min_compaction_lag_ms,
        max_compaction_lag_ms: topic.max_compaction_lag_ms,
        dedupe_buffer_bytes: usize::try_from(broker.log_cleaner_dedupe_buffer_size)
            .unwrap_or(usize::MAX),
    }
}

/// Each partition's tail cache bound: `configured`, shared down to fit
/// [`SHARD_CACHE_MAX_BYTES`] among `partitions`.
fn partition_cache_bytes(configured: usize, partitions: usize) -> usize {
    configured.min(SHARD_CACHE_MAX_BYTES / partitions.max(1))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::metadata::TopicStore;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    fn now_ms() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as i64
    }

    fn batch() -> bytes::BytesMut {
        let record = Record {
            delete_horizon: false,
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            // Recent: the default retention.ms (7 days) must keep the "default" topic's records
            // (an expired active segment is deleted, as in Kafka).
            timestamp: now_ms(),
            // A key: the compacted topic refuses keyless records (Kafka's LogValidator).
            key: Some(bytes::Bytes::from_static(b"key")),
            value: Some(bytes::Bytes::from(vec![b'x'; 200])),
            headers: Default::default(),
        };
        let mut buf = bytes::BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, [record].iter(), &options).expect("encode");
        buf
    }

    #[test]
    fn retention_uses_each_topic_config() {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(1 << 20)
            .make()
            .expect("executor")
            .run(async {
                let dir = tempfile::tempdir().expect("tempdir");
                let mut config = BrokerConfig::default();
                config.log_dirs = vec![dir.path().to_path_buf()];
                let config = Arc::new(config);
                let mut store = TopicStore::load(dir.path(), 1).expect("store");
                let small = |policy: &str| {
                    BTreeMap::from([
                        ("segment.bytes".to_string(), "1024".to_string()),
                        ("retention.bytes".to_string(), "1500".to_string()),
                        ("cleanup.policy".to_string(), policy.to_string()),
                    ])
                };
                store
                    .create_topic("trimmed", 1, small("delete"), false)
                    .unwrap();
                store
                    .create_topic("compacted", 1, small("compact"), false)
                    .unwrap();
                store
                    .create_topic("default", 1, BTreeMap::new(), false)
                    .unwrap();
                let manager = ReplicaManager::new(0, config);
                manager.apply_image(&store.image(), &[]).await.unwrap();
                let topics = ["trimmed", "compacted", "default"];
                for topic in topics {
                    let partition = manager.get(topic, 0).expect("open");
                    for _ in 0..20 {
                        // The broker's clock near the records' timestamps (KIP-937 bounds).
                        partition.append(&batch(), now_ms()).expect("append");
                    }
                    partition.wait_written(19).await.expect("written");
                }
                assert!(manager.apply_retention().await > 0);
                let starts: Vec<i64> = topics
                    .iter()
                    .map(|topic| manager.get(topic, 0).unwrap().log_start_offset())
                    .collect();
                assert!(starts[0] > 0, "retention.bytes applied");
                assert_eq!(starts[1..], [0, 0], "compact-only and unlimited keep all");
                let trimmed = manager.get("trimmed", 0).unwrap();
                assert!(trimmed.log().size_bytes() >= 1500);
                assert_eq!(manager.apply_retention().await, 0, "nothing more to delete");
                manager.shutdown().await.expect("shutdown");
            });
    }

    #[test]
    fn partition_cache_bytes_shares_the_shard_bound() {
        let check = |configured, partitions, expected| {
            assert_eq!(partition_cache_bytes(configured, partitions), expected);
        };
        check(4 << 20, 0, 4 << 20);
        check(4 << 20, 4, 4 << 20);
        check(4 << 20, 64, 4 << 20);
        check(4 << 20, 500, SHARD_CACHE_MAX_BYTES / 500);
        check(0, 500, 0);
    }
}
