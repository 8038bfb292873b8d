//! A minimal Kafka client connection on glommio: framing, pipelining, version negotiation.
//!
//! One `Connection` is one TCP connection owned by one executor. Requests may be pipelined:
//! responses come back in request order (Kafka protocol guide, "Network"), so a FIFO of pending
//! correlation ids matches them. Every wait is bounded: connecting by `connect_timeout`, each
//! response by `request.timeout.ms`. Versions are negotiated with ApiVersions (KIP-511): the
//! highest version both sides support, capped where this client relies on topic names
//! (Produce and Fetch v13 switched to topic ids). Frames are encoded and decoded by
//! ringtail-protocol's sans-io client codec ([`ringtail_protocol::client`]); this module does
//! the I/O and the waiting.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::channel::oneshot;
use futures::io::{AsyncReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use glommio::net::TcpStream;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::ResponseError;
use ringtail_protocol::client::{self as codec, ClientCodecError};

pub use ringtail_protocol::client::MAX_RESPONSE_BYTES;

/// A connection's byte stream: the TCP stream, or a TLS stream over it
/// (`security.protocol=SSL`, [`crate::security`]).
pub trait Io: futures::io::AsyncRead + futures::io::AsyncWrite + Unpin {}
impl<T: futures::io::AsyncRead + futures::io::AsyncWrite + Unpin> Io for T {}
type Stream = Box<dyn Io>;

/// Why talking to a broker failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// TCP connect failed or timed out.
    #[error("cannot connect to broker {addr}: {reason}")]
    Connect { addr: String, reason: String },
    /// No response within `request.timeout.ms`.
    #[error("broker {addr} did not answer {api:?} within {timeout_ms} ms")]
    Timeout {
        addr: String,
        api: ApiKey,
        timeout_ms: u128,
    },
    /// The connection broke.
    #[error("connection to broker {addr} closed: {reason}")]
    Closed { addr: String, reason: String },
    /// A message could not be encoded or decoded.
    #[error("{api:?} v{version} with broker {addr}: cannot {op}: {reason}")]
    Codec {
        addr: String,
        api: ApiKey,
        version: i16,
        op: &'static str,
        reason: String,
    },
    /// The broker does not support a version of an API this client can speak.
    #[error("broker {addr} supports no version of {api:?} this client speaks (broker {broker_min}..={broker_max}, client {client_min}..={client_max})")]
    Unsupported {
        addr: String,
        api: ApiKey,
        broker_min: i16,
        broker_max: i16,
        client_min: i16,
        client_max: i16,
    },
    /// The broker answered with a Kafka error code.
    #[error("{api:?} failed{context}: {name} (error code {code})")]
    Broker {
        api: ApiKey,
        context: String,
        code: i16,
        name: String,
    },
}

impl ClientError {
    /// A `Broker` error for `code` with a readable name (Kafka's `Errors` enum).
    pub fn broker(api: ApiKey, context: impl Into<String>, code: i16) -> ClientError {
        let name = ResponseError::try_from_code(code)
            .map(|e| format!("{e:?}"))
            .unwrap_or_else(|| "UNKNOWN_SERVER_ERROR".to_string());
        ClientError::Broker {
            api,
            context: context.into(),
            code,
            name,
        }
    }
}

type ResponseSender = oneshot::Sender<Result<Bytes, ClientError>>;
/// The body of a response that is still to come.
pub type ResponseReceiver = oneshot::Receiver<Result<Bytes, ClientError>>;

struct Pending {
    correlation_id: i32,
    header_version: i16,
    tx: ResponseSender,
}

#[derive(Default)]
struct Shared {
    pending: RefCell<VecDeque<Pending>>,
    closed: RefCell<Option<String>>,
}

/// One connection to one broker.
pub struct Connection {
    /// The broker's `host:port`.
    pub addr: String,
    writer: futures::lock::Mutex<WriteHalf<Stream>>,
    shared: Rc<Shared>,
    next_correlation_id: Cell<i32>,
    versions: HashMap<i16, (i16, i16)>,
    client_id: StrBytes,
    request_timeout: Duration,
    _reader: glommio::Task<()>,
}

