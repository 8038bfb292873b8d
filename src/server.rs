//! Process start-up and shutdown: the log dir, the locked-memory limit, Kafka's marker files,
//! one executor thread per shard, signals.
//!
//! Start-up: check/raise `RLIMIT_MEMLOCK` (io_uring registered buffers count against it), load
//! topic metadata, note whether the last shutdown was clean (`.kafka_cleanshutdown`, Kafka's
//! marker) and remove the marker, start the shards, each opening (and, after an unclean stop,
//! recovering) its partitions before it accepts connections. Shutdown on SIGTERM/SIGINT: stop
//! accepting, close every partition (flush, indexes), then write the marker again.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};

use crate::config::BrokerConfig;
use crate::group_coordinator::{GroupCoordinator, GroupSettings, OffsetsLogSettings};
use crate::metadata::{MetadataImage, TopicStore};
use crate::metrics::health;
use crate::replica_manager::ReplicaManager;
use crate::shard::{self, MeshEnds, ShardContext, ShardId, ShardParts};
use crate::transaction_coordinator::{
    TransactionCoordinator, TransactionLogSettings, TransactionSettings,
};

/// Kafka's clean-shutdown marker file in the log dir.
pub const CLEAN_SHUTDOWN_MARKER: &str = ".kafka_cleanshutdown";
/// Locked memory per shard beyond `ringtail.io.memory.bytes`: io_uring rings and slack, bytes.
const MEMLOCK_SLACK_PER_SHARD: u64 = 2 << 20;
/// How often shards, and the main thread during start-up, look at the shutdown flag.
const SHUTDOWN_POLL: Duration = Duration::from_millis(50);
/// How long after SIGTERM/SIGINT the shards have to stop (finish opening if the signal came
/// during start-up, then close every partition) before the process exits with status 1 and
/// without the clean-shutdown marker, so the next start recovers the logs.
const STOP_GRACE: Duration = Duration::from_secs(60);

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `RLIMIT_MEMLOCK` is below what the shards' io_uring buffers need and could not be raised.
    #[error(
        "locked memory limit too small: io_uring needs {needed_kib} KiB for {shards} shard(s) \
         but `ulimit -l` is {limit_kib} KiB and raising it failed ({reason}). Fix: run \
         `ulimit -l {needed_kib}` (or `unlimited`) before starting, set `LimitMEMLOCK=infinity` \
         in the systemd unit, or lower --shards / ringtail.io.memory.bytes"
    )]
    MemlockTooSmall {
        needed_kib: u64,
        limit_kib: u64,
        shards: usize,
        reason: String,
    },
    /// A shard's glommio executor (its io_uring rings) could not be created.
    #[error(
        "could not start the io_uring executor for shard {shard}: {reason}. io_uring must be \
         available (Linux 5.8+, not disabled by kernel.io_uring_disabled or a seccomp filter) \
         and `ulimit -l` large enough"
    )]
    IoUring { shard: usize, reason: String },
    /// The SASL settings of a SASL listener are invalid or name an unsupported mechanism.
    #[error("SASL configuration: {0}")]
    Sasl(String),
    /// Creating, reading or syncing the log dir or a marker file in it failed.
    #[error("log dir {path}: {source}")]
    LogDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The topic metadata file could not be loaded or `meta.properties` not written.
    #[error(transparent)]
    Metadata(#[from] crate::metadata::MetadataError),
    /// A TLS listener's `ssl.*` settings are invalid (issue 11).
    #[error("TLS: {0}")]
    Tls(String),
    /// `meta.properties` exists but is not a valid one for this node (Kafka's
    /// `MetaProperties` / `MetaPropertiesEnsemble.verify`: Kafka refuses to start too).
    #[error("{path}: {reason}")]
    MetaProperties { path: PathBuf, reason: String },
    /// A shard could not open its partitions or groups, or bind the listener.
    #[error("shard {shard} failed to start: {reason}")]
    Shard { shard: usize, reason: String },
    /// The `log.dirs` entries do not belong together (duplicates, a partition in two of them,
    /// `meta.properties` of another cluster or node), as Kafka's start-up checks refuse them.
    #[error("log.dirs: {0}")]
    LogDirs(String),
}

