//! Thread-per-core: one glommio `LocalExecutor` pinned per core (a shard), the mesh of shared
//! channels between shards, and start-up/shutdown.
//!
//! Cross-shard work is a closure sent to the owner ([`invoke_on`], as Seastar's `invoke_on`):
//! the target shard's receive loop spawns each closure as a task in arrival order, so two
//! messages from one shard to another start in the order they were sent. No locks are shared.
//!
//! Start-up: check/raise `RLIMIT_MEMLOCK` (io_uring registered buffers count against it), load
//! topic metadata, note whether the last shutdown was clean (`.kafka_cleanshutdown`, Kafka's
//! marker) and remove the marker, start the shards, each opening (and, after an unclean stop,
//! recovering) its partitions before it accepts connections. Shutdown on SIGTERM/SIGINT: stop
//! accepting, close every partition (flush, indexes), then write the marker again.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use futures::future::{join_all, LocalBoxFuture};
use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use glommio::{LocalExecutorBuilder, Placement};

use crate::config::BrokerConfig;
use crate::group_coordinator::{GroupCoordinator, GroupSettings};
use crate::metadata::{MetadataImage, TopicStore};
use crate::replica_manager::ReplicaManager;

/// Index of a shard, `0..shard_count`; shard i is pinned to the i-th CPU.
pub type ShardId = usize;

/// Messages queued per ordered pair of shards before senders wait (backpressure).
pub const MESH_CHANNEL_CAPACITY: usize = 1024;
/// Kafka's clean-shutdown marker file in the log dir.
pub const CLEAN_SHUTDOWN_MARKER: &str = ".kafka_cleanshutdown";
/// Locked memory per shard beyond `ringtail.io.memory.bytes`: io_uring rings and slack, bytes.
const MEMLOCK_SLACK_PER_SHARD: u64 = 2 << 20;
/// How often shards look at the shutdown flag.
const SHUTDOWN_POLL: Duration = Duration::from_millis(50);

type ShardTask = Box<dyn FnOnce(Rc<ShardContext>) -> LocalBoxFuture<'static, ()> + Send>;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
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
    #[error(
        "could not start the io_uring executor for shard {shard}: {reason}. io_uring must be \
         available (Linux 5.8+, not disabled by kernel.io_uring_disabled or a seccomp filter) \
         and `ulimit -l` large enough"
    )]
    IoUring { shard: usize, reason: String },
    #[error("log dir {path}: {source}")]
    LogDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Metadata(#[from] crate::metadata::MetadataError),
    #[error("shard {shard} failed to start: {reason}")]
    Shard { shard: usize, reason: String },
}

/// Everything a shard owns. One per executor thread; reached with [`context`].
pub struct ShardContext {
    pub shard_id: ShardId,
    pub shard_count: usize,
    pub config: Arc<BrokerConfig>,
    pub replica_manager: ReplicaManager,
    /// Consumer groups whose `__consumer_offsets` partition this shard owns.
    pub group_coordinator: GroupCoordinator,
    /// Only on shard 0: the single writer of topic metadata.
    pub topic_store: Option<RefCell<TopicStore>>,
    metadata: RefCell<(u64, Arc<MetadataImage>)>,
    peers: Vec<Option<ConnectedSender<ShardTask>>>,
    next_producer_id: Cell<i64>,
}

thread_local! {
    static CONTEXT: RefCell<Option<Rc<ShardContext>>> = const { RefCell::new(None) };
}

/// This thread's shard. Panics when called off a shard thread (a bug, not an input problem).
pub fn context() -> Rc<ShardContext> {
    CONTEXT.with(|c| c.borrow().clone().expect("called on a shard thread"))
}

impl ShardContext {
    /// The latest topic metadata this shard has seen.
    pub fn metadata(&self) -> Arc<MetadataImage> {
        self.metadata.borrow().1.clone()
    }

