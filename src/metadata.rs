//! Topic metadata: names, topic ids, partition -> shard assignment and per-topic config overrides.
//!
//! Shard 0 owns the [`TopicStore`] (the only writer, persisted to
//! `<log.dirs>/ringtail-metadata.json`); every shard holds an immutable [`MetadataImage`] that
//! shard 0 replaces by message after each change. Readers never lock: they clone the `Arc`.
//!
//! Invariants: a topic's partition -> shard mapping is chosen once, when the topic is created, and
//! recorded in the file; topic ids are random v4 UUIDs, never zero (the Java client needs real ids
//! for Fetch v13+); the file is replaced atomically (write, fsync, rename, fsync dir).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::security::scram_credentials::ScramCredentials;

/// File name of the topic metadata inside the first log dir.
pub const METADATA_FILE: &str = "ringtail-metadata.json";
/// Kafka's internal topic for committed offsets and group metadata.
pub const CONSUMER_OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Kafka's topic name limit (`Topic.MAX_NAME_LENGTH`).
pub const TOPIC_NAME_MAX_CHARS: usize = 249;

/// Errors from changing or persisting topic metadata.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    #[error("invalid topic name '{name}': {reason}")]
    InvalidTopicName { name: String, reason: &'static str },
    #[error("invalid partition count {0}: must be between 1 and 100000")]
    InvalidPartitions(i32),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt metadata file {path}: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Where one partition lives.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartitionAssignment {
    pub partition: i32,
    /// The shard that owns this partition's log.
    pub shard: usize,
    /// The partition leader epoch: 0 at creation, +[`LEADER_EPOCH_BUMP_PER_START`] at every
    /// start of the broker (see [`TopicStore::load`]).
    #[serde(default)]
    pub leader_epoch: i32,
}

/// How much each start of the broker raises every partition's leader epoch. A single-node KRaft
/// Kafka 4.1 does the same, clean or not: at shutdown (or when its session lapses) the
/// controller fences the broker and the partition loses its leader (epoch + 1); when the broker
/// registers again it is elected again (epoch + 1). Checked against Kafka by
/// tests/test_admin_apis.py::test_leader_epoch_after_restart.
pub const LEADER_EPOCH_BUMP_PER_START: i32 = 2;

/// One topic as recorded in the metadata file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TopicMetadata {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: Vec<PartitionAssignment>,
    /// Topic-level config overrides by Kafka property name (`segment.bytes`, ...).
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
    /// True for Kafka's internal topics (`__consumer_offsets`), hidden from Metadata unless named.
    #[serde(default)]
    pub internal: bool,
}

impl TopicMetadata {
    /// The owning shard of `partition`, or `None` when the topic has no such partition.
    pub fn shard_of(&self, partition: i32) -> Option<usize> {
        self.partitions
            .get(usize::try_from(partition).ok()?)
            .map(|p| p.shard)
    }
}

#[derive(Serialize, Deserialize)]
struct MetadataFile {
    cluster_id: String,
    topics: Vec<TopicMetadata>,
    /// Dynamic broker configs by broker resource name ("" = cluster default, "<node.id>").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// ACLs (issue 11; CreateAcls / DeleteAcls), see [`AclRecord`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    acls: Vec<AclRecord>,
    /// SCRAM credentials (issue 11): salt, iterations, StoredKey, ServerKey per user and
    /// mechanism; never passwords.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    scram_credentials: ScramCredentials,
}

// ----- ACLs (issue 11): stored here, defined and interpreted by crate::security -----
pub use crate::security::acls::AclRecord;

/// An immutable snapshot of all topics, shared by every shard.
#[derive(Debug, Default)]
pub struct MetadataImage {
    pub cluster_id: String,
    pub topics: BTreeMap<String, Arc<TopicMetadata>>,
    topic_names_by_id: HashMap<Uuid, String>,
    /// Dynamic broker configs (IncrementalAlterConfigs on BROKER resources) by resource name:
    /// "" for the cluster-wide default, "<node.id>" for one broker; Kafka property names.
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Every ACL, sorted, no duplicates (issue 11).
    pub acls: Arc<Vec<AclRecord>>,
    /// Raised by one at every ACL change in this process: lets caches of authorization
    /// results (per connection, `request_handler::authorize`) know they are stale.
    pub acl_version: u64,
    /// SCRAM credentials by user and mechanism (issue 11), read by the SASL/SCRAM server.
    pub scram_credentials: Arc<ScramCredentials>,
}

