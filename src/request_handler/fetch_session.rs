//! Incremental fetch sessions (KIP-227), the rules of Kafka's `FetchSession.scala`
//! (`FetchManager.newContext`, `FetchSessionCacheShard`, `CachedPartition`).
//!
//! A session remembers, per partition, the last request parameters (fetch offset, max bytes,
//! leader epoch, ...) and the high watermark and log start offset last sent. An incremental
//! request names only what changed (and the partitions to forget); the broker fetches every
//! partition of the session and answers only those with records, a changed high watermark or
//! log start offset, or an error.
//!
//! Each shard has its own [`FetchSessionCache`] (a thread-local, no locks), holding
//! `max.incremental.fetch.session.cache.slots / shards` sessions -- as Kafka splits its cache
//! into 8 `FetchSessionCacheShard`s of `slots / 8`. Sessions are created on the shard of the
//! connection that asked; a session id names its shard (Kafka's `sessionIdRange`: ids of shard
//! `s` lie in `[max(1, s * range), (s + 1) * range)`), so a session stays usable from a
//! connection on any shard, as a Kafka session is broker-wide. Work on another shard's session
//! goes over [`shard::invoke_on`] (a client uses one session per broker and one connection per
//! broker, so this is the rare case).
//!
//! Request -> context (`FetchManager.newContext`):
//! - epoch 0 (INITIAL) or -1 (FINAL) is a full request: a named session is removed first; with
//!   -1 no session is made (sessionless, session id 0 in the answer), with 0 a new one is made
//!   after the read when a slot is free or one can be evicted ([`FetchSessionCache::create_session`]).
//! - any other epoch is incremental: an unknown session id is FETCH_SESSION_ID_NOT_FOUND, an
//!   epoch other than the session's next one INVALID_FETCH_SESSION_EPOCH, a session made with
//!   topic ids used by a request below v13 (or the reverse) FETCH_SESSION_TOPIC_ID_ERROR; all
//!   three answer with the top-level error, session id 0 and no partitions. Otherwise the
//!   request's partitions are added or updated, the forgotten ones removed; a session left empty
//!   is closed and the request answered sessionless.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{FetchRequest, TopicName};
use rand::Rng;
use uuid::Uuid;

use crate::shard::{self, ShardContext};

/// The session id of no session (`FetchMetadata.INVALID_SESSION_ID`).
pub const INVALID_SESSION_ID: i32 = 0;
/// The epoch of a full request that asks for a new session (`FetchMetadata.INITIAL_EPOCH`).
pub const INITIAL_EPOCH: i32 = 0;
/// The epoch of a full request that wants no session (`FetchMetadata.FINAL_EPOCH`).
pub const FINAL_EPOCH: i32 = -1;
/// A session unused this long may be evicted by any new one, and a session younger than this
/// is not evicted for a larger one (`KafkaServer.MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS`).
pub const SESSION_EVICTION_MS: i64 = 120_000;

/// The epoch after `epoch` (`FetchMetadata.nextEpoch`): -1 stays -1, `i32::MAX` wraps to 1.
pub fn next_epoch(epoch: i32) -> i32 {
    if epoch < 0 {
        FINAL_EPOCH
    } else if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

/// How a session names a topic: by id from Fetch v13 on, else by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TopicKey {
    /// Fetch v13+.
    Id(Uuid),
    /// Fetch v7-12.
    Name(String),
}

/// One partition of a session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    pub topic: TopicKey,
    pub partition: i32,
}

/// What the fetch of one partition returned, as far as the session cares
/// (`CachedPartition.maybeUpdateResponseData`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionOutcome {
    /// Bytes of record batches returned.
    pub records_bytes: usize,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub error_code: i16,
    /// -1 unless the broker names a preferred read replica.
    pub preferred_read_replica: i32,
    /// True when the response carries a diverging epoch (followers only).
    pub diverging_epoch: bool,
}

/// A request's relation to the session cache, from [`begin`] to [`finish`].
pub enum FetchContext {
    /// Answer with session id 0 and every partition.
    Sessionless,
    /// A full request (epoch 0): after the read, try to make a session of its partitions.
    Full {
        privileged: bool,
        uses_topic_ids: bool,
        /// The request's partitions, in request order (= response order).
        partitions: Vec<(PartitionKey, TopicName, FetchPartition)>,
    },
    /// An incremental request whose session was updated; the request now lists every
    /// partition of the session, in the order of `slots` (the session's slots).
    Incremental {
        session_id: i32,
        /// The epoch the request carried; the session's epoch is now the next one.
        request_epoch: i32,
        slots: Vec<u32>,
    },
}

/// What the response carries, from [`finish`].
#[derive(Debug, PartialEq, Eq)]
pub struct Finished {
    /// The response's `session_id`.
    pub session_id: i32,
    /// The response's top-level `error_code` (0: none).
    pub error_code: i16,
    /// Which partitions go out, one flag per partition in response order; `None`: all.
    pub kept: Option<Vec<bool>>,
}