    /// Installs `image` if it is newer than the current one (images carry shard 0's version).
    pub fn set_metadata(&self, version: u64, image: Arc<MetadataImage>) -> bool {
        let mut current = self.metadata.borrow_mut();
        if version < current.0 {
            return false;
        }
        *current = (version, image);
        true
    }

    /// A producer id no other producer had, on shard 0 only: the counter starts at the start-up
    /// time in ms times 2^16, so ids stay unique across restarts unless 65,536 producers per
    /// millisecond of uptime were created.
    pub fn allocate_producer_id(&self) -> i64 {
        let id = self.next_producer_id.get();
        self.next_producer_id.set(id + 1);
        id
    }
}

/// Sends `f` to shard `target` and returns a receiver for its result; the send is awaited
/// here, so calls made in order from one task start on the target in that order.
pub async fn submit_to<R, F>(target: ShardId, f: F) -> oneshot::Receiver<R>
where
    F: FnOnce(Rc<ShardContext>) -> LocalBoxFuture<'static, R> + Send + 'static,
    R: Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let ctx = context();
    let task: ShardTask = Box::new(move |ctx| {
        Box::pin(async move {
            let _ = tx.send(f(ctx).await);
        })
    });
    if target == ctx.shard_id {
        glommio::spawn_local(task(ctx.clone())).detach();
        return rx;
    }
    let sender = ctx.peers[target].as_ref().expect("mesh connected");
    if sender.send(task).await.is_err() {
        tracing::warn!(target, "shard mesh channel closed (shutting down)");
    }
    rx
}

/// Runs `f` on shard `target` and returns its result (directly when `target` is this shard).
///
/// If the target shard is gone (only during shutdown) this never resolves; the caller's task
/// is dropped with its executor.
pub async fn invoke_on<R, F>(target: ShardId, f: F) -> R
where
    F: FnOnce(Rc<ShardContext>) -> LocalBoxFuture<'static, R> + Send + 'static,
    R: Send + 'static,
{
    if target == context().shard_id {
        return f(context()).await;
    }
    match submit_to(target, f).await.await {
        Ok(result) => result,
        Err(_) => futures::future::pending().await,
    }
}

/// A shard could not open or delete the partitions a new metadata image gives it.
#[derive(Debug, thiserror::Error)]
#[error("shard {shard}: {source}")]
pub struct PublishError {
    /// The shard whose replica manager failed.
    pub shard: usize,
    /// The log error it failed with.
    #[source]
    pub source: crate::log::LogError,
}

/// Pushes a new metadata image from shard 0 to every shard and waits until each has opened or
/// deleted its partitions accordingly.
pub async fn publish_metadata(image: Arc<MetadataImage>) -> Result<(), PublishError> {
    let ctx = context();
    assert_eq!(ctx.shard_id, 0, "metadata is published by shard 0");
    let version = {
        let current = ctx.metadata.borrow().0;
        current + 1
    };
    let results = join_all((0..ctx.shard_count).map(|shard| {
        let image = image.clone();
        invoke_on(shard, move |ctx| {
            Box::pin(async move {
                if !ctx.set_metadata(version, image.clone()) {
                    return Ok(());
                }
                ctx.replica_manager
                    .apply_image(&ctx.metadata(), false)
                    .await
                    .map_err(|source| PublishError {
                        shard: ctx.shard_id,
                        source,
                    })
            })
        })
    }))
    .await;
    results.into_iter().collect()
}