impl MetadataImage {
    fn new(
        cluster_id: String,
        topics: impl IntoIterator<Item = TopicMetadata>,
        broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    ) -> MetadataImage {
        let topics: BTreeMap<String, Arc<TopicMetadata>> = topics
            .into_iter()
            .map(|t| (t.name.clone(), Arc::new(t)))
            .collect();
        let topic_names_by_id = topics
            .values()
            .map(|t| (t.topic_id, t.name.clone()))
            .collect();
        MetadataImage {
            cluster_id,
            topics,
            topic_names_by_id,
            broker_configs,
            acls: Arc::default(),
            acl_version: 0,
            scram_credentials: Arc::default(),
        }
    }

    /// The dynamic broker configs of resource `name` ("" = cluster default); empty if none.
    pub fn broker_configs(&self, name: &str) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.broker_configs.get(name).unwrap_or(&EMPTY)
    }

    pub fn topic(&self, name: &str) -> Option<&Arc<TopicMetadata>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, topic_id: &Uuid) -> Option<&Arc<TopicMetadata>> {
        self.topic_names_by_id
            .get(topic_id)
            .and_then(|name| self.topics.get(name))
    }

    /// The leader epoch of a partition, if the topic has it.
    pub fn leader_epoch(&self, topic: &str, partition: i32) -> Option<i32> {
        let topic = self.topics.get(topic)?;
        let index = usize::try_from(partition).ok()?;
        topic.partitions.get(index).map(|p| p.leader_epoch)
    }

    /// Every (topic, partition) owned by `shard`.
    pub fn partitions_of_shard(
        &self,
        shard: usize,
    ) -> impl Iterator<Item = (&Arc<TopicMetadata>, i32)> + '_ {
        self.topics.values().flat_map(move |topic| {
            topic
                .partitions
                .iter()
                .filter(move |p| p.shard == shard)
                .map(move |p| (topic, p.partition))
        })
    }
}

/// The single writer of topic metadata; lives on shard 0.
pub struct TopicStore {
    path: PathBuf,
    image: Arc<MetadataImage>,
    shard_count: usize,
}

impl TopicStore {
    /// Loads `<log_dir>/ringtail-metadata.json`, or starts empty with a new cluster id.
    ///
    /// Partitions recorded on a shard beyond `shard_count` (the broker was restarted with fewer
    /// shards) are moved to `shard % shard_count`; their files do not move, only the owner does.
    pub fn load(log_dir: &Path, shard_count: usize) -> Result<TopicStore, MetadataError> {
        let path = log_dir.join(METADATA_FILE);
        let file = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<MetadataFile>(&bytes).map_err(|source| {
                MetadataError::Corrupt {
                    path: path.clone(),
                    source,
                }
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => MetadataFile {
                cluster_id: new_cluster_id(),
                topics: Vec::new(),
                broker_configs: BTreeMap::new(),
                acls: Vec::new(),
                scram_credentials: ScramCredentials::new(),
            },
            Err(source) => {
                return Err(MetadataError::Io {
                    op: "read",
                    path,
                    source,
                })
            }
        };
        let topics = file.topics.into_iter().map(|mut topic| {
            for p in &mut topic.partitions {
                p.shard %= shard_count;
                p.leader_epoch = p.leader_epoch.saturating_add(LEADER_EPOCH_BUMP_PER_START);
            }
            topic
        });
        let mut image = MetadataImage::new(file.cluster_id, topics, file.broker_configs);
        // ACLs replayed from the file (issue 11); sorted and deduplicated as set_acls keeps them.
        let mut acls = file.acls;
        acls.sort();
        acls.dedup();
        image.acls = Arc::new(acls);
        let store = TopicStore {
            image: Arc::new(MetadataImage {
                scram_credentials: Arc::new(file.scram_credentials),
                ..image
            }),
            path,
            shard_count,
        };
        store.persist()?;
        Ok(store)
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.clone()
    }

    /// Adds a topic with `partitions` partitions spread round-robin over the shards, starting at a
    /// shard chosen from the name so that many small topics do not all start on shard 0.
    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        internal: bool,
    ) -> Result<Arc<TopicMetadata>, MetadataError> {
        validate_topic_name(name)?;
        if !(1..=100_000).contains(&partitions) {
            return Err(MetadataError::InvalidPartitions(partitions));
        }
        if self.image.topics.contains_key(name) {
            return Err(MetadataError::TopicExists(name.to_string()));
        }
        let topic = TopicMetadata {
            name: name.to_string(),
            topic_id: Uuid::new_v4(),
            partitions: (0..partitions)
                .map(|partition| self.new_partition(name, partition))
                .collect(),
            configs,
            internal,
        };
        let mut topics: Vec<TopicMetadata> =
            self.image.topics.values().map(|t| (**t).clone()).collect();
        topics.push(topic);
        self.replace(topics)?;
        Ok(self.image.topics[name].clone())
    }

