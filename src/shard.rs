//! Thread-per-core: one glommio `LocalExecutor` pinned per core (a shard), and the mesh of shared
//! channels between shards. Start-up and shutdown are in `server`, which builds the mesh with
//! [`mesh`] and each shard's context with [`install`].
//!
//! Cross-shard work is a closure sent to the owner ([`invoke_on`], as Seastar's `invoke_on`):
//! the target shard's receive loop spawns each closure as a task in arrival order, so two
//! messages from one shard to another start in the order they were sent. No locks are shared.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::oneshot;
use futures::future::{join_all, LocalBoxFuture};
use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};

use crate::config::BrokerConfig;
use crate::group_coordinator::GroupCoordinator;
use crate::metadata::{MetadataImage, TopicStore};
use crate::replica_manager::ReplicaManager;
use crate::transaction_coordinator::TransactionCoordinator;

/// Index of a shard, `0..shard_count`; shard i is pinned to the i-th CPU.
pub type ShardId = usize;

/// Messages queued per ordered pair of shards before senders wait (backpressure).
pub const MESH_CHANNEL_CAPACITY: usize = 1024;

type ShardTask = Box<dyn FnOnce(Rc<ShardContext>) -> LocalBoxFuture<'static, ()> + Send>;

/// Everything a shard owns. One per executor thread; reached with [`context`].
pub struct ShardContext {
    pub shard_id: ShardId,
    pub shard_count: usize,
    pub config: Arc<BrokerConfig>,
    pub replica_manager: ReplicaManager,
    /// Consumer groups whose `__consumer_offsets` partition this shard owns.
    pub group_coordinator: GroupCoordinator,
    /// Transactional ids whose `__transaction_state` partition this shard owns.
    pub transaction_coordinator: TransactionCoordinator,
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
    crate::metrics::with(|m| m.cross_shard_sent());
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

/// Longest time a shard's executor sleeps while one of its tasks is runnable; see [`keep_awake`].
pub const EXECUTOR_TICK: Duration = Duration::from_millis(10);

/// Keeps a timer pending on this executor for as long as it runs, so that it never sleeps more
/// than [`EXECUTOR_TICK`] at a time. Spawned first on every shard, before [`install`].
///
/// Why: glommio 0.9.0 (`LocalExecutor::run` / `run_task_queues`) parks the executor thread in
/// `io_uring_enter` when the preemption timer has already expired before the first task queue
/// ran -- which happens when the thread was descheduled for more than the 10 ms preemption
/// quantum, i.e. under machine load -- even though a task is runnable. Only an I/O completion,
/// a timer or a foreign wake-up gets it out. Once a shard serves, its 50 ms shutdown poll and
/// group timers bound that sleep; during start-up nothing did, so a shard whose next step was
/// its own runnable task (opening the next partition) slept forever and start-up hung
/// (shard 0 "never finished loading", SIGTERM ignored). The fix in glommio is
/// glommio/glommio pull request 53 ("do not park the executor while a task queue is still
/// runnable"), not in any release on crates.io yet; this tick is the workaround until it is.
/// It makes the hang much rarer, not impossible: in `tests/executor_park.rs` (1 ms preemption
/// timer, a task that only yields) 3 of 20 runs hung without it, 1 of 16 with it.
/// Cost: at most 100 wake-ups per second per idle shard.
pub fn keep_awake() {
    glommio::spawn_local(async {
        loop {
            glommio::timer::sleep(EXECUTOR_TICK).await;
        }
    })
    .detach();
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
                    .apply_image(&ctx.metadata(), &[])
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

/// One shard's ends of the mesh, not yet connected: made for every shard on the starting thread
/// by [`mesh`], moved to the shard's executor thread and connected there by [`install`].
pub struct MeshEnds {
    /// `senders[j]` sends from this shard to shard j; `None` at this shard's own index.
    senders: Vec<Option<SharedSender<ShardTask>>>,
    /// `receivers[i]` receives what shard i sends to this shard; `None` at its own index.
    receivers: Vec<Option<SharedReceiver<ShardTask>>>,
}

/// What a shard's context is made of besides its mesh ends; built on the shard's own thread.
pub struct ShardParts {
    /// This shard, `0..shard_count`.
    pub shard_id: ShardId,
    /// Number of shards in the process.
    pub shard_count: usize,
    /// The broker configuration, shared by every shard.
    pub config: Arc<BrokerConfig>,
    /// This shard's partitions (none open yet).
    pub replica_manager: ReplicaManager,
    /// This shard's consumer groups (not loaded yet).
    pub group_coordinator: GroupCoordinator,
    /// This shard's transactional ids (not loaded yet).
    pub transaction_coordinator: TransactionCoordinator,
    /// Shard 0's topic metadata store, the single writer of topic metadata; `None` elsewhere.
    pub topic_store: Option<TopicStore>,
    /// The topic metadata at start-up; installed as version 0.
    pub image: Arc<MetadataImage>,
    /// First id [`ShardContext::allocate_producer_id`] hands out (used on shard 0 only).
    pub first_producer_id: i64,
}

/// Closures other shards sent to this shard, held until [`start_receiving`] runs them.
pub struct Inbox {
    receivers: Vec<ConnectedReceiver<ShardTask>>,
}

/// Connects this shard's mesh ends, builds its [`ShardContext`] and installs it as this thread's
/// [`context`]. Runs on the shard's executor and waits until every peer has connected its side of
/// each channel; what peers send meanwhile waits in the returned [`Inbox`].
pub async fn install(parts: ShardParts, ends: MeshEnds) -> (Rc<ShardContext>, Inbox) {
    let senders = join_all(
        ends.senders
            .into_iter()
            .map(|s| async move { Some(s?.connect().await) }),
    );
    let receivers = join_all(
        ends.receivers
            .into_iter()
            .map(|r| async move { Some(r?.connect().await) }),
    );
    let (peers, receivers) = futures::join!(senders, receivers);
    let ctx = Rc::new(ShardContext {
        shard_id: parts.shard_id,
        shard_count: parts.shard_count,
        config: parts.config,
        replica_manager: parts.replica_manager,
        group_coordinator: parts.group_coordinator,
        transaction_coordinator: parts.transaction_coordinator,
        topic_store: parts.topic_store.map(RefCell::new),
        metadata: RefCell::new((0, parts.image)),
        peers,
        next_producer_id: Cell::new(parts.first_producer_id),
    });
    CONTEXT.with(|c| *c.borrow_mut() = Some(ctx.clone()));
    let inbox = Inbox {
        receivers: receivers.into_iter().flatten().collect(),
    };
    (ctx, inbox)
}

/// From now on runs the closures peers send to this shard: one receive loop per peer, which
/// spawns each closure as a task in arrival order.
pub fn start_receiving(ctx: &Rc<ShardContext>, inbox: Inbox) {
    for receiver in inbox.receivers {
        glommio::spawn_local(receive_loop(ctx.clone(), receiver)).detach();
    }
}

async fn receive_loop(ctx: Rc<ShardContext>, receiver: ConnectedReceiver<ShardTask>) {
    while let Some(task) = receiver.recv().await {
        crate::metrics::with(|m| m.cross_shard_task(1));
        let run = task(ctx.clone());
        glommio::spawn_local(async move {
            run.await;
            crate::metrics::with(|m| m.cross_shard_task(-1));
        })
        .detach();
    }
}

type Grid<T> = Vec<Vec<Option<T>>>;

/// A bounded channel ([`MESH_CHANNEL_CAPACITY`] messages) for every ordered pair of `n` shards;
/// element i holds shard i's ends. `senders[i][j]` below sends from shard i to shard j and
/// `receivers[j][i]` is its other end.
pub fn mesh(n: usize) -> Vec<MeshEnds> {
    let mut senders: Grid<_> = (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
    let mut receivers: Grid<_> = (0..n).map(|_| (0..n).map(|_| None).collect()).collect();
    for i in 0..n {
        for j in 0..n {
            if i != j {
                let (tx, rx) = shared_channel::new_bounded(MESH_CHANNEL_CAPACITY);
                senders[i][j] = Some(tx);
                receivers[j][i] = Some(rx);
            }
        }
    }
    senders
        .into_iter()
        .zip(receivers)
        .map(|(senders, receivers)| MeshEnds { senders, receivers })
        .collect()
}