impl Connection {
    /// Connects to `addr` within `timeout` and negotiates versions with ApiVersions.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Connection, ClientError> {
        let connect_error = |reason: String| ClientError::Connect {
            addr: addr.to_string(),
            reason,
        };
        let stream = match TcpStream::connect_timeout(addr, timeout).await {
            Ok(stream) => stream,
            Err(e) => return Err(connect_error(e.to_string())),
        };
        stream
            .set_nodelay(true)
            .map_err(|e| connect_error(e.to_string()))?;
        let stream: Stream = match crate::security::tls_config() {
            None => Box::new(stream),
            Some(config) => {
                let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name = rustls_pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| connect_error(format!("TLS server name {host}: {e}")))?;
                let handshake = futures_rustls::TlsConnector::from(config).connect(name, stream);
                let tls = futures::future::select(
                    Box::pin(handshake),
                    Box::pin(glommio::timer::sleep(timeout)),
                )
                .await;
                match tls {
                    futures::future::Either::Left((Ok(tls), _)) => Box::new(tls),
                    futures::future::Either::Left((Err(e), _)) => {
                        return Err(connect_error(format!("TLS handshake: {e}")))
                    }
                    futures::future::Either::Right(_) => {
                        return Err(connect_error("TLS handshake timed out".to_string()))
                    }
                }
            }
        };
        let (reader, writer) = stream.split();
        let shared = Rc::new(Shared::default());
        let reader_task = glommio::spawn_local(read_responses(
            BufReader::with_capacity(1 << 20, reader),
            shared.clone(),
            addr.to_string(),
        ));
        let mut connection = Connection {
            addr: addr.to_string(),
            writer: futures::lock::Mutex::new(writer),
            shared,
            next_correlation_id: Cell::new(1),
            versions: HashMap::new(),
            client_id: StrBytes::from_string(client_id.to_string()),
            request_timeout: timeout,
            _reader: reader_task,
        };
        connection.negotiate_versions().await?;
        Ok(connection)
    }

    async fn negotiate_versions(&mut self) -> Result<(), ClientError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("ringtail-bench"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let response = match self.call(&request, 3).await {
            Ok(response) if response.error_code == 0 => response,
            // KIP-511: a broker that does not know v3 answers in v0 with error 35; retry in v0.
            Ok(_) | Err(ClientError::Codec { .. }) => self.call(&request, 0).await?,
            Err(e) => return Err(e),
        };
        if response.error_code != 0 {
            return Err(ClientError::broker(
                ApiKey::ApiVersions,
                "",
                response.error_code,
            ));
        }
        self.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    /// The version of `R` to use: the highest both sides support, at most `cap`.
    pub fn version<R: Request>(&self, cap: i16) -> Result<i16, ClientError> {
        let api = ApiKey::try_from(R::KEY).unwrap_or(ApiKey::ApiVersions);
        let ours = R::VERSIONS;
        let (broker_min, broker_max) = self.versions.get(&R::KEY).copied().unwrap_or((-1, -1));
        let version = broker_max.min(ours.max).min(cap);
        if broker_max < 0 || version < broker_min.max(ours.min) {
            return Err(ClientError::Unsupported {
                addr: self.addr.clone(),
                api,
                broker_min,
                broker_max,
                client_min: ours.min,
                client_max: ours.max.min(cap),
            });
        }
        Ok(version)
    }

    /// Sends a request; returns the receiver of its response body unless `expect_response` is
    /// false (Produce with acks=0). Requests are written in call order.
    pub async fn send<R: Request>(
        &self,
        request: &R,
        version: i16,
        expect_response: bool,
    ) -> Result<Option<ResponseReceiver>, ClientError> {
        let api = codec::api_of::<R>();
        if let Some(reason) = self.shared.closed.borrow().clone() {
            return Err(ClientError::Closed {
                addr: self.addr.clone(),
                reason,
            });
        }
        let correlation_id = self.next_correlation_id.get();
        self.next_correlation_id.set(correlation_id.wrapping_add(1));
        let frame = codec::encode_request(request, version, correlation_id, Some(&self.client_id))
            .map_err(|e| ClientError::Codec {
                addr: self.addr.clone(),
                api,
                version,
                op: "encode",
                reason: codec_reason(e),
            })?;
        let mut writer = match with_timeout(self.request_timeout, self.writer.lock()).await {
            Some(writer) => writer,
            None => return Err(self.timeout(api)),
        };
        let receiver = expect_response.then(|| {
            let (tx, rx) = oneshot::channel();
            let header_version = codec::response_header_version::<R>(version);
            self.shared.pending.borrow_mut().push_back(Pending {
                correlation_id,
                header_version,
                tx,
            });
            rx
        });
        match with_timeout(self.request_timeout, writer.write_all(&frame)).await {
            Some(Ok(())) => Ok(receiver),
            Some(Err(e)) => Err(self.close(e.to_string())),
            None => Err(self.close(format!(
                "write did not complete within {} ms",
                self.request_timeout.as_millis()
            ))),
        }
    }

    /// Waits for the response to a request sent with `send`, within `request.timeout.ms`.
    pub async fn receive<R: Request>(
        &self,
        receiver: ResponseReceiver,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        let api = codec::api_of::<R>();
        let mut body = match with_timeout(self.request_timeout, receiver).await {
            Some(Ok(result)) => result?,
            Some(Err(_)) => {
                return Err(ClientError::Closed {
                    addr: self.addr.clone(),
                    reason: "reader stopped".into(),
                })
            }
            None => return Err(self.timeout(api)),
        };
        codec::decode_response::<R>(&mut body, version).map_err(|e| ClientError::Codec {
            addr: self.addr.clone(),
            api,
            version,
            op: "decode",
            reason: codec_reason(e),
        })
    }

    /// Sends a request and waits for its response.
    pub async fn call<R: Request>(
        &self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        let receiver = self
            .send(request, version, true)
            .await?
            .expect("a response was asked for");
        self.receive::<R>(receiver, version).await
    }

    /// Metadata for `topics` (all topics when `None`), never creating topics.
    pub async fn metadata(
        &self,
        topics: Option<&[String]>,
        allow_auto_topic_creation: bool,
    ) -> Result<MetadataResponse, ClientError> {
        let version = self.version::<MetadataRequest>(12)?;
        let request = MetadataRequest::default()
            .with_allow_auto_topic_creation(allow_auto_topic_creation)
            .with_topics(topics.map(|names| {
                names
                    .iter()
                    .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                    .collect()
            }));
        self.call(&request, version).await
    }

    fn timeout(&self, api: ApiKey) -> ClientError {
        ClientError::Timeout {
            addr: self.addr.clone(),
            api,
            timeout_ms: self.request_timeout.as_millis(),
        }
    }

    fn close(&self, reason: String) -> ClientError {
        fail_pending(&self.shared, &self.addr, &reason);
        ClientError::Closed {
            addr: self.addr.clone(),
            reason,
        }
    }
}