/// Starts every shard and blocks until shutdown. Returns after a clean shutdown.
pub fn run(mut config: BrokerConfig) -> Result<(), StartError> {
    // Every file path below is absolute: glommio opens directories (for the fsync that makes a
    // new segment's name durable) with openat on an absolute path, and a relative one such as
    // the default `./data` fails there with EBADF.
    let log_dir = absolute_log_dir(config.log_dir())?;
    config.log_dirs[0] = log_dir.clone();
    let config = Arc::new(config);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let shard_count = config.shard_count();
    ensure_memlock(shard_count, config.io_memory_bytes)?;
    let recover = !take_clean_shutdown_marker(&log_dir)?;
    if recover {
        tracing::info!(dir = %log_dir.display(), "no clean-shutdown marker: recovering partition logs");
    }
    let store = TopicStore::load(&log_dir, shard_count)?;
    write_meta_properties(&log_dir, &store.image().cluster_id, config.node_id)?;
    let image = store.image();
    let mut store = Some(store);

    let (mut senders, mut receivers) = mesh(shard_count);
    let shutdown = Arc::new(AtomicBool::new(false));
    register_signals(shutdown.clone());
    let (ready_tx, ready_rx) = mpsc::channel::<Result<ShardId, StartError>>();
    let first_producer_id = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as i64))
        << 16;

    let mut handles = Vec::with_capacity(shard_count);
    for shard_id in 0..shard_count {
        let peer_senders = std::mem::take(&mut senders[shard_id]);
        let peer_receivers = std::mem::take(&mut receivers[shard_id]);
        let config = config.clone();
        let image = image.clone();
        let shutdown = shutdown.clone();
        let ready = ready_tx.clone();
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
                let result = run_shard(ShardStart {
                    shard_id,
                    shard_count,
                    config,
                    image,
                    store,
                    peer_senders,
                    peer_receivers,
                    shutdown,
                    recover,
                    first_producer_id,
                    ready,
                })
                .await;
                if let Err(e) = result {
                    tracing::error!(shard = shard_id, "{e}");
                }
            })
            .map_err(|e| StartError::IoUring {
                shard: shard_id,
                reason: e.to_string(),
            })?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..shard_count {
        match ready_rx.recv() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                shutdown.store(true, Ordering::SeqCst);
                return Err(e);
            }
            Err(_) => {
                return Err(StartError::IoUring {
                    shard: 0,
                    reason: "an executor thread exited during start-up (io_uring setup failed?)"
                        .to_string(),
                })
            }
        }
    }
    let listener = &config.listeners[0];
    tracing::info!(
        "ringtail listening on {}:{} with {} shard(s), log dir {}",
        listener.host,
        listener.port,
        shard_count,
        log_dir.display()
    );
    let mut clean = true;
    for (shard, handle) in handles.into_iter().enumerate() {
        if let Err(e) = handle.join() {
            tracing::error!(shard, "shard stopped abnormally: {e}");
            clean = false;
        }
    }
    if clean {
        write_clean_shutdown_marker(&log_dir)?;
        tracing::info!("clean shutdown complete");
    }
    Ok(())
}

struct ShardStart {
    shard_id: ShardId,
    shard_count: usize,
    config: Arc<BrokerConfig>,
    image: Arc<MetadataImage>,
    store: Option<TopicStore>,
    peer_senders: Vec<Option<SharedSender<ShardTask>>>,
    peer_receivers: Vec<Option<SharedReceiver<ShardTask>>>,
    shutdown: Arc<AtomicBool>,
    recover: bool,
    first_producer_id: i64,
    ready: mpsc::Sender<Result<ShardId, StartError>>,
}