/// Looks the request up in the fetch-session cache (`FetchManager.newContext`). For an
/// incremental request, `request.topics` is replaced by every partition of the session, so the
/// caller fetches them all; `Err` is the session error to answer with (top-level error code,
/// session id 0, no partitions).
pub async fn begin(
    ctx: &Rc<ShardContext>,
    request: &mut FetchRequest,
    version: i16,
) -> Result<FetchContext, ResponseError> {
    // Fetch v0-6 have no session fields: `FetchMetadata.LEGACY` (id 0, epoch -1).
    let (session_id, epoch) = if version >= 7 {
        (request.session_id, request.session_epoch)
    } else {
        (INVALID_SESSION_ID, FINAL_EPOCH)
    };
    let uses_topic_ids = version >= 13;
    if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
        if session_id != INVALID_SESSION_ID {
            // Any session named in a full request is closed.
            if let Some(shard) = session_shard(session_id, ctx.shard_count) {
                shard::invoke_on(shard, move |ctx| {
                    Box::pin(async move {
                        with_cache(&ctx, |cache| cache.remove(session_id));
                    })
                })
                .await;
            }
        }
        if epoch == FINAL_EPOCH {
            return Ok(FetchContext::Sessionless);
        }
        let partitions = request
            .topics
            .iter()
            .flat_map(|topic| {
                let key = topic_key(topic, uses_topic_ids);
                topic.partitions.iter().map(move |partition| {
                    (
                        PartitionKey {
                            topic: key.clone(),
                            partition: partition.partition,
                        },
                        topic.topic.clone(),
                        partition.clone(),
                    )
                })
            })
            .collect();
        return Ok(FetchContext::Full {
            privileged: is_from_follower(request, version),
            uses_topic_ids,
            partitions,
        });
    }
    let Some(shard) = session_shard(session_id, ctx.shard_count) else {
        return Err(ResponseError::FetchSessionIdNotFound);
    };
    let topics = std::mem::take(&mut request.topics);
    let forgotten = std::mem::take(&mut request.forgotten_topics_data);
    let now = now_ms();
    let updated = shard::invoke_on(shard, move |ctx| {
        Box::pin(async move {
            with_cache(&ctx, |cache| {
                cache.update_session(session_id, epoch, version, topics, forgotten, now)
            })
        })
    })
    .await;
    match updated {
        Updated::Error(error) => Err(error),
        Updated::Closed(topics) => {
            request.topics = topics;
            Ok(FetchContext::Sessionless)
        }
        Updated::Incremental { slots, topics } => {
            request.topics = topics;
            Ok(FetchContext::Incremental {
                session_id,
                request_epoch: epoch,
                slots,
            })
        }
    }
}

/// Decides the response's session id and, for an incremental request, which partitions the
/// client need not hear about (`IncrementalFetchContext.updateAndGenerateResponseData`); makes
/// the session of a full request. `outcomes` holds one entry per partition of the (possibly
/// rewritten) request, in its order, as the response will answer them: the caller builds only
/// the partitions kept.
pub async fn finish(
    ctx: &Rc<ShardContext>,
    context: FetchContext,
    outcomes: Vec<PartitionOutcome>,
) -> Finished {
    let all = |session_id| Finished {
        session_id,
        error_code: 0,
        kept: None,
    };
    match context {
        FetchContext::Sessionless => all(INVALID_SESSION_ID),
        FetchContext::Full {
            privileged,
            uses_topic_ids,
            partitions,
        } => {
            debug_assert_eq!(
                outcomes.len(),
                partitions.len(),
                "invariant: one response partition per requested partition"
            );
            let entries = partitions.into_iter().zip(outcomes).collect();
            let now = now_ms();
            all(with_cache(ctx, |cache| {
                cache.create_session(now, privileged, uses_topic_ids, entries)
            }))
        }
        FetchContext::Incremental {
            session_id,
            request_epoch,
            slots,
        } => {
            debug_assert_eq!(
                outcomes.len(),
                slots.len(),
                "invariant: one response partition per session partition"
            );
            let count = slots.len();
            let shard = session_shard(session_id, ctx.shard_count).unwrap_or(ctx.shard_id);
            let kept = shard::invoke_on(shard, move |ctx| {
                Box::pin(async move {
                    with_cache(&ctx, |cache| {
                        cache.filter_response(session_id, request_epoch, &slots, &outcomes)
                    })
                })
            })
            .await;
            match kept {
                Ok(kept) => Finished {
                    session_id,
                    error_code: 0,
                    kept: Some(kept),
                },
                Err(error) => Finished {
                    session_id: if error == ResponseError::InvalidFetchSessionEpoch {
                        session_id
                    } else {
                        INVALID_SESSION_ID
                    },
                    error_code: error.code(),
                    kept: Some(vec![false; count]),
                },
            }
        }
    }
}

/// The shard whose cache holds `session_id`, or `None` for an id no shard hands out.
pub fn session_shard(session_id: i32, shard_count: usize) -> Option<usize> {
    if session_id <= 0 {
        return None;
    }
    let shard = (session_id / session_id_range(shard_count)) as usize;
    (shard < shard_count).then_some(shard)
}