/// Starts every shard and blocks until shutdown (SIGTERM/SIGINT). Returns after a clean
/// shutdown; a [`StartError`] if the log dir, the locked-memory limit, the topic metadata or a
/// shard's start-up failed, or writing the clean-shutdown marker at the end did.
pub fn run(config: BrokerConfig) -> Result<(), StartError> {
    // First, so that a signal at any point of start-up (the first log line included) is seen:
    // from here on SIGTERM/SIGINT stop the broker cleanly instead of killing it.
    let shutdown = Arc::new(AtomicBool::new(false));
    register_signals(shutdown.clone());
    for (setting, why) in config.ignored_settings() {
        tracing::warn!("ignoring Kafka setting {setting}: {why}");
    }
    // TLS (issue 11): bad key/trust stores or passwords stop start-up, naming the setting.
    let (_, tls_warnings) =
        crate::security::tls::build_all(&config).map_err(|e| StartError::Tls(e.to_string()))?;
    for warning in tls_warnings {
        tracing::warn!("{warning}");
    }
    crate::security::sasl::validate(&config).map_err(StartError::Sasl)?;
    let LogDirState {
        config,
        recover_dirs,
        store,
    } = open_log_dir(config)?;
    let recover = !recover_dirs.is_empty();
    for warning in config.consumer_group_warnings() {
        tracing::warn!("{warning}");
    }
    for warning in config.cleaner_warnings() {
        tracing::warn!("{warning}");
    }
    let shard_count = config.shard_count();
    if shutdown.load(Ordering::SeqCst) {
        // No partition was opened: the logs are as the marker (if there was one) described.
        if !recover {
            write_clean_shutdown_markers(&config)?;
        }
        tracing::info!("shutdown requested before the shards started");
        return Ok(());
    }
    crate::metrics::health::init(shard_count, recover);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<ShardId, StartError>>();
    let (stopped_tx, stopped_rx) = mpsc::channel::<ShardId>();
    let handles = spawn_shards(
        &config,
        store,
        recover_dirs,
        &shutdown,
        ready_tx,
        stopped_tx,
    )?;
    if wait_until_ready(&ready_rx, shard_count, &shutdown)? {
        let listener = &config.listeners[0];
        tracing::info!(
            "ringtail listening on {}:{} with {} shard(s), log dirs {}",
            listener.host,
            listener.port,
            shard_count,
            config
                .log_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        for listener in &config.listeners {
            tracing::info!(
                "listener {} ({}) on {}:{}",
                listener.name,
                listener.security_protocol.name(),
                listener.host,
                listener.port
            );
        }
    } else {
        tracing::info!("shutdown requested during start-up: stopping the shards");
    }
    if !wait_until_stopped(&stopped_rx, shard_count, &shutdown) {
        tracing::error!(
            "the shards did not stop within {} s of the shutdown signal: exiting without the \
             clean-shutdown marker (the next start recovers the logs)",
            STOP_GRACE.as_secs()
        );
        std::process::exit(1);
    }
    if join_shards(handles) {
        write_clean_shutdown_markers(&config)?;
        tracing::info!("clean shutdown complete");
    }
    Ok(())
}

/// What start-up learned from the log dir before any shard runs.
struct LogDirState {
    /// The configuration with `log.dirs` made absolute.
    config: Arc<BrokerConfig>,
    /// The log dirs without a clean-shutdown marker: the shards recover the partition logs in
    /// them (Kafka's `LogManager.loadLogs` decides per dir too).
    recover_dirs: Arc<Vec<PathBuf>>,
    store: TopicStore,
}

/// The steps before the shards start: make the log dir absolute, raise the locked-memory limit,
/// take the clean-shutdown marker, load topic metadata, write `meta.properties`.
fn open_log_dir(mut config: BrokerConfig) -> Result<LogDirState, StartError> {
    // Every file path below is absolute: glommio opens directories (for the fsync that makes a
    // new segment's name durable) with openat on an absolute path, and a relative one such as
    // the default `./data` fails there with EBADF.
    let mut dirs = Vec::with_capacity(config.log_dirs.len());
    for dir in &config.log_dirs {
        let absolute = absolute_log_dir(dir)?;
        if dirs.contains(&absolute) {
            return Err(StartError::LogDirs(format!(
                "duplicate log directory {} ({})",
                absolute.display(),
                dir.display()
            )));
        }
        dirs.push(absolute);
    }
    config.log_dirs = dirs.clone();
    let log_dir = dirs[0].clone();
    let config = Arc::new(config);
    let shard_count = config.shard_count();
    ensure_memlock(shard_count, config.io_memory_bytes)?;
    raise_open_files_limit();
    // Kafka keeps a clean-shutdown marker per log dir; a dir without one is recovered (each
    // takes its marker, so none is left behind).
    let mut recover_dirs = Vec::new();
    for dir in &dirs {
        if !take_clean_shutdown_marker(dir)? {
            tracing::info!(dir = %dir.display(), "no clean-shutdown marker: recovering partition logs");
            recover_dirs.push(dir.clone());
        }
    }
    let store = TopicStore::load(&log_dir, shard_count)?;
    let mut registered = Vec::with_capacity(dirs.len());
    for dir in &dirs {
        check_meta_properties(dir, config.node_id)?;
        let directory_id = write_meta_properties(dir, &store.image().cluster_id, config.node_id)?;
        registered.push((dir.clone(), directory_id));
    }
    crate::log::log_dirs::register(&registered).map_err(StartError::LogDirs)?;
    Ok(LogDirState {
        config,
        recover_dirs: Arc::new(recover_dirs),
        store,
    })
}

/// Starts one executor thread per shard running [`run_shard`], shard i pinned to CPU i when
/// there are at least as many CPUs as shards. Shard 0 gets the topic store.
fn spawn_shards(
    config: &Arc<BrokerConfig>,
    store: TopicStore,
    recover_dirs: Arc<Vec<PathBuf>>,
    shutdown: &Arc<AtomicBool>,
    ready_tx: mpsc::Sender<Result<ShardId, StartError>>,
    stopped_tx: mpsc::Sender<ShardId>,
) -> Result<Vec<ExecutorJoinHandle<()>>, StartError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let shard_count = config.shard_count();
    let image = store.image();
    let mut store = Some(store);
    let mut mesh = shard::mesh(shard_count).into_iter();
    let first_producer_id = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as i64))
        << 16;

    let mut handles = Vec::with_capacity(shard_count);
    for shard_id in 0..shard_count {
        let mesh = mesh.next().expect("one mesh end per shard");
        let config = config.clone();
        let image = image.clone();
        let shutdown = shutdown.clone();
        let recover_dirs = recover_dirs.clone();
        let ready = ready_tx.clone();
        let stopped = StoppedGuard {
            shard_id,
            sender: stopped_tx.clone(),
        };
        let store = if shard_id == 0 { store.take() } else { None };
        let placement = if shard_count <= cores {
            Placement::Fixed(shard_id)
        } else {
            Placement::Unbound
        };
        let builder = LocalExecutorBuilder::new(placement)
            .name(&format!("shard-{shard_id}"))
            .io_memory(config.io_memory_bytes as usize)
            .ring_depth(256)
            .preempt_timer(Duration::from_millis(10));
        let handle = builder
            .spawn(move || async move {
                // Moved in: reports the end of this executor's future, even if it panics.
                let _stopped = stopped;
                // First, before anything can be runnable: see keep_awake for the glommio bug.
                shard::keep_awake();
                let start = ShardStart {
                    shard_id,
                    shard_count,
                    config,
                    image,
                    store,
                    mesh,
                    recover_dirs,
                    first_producer_id,
                };
                if let Err(e) = run_shard(start, shutdown, ready).await {
                    tracing::error!(shard = shard_id, "{e}");
                }
            })
            .map_err(|e| StartError::IoUring {
                shard: shard_id,
                reason: e.to_string(),
            })?;
        handles.push(handle);
    }
    Ok(handles)
}