async fn run_shard(start: ShardStart) -> Result<(), String> {
    let shard_id = start.shard_id;
    let fail = |reason: String| {
        let _ = start.ready.send(Err(StartError::Shard {
            shard: shard_id,
            reason: reason.clone(),
        }));
        reason
    };
    let senders = join_all(
        start
            .peer_senders
            .into_iter()
            .map(|s| async move { Some(s?.connect().await) }),
    );
    let receivers = join_all(
        start
            .peer_receivers
            .into_iter()
            .map(|r| async move { Some(r?.connect().await) }),
    );
    let (peers, receivers) = futures::join!(senders, receivers);
    let ctx = Rc::new(ShardContext {
        shard_id,
        shard_count: start.shard_count,
        replica_manager: ReplicaManager::new(shard_id, start.config.clone()),
        group_coordinator: GroupCoordinator::new(
            shard_id,
            start.shard_count,
            group_settings(&start.config),
            start.config.log_dir().to_path_buf(),
        ),
        config: start.config.clone(),
        topic_store: start.store.map(RefCell::new),
        metadata: RefCell::new((0, start.image.clone())),
        peers,
        next_producer_id: Cell::new(start.first_producer_id),
    });
    CONTEXT.with(|c| *c.borrow_mut() = Some(ctx.clone()));

    if let Err(e) = ctx
        .replica_manager
        .apply_image(&start.image, start.recover)
        .await
    {
        return Err(fail(format!("opening partitions: {e}")));
    }
    glommio::spawn_local(retention_loop(ctx.clone(), start.shutdown.clone())).detach();
    for receiver in receivers.into_iter().flatten() {
        glommio::spawn_local(receive_loop(ctx.clone(), receiver)).detach();
    }
    if let Err(e) = ctx.group_coordinator.load().await {
        return Err(fail(format!("loading __consumer_offsets: {e}")));
    }
    let listener = match crate::network::bind(&ctx.config) {
        Ok(listener) => listener,
        Err(e) => return Err(fail(e.to_string())),
    };
    tracing::debug!(
        shard = shard_id,
        partitions = ctx.replica_manager.partition_count(),
        "shard ready"
    );
    let _ = start.ready.send(Ok(shard_id));

    let accept = glommio::spawn_local(crate::network::accept_loop(ctx.clone(), listener));
    while !start.shutdown.load(Ordering::SeqCst) {
        glommio::timer::sleep(SHUTDOWN_POLL).await;
    }
    accept.cancel().await;
    tracing::info!(shard = shard_id, "shutting down: closing partitions");
    // The context stays installed: connection tasks may still run until the executor exits.
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

/// The group coordinator's settings from the broker's `group.*` and `offsets.*` properties.
fn group_settings(config: &BrokerConfig) -> GroupSettings {
    GroupSettings {
        group_min_session_timeout_ms: config.group_min_session_timeout_ms,
        group_max_session_timeout_ms: config.group_max_session_timeout_ms,
        group_initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
        offsets_topic_num_partitions: config.offsets_topic_num_partitions,
        offsets_retention_ms: config.offsets_retention_minutes as i64 * 60 * 1000,
        ..GroupSettings::default()
    }
}

async fn receive_loop(ctx: Rc<ShardContext>, receiver: ConnectedReceiver<ShardTask>) {
    while let Some(task) = receiver.recv().await {
        glommio::spawn_local(task(ctx.clone())).detach();
    }
}

type MeshEnds<T> = Vec<Vec<Option<T>>>;

/// `senders[i][j]` sends from shard i to shard j; `receivers[j][i]` is its other end.
fn mesh(
    n: usize,
) -> (
    MeshEnds<SharedSender<ShardTask>>,
    MeshEnds<SharedReceiver<ShardTask>>,
) {
    let mut senders: MeshEnds<_> = (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
    let mut receivers: MeshEnds<_> = (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
    for i in 0..n {
        for j in 0..n {
            if i != j {
                let (tx, rx) = shared_channel::new_bounded(MESH_CHANNEL_CAPACITY);
                senders[i][j] = Some(tx);
                receivers[j][i] = Some(rx);
            }
        }
    }
    (senders, receivers)
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

/// Kafka's `meta.properties` (version 1: cluster.id, node.id), written once.
fn write_meta_properties(log_dir: &Path, cluster_id: &str, node_id: i32) -> Result<(), StartError> {
    let path = log_dir.join("meta.properties");
    if path.exists() {
        return Ok(());
    }
    let text =
        format!("#Written by ringtail\nversion=1\ncluster.id={cluster_id}\nnode.id={node_id}\n");
    crate::metadata::write_atomically(&path, text.as_bytes())?;
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