/// Session ids per shard (`Int.MaxValue / NumFetchSessionCacheShards` in Kafka).
fn session_id_range(shard_count: usize) -> i32 {
    i32::MAX / (shard_count.max(1) as i32)
}

/// Kafka's `FetchRequest.isFromFollower`: a replica id >= 0 (v15+: in `replica_state`).
pub(super) fn is_from_follower(request: &FetchRequest, version: i16) -> bool {
    let replica_id = if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    replica_id >= 0
}

fn topic_key(topic: &FetchTopic, uses_topic_ids: bool) -> TopicKey {
    if uses_topic_ids {
        TopicKey::Id(topic.topic_id)
    } else {
        TopicKey::Name(topic.topic.to_string())
    }
}

fn now_ms() -> i64 {
    super::produce::now_ms()
}

thread_local! {
    static CACHE: RefCell<Option<FetchSessionCache>> = const { RefCell::new(None) };
}

/// Runs `f` on this shard's cache, made on first use from the broker config.
fn with_cache<R>(ctx: &ShardContext, f: impl FnOnce(&mut FetchSessionCache) -> R) -> R {
    CACHE.with(|cell| {
        let mut cache = cell.borrow_mut();
        let cache = cache.get_or_insert_with(|| {
            let slots = ctx.config.max_incremental_fetch_session_cache_slots.max(0) as usize;
            FetchSessionCache::new(
                slots / ctx.shard_count.max(1),
                SESSION_EVICTION_MS,
                ctx.shard_id,
                ctx.shard_count,
            )
        });
        let out = f(cache);
        crate::metrics::with(|m| m.fetch_sessions(cache.stats()));
        out
    })
}

/// The outcome of an incremental request's session update.
pub enum Updated {
    /// A session error to answer with.
    Error(ResponseError),
    /// The session became empty and was closed: answer sessionless with these topics.
    Closed(Vec<FetchTopic>),
    /// The session's partitions, in fetch order, as session slots and as request topics.
    Incremental {
        slots: Vec<u32>,
        topics: Vec<FetchTopic>,
    },
}

/// One partition of a session (Kafka's `CachedPartition`).
struct CachedPartition {
    /// The name the request gave (empty from v13, where the id names the topic).
    topic_name: TopicName,
    topic_id: Uuid,
    /// The last request parameters: fetch offset, max bytes, leader epochs, log start.
    request: FetchPartition,
    /// The high watermark last sent; -1 after an error so the partition is sent again.
    high_watermark: i64,
    /// The log start offset last sent.
    local_log_start_offset: i64,
    /// The neighbours in the session's fetch order (slots of [`FetchSession::slab`], [`NIL`]
    /// at the ends).
    prev: u32,
    next: u32,
}

/// No slot: the end of a session's fetch order.
const NIL: u32 = u32::MAX;

/// One session (Kafka's `FetchSession`).
///
/// Partitions live in a slab; the fetch order (Kafka's `ImplicitLinkedHashCollection`, where a
/// partition that returned records moves to the end) is a list threaded through the slab's
/// slots. An incremental fetch walks that list and later updates what it returned by slot, so
/// it hashes no partition key: only partitions a request names or forgets are looked up.
struct FetchSession {
    id: i32,
    privileged: bool,
    uses_topic_ids: bool,
    creation_ms: i64,
    last_used_ms: i64,
    /// The epoch the next incremental request must carry.
    epoch: i32,
    /// Partition -> slot (hashbrown with foldhash: SipHash was the session's largest cost).
    index: hashbrown::HashMap<PartitionKey, u32>,
    /// `None` for a free slot (listed in `free`).
    slab: Vec<Option<CachedPartition>>,
    free: Vec<u32>,
    /// First and last slot of the fetch order.
    head: u32,
    tail: u32,
    /// The size the eviction sets know, `None` before the first touch.
    cached_size: Option<usize>,
}

impl FetchSession {
    fn new(id: i32, privileged: bool, uses_topic_ids: bool, now_ms: i64, size: usize) -> Self {
        FetchSession {
            id,
            privileged,
            uses_topic_ids,
            creation_ms: now_ms,
            last_used_ms: now_ms,
            epoch: next_epoch(INITIAL_EPOCH),
            index: hashbrown::HashMap::with_capacity(size),
            slab: Vec::with_capacity(size),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            cached_size: None,
        }
    }

    /// Partitions in the session.
    fn len(&self) -> usize {
        self.index.len()
    }

    fn cached(&self, slot: u32) -> Option<&CachedPartition> {
        self.slab.get(slot as usize)?.as_ref()
    }

    fn cached_mut(&mut self, slot: u32) -> Option<&mut CachedPartition> {
        self.slab.get_mut(slot as usize)?.as_mut()
    }