/// Waits until every shard has reported its start-up: true then, false if SIGTERM/SIGINT came
/// first (the shards see the flag themselves, finish opening and close). On the first failure
/// sets the shutdown flag, so the shards that started stop, and returns it.
fn wait_until_ready(
    ready_rx: &mpsc::Receiver<Result<ShardId, StartError>>,
    shard_count: usize,
    shutdown: &AtomicBool,
) -> Result<bool, StartError> {
    let mut ready = 0;
    while ready < shard_count {
        if shutdown.load(Ordering::SeqCst) {
            return Ok(false);
        }
        match ready_rx.recv_timeout(SHUTDOWN_POLL) {
            Ok(Ok(_)) => ready += 1,
            Ok(Err(e)) => {
                shutdown.store(true, Ordering::SeqCst);
                return Err(e);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(StartError::IoUring {
                    shard: 0,
                    reason: "an executor thread exited during start-up (io_uring setup failed?)"
                        .to_string(),
                })
            }
        }
    }
    Ok(true)
}

/// Sends its shard id on `sender` when dropped: the end of a shard's executor future, however
/// it ended.
struct StoppedGuard {
    shard_id: ShardId,
    sender: mpsc::Sender<ShardId>,
}

impl Drop for StoppedGuard {
    fn drop(&mut self) {
        let _ = self.sender.send(self.shard_id);
    }
}

