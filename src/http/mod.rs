//! The operator HTTP listener (`ringtail.http.listener`): `/metrics` (Prometheus / OpenMetrics
//! text), `/healthz` and the status page `/`. The only module besides `network` that touches
//! sockets; `network` is the Kafka listener.
//!
//! It runs on shard 0's glommio executor with hyper's HTTP/1 server over [`io::GlommioIo`], so
//! there is no second async runtime. It is bound before shard 0 opens its partitions, so
//! `/healthz` answers 503 with the reason while the shards recover; `/metrics` and `/` gather
//! from every shard through the mesh ([`shard::invoke_on`]) once all of them serve (before
//! that they show only the broker-level state). At most [`MAX_CONNECTIONS`] connections are
//! served at once, each for at most [`CONNECTION_LIFETIME`].

mod io;
mod status_page;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use glommio::net::TcpListener;
use http_body_util::Full;
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use crate::config::BrokerConfig;
use crate::metrics::encode::{
    add_topics, BrokerInfo, Scrape, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE,
};
use crate::metrics::{self, health, PartitionSnapshot, ShardSnapshot, TopicSnapshot};
use crate::shard::{self, ShardContext};

/// HTTP connections served at once; more are closed on accept.
pub const MAX_CONNECTIONS: usize = 64;
/// Longest time one HTTP connection (keep-alive included) is served.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// How often the status page's per-topic byte rates are sampled.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
/// Samples kept per topic: 72 x 5 s = the last 6 minutes.
pub const SAMPLES_KEPT: usize = 72;
const _: () = assert!(SAMPLES_KEPT >= 2);

/// Why the HTTP listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on ringtail.http.listener {address}: {source} (set ringtail.http.listener to a free address, or to an empty value to disable the HTTP listener)")]
pub struct BindError {
    pub address: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// The running listener's tasks; [`HttpServer::stop`] ends them.
pub struct HttpServer {
    accept: glommio::task::JoinHandle<()>,
    sampler: glommio::task::JoinHandle<()>,
}

impl HttpServer {
    /// Stops accepting and sampling (open connections end with the executor).
    pub fn stop(self) {
        self.accept.cancel();
        self.sampler.cancel();
    }
}

/// How long [`start`] retries a bind that finds the address in use. A process killed with
/// SIGKILL is reaped before the kernel has torn down its io_uring, and a pending accept there
/// keeps its listening socket after the exit (`ss -ltn` on Linux 6.18: still LISTEN right after
/// `wait` returned, gone 50 ms later): a restart right after a crash would otherwise find its own
/// old address taken.
pub const BIND_RETRY_FOR: Duration = Duration::from_secs(5);
const BIND_RETRY_INTERVAL: Duration = Duration::from_millis(50);

/// Binds `ringtail.http.listener` (without SO_REUSEPORT, so an address that stays in use for
/// [`BIND_RETRY_FOR`] is an error) and starts serving on this executor (shard 0). `Ok(None)`
/// when it is disabled.
pub async fn start(config: &Arc<BrokerConfig>) -> Result<Option<HttpServer>, BindError> {
    let Some(address) = config.http_listener else {
        return Ok(None);
    };
    let deadline = Instant::now() + BIND_RETRY_FOR;
    let listener = loop {
        match bind(address) {
            Ok(listener) => break listener,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                tracing::debug!("HTTP listener {address} in use, retrying: {e}");
                glommio::timer::sleep(BIND_RETRY_INTERVAL).await;
            }
            Err(source) => return Err(BindError { address, source }),
        }
    };
    tracing::info!("HTTP listener (/metrics, /healthz, /) on http://{address}/");
    let state = Rc::new(State {
        config: config.clone(),
        connections: Cell::new(0),
        rates: RefCell::new(TopicRates::default()),
    });
    let accept = glommio::spawn_local(accept_loop(state.clone(), listener)).detach();
    let sampler = glommio::spawn_local(sample_loop(state)).detach();
    Ok(Some(HttpServer { accept, sampler }))
}

fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let listener = std::net::TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    // SAFETY: the fd is a listening TCP socket we own; ownership passes to glommio's listener.
    Ok(unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) })
}

/// What the listener's tasks share on shard 0.
struct State {
    config: Arc<BrokerConfig>,
    connections: Cell<usize>,
    rates: RefCell<TopicRates>,
}

/// Per topic, the last [`SAMPLES_KEPT`] samples of (time, bytes in, bytes out) totals.
#[derive(Default)]
pub struct TopicRates {
    samples: BTreeMap<String, VecDeque<(Instant, u64, u64)>>,
}

impl TopicRates {
    fn push(&mut self, now: Instant, topics: &BTreeMap<String, TopicSnapshot>) {
        self.samples.retain(|name, _| topics.contains_key(name));
        for (name, topic) in topics {
            let ring = self.samples.entry(name.clone()).or_default();
            if ring.len() == SAMPLES_KEPT {
                ring.pop_front();
            }
            ring.push_back((now, topic.bytes_in, topic.bytes_out));
        }
    }

    /// Bytes in and out per second between consecutive samples of `topic`, oldest first.
    pub fn rates(&self, topic: &str) -> Vec<(f64, f64)> {
        let Some(ring) = self.samples.get(topic) else {
            return Vec::new();
        };
        ring.iter()
            .zip(ring.iter().skip(1))
            .map(|(a, b)| {
                let seconds = (b.0 - a.0).as_secs_f64().max(1e-3);
                (
                    b.1.saturating_sub(a.1) as f64 / seconds,
                    b.2.saturating_sub(a.2) as f64 / seconds,
                )
            })
            .collect()
    }
}