    /// Adds `key` at the end of the fetch order, or replaces it there if present.
    fn push(&mut self, key: PartitionKey, cached: CachedPartition) {
        if let Some(&slot) = self.index.get(&key) {
            self.unlink(slot);
            self.slab[slot as usize] = Some(cached);
            self.link_at_end(slot);
            return;
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slab[slot as usize] = Some(cached);
                slot
            }
            None => {
                // A session holds at most as many partitions as one request can name (far
                // below u32::MAX); NIL is never a slot.
                let slot = u32::try_from(self.slab.len()).unwrap_or(NIL - 1);
                self.slab.push(Some(cached));
                slot
            }
        };
        self.index.insert(key, slot);
        self.link_at_end(slot);
    }

    fn move_to_end(&mut self, slot: u32) {
        if self.tail != slot && self.cached(slot).is_some() {
            self.unlink(slot);
            self.link_at_end(slot);
        }
    }

    fn remove(&mut self, key: &PartitionKey) -> bool {
        let Some(slot) = self.index.remove(key) else {
            return false;
        };
        self.unlink(slot);
        self.slab[slot as usize] = None;
        self.free.push(slot);
        true
    }

    fn unlink(&mut self, slot: u32) {
        let Some(cached) = self.cached(slot) else {
            return;
        };
        let (prev, next) = (cached.prev, cached.next);
        match self.cached_mut(prev) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.cached_mut(next) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
    }

    fn link_at_end(&mut self, slot: u32) {
        let tail = self.tail;
        if let Some(cached) = self.cached_mut(slot) {
            cached.prev = tail;
            cached.next = NIL;
        }
        match self.cached_mut(tail) {
            Some(t) => t.next = slot,
            None => self.head = slot,
        }
        self.tail = slot;
    }

    fn evictable_key(&self) -> EvictableKey {
        (self.privileged, self.cached_size.unwrap_or(0), self.id)
    }

    /// The session's partitions as request topics (consecutive partitions of a topic share
    /// one entry), and their slots, in fetch order.
    fn fetch_list(&self) -> (Vec<u32>, Vec<FetchTopic>) {
        let mut slots = Vec::with_capacity(self.len());
        let mut topics: Vec<FetchTopic> = Vec::new();
        let mut slot = self.head;
        while let Some(cached) = self.cached(slot) {
            let same_topic = topics.last().is_some_and(|last| {
                last.topic_id == cached.topic_id && last.topic == cached.topic_name
            });
            if !same_topic {
                topics.push(
                    FetchTopic::default()
                        .with_topic(cached.topic_name.clone())
                        .with_topic_id(cached.topic_id),
                );
            }
            if let Some(topic) = topics.last_mut() {
                topic.partitions.push(cached.request.clone());
            }
            slots.push(slot);
            slot = cached.next;
        }
        debug_assert_eq!(
            slots.len(),
            self.len(),
            "invariant: the fetch order lists every partition of the session once"
        );
        (slots, topics)
    }
}

/// (privileged, size, id): Kafka's `EvictableKey` order; the least is evicted first.
type EvictableKey = (bool, usize, i32);

/// One shard's sessions (Kafka's `FetchSessionCacheShard`), sans-io: callers pass the time.
pub struct FetchSessionCache {
    max_entries: usize,
    eviction_ms: i64,
    shard_id: usize,
    shard_count: usize,
    sessions: HashMap<i32, FetchSession>,
    /// (last used ms, id), oldest first.
    last_used: BTreeSet<(i64, i32)>,
    /// Sessions older than `eviction_ms` at their last touch: evictable by any new session.
    evictable_by_all: BTreeSet<EvictableKey>,
    /// Those plus unprivileged ones: evictable by a privileged (follower) session.
    evictable_by_privileged: BTreeSet<EvictableKey>,
    /// Cached partitions over all sessions.
    total_partitions: usize,
    /// Sessions evicted to make room for new ones since start-up.
    evictions: u64,
}

impl FetchSessionCache {
    /// An empty cache of at most `max_entries` sessions for shard `shard_id` of `shard_count`.
    pub fn new(
        max_entries: usize,
        eviction_ms: i64,
        shard_id: usize,
        shard_count: usize,
    ) -> FetchSessionCache {
        FetchSessionCache {
            max_entries,
            eviction_ms,
            shard_id,
            shard_count,
            sessions: HashMap::new(),
            last_used: BTreeSet::new(),
            evictable_by_all: BTreeSet::new(),
            evictable_by_privileged: BTreeSet::new(),
            total_partitions: 0,
            evictions: 0,
        }
    }

    /// The cache's figures now.
    pub fn stats(&self) -> crate::metrics::FetchSessionStats {
        crate::metrics::FetchSessionStats {
            sessions: self.sessions.len(),
            partitions: self.total_partitions,
            evictions: self.evictions,
        }
    }

    #[cfg(test)]
    /// True when the cache holds no session.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    #[cfg(test)]
    /// Partitions cached over all sessions (Kafka's NumIncrementalFetchPartitionsCached).
    pub fn total_partitions(&self) -> usize {
        self.total_partitions
    }