/// Waits until every shard's executor future has ended: true then; false if they have not
/// within [`STOP_GRACE`] of the shutdown flag being set.
fn wait_until_stopped(
    stopped_rx: &mpsc::Receiver<ShardId>,
    shard_count: usize,
    shutdown: &AtomicBool,
) -> bool {
    let mut stopped = 0;
    let mut deadline: Option<Instant> = None;
    while stopped < shard_count {
        if deadline.is_none() && shutdown.load(Ordering::SeqCst) {
            deadline = Some(Instant::now() + STOP_GRACE);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        match stopped_rx.recv_timeout(SHUTDOWN_POLL) {
            Ok(_) => stopped += 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Every guard is gone: every shard's future ended (or never ran).
            Err(mpsc::RecvTimeoutError::Disconnected) => return true,
        }
    }
    true
}

/// Waits for every shard thread to end; false if one stopped abnormally.
fn join_shards(handles: Vec<ExecutorJoinHandle<()>>) -> bool {
    let mut clean = true;
    for (shard, handle) in handles.into_iter().enumerate() {
        if let Err(e) = handle.join() {
            tracing::error!(shard, "shard stopped abnormally: {e}");
            clean = false;
        }
    }
    clean
}

/// What a shard starts from, moved to its executor thread.
struct ShardStart {
    shard_id: ShardId,
    shard_count: usize,
    config: Arc<BrokerConfig>,
    image: Arc<MetadataImage>,
    store: Option<TopicStore>,
    mesh: MeshEnds,
    /// The log dirs whose partitions are recovered (no clean-shutdown marker).
    recover_dirs: Arc<Vec<PathBuf>>,
    first_producer_id: i64,
}

/// One shard's life on its executor: open it, report ready (or why not) on `ready`, accept
/// connections until `shutdown` is set, then close its groups and partitions.
async fn run_shard(
    start: ShardStart,
    shutdown: Arc<AtomicBool>,
    ready: mpsc::Sender<Result<ShardId, StartError>>,
) -> Result<(), String> {
    let shard_id = start.shard_id;
    // Shard 0 serves HTTP from the start, so /healthz reports recovery while it runs.
    let http = if shard_id == 0 {
        match crate::http::start(&start.config).await {
            Ok(http) => http,
            Err(e) => {
                let reason = e.to_string();
                let _ = ready.send(Err(StartError::Shard {
                    shard: shard_id,
                    reason: reason.clone(),
                }));
                return Err(reason);
            }
        }
    } else {
        None
    };
    let (ctx, listeners) = match open_shard(start, &shutdown).await {
        Ok(opened) => opened,
        Err(reason) => {
            let _ = ready.send(Err(StartError::Shard {
                shard: shard_id,
                reason: reason.clone(),
            }));
            return Err(reason);
        }
    };
    tracing::debug!(
        shard = shard_id,
        partitions = ctx.replica_manager.partition_count(),
        "shard ready"
    );
    let _ = ready.send(Ok(shard_id));
    health::set_phase(shard_id, health::ShardPhase::Ready);
    serve_until_shutdown(&ctx, listeners, &shutdown).await;
    health::set_phase(shard_id, health::ShardPhase::Stopping);
    if let Some(http) = http {
        http.stop();
    }
    close_shard(&ctx).await
}

/// Everything before a shard accepts connections, in this order: connect the mesh and install
/// the context; open (after an unclean stop, recover) its partitions; start retention; start
/// running what other shards send; load its consumer groups; bind the listener.
async fn open_shard(
    start: ShardStart,
    shutdown: &Arc<AtomicBool>,
) -> Result<(Rc<ShardContext>, Vec<crate::network::BoundListener>), String> {
    let shard_id = start.shard_id;
    let parts = ShardParts {
        shard_id,
        shard_count: start.shard_count,
        replica_manager: ReplicaManager::new(shard_id, start.config.clone()),
        group_coordinator: GroupCoordinator::new(
            shard_id,
            start.shard_count,
            group_settings(&start.config),
            start.config.log_dir().to_path_buf(),
            offsets_log_settings(&start.config),
        ),
        transaction_coordinator: TransactionCoordinator::new(
            shard_id,
            start.shard_count,
            transaction_settings(&start.config),
            start.config.log_dir().to_path_buf(),
            transaction_log_settings(&start.config),
            coordinator_epoch(start.first_producer_id),
        ),
        config: start.config.clone(),
        topic_store: start.store,
        image: start.image.clone(),
        first_producer_id: start.first_producer_id,
    };
    let (ctx, inbox) = shard::install(parts, start.mesh).await;
    health::set_phase(shard_id, health::ShardPhase::LoadingPartitions);
    ctx.replica_manager
        .apply_image(&start.image, &start.recover_dirs)
        .await
        .map_err(|e| format!("opening partitions: {e}"))?;
    glommio::spawn_local(retention_loop(ctx.clone(), shutdown.clone())).detach();
    glommio::spawn_local(cleaner_loop(ctx.clone(), shutdown.clone())).detach();
    glommio::spawn_local(log_dir_failure_loop(ctx.clone(), shutdown.clone())).detach();
    shard::start_receiving(&ctx, inbox);
    health::set_phase(shard_id, health::ShardPhase::LoadingGroups);
    ctx.group_coordinator
        .load()
        .await
        .map_err(|e| format!("loading __consumer_offsets: {e}"))?;
    ctx.transaction_coordinator
        .set_services(crate::request_handler::transaction_services());
    ctx.transaction_coordinator
        .load()
        .await
        .map_err(|e| format!("loading __transaction_state: {e}"))?;
    let listeners = crate::network::bind_all(&ctx.config).map_err(|e| e.to_string())?;
    Ok((ctx, listeners))
}

/// Accepts connections until the shutdown flag is set (looked at every [`SHUTDOWN_POLL`]), then
/// stops accepting.
async fn serve_until_shutdown(
    ctx: &Rc<ShardContext>,
    listeners: Vec<crate::network::BoundListener>,
    shutdown: &AtomicBool,
) {
    let accepts: Vec<_> = listeners
        .into_iter()
        .map(|listener| glommio::spawn_local(crate::network::accept_loop(ctx.clone(), listener)))
        .collect();
    while !shutdown.load(Ordering::SeqCst) {
        glommio::timer::sleep(SHUTDOWN_POLL).await;
    }
    for accept in accepts {
        accept.cancel().await;
    }
}

/// Closes the shard's groups, then its partitions (flush, indexes).
async fn close_shard(ctx: &ShardContext) -> Result<(), String> {
    tracing::info!(shard = ctx.shard_id, "shutting down: closing partitions");
    // The context stays installed: connection tasks may still run until the executor exits.
    ctx.transaction_coordinator.shutdown().await;
    ctx.group_coordinator.shutdown().await;
    ctx.replica_manager
        .shutdown()
        .await
        .map_err(|e| e.to_string())
}

/// Applies retention to this shard's partitions every `log.retention.check.interval.ms`
/// (Kafka's `LogManager` "kafka-log-retention" task), the first time one interval after start;
/// returns once the shutdown flag is set.
async fn retention_loop(ctx: Rc<ShardContext>, shutdown: Arc<AtomicBool>) {
    let interval = Duration::from_millis(ctx.config.log_retention_check_interval_ms.max(1) as u64);
    let mut next_check = Instant::now() + interval;
    while !shutdown.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= next_check {
            ctx.replica_manager.apply_retention().await;
            next_check = Instant::now() + interval;
            continue;
        }
        glommio::timer::sleep((next_check - now).min(SHUTDOWN_POLL)).await;
    }
}