async fn accept_loop(state: Rc<State>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                if state.connections.get() >= MAX_CONNECTIONS {
                    tracing::warn!(
                        "HTTP listener: {MAX_CONNECTIONS} connections open, closing a new one"
                    );
                    drop(stream);
                    continue;
                }
                state.connections.set(state.connections.get() + 1);
                let state = state.clone();
                glommio::spawn_local(async move {
                    serve_connection(&state, stream).await;
                    state.connections.set(state.connections.get() - 1);
                })
                .detach();
            }
            Err(e) => {
                tracing::warn!("HTTP accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve_connection(state: &Rc<State>, stream: glommio::net::TcpStream) {
    let service = hyper::service::service_fn(|request: Request<hyper::body::Incoming>| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(route(&state, request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(None)
        .serve_connection(io::GlommioIo::new(stream), service);
    let lifetime = glommio::timer::sleep(CONNECTION_LIFETIME);
    futures::pin_mut!(connection, lifetime);
    if let futures::future::Either::Left((Err(e), _)) =
        futures::future::select(connection, lifetime).await
    {
        tracing::debug!("HTTP connection ended: {e}");
    }
}

type Body = Full<Bytes>;

async fn route(state: &State, request: Request<hyper::body::Incoming>) -> Response<Body> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".to_string());
    }
    match request.uri().path() {
        "/metrics" => {
            let openmetrics = request
                .headers()
                .get(ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|accept| accept.contains("application/openmetrics-text"));
            let scrape = gather(&state.config).await;
            let body = scrape.encode(openmetrics);
            let content_type = if openmetrics {
                OPENMETRICS_CONTENT_TYPE
            } else {
                PROMETHEUS_CONTENT_TYPE
            };
            respond(StatusCode::OK, content_type, body)
        }
        "/healthz" => match health::report().problem() {
            None => text(StatusCode::OK, "ok\n".to_string()),
            Some(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
        },
        "/" => {
            let scrape = gather(&state.config).await;
            let html = status_page::render(&scrape, &state.rates.borrow(), &state.config);
            respond(StatusCode::OK, "text/html; charset=utf-8", html)
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /, /metrics or /healthz\n".to_string(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    respond(status, "text/plain; charset=utf-8", body)
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The broker-level facts every view starts from.
fn broker_info(config: &BrokerConfig) -> BrokerInfo {
    BrokerInfo {
        version: env!("CARGO_PKG_VERSION"),
        node_id: config.node_id,
        listeners: config
            .listeners
            .iter()
            .map(|l| (l.name.clone(), format!("{}:{}", l.host, l.port)))
            .collect(),
        health: health::report(),
    }
}

/// Every shard's snapshot, merged; only the broker-level state while a shard is not serving
/// (it cannot run work sent over the mesh yet).
pub async fn gather(config: &BrokerConfig) -> Scrape {
    let broker = broker_info(config);
    if !broker.health.all_ready() {
        return Scrape::merge(broker, Vec::new());
    }
    let shard_count = shard::context().shard_count;
    let snapshots = join_all((0..shard_count).map(|target| {
        shard::invoke_on(target, |ctx| Box::pin(async move { shard_snapshot(&ctx) }))
    }))
    .await;
    Scrape::merge(broker, snapshots)
}

/// This shard's counters, partitions and groups.
fn shard_snapshot(ctx: &ShardContext) -> ShardSnapshot {
    let mut snapshot = metrics::with(|m| m.snapshot(ctx.shard_id));
    snapshot.read_ahead_hits = crate::log::read_ahead::hits();
    snapshot.read_ahead_bytes = crate::log::read_ahead::held_bytes() as u64;
    snapshot.partitions = ctx
        .replica_manager
        .partitions()
        .iter()
        .map(|p| PartitionSnapshot {
            topic: p.topic.clone(),
            partition: p.partition,
            log_start_offset: p.log_start_offset(),
            log_end_offset: p.log().log_end_offset(),
            high_watermark: p.high_watermark(),
            size_bytes: p.log().size_bytes(),
            segments: p.log().segment_count(),
            offline: p.is_offline(),
        })
        .collect();
    snapshot.groups = ctx.group_coordinator.group_snapshots();
    snapshot
}

/// Samples every topic's byte totals every [`SAMPLE_INTERVAL`] for the status page's rates.
async fn sample_loop(state: Rc<State>) {
    loop {
        if !health::report().all_ready() {
            glommio::timer::sleep(SAMPLE_INTERVAL).await;
            continue;
        }
        let shard_count = shard::context().shard_count;
        let per_shard = join_all((0..shard_count).map(|target| {
            shard::invoke_on(target, |_| {
                Box::pin(async move { metrics::with(|m| m.topic_snapshots()) })
            })
        }))
        .await;
        let mut topics: BTreeMap<String, TopicSnapshot> = BTreeMap::new();
        add_topics(&mut topics, per_shard.into_iter().flatten());
        state.rates.borrow_mut().push(Instant::now(), &topics);
        glommio::timer::sleep(SAMPLE_INTERVAL).await;
    }
}