    /// Where partition `partition` of topic `name` goes: round-robin over the shards from a
    /// shard chosen by the name (so many small topics do not all start on shard 0); the same rule
    /// for partitions added later (CreatePartitions). Leader epoch 0.
    fn new_partition(&self, name: &str, partition: i32) -> PartitionAssignment {
        let first_shard = name.bytes().map(usize::from).sum::<usize>() % self.shard_count;
        PartitionAssignment {
            partition,
            shard: (first_shard + partition as usize) % self.shard_count,
            leader_epoch: 0,
        }
    }

    /// Grows topic `name` to `count` partitions (CreatePartitions), placing the new ones by
    /// [`Self::new_partition`]'s rule; existing partitions keep their shard and epoch.
    pub fn create_partitions(
        &mut self,
        name: &str,
        count: i32,
    ) -> Result<Arc<TopicMetadata>, MetadataError> {
        let current = self
            .image
            .topics
            .get(name)
            .cloned()
            .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        let existing = current.partitions.len() as i32;
        if count <= existing || count > 100_000 {
            return Err(MetadataError::InvalidPartitions(count));
        }
        let mut grown = (*current).clone();
        grown
            .partitions
            .extend((existing..count).map(|partition| self.new_partition(name, partition)));
        let topics = self
            .image
            .topics
            .values()
            .map(|t| {
                if t.name == name {
                    grown.clone()
                } else {
                    (**t).clone()
                }
            })
            .collect();
        self.replace(topics)?;
        Ok(self.image.topics[name].clone())
    }

    /// Removes a topic; its partitions are deleted by their shards when the new image arrives.
    pub fn delete_topic(&mut self, name: &str) -> Result<Arc<TopicMetadata>, MetadataError> {
        let removed = self
            .image
            .topics
            .get(name)
            .cloned()
            .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        let topics = self
            .image
            .topics
            .values()
            .filter(|t| t.name != name)
            .map(|t| (**t).clone())
            .collect();
        self.replace(topics)?;
        Ok(removed)
    }

    /// Replaces the config overrides of topic `name` (IncrementalAlterConfigs / AlterConfigs);
    /// persisted before it returns.
    pub fn set_topic_configs(
        &mut self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), MetadataError> {
        if !self.image.topics.contains_key(name) {
            return Err(MetadataError::UnknownTopic(name.to_string()));
        }
        let topics = self
            .image
            .topics
            .values()
            .map(|t| {
                let mut topic = (**t).clone();
                if topic.name == name {
                    topic.configs = configs.clone();
                }
                topic
            })
            .collect();
        self.replace(topics)
    }

