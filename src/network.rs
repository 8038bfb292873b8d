//! Sockets: the per-shard listener and one task pair per connection. The only module that
//! touches sockets.
//!
//! Every shard binds the same address; glommio's `TcpListener::bind` sets SO_REUSEPORT, so the
//! kernel spreads connections over the shards. A connection is served by the shard that accepted
//! it. Its reader task reads size-prefixed frames (Kafka protocol guide, "Protocol Primitives":
//! `int32 size` then the request) and dispatches each in order; its writer task sends responses
//! in request order. At most `queued.max.requests` responses wait per connection; past that the
//! reader stops reading (backpressure).
//!
//! A frame whose size is negative or above `socket.request.max.bytes`, or that cannot be
//! decoded, closes that connection only, with a log line saying why.
//!
//! Floods (issue 14): each accepted connection takes a slot of the broker-wide
//! [`connection_quotas`] first (`max.connections` waits, `max.connections.per.ip` closes); a
//! connection without a read or write for `connections.max.idle.ms` is closed (Kafka's
//! `Selector` idle expiry), whatever it is doing; while the finished responses not yet written
//! to a connection exceed `ringtail.connection.max.unsent.bytes` its next request is not read;
//! the read buffer grows at most to twice the bytes received of the frame being read, so a
//! slow sender announcing a large frame holds only what it has sent.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures::future::LocalBoxFuture;
use futures::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel;
use glommio::net::TcpListener;

use crate::config::{BrokerConfig, Listener};
use crate::metrics;
use crate::request_handler::{self, Response};
use crate::security::tls::ListenerTls;
use crate::security::Session;
use crate::shard::ShardContext;

mod capture;
pub mod connection_quotas;
mod tls;

/// Bytes read from the socket per read call when no larger frame is pending.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Pieces of a response at least this large are written without copying them into the
/// coalescing buffer.
const LARGE_PART_BYTES: usize = 16 * 1024;
/// Upper bound on responses queued per connection, whatever `queued.max.requests` says.
const MAX_QUEUED_RESPONSES: usize = 1024;
/// Bytes read per read call between frames (a size prefix and what follows it).
const IDLE_READ_BYTES: usize = 4 * 1024;

/// One of `listeners`, bound on this shard's executor.
pub struct BoundListener {
    /// The listener's configuration (name, security protocol, address).
    pub config: Listener,
    /// Its index in `listeners` (for the per-listener connection count).
    index: usize,
    socket: TcpListener,
    /// SSL / SASL_SSL listeners: the TLS settings (issue 11).
    tls: Option<Rc<ListenerTls>>,
}

/// Binds every listener of `listeners` on this shard's executor (each shard binds the same
/// addresses: SO_REUSEPORT). TLS listeners get their rustls configuration here (start-up has
/// checked it already with `security::tls::build_all`, so an error here is unexpected).
pub fn bind_all(config: &BrokerConfig) -> std::io::Result<Vec<BoundListener>> {
    let (mut tls, _) = crate::security::tls::build_all(config)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    connection_quotas::init(config).map_err(std::io::Error::other)?;
    config
        .listeners
        .iter()
        .enumerate()
        .map(|(index, listener)| {
            let host = if listener.host.is_empty() {
                "0.0.0.0"
            } else {
                listener.host.as_str()
            };
            let socket = TcpListener::bind((host, listener.port)).map_err(|e| {
                std::io::Error::other(format!(
                    "cannot listen on {}:{} (listener {}): {e}",
                    host, listener.port, listener.name
                ))
            })?;
            let tls = tls
                .iter()
                .position(|(name, _)| *name == listener.name)
                .map(|i| Rc::new(tls.swap_remove(i).1));
            Ok(BoundListener {
                config: listener.clone(),
                index,
                socket,
                tls,
            })
        })
        .collect()
}