    /// Makes a session of a full request's partitions and what their fetch returned, if there
    /// is room or a session can be evicted (`maybeCreateSession`); its id, or 0.
    pub fn create_session(
        &mut self,
        now_ms: i64,
        privileged: bool,
        uses_topic_ids: bool,
        entries: Vec<((PartitionKey, TopicName, FetchPartition), PartitionOutcome)>,
    ) -> i32 {
        let size = entries.len();
        if self.sessions.len() >= self.max_entries
            && !self.try_evict(privileged, (privileged, size, 0), now_ms)
        {
            tracing::debug!(privileged, size, "no fetch session created");
            return INVALID_SESSION_ID;
        }
        let id = self.new_session_id();
        let mut session = FetchSession::new(id, privileged, uses_topic_ids, now_ms, size);
        for ((key, topic_name, request), outcome) in entries {
            let topic_id = match &key.topic {
                TopicKey::Id(id) => *id,
                TopicKey::Name(_) => Uuid::nil(),
            };
            session.push(
                key,
                CachedPartition {
                    topic_name,
                    topic_id,
                    request,
                    high_watermark: outcome.high_watermark,
                    local_log_start_offset: outcome.log_start_offset,
                    prev: NIL,
                    next: NIL,
                },
            );
        }
        self.last_used.insert((now_ms, id));
        self.sessions.insert(id, session);
        self.touch(id, now_ms);
        tracing::debug!(session_id = id, partitions = size, "fetch session created");
        id
    }

    /// Applies an incremental request to its session (the incremental branch of
    /// `FetchManager.newContext` and `FetchSession.update`).
    pub fn update_session(
        &mut self,
        session_id: i32,
        epoch: i32,
        version: i16,
        topics: Vec<FetchTopic>,
        forgotten: Vec<ForgottenTopic>,
        now_ms: i64,
    ) -> Updated {
        let Some(session) = self.sessions.get_mut(&session_id) else {
            return Updated::Error(ResponseError::FetchSessionIdNotFound);
        };
        if session.epoch != epoch {
            tracing::debug!(
                session_id,
                expected = session.epoch,
                got = epoch,
                "fetch session epoch mismatch"
            );
            return Updated::Error(ResponseError::InvalidFetchSessionEpoch);
        }
        let uses_topic_ids = version >= 13;
        if session.uses_topic_ids != uses_topic_ids {
            return Updated::Error(ResponseError::FetchSessionTopicIdError);
        }
        for topic in &topics {
            let topic_key = topic_key(topic, uses_topic_ids);
            for partition in &topic.partitions {
                let key = PartitionKey {
                    topic: topic_key.clone(),
                    partition: partition.partition,
                };
                // Kafka's `updateRequestParams`: a partition already in the session keeps its
                // place in the fetch order; a new one goes to the end.
                let cached = session.index.get(&key).copied();
                match cached.and_then(|slot| session.cached_mut(slot)) {
                    Some(cached) => cached.request = partition.clone(),
                    None => session.push(
                        key,
                        CachedPartition {
                            topic_name: topic.topic.clone(),
                            topic_id: topic.topic_id,
                            request: partition.clone(),
                            high_watermark: -1,
                            local_log_start_offset: -1,
                            prev: NIL,
                            next: NIL,
                        },
                    ),
                }
            }
        }
        for topic in &forgotten {
            let topic_key = if uses_topic_ids {
                TopicKey::Id(topic.topic_id)
            } else {
                TopicKey::Name(topic.topic.to_string())
            };
            for &partition in &topic.partitions {
                session.remove(&PartitionKey {
                    topic: topic_key.clone(),
                    partition,
                });
            }
        }
        if session.len() == 0 {
            tracing::debug!(session_id, "fetch session closed: no partitions left");
            self.remove(session_id);
            return Updated::Closed(topics);
        }
        session.epoch = next_epoch(session.epoch);
        let (slots, topics) = session.fetch_list();
        self.touch(session_id, now_ms);
        Updated::Incremental { slots, topics }
    }

    /// Which partitions of an incremental response go out (`CachedPartition
    /// .maybeUpdateResponseData`), updating the cached high watermarks and log start offsets;
    /// INVALID_FETCH_SESSION_EPOCH when another request used the session meanwhile (Kafka:
    /// "possible duplicate request"), FETCH_SESSION_ID_NOT_FOUND when it was evicted meanwhile.
    pub fn filter_response(
        &mut self,
        session_id: i32,
        request_epoch: i32,
        slots: &[u32],
        outcomes: &[PartitionOutcome],
    ) -> Result<Vec<bool>, ResponseError> {
        let Some(session) = self.sessions.get_mut(&session_id) else {
            return Err(ResponseError::FetchSessionIdNotFound);
        };
        if session.epoch != next_epoch(request_epoch) {
            tracing::info!(
                session_id,
                expected = next_epoch(request_epoch),
                got = session.epoch,
                "incremental fetch session epoch changed: possible duplicate request"
            );
            return Err(ResponseError::InvalidFetchSessionEpoch);
        }
        let mut kept = Vec::with_capacity(slots.len());
        for (&slot, outcome) in slots.iter().zip(outcomes) {
            let Some(cached) = session.cached_mut(slot) else {
                // Removed by a request in between whose epoch check passed: cannot happen, as
                // that request would have moved the epoch. Sent, which is always safe.
                kept.push(true);
                continue;
            };
            let must_respond = must_respond(cached, outcome);
            if must_respond && outcome.records_bytes > 0 {
                session.move_to_end(slot);
            }
            kept.push(must_respond);
        }
        Ok(kept)
    }