    /// Replaces the dynamic broker configs of broker resource `resource` ("" = cluster
    /// default); an empty map removes the resource. Persisted before it returns.
    pub fn set_broker_configs(
        &mut self,
        resource: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), MetadataError> {
        let topics = self.image.topics.values().map(|t| (**t).clone()).collect();
        let mut broker_configs = self.image.broker_configs.clone();
        if configs.is_empty() {
            broker_configs.remove(resource);
        } else {
            broker_configs.insert(resource.to_string(), configs);
        }
        self.replace_all(topics, broker_configs)
    }

    /// Replaces the whole ACL set (CreateAcls / DeleteAcls on shard 0); sorted and
    /// deduplicated here, persisted before it returns, `acl_version` raised.
    pub fn set_acls(&mut self, mut acls: Vec<AclRecord>) -> Result<(), MetadataError> {
        acls.sort();
        acls.dedup();
        let previous = self.image.clone();
        let mut image = MetadataImage::new(
            previous.cluster_id.clone(),
            previous.topics.values().map(|t| (**t).clone()),
            previous.broker_configs.clone(),
        );
        image.acls = Arc::new(acls);
        image.acl_version = previous.acl_version + 1;
        image.scram_credentials = previous.scram_credentials.clone();
        self.image = Arc::new(image);
        if let Err(e) = self.persist() {
            self.image = previous;
            return Err(e);
        }
        Ok(())
    }

    /// Replaces every SCRAM credential (AlterUserScramCredentials, `storage add-scram`).
    /// Persisted before it returns; on error nothing changed.
    pub fn set_scram_credentials(
        &mut self,
        credentials: ScramCredentials,
    ) -> Result<(), MetadataError> {
        let previous = self.image.clone();
        self.image = Arc::new(MetadataImage {
            cluster_id: previous.cluster_id.clone(),
            topics: previous.topics.clone(),
            topic_names_by_id: previous.topic_names_by_id.clone(),
            broker_configs: previous.broker_configs.clone(),
            scram_credentials: Arc::new(credentials),
            acls: previous.acls.clone(),
            acl_version: previous.acl_version,
        });
        if let Err(e) = self.persist() {
            self.image = previous;
            return Err(e);
        }
        Ok(())
    }

    fn replace(&mut self, topics: Vec<TopicMetadata>) -> Result<(), MetadataError> {
        let broker_configs = self.image.broker_configs.clone();
        self.replace_all(topics, broker_configs)
    }

    fn replace_all(
        &mut self,
        topics: Vec<TopicMetadata>,
        broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<(), MetadataError> {
        let previous = self.image.clone();
        let mut image = MetadataImage::new(previous.cluster_id.clone(), topics, broker_configs);
        image.acls = previous.acls.clone();
        image.acl_version = previous.acl_version;
        image.scram_credentials = previous.scram_credentials.clone();
        self.image = Arc::new(image);
        if let Err(e) = self.persist() {
            self.image = previous;
            return Err(e);
        }
        Ok(())
    }

    /// Writes the file atomically. Small and rare (topic create/delete), so std::fs is used.
    fn persist(&self) -> Result<(), MetadataError> {
        let file = MetadataFile {
            cluster_id: self.image.cluster_id.clone(),
            topics: self.image.topics.values().map(|t| (**t).clone()).collect(),
            broker_configs: self.image.broker_configs.clone(),
            acls: (*self.image.acls).clone(),
            scram_credentials: (*self.image.scram_credentials).clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("metadata serializes");
        write_atomically(&self.path, &bytes)
    }
}

/// Writes `bytes` to `path` via a temp file, fsync and rename, then fsyncs the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), MetadataError> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| MetadataError::Io { op, path, source }
    };
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp).map_err(io("create", &tmp))?;
    file.write_all(bytes).map_err(io("write", &tmp))?;
    file.sync_all().map_err(io("fsync", &tmp))?;
    fs::rename(&tmp, path).map_err(io("rename", path))?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync", dir))?;
    }
    Ok(())
}

