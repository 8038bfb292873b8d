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

use crate::config::{BrokerConfig, TopicConfig};
use crate::log::LogError;
use crate::metadata::MetadataImage;
use crate::partition::{Partition, PartitionConfig};

/// Owned partitions of one shard.
pub struct ReplicaManager {
    shard_id: usize,
    log_dir: PathBuf,
    config: Arc<BrokerConfig>,
    partitions: RefCell<HashMap<(String, i32), Rc<Partition>>>,
    applying: Semaphore,
}

impl ReplicaManager {
    pub fn new(shard_id: usize, config: Arc<BrokerConfig>) -> ReplicaManager {
        ReplicaManager {
            shard_id,
            log_dir: config.log_dir().to_path_buf(),
            config,
            partitions: RefCell::new(HashMap::new()),
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
        Ok(())
    }

    /// Closes every partition cleanly (flush, truncate padding, write indexes).
    pub async fn shutdown(&self) -> Result<(), LogError> {
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