    /// Removes a session; true if there was one.
    pub fn remove(&mut self, session_id: i32) -> bool {
        let Some(session) = self.sessions.remove(&session_id) else {
            return false;
        };
        self.last_used.remove(&(session.last_used_ms, session.id));
        let key = session.evictable_key();
        self.evictable_by_all.remove(&key);
        self.evictable_by_privileged.remove(&key);
        self.total_partitions -= session.cached_size.unwrap_or(0);
        true
    }

    /// Kafka's `tryEvict`: a new session may evict the least recently used one if it is stale
    /// (unused for `eviction_ms`), else the least valuable evictable one unless the new one's
    /// key (privileged, partitions, id 0) orders below it: so a privileged session may evict
    /// an unprivileged one, and a session only one with fewer partitions.
    fn try_evict(&mut self, privileged: bool, key: EvictableKey, now_ms: i64) -> bool {
        let Some(&(last_used_ms, id)) = self.last_used.first() else {
            return false;
        };
        if now_ms - last_used_ms > self.eviction_ms {
            tracing::debug!(session_id = id, "evicting stale fetch session");
            let removed = self.remove(id);
            self.evictions += u64::from(removed);
            return removed;
        }
        let evictable = if privileged {
            &self.evictable_by_privileged
        } else {
            &self.evictable_by_all
        };
        match evictable.first() {
            Some(&first) if key >= first => {
                tracing::debug!(
                    session_id = first.2,
                    "evicting fetch session for a larger one"
                );
                let removed = self.remove(first.2);
                self.evictions += u64::from(removed);
                removed
            }
            _ => false,
        }
    }

    /// Kafka's `touch`: last-used time and the eviction sets.
    fn touch(&mut self, session_id: i32, now_ms: i64) {
        let Some(session) = self.sessions.get_mut(&session_id) else {
            return;
        };
        self.last_used.remove(&(session.last_used_ms, session.id));
        session.last_used_ms = now_ms;
        self.last_used.insert((now_ms, session.id));
        if let Some(old_size) = session.cached_size {
            let old_key = session.evictable_key();
            self.evictable_by_all.remove(&old_key);
            self.evictable_by_privileged.remove(&old_key);
            self.total_partitions -= old_size;
        }
        session.cached_size = Some(session.len());
        let key = session.evictable_key();
        let old_enough = now_ms - session.creation_ms > self.eviction_ms;
        if !session.privileged || old_enough {
            self.evictable_by_privileged.insert(key);
        }
        if old_enough {
            self.evictable_by_all.insert(key);
        }
        self.total_partitions += session.len();
    }