/// How often each shard looks for a newly failed log dir (one atomic load).
const LOG_DIR_FAILURE_POLL: Duration = Duration::from_millis(20);

/// Kafka's `LogDirFailureHandler`, per shard: when a log dir went offline
/// ([`crate::log::log_dirs::mark_offline`]), takes this shard's partitions in it offline. On
/// shard 0, when the first log dir (the metadata file's, Kafka's `metadata.log.dir`) or every
/// log dir is offline, the broker halts with exit status 1, as Kafka does ("Shutdown broker
/// because all log dirs in ... have failed" / the metadata log dir failed).
async fn log_dir_failure_loop(ctx: Rc<ShardContext>, shutdown: Arc<AtomicBool>) {
    let mut seen = 0;
    while !shutdown.load(Ordering::SeqCst) {
        let generation = crate::log::log_dirs::failure_generation();
        if generation != seen {
            seen = generation;
            ctx.replica_manager.handle_log_dir_failures();
            if ctx.shard_id == 0 {
                halt_if_no_usable_log_dir(&ctx.config);
            }
        }
        glommio::timer::sleep(LOG_DIR_FAILURE_POLL).await;
    }
}

fn halt_if_no_usable_log_dir(config: &BrokerConfig) {
    let dirs = crate::log::log_dirs::snapshot(&config.log_dirs);
    let metadata_dir_failed = dirs.first().and_then(|d| d.offline.as_ref());
    if let Some(reason) = metadata_dir_failed {
        tracing::error!(
            dir = %config.log_dir().display(),
            "Shutdown broker because the metadata log dir {} has failed ({reason}); exiting with status 1",
            config.log_dir().display()
        );
        std::process::exit(1);
    }
    if !dirs.is_empty() && dirs.iter().all(|d| d.offline.is_some()) {
        tracing::error!(
            "Shutdown broker because all log dirs in {} have failed; exiting with status 1",
            config
                .log_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        std::process::exit(1);
    }
}

/// Runs the shard's log cleaner ([`crate::replica_manager::ReplicaManager::clean_logs`]) until
/// shutdown: again at once after a round that cleaned something, else after
/// `log.cleaner.backoff.ms` (Kafka's `CleanerThread.doWork` backoff).
async fn cleaner_loop(ctx: Rc<ShardContext>, shutdown: Arc<AtomicBool>) {
    if !ctx.config.log_cleaner_enable {
        return;
    }
    let backoff = Duration::from_millis(ctx.config.log_cleaner_backoff_ms.max(1) as u64);
    while !shutdown.load(Ordering::SeqCst) {
        let cleaned = ctx.replica_manager.clean_logs().await;
        if cleaned > 0 {
            glommio::yield_if_needed().await;
            continue;
        }
        let wake = Instant::now() + backoff;
        while !shutdown.load(Ordering::SeqCst) && Instant::now() < wake {
            let left = wake.saturating_duration_since(Instant::now());
            glommio::timer::sleep(left.min(SHUTDOWN_POLL)).await;
        }
    }
}

/// The group coordinator's settings from the broker's `group.*` and `offsets.*` properties.
fn group_settings(config: &BrokerConfig) -> GroupSettings {
    GroupSettings {
        group_min_session_timeout_ms: config.group_min_session_timeout_ms,
        group_max_session_timeout_ms: config.group_max_session_timeout_ms,
        group_initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
        offsets_topic_num_partitions: config.offsets_topic_num_partitions,
        offsets_retention_ms: config.offsets_retention_minutes as i64 * 60 * 1000,
        // KIP-848 consumer groups.
        group_coordinator_rebalance_protocols: config
            .consumer_group
            .group_coordinator_rebalance_protocols
            .clone(),
        group_consumer_assignors: config.consumer_group.group_consumer_assignors.clone(),
        group_consumer_session_timeout_ms: config.consumer_group.group_consumer_session_timeout_ms,
        group_consumer_min_session_timeout_ms: config
            .consumer_group
            .group_consumer_min_session_timeout_ms,
        group_consumer_max_session_timeout_ms: config
            .consumer_group
            .group_consumer_max_session_timeout_ms,
        group_consumer_heartbeat_interval_ms: config
            .consumer_group
            .group_consumer_heartbeat_interval_ms,
        group_consumer_min_heartbeat_interval_ms: config
            .consumer_group
            .group_consumer_min_heartbeat_interval_ms,
        group_consumer_max_heartbeat_interval_ms: config
            .consumer_group
            .group_consumer_max_heartbeat_interval_ms,
        group_consumer_max_size: config.consumer_group.group_consumer_max_size as usize,
        group_consumer_migration_policy: config.consumer_group.group_consumer_migration_policy,
        group_consumer_regex_refresh_interval_ms: config
            .consumer_group
            .group_consumer_regex_refresh_interval_ms,
        ..GroupSettings::default()
    }
}

/// How the group coordinator keeps `__consumer_offsets`: `offsets.topic.segment.bytes`, and
/// the cleaner settings of the broker's topic defaults (Kafka sets only `cleanup.policy`,
/// `segment.bytes` and `compression.type` on that topic).
fn offsets_log_settings(config: &BrokerConfig) -> OffsetsLogSettings {
    OffsetsLogSettings {
        segment_bytes: config.offsets_topic_segment_bytes.max(1) as u64,
        cleaner: config.log_cleaner_enable.then(|| {
            crate::replica_manager::cleaner_config(&config.default_topic_config(), config)
        }),
        cleaner_backoff_ms: config.log_cleaner_backoff_ms.max(0) as u64,
    }
}

/// The transaction coordinator's settings from the broker's `transaction.*` properties.
fn transaction_settings(config: &BrokerConfig) -> TransactionSettings {
    TransactionSettings {
        transaction_max_timeout_ms: config.transaction_max_timeout_ms,
        transaction_state_log_num_partitions: config.transaction_state_log_num_partitions,
        transactional_id_expiration_ms: config.transactional_id_expiration_ms as i64,
        abort_timed_out_transaction_cleanup_interval_ms: config
            .transaction_abort_timed_out_transaction_cleanup_interval_ms
            as i64,
        remove_expired_transaction_cleanup_interval_ms: config
            .transaction_remove_expired_transaction_cleanup_interval_ms
            as i64,
    }
}

/// How the transaction coordinator keeps `__transaction_state`: its segment size and the
/// broker's cleaner settings (Kafka sets `cleanup.policy=compact` and `segment.bytes` on it).
fn transaction_log_settings(config: &BrokerConfig) -> TransactionLogSettings {
    TransactionLogSettings {
        segment_bytes: config.transaction_state_log_segment_bytes.max(1) as u64,
        cleaner: config.log_cleaner_enable.then(|| {
            crate::replica_manager::cleaner_config(&config.default_topic_config(), config)
        }),
        cleaner_backoff_ms: config.log_cleaner_backoff_ms.max(0) as u64,
        load_buffer_bytes: config.transaction_state_log_load_buffer_size.max(1) as usize,
    }
}

/// The coordinator epoch stamped on transaction markers: the start time in seconds (the
/// producer id counter starts at the start time in ms << 16), so it grows with every start, as
/// Kafka's coordinator epoch grows with every leader election of `__transaction_state`.
fn coordinator_epoch(first_producer_id: i64) -> i32 {
    ((first_producer_id >> 16) / 1000).clamp(0, i32::MAX as i64) as i32
}

/// Raises RLIMIT_MEMLOCK to what the shards need, or explains how to.
fn ensure_memlock(shards: usize, io_memory_bytes: u64) -> Result<(), StartError> {
    let needed = shards as u64 * (io_memory_bytes + MEMLOCK_SLACK_PER_SHARD);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return Ok(());
    }
    if limit.rlim_cur == libc::RLIM_INFINITY || limit.rlim_cur >= needed {
        return Ok(());
    }
    let raised = libc::rlimit {
        rlim_cur: needed,
        rlim_max: limit.rlim_max.max(needed),
    };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) } == 0 {
        tracing::info!(
            "raised the locked-memory limit (ulimit -l) from {} KiB to {} KiB for io_uring",
            limit.rlim_cur / 1024,
            needed / 1024
        );
        return Ok(());
    }
    Err(StartError::MemlockTooSmall {
        needed_kib: needed / 1024,
        limit_kib: limit.rlim_cur / 1024,
        shards,
        reason: std::io::Error::last_os_error().to_string(),
    })
}