/// Kafka's topic name rule (`Topic.validate`): 1-249 chars of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    let invalid = |reason| MetadataError::InvalidTopicName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("the name is empty"));
    }
    if name == "." || name == ".." {
        return Err(invalid("'.' and '..' are not allowed"));
    }
    if name.len() > TOPIC_NAME_MAX_CHARS {
        return Err(invalid("longer than 249 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(invalid(
            "only ASCII letters, digits, '.', '_' and '-' are allowed",
        ));
    }
    Ok(())
}

/// A cluster id like Kafka's: a random UUID, URL-safe base64 without padding (22 chars); also
/// the `directory.id` of each log dir's `meta.properties` (KIP-858 ids are the same kind).
pub fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let value = Uuid::new_v4().as_u128();
    (0..22)
        .map(|i| ALPHABET[((value >> (i * 6)) & 63) as usize] as char)
        .collect()
}

/// Adds SCRAM credentials to `<log_dir>/ringtail-metadata.json` (creating the file, with a new
/// cluster id, when the broker never started there): `ringtail storage add-scram`, Ringtail's
/// `kafka-storage format --add-scram`. The broker must not be running (it owns the file);
/// credentials of the same user and mechanism are replaced. Topics and everything else in the
/// file are kept as they are.
pub fn add_scram_credentials(
    log_dir: &Path,
    credentials: Vec<(
        String,
        crate::security::scram_credentials::ScramMechanism,
        crate::security::scram_credentials::ScramCredential,
    )>,
) -> Result<(), MetadataError> {
    fs::create_dir_all(log_dir).map_err(|source| MetadataError::Io {
        op: "create",
        path: log_dir.to_path_buf(),
        source,
    })?;
    let path = log_dir.join(METADATA_FILE);
    let mut file = match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<MetadataFile>(&bytes).map_err(|source| {
            MetadataError::Corrupt {
                path: path.clone(),
                source,
            }
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => MetadataFile {
            cluster_id: new_cluster_id(),
            topics: Vec::new(),
            broker_configs: BTreeMap::new(),
            scram_credentials: ScramCredentials::new(),
            acls: Vec::new(),
        },
        Err(source) => {
            return Err(MetadataError::Io {
                op: "read",
                path,
                source,
            })
        }
    };
    for (user, mechanism, credential) in credentials {
        file.scram_credentials
            .entry(user)
            .or_default()
            .insert(mechanism, credential);
    }
    let bytes = serde_json::to_vec_pretty(&file).expect("metadata serializes");
    write_atomically(&path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        let check = |name: &str, ok: bool| {
            assert_eq!(validate_topic_name(name).is_ok(), ok, "{name:?}");
        };
        check("orders", true);
        check("a.b_c-D9", true);
        check("", false);
        check(".", false);
        check("..", false);
        check("has space", false);
        check(&"x".repeat(249), true);
        check(&"x".repeat(250), false);
    }

    #[test]
    fn store_round_trips_and_spreads_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = TopicStore::load(dir.path(), 2).unwrap();
        let topic = store
            .create_topic("events", 8, BTreeMap::new(), false)
            .unwrap();
        let shards: Vec<usize> = topic.partitions.iter().map(|p| p.shard).collect();
        assert!(shards.contains(&0) && shards.contains(&1));
        assert!(store
            .create_topic("events", 1, BTreeMap::new(), false)
            .is_err());
        let reloaded = TopicStore::load(dir.path(), 2).unwrap();
        let again = reloaded.image().topic("events").unwrap().clone();
        assert_eq!(again.topic_id, topic.topic_id);
        let placement = |t: &TopicMetadata| -> Vec<(i32, usize)> {
            t.partitions
                .iter()
                .map(|p| (p.partition, p.shard))
                .collect()
        };
        assert_eq!(placement(&again), placement(&topic));
        assert!(again
            .partitions
            .iter()
            .all(|p| p.leader_epoch == LEADER_EPOCH_BUMP_PER_START));
        assert_eq!(reloaded.image().cluster_id, store.image().cluster_id);
        assert!(reloaded.image().topic_by_id(&topic.topic_id).is_some());
    }
}