    /// A random positive id of this shard's range, unused (`newSessionId`).
    fn new_session_id(&self) -> i32 {
        let range = session_id_range(self.shard_count);
        let low = ((self.shard_id as i32) * range).max(1);
        let high = (self.shard_id as i32 + 1).saturating_mul(range);
        let mut rng = rand::thread_rng();
        loop {
            let id = rng.gen_range(low..high);
            if id != INVALID_SESSION_ID && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }
}

/// Kafka's `maybeUpdateResponseData` with `updateResponseData = true`: records, a changed high
/// watermark or log start offset, a preferred read replica, an error or a diverging epoch make
/// the partition go out; the cached values follow the response (high watermark -1 after an
/// error, so the partition is sent again when the error clears).
fn must_respond(cached: &mut CachedPartition, outcome: &PartitionOutcome) -> bool {
    let mut must = outcome.records_bytes > 0;
    if cached.high_watermark != outcome.high_watermark {
        must = true;
        cached.high_watermark = outcome.high_watermark;
    }
    if cached.local_log_start_offset != outcome.log_start_offset {
        must = true;
        cached.local_log_start_offset = outcome.log_start_offset;
    }
    if outcome.preferred_read_replica >= 0 || outcome.diverging_epoch {
        must = true;
    }
    if outcome.error_code != 0 {
        cached.high_watermark = -1;
        must = true;
    }
    must
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::StrBytes;

    fn topic(name: &str, partitions: &[(i32, i64)]) -> FetchTopic {
        FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(name.to_string())))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&(p, offset)| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(offset)
                    })
                    .collect(),
            )
    }

    fn key(name: &str, partition: i32) -> PartitionKey {
        PartitionKey {
            topic: TopicKey::Name(name.to_string()),
            partition,
        }
    }

    fn quiet(high_watermark: i64) -> PartitionOutcome {
        PartitionOutcome {
            records_bytes: 0,
            high_watermark,
            log_start_offset: 0,
            error_code: 0,
            preferred_read_replica: -1,
            diverging_epoch: false,
        }
    }

    fn entries(
        name: &str,
        count: i32,
    ) -> Vec<((PartitionKey, TopicName, FetchPartition), PartitionOutcome)> {
        (0..count)
            .map(|p| {
                (
                    (
                        key(name, p),
                        TopicName(StrBytes::from_string(name.to_string())),
                        FetchPartition::default().with_partition(p),
                    ),
                    quiet(0),
                )
            })
            .collect()
    }

    /// The keys of a fetch list (request topics by name, Fetch v12).
    fn keys_of(topics: &[FetchTopic]) -> Vec<PartitionKey> {
        topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| key(t.topic.as_str(), p.partition))
            })
            .collect()
    }

    fn incremental(
        cache: &mut FetchSessionCache,
        id: i32,
        epoch: i32,
        now: i64,
    ) -> (Vec<u32>, Vec<PartitionKey>) {
        match cache.update_session(id, epoch, 12, Vec::new(), Vec::new(), now) {
            Updated::Incremental { slots, topics } => (slots, keys_of(&topics)),
            Updated::Error(e) => panic!("session error {e:?}"),
            Updated::Closed(_) => panic!("closed"),
        }
    }

    #[test]
    fn epochs_follow_kafka() {
        for (epoch, next) in [(-1, -1), (0, 1), (1, 2), (i32::MAX, 1)] {
            assert_eq!(next_epoch(epoch), next, "next_epoch({epoch})");
        }
    }

    #[test]
    fn session_ids_name_their_shard() {
        for shards in [1usize, 2, 3, 8] {
            for shard in 0..shards {
                let cache = FetchSessionCache::new(10, SESSION_EVICTION_MS, shard, shards);
                for _ in 0..100 {
                    let id = cache.new_session_id();
                    assert!(id > 0);
                    assert_eq!(
                        session_shard(id, shards),
                        Some(shard),
                        "id {id} of {shards}"
                    );
                }
            }
        }
        assert_eq!(session_shard(0, 2), None);
        assert_eq!(session_shard(-5, 2), None);
    }

    #[test]
    fn incremental_answers_only_changes_and_rotates() {
        let mut cache = FetchSessionCache::new(10, SESSION_EVICTION_MS, 0, 1);
        let id = cache.create_session(0, false, false, entries("t", 3));
        assert_ne!(id, 0);
        let (slots, keys) = incremental(&mut cache, id, 1, 1);
        assert_eq!(keys, vec![key("t", 0), key("t", 1), key("t", 2)]);
        let mut with_records = quiet(5);
        with_records.records_bytes = 100;
        let kept = cache
            .filter_response(id, 1, &slots, &[with_records, quiet(0), quiet(0)])
            .unwrap();
        assert_eq!(kept, vec![true, false, false]);
        // The partition that returned records goes to the end of the fetch order.
        let (slots, keys) = incremental(&mut cache, id, 2, 2);
        assert_eq!(keys, vec![key("t", 1), key("t", 2), key("t", 0)]);
        // An error is always sent, and again when it clears (high watermark reset to -1).
        let mut failed = quiet(-1);
        failed.error_code = 6;
        let kept = cache
            .filter_response(id, 2, &slots, &[failed, quiet(0), quiet(5)])
            .unwrap();
        assert_eq!(kept, vec![true, false, false]);
        let (slots, _) = incremental(&mut cache, id, 3, 3);
        let kept = cache
            .filter_response(id, 3, &slots, &[quiet(0), quiet(0), quiet(5)])
            .unwrap();
        assert_eq!(kept, vec![true, false, false]);
    }

    #[test]
    fn session_errors() {
        let mut cache = FetchSessionCache::new(10, SESSION_EVICTION_MS, 0, 1);
        let id = cache.create_session(0, false, false, entries("t", 1));
        let error = |u: Updated| match u {
            Updated::Error(e) => Some(e),
            _ => None,
        };
        let u = cache.update_session(id + 1, 1, 12, vec![], vec![], 1);
        assert_eq!(error(u), Some(ResponseError::FetchSessionIdNotFound));
        let u = cache.update_session(id, 2, 12, vec![], vec![], 1);
        assert_eq!(error(u), Some(ResponseError::InvalidFetchSessionEpoch));
        let u = cache.update_session(id, 1, 13, vec![], vec![], 1);
        assert_eq!(error(u), Some(ResponseError::FetchSessionTopicIdError));
        // A duplicate request: the second filter sees the epoch moved on.
        let (slots, _) = incremental(&mut cache, id, 1, 1);
        let _ = incremental(&mut cache, id, 2, 1);
        assert_eq!(
            cache.filter_response(id, 1, &slots, &[quiet(0)]),
            Err(ResponseError::InvalidFetchSessionEpoch)
        );
    }

    #[test]
    fn forgetting_every_partition_closes_the_session() {
        let mut cache = FetchSessionCache::new(10, SESSION_EVICTION_MS, 0, 1);
        let id = cache.create_session(0, false, false, entries("t", 2));
        let forgotten = ForgottenTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![0, 1]);
        let added = topic("u", &[(0, 7)]);
        match cache.update_session(id, 1, 12, vec![added], vec![forgotten.clone()], 1) {
            Updated::Incremental { slots, topics } => {
                assert_eq!(slots.len(), 1);
                assert_eq!(keys_of(&topics), vec![key("u", 0)]);
                assert_eq!(topics[0].partitions[0].fetch_offset, 7);
            }
            _ => panic!("expected an incremental context"),
        }
        let forgotten = forgotten
            .with_topic(TopicName(StrBytes::from_static_str("u")))
            .with_partitions(vec![0]);
        assert!(matches!(
            cache.update_session(id, 2, 12, vec![], vec![forgotten], 2),
            Updated::Closed(_)
        ));
        assert!(cache.is_empty());
        assert_eq!(cache.total_partitions(), 0);
    }

    #[test]
    fn fetch_order_survives_forgets_and_slot_reuse() {
        let mut cache = FetchSessionCache::new(10, SESSION_EVICTION_MS, 0, 1);
        let id = cache.create_session(0, false, false, entries("t", 4));
        let forget = |partitions: Vec<i32>| {
            vec![ForgottenTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(partitions)]
        };
        // Forget the head and a middle partition, add two: the new ones reuse the freed slots
        // and still go to the end of the order; a re-named partition keeps its place.
        let update = cache.update_session(
            id,
            1,
            12,
            vec![topic("t", &[(2, 9)]), topic("u", &[(0, 0), (1, 0)])],
            forget(vec![0, 1]),
            1,
        );
        let Updated::Incremental { slots, topics } = update else {
            panic!("expected an incremental context");
        };
        assert_eq!(
            keys_of(&topics),
            vec![key("t", 2), key("t", 3), key("u", 0), key("u", 1)]
        );
        assert_eq!(topics[0].partitions[0].fetch_offset, 9);
        // Records from the head and the tail: both go to the end, in response order.
        let mut with_records = quiet(1);
        with_records.records_bytes = 10;
        let outcomes = [with_records, quiet(0), quiet(0), with_records];
        cache.filter_response(id, 1, &slots, &outcomes).unwrap();
        let (_, keys) = incremental(&mut cache, id, 2, 2);
        assert_eq!(
            keys,
            vec![key("t", 3), key("u", 0), key("t", 2), key("u", 1)]
        );
        // Forgetting the tail leaves a consistent list.
        let update = cache.update_session(id, 3, 12, vec![], forget(vec![3]), 3);
        let Updated::Incremental { topics, .. } = update else {
            panic!("expected an incremental context");
        };
        assert_eq!(
            keys_of(&topics),
            vec![key("u", 0), key("t", 2), key("u", 1)]
        );
        // Adds after forgets reuse the freed slots: the slab does not grow.
        let slab_len = cache.sessions[&id].slab.len();
        let update = cache.update_session(id, 4, 12, vec![topic("v", &[(0, 0)])], vec![], 4);
        let Updated::Incremental { topics, .. } = update else {
            panic!("expected an incremental context");
        };
        assert_eq!(
            keys_of(&topics),
            vec![key("u", 0), key("t", 2), key("u", 1), key("v", 0)]
        );
        assert_eq!(cache.sessions[&id].slab.len(), slab_len);
        assert_eq!(cache.total_partitions(), 4);
    }

    #[test]
    fn eviction_follows_kafka() {
        let eviction = SESSION_EVICTION_MS;
        let mut cache = FetchSessionCache::new(2, eviction, 0, 1);
        let a = cache.create_session(0, false, false, entries("a", 5));
        let b = cache.create_session(10, false, false, entries("b", 1));
        // Full, nothing stale, no session old enough: refused.
        assert_eq!(cache.create_session(20, false, false, entries("c", 10)), 0);
        // A privileged session may evict unprivileged ones at once: the smallest goes.
        let f = cache.create_session(30, true, false, entries("f", 1));
        assert_ne!(f, 0);
        assert!(!cache.sessions.contains_key(&b));
        // `f` then goes unused for longer than the eviction time: stale, evicted first.
        let _ = incremental(&mut cache, a, 1, eviction + 100);
        let d = cache.create_session(eviction + 110, false, false, entries("d", 6));
        assert_ne!(d, 0);
        assert!(!cache.sessions.contains_key(&f));
        // Touched after the eviction time, `a` (5 partitions) is evictable by a larger session,
        // not by one as large (the key's id 0 orders first) or smaller; `d` is too young.
        assert_eq!(
            cache.create_session(eviction + 120, false, false, entries("e", 3)),
            0
        );
        assert_eq!(
            cache.create_session(eviction + 120, false, false, entries("e", 5)),
            0
        );
        let e = cache.create_session(eviction + 130, false, false, entries("e", 6));
        assert_ne!(e, 0);
        assert!(!cache.sessions.contains_key(&a));
        assert!(cache.sessions.contains_key(&d));
        assert_eq!(cache.total_partitions(), 12);
    }
}
