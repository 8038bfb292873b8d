//! One blocking connection to one broker: ringtail-protocol's [`ClientCodec`] over a
//! `std::net::TcpStream` with read/write timeouts, and the broker's ApiVersions answer to pick
//! each request's version (the highest both sides speak, as Kafka's NetworkClient does).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest};
use kafka_protocol::protocol::{Request, StrBytes};
use ringtail_protocol::client::{api_of, response_frame_size, ClientCodec};

use crate::error::{AdminError, UNSUPPORTED_VERSION};

/// The version to send given the broker's `(min, max)` for an API (`None`: not in its
/// ApiVersions answer) and the range `ours` this tool speaks: the highest in both.
///
/// Errors: why there is none, for [`AdminError::Unsupported`].
pub fn pick_version(broker: Option<(i16, i16)>, ours: (i16, i16)) -> Result<i16, String> {
    let Some((min, max)) = broker else {
        return Err("it is not in its ApiVersions answer".to_string());
    };
    let version = max.min(ours.1);
    if version < min.max(ours.0) {
        return Err(format!(
            "it offers versions {min}-{max}, this tool speaks {}-{}",
            ours.0, ours.1
        ));
    }
    Ok(version)
}

/// The client id and ApiVersions software name this tool sends.
pub const CLIENT_ID: &str = "ringtail-admin";

/// A connected broker and the API versions it offers.
pub struct Connection {
    addr: String,
    stream: TcpStream,
    codec: ClientCodec,
    /// API key -> (min, max) version, from the broker's ApiVersions answer.
    versions: BTreeMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects to `addr` (`host:port`; every resolved address is tried in turn) and asks
    /// ApiVersions (v3, then v0 if the broker refuses v3). `timeout` bounds the connect and
    /// every later read and write.
    ///
    /// Errors: [`AdminError::Connect`] when nothing accepts, [`AdminError::Transport`] when
    /// ApiVersions gets no sensible answer.
    pub fn connect(addr: &str, timeout: Duration) -> Result<Connection, AdminError> {
        let mut connection = Connection::open(addr, timeout)?;
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let response = match connection.call(&request, 3) {
            Ok(response) if response.error_code != UNSUPPORTED_VERSION => response,
            // A broker without v3 answers in v0's layout (KIP-511); ask again on a fresh
            // connection at v0.
            _ => {
                connection = Connection::open(addr, timeout)?;
                connection.call(&ApiVersionsRequest::default(), 0)?
            }
        };
        crate::error::check(response.error_code, None, || {
            format!("ApiVersions to {addr}")
        })?;
        connection.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(connection)
    }