/// The part of a codec error that `ClientError::Codec` does not say already.
fn codec_reason(error: ClientCodecError) -> String {
    match error {
        ClientCodecError::Encode { reason, .. } | ClientCodecError::Decode { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// A `TopicName` from a `&str`.
pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Runs `future` for at most `duration`; `None` when the time ran out.
pub async fn with_timeout<T>(duration: Duration, future: impl Future<Output = T>) -> Option<T> {
    let future = std::pin::pin!(future);
    let sleep = std::pin::pin!(glommio::timer::sleep(duration));
    match futures::future::select(future, sleep).await {
        futures::future::Either::Left((value, _)) => Some(value),
        futures::future::Either::Right(_) => None,
    }
}

fn fail_pending(shared: &Shared, addr: &str, reason: &str) {
    shared
        .closed
        .borrow_mut()
        .get_or_insert_with(|| reason.to_string());
    for pending in shared.pending.borrow_mut().drain(..) {
        let _ = pending.tx.send(Err(ClientError::Closed {
            addr: addr.to_string(),
            reason: reason.to_string(),
        }));
    }
}

async fn read_responses(mut reader: BufReader<ReadHalf<Stream>>, shared: Rc<Shared>, addr: String) {
    let reason = loop {
        let mut size = [0u8; 4];
        if let Err(e) = reader.read_exact(&mut size).await {
            break format!("reading a response: {e}");
        }
        let size = match codec::response_frame_size(size) {
            Ok(size) => size,
            Err(e) => break e.to_string(),
        };
        let mut body = BytesMut::zeroed(size);
        if let Err(e) = reader.read_exact(&mut body).await {
            break format!("reading a response: {e}");
        }
        let mut body = body.freeze();
        let Some(pending) = shared.pending.borrow_mut().pop_front() else {
            break ClientCodecError::Unexpected.to_string();
        };
        if let Err(e) =
            codec::strip_response_header(&mut body, pending.correlation_id, pending.header_version)
        {
            break e.to_string();
        }
        let _ = pending.tx.send(Ok(body));
    };
    fail_pending(&shared, &addr, &reason);
}