/// Open files wanted for connections and segment files (issue 14: 10,000 connections), as the
/// soft and, where permitted (root), the hard RLIMIT_NOFILE.
const OPEN_FILES_WANTED: u64 = 1 << 20;

/// Raises RLIMIT_NOFILE's soft limit to the hard one (what the JVM does for Kafka with its
/// default `-XX:+MaxFDLimit`), and as root the hard one to [`OPEN_FILES_WANTED`] first. Logs
/// the result; a failure leaves the limit as it was (connections beyond it fail to be accepted
/// with EMFILE, logged by the accept loop).
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    let before = limit.rlim_cur;
    let wanted = libc::rlimit {
        rlim_cur: OPEN_FILES_WANTED.max(limit.rlim_cur),
        rlim_max: OPEN_FILES_WANTED.max(limit.rlim_max),
    };
    // SAFETY: setrlimit reads the struct we pass.
    let raised = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0 || {
        let soft_to_hard = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft_to_hard) == 0 }
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if raised
        && unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0
        && limit.rlim_cur != before
    {
        tracing::info!(
            "raised the open files limit (ulimit -n) from {before} to {}",
            limit.rlim_cur
        );
    }
}

/// Creates the log dir if needed and returns its absolute, canonical path.
fn absolute_log_dir(dir: &Path) -> Result<PathBuf, StartError> {
    let error = |source| StartError::LogDir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(error)?;
    std::fs::canonicalize(dir).map_err(error)
}