/// Accepts connections on `listener` until the task is cancelled at shutdown.
pub async fn accept_loop(ctx: Rc<ShardContext>, listener: BoundListener) {
    let quotas = match connection_quotas::init(&ctx.config) {
        Ok(quotas) => quotas,
        Err(e) => {
            tracing::error!(shard = ctx.shard_id, "not accepting connections: {e}");
            return;
        }
    };
    loop {
        match listener.socket.accept().await {
            Ok(stream) => {
                let peer = stream.peer_addr().ok();
                // At max.connections this waits (no further accept meanwhile), as Kafka's
                // Acceptor does; over max.connections.per.ip the connection is closed now.
                let slot = match quotas.acquire(listener.index, peer.map(|p| p.ip())).await {
                    Ok(slot) => slot,
                    Err(rejected) => {
                        tracing::info!("{rejected}");
                        crate::metrics::with(|m| {
                            m.connection_opened();
                            m.connection_closed(metrics::CloseReason::ConnectionLimit);
                        });
                        drop(stream);
                        continue;
                    }
                };
                if let Some(peer) = peer {
                    tracing::info!(
                        "accepted connection from {peer} on shard {} (listener {})",
                        ctx.shard_id,
                        listener.config.name
                    );
                }
                let _ = stream.set_nodelay(true);
                crate::metrics::with(|m| m.connection_opened());
                let session = Rc::new(Session::new(
                    listener.config.name.clone(),
                    listener.config.security_protocol,
                    peer,
                ));
                // The slot lives as long as the connection's task.
                match &listener.tls {
                    Some(tls) => {
                        let serve =
                            tls::serve_tls_connection(ctx.clone(), stream, session, tls.clone());
                        glommio::spawn_local(async move {
                            serve.await;
                            drop(slot);
                        })
                        .detach()
                    }
                    None => {
                        let serve = serve_connection(ctx.clone(), stream, session);
                        glommio::spawn_local(async move {
                            serve.await;
                            drop(slot);
                        })
                        .detach()
                    }
                };
            }
            Err(e) => {
                tracing::warn!(shard = ctx.shard_id, "accept failed: {e}");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

type PendingResponse = LocalBoxFuture<'static, Response>;

/// Serves one connection: `stream` is the TCP stream, or (issue 11) a TLS stream over it.
async fn serve_connection<S>(ctx: Rc<ShardContext>, stream: S, session: Rc<Session>)
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin + 'static,
{
    let peer = session
        .client_address
        .map_or_else(|| "unknown".to_string(), |p| p.to_string());
    let limits = &ctx.config.connection_limits;
    let idle = u64::try_from(limits.connections_max_idle_ms)
        .ok()
        .map(std::time::Duration::from_millis);
    let activity = Rc::new(Cell::new(Instant::now()));
    let (reader, writer) = stream.split();
    let reader = ActivityStream::new(reader, activity.clone());
    let writer = ActivityStream::new(writer, activity.clone());
    let queue_depth = (ctx.config.queued_max_requests.max(1) as usize).min(MAX_QUEUED_RESPONSES);
    let (queue, responses) = local_channel::new_bounded::<PendingResponse>(queue_depth);
    let (progress_sender, progress) = local_channel::new_bounded::<()>(1);
    let state = Rc::new(ConnectionState {
        queued: Cell::new(0),
        unsent_bytes: Cell::new(0),
        max_unsent_bytes: limits.max_unsent_bytes,
    });
    let writer_task = glommio::spawn_local(write_responses(
        writer,
        responses,
        state.clone(),
        progress_sender,
        peer.clone(),
    ));
    let read = read_requests(&ctx, &session, reader, queue, &state, progress, &peer);
    let mut close_reason = match idle {
        Some(idle) => {
            futures_lite::future::or(read, async {
                idle_expiry(&activity, idle).await;
                metrics::CloseReason::Idle
            })
            .await
        }
        None => read.await,
    };
    // The reader is done (its queue end dropped): the writer sends what is queued, unless the
    // connection stays idle that long (a client that never reads), which cancels the writer.
    let drained = async {
        writer_task.await;
        true
    };
    let drained = match idle {
        Some(idle) if close_reason != metrics::CloseReason::Idle => {
            futures_lite::future::or(drained, async {
                idle_expiry(&activity, idle).await;
                false
            })
            .await
        }
        Some(_) => false,
        None => drained.await,
    };
    if !drained {
        close_reason = metrics::CloseReason::Idle;
        tracing::info!(
            "closing connection from {peer}: idle for connections.max.idle.ms ({} ms)",
            limits.connections_max_idle_ms
        );
    }
    metrics::with(|m| m.connection_closed(close_reason));
}

/// What a connection's reader and writer tasks share.
struct ConnectionState {
    /// Responses queued and not yet written.
    queued: Cell<usize>,
    /// Bytes of finished responses not yet written to the socket.
    unsent_bytes: Cell<usize>,
    /// `ringtail.connection.max.unsent.bytes`.
    max_unsent_bytes: usize,
}

/// Returns once the connection has had no read or write for `idle` (Kafka's
/// `Selector.maybeCloseOldestConnection` with `connections.max.idle.ms`).
async fn idle_expiry(activity: &Cell<Instant>, idle: std::time::Duration) {
    loop {
        let deadline = activity.get() + idle;
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        glommio::timer::sleep(deadline - now).await;
    }
}

/// The reader: reads frames, dispatches each in order and queues its pending response; stops
/// reading while the queue is full or the unsent response bytes exceed their cap. Returns why
/// it stopped.
async fn read_requests<R: futures::AsyncRead + Unpin>(
    ctx: &Rc<ShardContext>,
    session: &Rc<Session>,
    mut reader: R,
    queue: local_channel::LocalSender<PendingResponse>,
    state: &ConnectionState,
    progress: local_channel::LocalReceiver<()>,
    peer: &str,
) -> metrics::CloseReason {
    let max_frame = ctx.config.socket_request_max_bytes.max(0) as usize;
    let mut buffer = BytesMut::new();
    loop {
        // Backpressure on a client that does not read its responses.
        while state.unsent_bytes.get() > state.max_unsent_bytes {
            if progress.recv().await.is_none() {
                return metrics::CloseReason::SocketError;
            }
        }
        if buffer.is_empty() {
            // Between frames: hold no buffer (an idle connection costs no read buffer).
            buffer = BytesMut::new();
        }
        let sasl = sasl_read_limits(ctx, session);
        let (max_size, min_size) = match &sasl {
            Some(limits) => (
                max_frame.min(limits.max_receive_size),
                if limits.raw_token {
                    0
                } else {
                    MIN_REQUEST_BYTES
                },
            ),
            None => (max_frame, MIN_REQUEST_BYTES),
        };
        let read = read_frame(&mut reader, &mut buffer, max_size, min_size);
        let read = match &sasl {
            // A SASL client that does not finish authenticating in time is closed.
            Some(limits) => {
                let timeout = limits.timeout;
                futures_lite::future::or(read, async move {
                    glommio::timer::sleep(timeout).await;
                    Err(FrameError::AuthenticationTimeout)
                })
                .await
            }
            None => read.await,
        };
        let frame = match read {
            Ok(Some(frame)) => {
                capture::frame(&frame);
                frame
            }
            Ok(None) => return metrics::CloseReason::ClientClosed,
            Err(reason) => {
                tracing::warn!("closing connection from {peer}: {reason}");
                return match reason {
                    FrameError::Read(_) => metrics::CloseReason::SocketError,
                    _ => metrics::CloseReason::InvalidFrame,
                };
            }
        };
        let pending = if sasl.as_ref().is_some_and(|l| l.raw_token) {
            request_handler::sasl::raw_token(ctx, &frame, session)
        } else {
            request_handler::dispatch(ctx, frame, session).await
        };
        let close = matches!(
            pending,
            request_handler::Dispatched::Close(_) | request_handler::Dispatched::Final(_)
        );
        let future: PendingResponse = match pending {
            request_handler::Dispatched::Respond(future) => future,
            request_handler::Dispatched::Final(future) => future,
            request_handler::Dispatched::Close(reason) => {
                Box::pin(async move { Response::Close(reason) })
            }
        };
        state.queued.set(state.queued.get() + 1);
        if close {
            let _ = queue.send(future).await;
            return metrics::CloseReason::InvalidRequest;
        }
        if queue.send(future).await.is_err() {
            // The writer stopped: a write failed (or an answer closed the connection).
            return metrics::CloseReason::SocketError;
        }
    }
}

/// The writer: awaits each pending response in request order and writes it, coalescing
/// responses that are already complete into one write. Keeps `state.unsent_bytes` and wakes
/// the reader (`progress`) after each write.
async fn write_responses<W: futures::AsyncWrite + Unpin>(
    mut writer: W,
    responses: local_channel::LocalReceiver<PendingResponse>,
    state: Rc<ConnectionState>,
    progress: local_channel::LocalSender<()>,
    peer: String,
) {
    let mut out = BytesMut::new();
    let written = |out: &BytesMut| {
        state.unsent_bytes.set(out.len());
        let _ = progress.try_send(());
    };
    while let Some(pending) = responses.recv().await {
        let response = pending.await;
        state.queued.set(state.queued.get() - 1);
        state
            .unsent_bytes
            .set(out.len() + response_bytes(&response));
        match response {
            // A lone response (often a large fetch) goes out without another copy.
            Response::Frame(frame) if out.is_empty() && state.queued.get() == 0 => {
                if writer.write_all(&frame).await.is_err() {
                    break;
                }
                written(&out);
                continue;
            }
            Response::Frame(frame) => out.extend_from_slice(&frame),
            Response::Parts(parts) => {
                // Small pieces join `out`; a large one (stored records) goes out as is.
                if write_parts(&mut writer, &mut out, parts).await.is_err() {
                    break;
                }
            }
            Response::None => continue,
            Response::FrameThenClose(frame, reason) => {
                out.extend_from_slice(&frame);
                let _ = writer.write_all(&out).await;
                out.clear();
                tracing::warn!("closing connection from {peer}: {reason}");
                break;
            }
            Response::Close(reason) => {
                tracing::warn!("closing connection from {peer}: {reason}");
                break;
            }
        }
        // Coalesce responses that are already complete into one write.
        if state.queued.get() == 0 || out.len() >= READ_CHUNK_BYTES {
            if writer.write_all(&out).await.is_err() {
                break;
            }
            out.clear();
        }
        written(&out);
    }
    if !out.is_empty() {
        let _ = writer.write_all(&out).await;
    }
    let _ = writer.close().await;
}

/// The bytes `response` puts on the wire.
fn response_bytes(response: &Response) -> usize {
    match response {
        Response::Frame(frame) | Response::FrameThenClose(frame, _) => frame.len(),
        Response::Parts(parts) => parts.iter().map(Bytes::len).sum(),
        Response::None | Response::Close(_) => 0,
    }
}

/// A socket half that notes the time of every read or write that moved bytes (the activity
/// `connections.max.idle.ms` is measured from).
struct ActivityStream<S> {
    inner: S,
    activity: Rc<Cell<Instant>>,
}

impl<S> ActivityStream<S> {
    fn new(inner: S, activity: Rc<Cell<Instant>>) -> Self {
        ActivityStream { inner, activity }
    }

    fn note(&self, result: &std::task::Poll<std::io::Result<usize>>) {
        if matches!(result, std::task::Poll::Ready(Ok(n)) if *n > 0) {
            self.activity.set(Instant::now());
        }
    }
}

impl<S: futures::AsyncRead + Unpin> futures::AsyncRead for ActivityStream<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let result = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        self.note(&result);
        result
    }
}

impl<S: futures::AsyncWrite + Unpin> futures::AsyncWrite for ActivityStream<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let result = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(&result);
        result
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// The smallest request frame: api key, version and correlation id (8 bytes).
pub(crate) const MIN_REQUEST_BYTES: usize = 8;

/// How the next frame of a SASL connection that has not authenticated yet is read.
struct SaslReadLimits {
    /// `sasl.server.max.receive.size` (Kafka reads unauthenticated frames with this bound).
    max_receive_size: usize,
    /// The frame is a raw SASL token (after SaslHandshake v0): any size from 0.
    raw_token: bool,
    /// Time left before the connection must have authenticated.
    timeout: std::time::Duration,
}

/// `None` once the connection is authenticated (or on a non-SASL listener).
fn sasl_read_limits(ctx: &ShardContext, session: &Session) -> Option<SaslReadLimits> {
    if !session.security_protocol.uses_sasl() {
        return None;
    }
    let state = session.sasl.borrow();
    if !state.authentication_pending() {
        return None;
    }
    let config =
        crate::security::sasl::SaslConfig::for_listener(&ctx.config, &session.listener_name).ok();
    let (max_receive_size, bound) = config
        .map_or((524_288, std::time::Duration::from_secs(30)), |c| {
            (c.max_receive_size, c.authentication_timeout)
        });
    Some(SaslReadLimits {
        max_receive_size,
        raw_token: state.expects_raw_token(),
        timeout: bound.saturating_sub(state.started_at().elapsed()),
    })
}

/// Writes a response's pieces in order: small ones are appended to `out` (written later with
/// what follows), a large one is written at once after whatever `out` holds.
async fn write_parts<W: futures::AsyncWrite + Unpin>(
    writer: &mut W,
    out: &mut BytesMut,
    parts: Vec<Bytes>,
) -> std::io::Result<()> {
    for part in parts {
        if part.len() < LARGE_PART_BYTES {
            out.extend_from_slice(&part);
            continue;
        }
        if !out.is_empty() {
            writer.write_all(out).await?;
            out.clear();
        }
        writer.write_all(&part).await?;
    }
    Ok(())
}

/// Why a connection is closed while reading a request frame (logged, never answered: Kafka's
/// `SocketServer` closes the connection on the same conditions).
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// The peer closed the connection inside the 4-byte size prefix.
    #[error("connection closed inside a frame size ({received} bytes)")]
    ClosedInSize { received: usize },
    /// A size smaller than a request header can be (8 bytes: api key, version, correlation id).
    #[error("invalid frame size {size}")]
    InvalidSize { size: i32 },
    /// A SASL client did not authenticate within `ringtail.sasl.authentication.timeout.ms`.
    #[error("SASL authentication not completed in time (ringtail.sasl.authentication.timeout.ms)")]
    AuthenticationTimeout,
    /// A size above `socket.request.max.bytes` (Kafka's `InvalidReceiveException`).
    #[error("frame of {size} bytes exceeds socket.request.max.bytes ({max_bytes})")]
    TooLarge { size: usize, max_bytes: usize },
    /// The peer closed the connection inside a frame.
    #[error("connection closed inside a frame: got {received} of {size} bytes")]
    ClosedInFrame { received: usize, size: usize },
    /// The socket read failed.
    #[error("read error: {0}")]
    Read(#[source] std::io::Error),
}

/// Reads one size-prefixed frame. `Ok(None)` on a clean end of stream between frames.
pub(crate) async fn read_frame<R: futures::AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut BytesMut,
    max_frame: usize,
    min_frame: usize,
) -> Result<Option<Bytes>, FrameError> {
    while buffer.len() < 4 {
        if fill(reader, buffer, IDLE_READ_BYTES).await? == 0 {
            return if buffer.is_empty() {
                Ok(None)
            } else {
                Err(FrameError::ClosedInSize {
                    received: buffer.len(),
                })
            };
        }
    }
    let size = i32::from_be_bytes(buffer[..4].try_into().expect("4 bytes"));
    if size < 0 || (size as usize) < min_frame {
        return Err(FrameError::InvalidSize { size });
    }
    let size = size as usize;
    if size > max_frame {
        return Err(FrameError::TooLarge {
            size,
            max_bytes: max_frame,
        });
    }
    while buffer.len() < 4 + size {
        // At most what has arrived again (and at least one chunk): a frame's buffer grows with
        // the bytes received, not with the size its prefix claims.
        let want = (4 + size - buffer.len())
            .max(IDLE_READ_BYTES)
            .min(buffer.len().max(READ_CHUNK_BYTES));
        if fill(reader, buffer, want).await? == 0 {
            return Err(FrameError::ClosedInFrame {
                received: buffer.len() - 4,
                size,
            });
        }
    }
    let mut frame = buffer.split_to(4 + size);
    let _ = frame.split_to(4);
    Ok(Some(frame.freeze()))
}

async fn fill<R: futures::AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut BytesMut,
    want: usize,
) -> Result<usize, FrameError> {
    let start = buffer.len();
    buffer.resize(start + want, 0);
    let result = reader.read(&mut buffer[start..]).await;
    let n = *result.as_ref().unwrap_or(&0);
    buffer.truncate(start + n);
    result.map_err(FrameError::Read)
}
