//! The partitions one shard owns, keyed by (topic, partition).
//!
//! Partitions appear and disappear only through [`ReplicaManager::apply_image`], which runs one
//! at a time per shard (a semaphore) so a partition is never opened twice. A topic deleted and
//! re-created under the same name is told apart by its topic id.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

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

/// Owned partitions of one shard.
pub struct ReplicaManager {
    shard_id: usize,
    log_dir: PathBuf,
    config: Arc<BrokerConfig>,
    partitions: RefCell<HashMap<(String, i32), Rc<Partition>>>,
    /// The latest metadata of each topic with a partition here (topic config overrides).
    topics: RefCell<HashMap<String, Arc<TopicMetadata>>>,
    /// Held while partitions are opened, deleted, closed or trimmed by retention.
    applying: Semaphore,
}

impl ReplicaManager {
    pub fn new(shard_id: usize, config: Arc<BrokerConfig>) -> ReplicaManager {
        ReplicaManager {
            shard_id,
            log_dir: config.log_dir().to_path_buf(),
            config,
            partitions: RefCell::new(HashMap::new()),
            topics: RefCell::new(HashMap::new()),
            applying: Semaphore::new(1),
        }
    }

    /// The partition if this shard owns it and it is open.
    pub fn get(&self, topic: &str, partition: i32) -> Option<Rc<Partition>> {
        self.partitions
            .borrow()
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    pub fn partition_count(&self) -> usize {
        self.partitions.borrow().len()
    }

    /// Opens every partition the image assigns to this shard that is not open yet (recovering
    /// when `recover`), and closes and deletes the ones whose topic is gone.
    pub async fn apply_image(&self, image: &MetadataImage, recover: bool) -> Result<(), LogError> {
        let _permit = self
            .applying
            .acquire_permit(1)
            .await
            .expect("semaphore open");
        let removed: Vec<Rc<Partition>> = self
            .partitions
            .borrow()
            .values()
            .filter(|p| {
                image.topic(&p.topic).is_none_or(|t| {
                    t.topic_id != p.topic_id || t.shard_of(p.partition) != Some(self.shard_id)
                })
            })
            .cloned()
            .collect();
        for partition in removed {
            self.partitions
                .borrow_mut()
                .remove(&(partition.topic.clone(), partition.partition));
            tracing::info!(topic = %partition.topic, partition = partition.partition, "deleting partition");
            partition.log().delete().await?;
        }
        let defaults = self.config.default_topic_config();
        *self.topics.borrow_mut() = image
            .partitions_of_shard(self.shard_id)
            .map(|(topic, _)| (topic.name.clone(), topic.clone()))
            .collect();
        for (topic, partition) in image.partitions_of_shard(self.shard_id) {
            if self.get(&topic.name, partition).is_some() {
                continue;
            }
            let topic_config = topic_config(&defaults, topic);
            let dir = self.log_dir.join(format!("{}-{}", topic.name, partition));
            let opened = Partition::open(
                &topic.name,
                partition,
                topic.topic_id,
                dir,
                PartitionConfig::new(&topic_config, self.config.partition_cache_bytes as usize),
                recover,
            )
            .await?;
            self.partitions
                .borrow_mut()
                .insert((topic.name.clone(), partition), opened);
        }
        let partitions = self.partitions.borrow();
        let cache_bytes =
            partition_cache_bytes(self.config.partition_cache_bytes as usize, partitions.len());
        for partition in partitions.values() {
            partition.set_cache_bytes(cache_bytes);
        }
        Ok(())
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
        let defaults = self.config.default_topic_config();
        let targets: Vec<(Rc<Partition>, TopicConfig)> = {
            let topics = self.topics.borrow();
            self.partitions
                .borrow()
                .values()
                .filter_map(|partition| {
                    let topic = topics.get(&partition.topic)?;
                    Some((partition.clone(), topic_config(&defaults, topic)))
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

    /// Closes every partition cleanly (flush, truncate padding, write indexes). Waits for a
    /// running [`Self::apply_image`] or [`Self::apply_retention`] first.
    pub async fn shutdown(&self) -> Result<(), LogError> {
        let _permit = self
            .applying
            .acquire_permit(1)
            .await
            .expect("semaphore open");
        let partitions: Vec<Rc<Partition>> = self
            .partitions
            .borrow_mut()
            .drain()
            .map(|(_, p)| p)
            .collect();
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
            timestamp: 1_700_000_000_000,
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
                manager.apply_image(&store.image(), false).await.unwrap();
                let topics = ["trimmed", "compacted", "default"];
                for topic in topics {
                    let partition = manager.get(topic, 0).expect("open");
                    for _ in 0..20 {
                        // The broker's clock near the records' timestamps (KIP-937 bounds).
                        partition
                            .append(&batch(), 1_700_000_000_000)
                            .expect("append");
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