fn take_clean_shutdown_marker(log_dir: &Path) -> Result<bool, StartError> {
    let marker = log_dir.join(CLEAN_SHUTDOWN_MARKER);
    match std::fs::remove_file(&marker) {
        Ok(()) => {
            sync_dir(log_dir)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StartError::LogDir {
            path: marker,
            source,
        }),
    }
}

/// The clean-shutdown marker in every online log dir (Kafka writes one per dir); an offline
/// dir gets none, so its logs are recovered at the next start.
fn write_clean_shutdown_markers(config: &BrokerConfig) -> Result<(), StartError> {
    for dir in &config.log_dirs {
        match crate::log::log_dirs::offline_reason(dir) {
            None => write_clean_shutdown_marker(dir)?,
            Some(reason) => tracing::warn!(
                dir = %dir.display(),
                "no clean-shutdown marker in the offline log dir ({reason}): its logs are recovered at the next start"
            ),
        }
    }
    Ok(())
}

fn write_clean_shutdown_marker(log_dir: &Path) -> Result<(), StartError> {
    let marker = log_dir.join(CLEAN_SHUTDOWN_MARKER);
    std::fs::File::create(&marker)
        .and_then(|f| f.sync_all())
        .map_err(|source| StartError::LogDir {
            path: marker,
            source,
        })?;
    sync_dir(log_dir)
}