    /// A TCP connection to the first address of `addr` that accepts, with timeouts set.
    fn open(addr: &str, timeout: Duration) -> Result<Connection, AdminError> {
        let connect_error = |reason: String| AdminError::Connect {
            addr: addr.to_string(),
            reason,
        };
        let resolved = addr
            .to_socket_addrs()
            .map_err(|e| connect_error(e.to_string()))?;
        let mut last = "the name resolves to no address".to_string();
        for socket_addr in resolved {
            match TcpStream::connect_timeout(&socket_addr, timeout) {
                Ok(stream) => {
                    stream
                        .set_read_timeout(Some(timeout))
                        .and_then(|()| stream.set_write_timeout(Some(timeout)))
                        .and_then(|()| stream.set_nodelay(true))
                        .map_err(|e| connect_error(e.to_string()))?;
                    return Ok(Connection {
                        addr: addr.to_string(),
                        stream,
                        codec: ClientCodec::new(CLIENT_ID),
                        versions: BTreeMap::new(),
                    });
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(connect_error(last))
    }

    /// The broker's `host:port` as given.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The version of `R` to send: the highest in both the broker's range and `ours`
    /// (inclusive `(min, max)`, what the caller's request builder handles).
    ///
    /// Errors: [`AdminError::Unsupported`] when the broker does not list `R` or the ranges do
    /// not meet.
    pub fn version<R: Request>(&self, ours: (i16, i16)) -> Result<i16, AdminError> {
        pick_version(self.versions.get(&R::KEY).copied(), ours).map_err(|detail| {
            AdminError::Unsupported {
                addr: self.addr.clone(),
                api: api_of::<R>(),
                detail,
            }
        })
    }

    /// Sends the request `build(version)` at the negotiated version (see
    /// [`Connection::version`]) and returns its response.
    pub fn send<R: Request>(
        &mut self,
        ours: (i16, i16),
        build: impl FnOnce(i16) -> R,
    ) -> Result<R::Response, AdminError> {
        let version = self.version::<R>(ours)?;
        self.call(&build(version), version)
    }

    /// Sends `request` at `version` and waits for its response.
    ///
    /// Errors: [`AdminError::Transport`] on I/O errors, timeouts and undecodable frames.
    pub fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, AdminError> {
        let transport = |reason: String| AdminError::Transport {
            addr: self.addr.clone(),
            api: api_of::<R>(),
            reason,
        };
        let (frame, _) = self
            .codec
            .encode(request, version, true)
            .map_err(|e| transport(e.to_string()))?;
        self.stream
            .write_all(&frame)
            .map_err(|e| transport(format!("write: {e}")))?;
        let mut prefix = [0u8; 4];
        self.stream
            .read_exact(&mut prefix)
            .map_err(|e| transport(format!("read: {e}")))?;
        let size = response_frame_size(prefix).map_err(|e| transport(e.to_string()))?;
        let mut body = vec![0u8; size];
        self.stream
            .read_exact(&mut body)
            .map_err(|e| transport(format!("read: {e}")))?;
        self.codec
            .decode::<R>(Bytes::from(body))
            .map_err(|e| transport(e.to_string()))
    }

    /// [`AdminError::Unsupported`] for `api` if `code` is UNSUPPORTED_VERSION (for per-item
    /// errors, which are otherwise reported item by item).
    pub fn check_supported(&self, api: ApiKey, code: i16) -> Result<(), AdminError> {
        if code == UNSUPPORTED_VERSION {
            return self.check(api, code, None, String::new);
        }
        Ok(())
    }

    /// [`AdminError::Unsupported`] for `api` if `code` is UNSUPPORTED_VERSION, else
    /// [`crate::error::check`]'s answer.
    pub fn check(
        &self,
        api: ApiKey,
        code: i16,
        message: Option<&str>,
        context: impl FnOnce() -> String,
    ) -> Result<(), AdminError> {
        if code == UNSUPPORTED_VERSION {
            return Err(AdminError::Unsupported {
                addr: self.addr.clone(),
                api,
                detail: "it answered UNSUPPORTED_VERSION".to_string(),
            });
        }
        crate::error::check(code, message, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_the_highest_both_speak() {
        assert_eq!(pick_version(Some((0, 9)), (2, 7)), Ok(7));
        assert_eq!(pick_version(Some((0, 4)), (2, 7)), Ok(4));
        assert_eq!(pick_version(Some((3, 3)), (0, 12)), Ok(3));
        assert_eq!(
            pick_version(Some((0, 1)), (2, 7)),
            Err("it offers versions 0-1, this tool speaks 2-7".to_string())
        );
        assert_eq!(
            pick_version(Some((8, 9)), (2, 7)),
            Err("it offers versions 8-9, this tool speaks 2-7".to_string())
        );
        assert_eq!(
            pick_version(None, (0, 1)),
            Err("it is not in its ApiVersions answer".to_string())
        );
    }

    #[test]
    fn unsupported_apis_are_named() {
        let error = AdminError::Unsupported {
            addr: "127.0.0.1:9092".to_string(),
            api: kafka_protocol::messages::ApiKey::IncrementalAlterConfigs,
            detail: "it is not in its ApiVersions answer".to_string(),
        };
        assert_eq!(
            error.to_string(),
            "the broker at 127.0.0.1:9092 does not support IncrementalAlterConfigs (API key 44): \
             it is not in its ApiVersions answer"
        );
    }
}
