//! DescribeLogDirs (key 35), v1-4: every log dir of `log.dirs` (JBOD), in that order, with each
//! of its partitions' size in bytes (all its segments) and offset lag 0 (no future replica:
//! `is_future_key` false), and v4's total/usable bytes of its file system (statvfs, as Kafka's
//! `FileStore.getTotalSpace` / `getUsableSpace`). An offline dir (after a storage error) is
//! listed with KAFKA_STORAGE_ERROR and no partitions, as Kafka's
//! `ReplicaManager.describeLogDirs` lists its offline dirs. Topic filter as Kafka's `ReplicaManager.describeLogDirs`: null = every
//! partition, otherwise only the named partitions this broker holds (unknown ones are left out).
//! Sizes are collected on each owning shard via the shard mesh. The group coordinator's
//! `__consumer_offsets` partitions are not listed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use futures::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::authorize;
use crate::security::authorizer::{AclOperation, ResourceType};
use crate::security::Session;
use crate::shard::{self, ShardContext};

/// ACLs: DESCRIBE on the cluster, else CLUSTER_AUTHORIZATION_FAILED and no results.
pub async fn handle(
    ctx: Rc<ShardContext>,
    session: Rc<Session>,
    request: DescribeLogDirsRequest,
    _version: i16,
) -> DescribeLogDirsResponse {
    if !authorize::authorize(
        &ctx,
        &session,
        AclOperation::Describe,
        ResourceType::Cluster,
        authorize::CLUSTER_NAME,
    ) {
        return DescribeLogDirsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    // None: every partition; Some: only these (topic, partition) pairs.
    let wanted: Option<Vec<(String, i32)>> = request.topics.map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|&p| (t.topic.to_string(), p)))
            .collect()
    });
    let per_shard = (0..ctx.shard_count).map(|shard| {
        let wanted = wanted.clone();
        shard::invoke_on(shard, move |ctx| {
            Box::pin(async move { partition_sizes(&ctx, wanted.as_deref()) })
        })
    });
    // log dir -> topic -> partitions
    let mut by_dir: BTreeMap<PathBuf, BTreeMap<String, Vec<DescribeLogDirsPartition>>> =
        BTreeMap::new();
    for (topic, partition, size_bytes, dir) in join_all(per_shard).await.into_iter().flatten() {
        by_dir
            .entry(dir)
            .or_default()
            .entry(topic)
            .or_default()
            .push(
                DescribeLogDirsPartition::default()
                    .with_partition_index(partition)
                    .with_partition_size(size_bytes as i64)
                    .with_offset_lag(0)
                    .with_is_future_key(false),
            );
    }
    let status = crate::log::log_dirs::snapshot(&ctx.config.log_dirs);
    let results = ctx
        .config
        .log_dirs
        .iter()
        .map(|log_dir| {
            let dir_name = StrBytes::from_string(log_dir.display().to_string());
            let offline = status
                .iter()
                .find(|d| &d.path == log_dir)
                .and_then(|d| d.offline.as_ref());
            if offline.is_some() {
                return DescribeLogDirsResult::default()
                    .with_error_code(ResponseError::KafkaStorageError.code())
                    .with_log_dir(dir_name);
            }
            let (total_bytes, usable_bytes) = file_system_bytes(log_dir).unwrap_or((-1, -1));
            let topics = by_dir.remove(log_dir).unwrap_or_default();
            DescribeLogDirsResult::default()
                .with_log_dir(dir_name)
                .with_total_bytes(total_bytes)
                .with_usable_bytes(usable_bytes)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(name, mut partitions)| {
                            partitions.sort_by_key(|p| p.partition_index);
                            DescribeLogDirsTopic::default()
                                .with_name(TopicName(StrBytes::from_string(name)))
                                .with_partitions(partitions)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeLogDirsResponse::default().with_results(results)
}

/// `(topic, partition, size in bytes, log dir)` of the online partitions this shard owns,
/// filtered by `wanted`.
fn partition_sizes(
    ctx: &ShardContext,
    wanted: Option<&[(String, i32)]>,
) -> Vec<(String, i32, u64, PathBuf)> {
    let image = ctx.metadata();
    image
        .partitions_of_shard(ctx.shard_id)
        .filter(|(topic, partition)| {
            wanted.is_none_or(|w| w.iter().any(|(t, p)| *t == topic.name && p == partition))
        })
        .filter_map(|(topic, partition)| {
            let opened = ctx.replica_manager.get(&topic.name, partition)?;
            if opened.is_offline() {
                return None;
            }
            Some((
                topic.name.clone(),
                partition,
                opened.log().size_bytes(),
                opened.log_dir().to_path_buf(),
            ))
        })
        .collect()
}

/// Total and usable (available to unprivileged users) bytes of the file system holding `path`.
fn file_system_bytes(path: &Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a valid NUL-terminated string and stat a writable statvfs.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        tracing::warn!(path = %path.display(), "statvfs failed: {}", std::io::Error::last_os_error());
        return None;
    }
    let block = stat.f_frsize as i64;
    Some((stat.f_blocks as i64 * block, stat.f_bavail as i64 * block))
}