/// Kafka's `meta.properties` in `log_dir` (version 1: cluster.id, node.id, directory.id,
/// KIP-858), written when missing; an existing one must name this cluster and node (Kafka's
/// `MetaPropertiesEnsemble.verify`) and gets a `directory.id` if it has none, as Kafka 3.7+
/// adds one. Returns the directory id.
fn write_meta_properties(
    log_dir: &Path,
    cluster_id: &str,
    node_id: i32,
) -> Result<String, StartError> {
    let path = log_dir.join("meta.properties");
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(StartError::LogDir { path, source }),
    };
    let property = |text: &str, key: &str| {
        text.lines()
            .filter_map(|line| line.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_string())
    };
    if let Some(text) = &existing {
        if let Some(stored) = property(text, "cluster.id").filter(|c| c != cluster_id) {
            return Err(StartError::LogDirs(format!(
                "Invalid cluster.id in: {}. Expected {cluster_id}, but read {stored}",
                path.display()
            )));
        }
        let stored_node = property(text, "node.id").or_else(|| property(text, "broker.id"));
        if let Some(stored) = stored_node.filter(|n| *n != node_id.to_string()) {
            return Err(StartError::LogDirs(format!(
                "Stored node id {stored} in {} doesn't match previous node id {node_id}",
                path.display()
            )));
        }
        if let Some(directory_id) = property(text, "directory.id") {
            return Ok(directory_id);
        }
    }
    let directory_id = crate::metadata::new_cluster_id();
    let text = format!(
        "#Written by ringtail\nversion=1\ncluster.id={cluster_id}\nnode.id={node_id}\n\
         directory.id={directory_id}\n"
    );
    crate::metadata::write_atomically(&path, text.as_bytes())?;
    Ok(directory_id)
}

/// Checks an existing `meta.properties` as Kafka does at start-up (`MetaProperties`,
/// `MetaPropertiesEnsemble.verify`): `version` 0 or 1 (absent: 0), a `cluster.id` for version 1,
/// a base-10 `node.id` equal to the configured one. A file that fails is a
/// [`StartError::MetaProperties`] naming the file and the property: the log dir belongs to
/// another node, or the file is corrupt, and the broker refuses to start (Kafka does too).
/// No file: nothing to check (`write_meta_properties` writes one).
fn check_meta_properties(log_dir: &Path, node_id: i32) -> Result<(), StartError> {
    let path = log_dir.join("meta.properties");
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(StartError::LogDir { path, source }),
    };
    let refuse = |reason: String| StartError::MetaProperties {
        path: path.clone(),
        reason,
    };
    let text = String::from_utf8_lossy(&bytes);
    let properties: std::collections::HashMap<&str, &str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('!'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim(), value.trim()))
        .collect();
    let version = properties.get("version").copied().unwrap_or("0");
    if version != "0" && version != "1" {
        return Err(refuse(format!(
            "unknown meta.properties version {version:?}"
        )));
    }
    if version == "1" && properties.get("cluster.id").is_none_or(|id| id.is_empty()) {
        return Err(refuse("cluster.id was not found".to_string()));
    }
    let Some(stored) = properties.get("node.id") else {
        return Err(refuse(
            "failed to find required property node.id".to_string(),
        ));
    };
    let Ok(stored) = stored.parse::<i32>() else {
        return Err(refuse(format!(
            "unable to read node.id {stored:?} as a base-10 number"
        )));
    };
    if stored != node_id {
        return Err(refuse(format!(
            "stored node.id {stored} doesn't match the configured node.id {node_id}; if you \
             moved your data, make sure the configured node.id matches"
        )));
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), StartError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StartError::LogDir {
            path: dir.to_path_buf(),
            source,
        })
}

/// SIGTERM/SIGINT set the shutdown flag; a second signal exits at once.
fn register_signals(shutdown: Arc<AtomicBool>) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for signal in [SIGTERM, SIGINT] {
        let _ = signal_hook::flag::register_conditional_shutdown(signal, 1, shutdown.clone());
        let _ = signal_hook::flag::register(signal, shutdown.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, node_id: i32) -> Result<(), String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("meta.properties"), text).unwrap();
        check_meta_properties(dir.path(), node_id).map_err(|e| e.to_string())
    }

    #[test]
    fn meta_properties_is_checked_as_kafka_does() {
        assert!(check_meta_properties(tempfile::tempdir().unwrap().path(), 0).is_ok());
        let good = "#Written by ringtail\nversion=1\ncluster.id=abc\nnode.id=3\n";
        assert_eq!(check(good, 3), Ok(()));
        let refused = |text: &str, node_id: i32, what: &str| {
            let error = check(text, node_id).expect_err(text);
            assert!(
                error.contains("meta.properties") && error.contains(what),
                "{error}"
            );
        };
        refused(good, 4, "doesn't match the configured node.id 4");
        refused("version=1\ncluster.id=abc\n", 3, "node.id");
        refused("version=1\ncluster.id=abc\nnode.id=3x\n", 3, "base-10");
        refused("version=1\nnode.id=3\n", 3, "cluster.id was not found");
        refused("version=7\ncluster.id=abc\nnode.id=3\n", 3, "version");
    }
}
