//! TLS connections (issue 11): the rustls handshake over the glommio `TcpStream`, driven by
//! futures-rustls on this shard's executor (no second runtime), then the ordinary
//! [`super::serve_connection`] over the TLS stream.
//!
//! The handshake is bounded by `ringtail.ssl.handshake.timeout.ms`. Garbage, a plaintext Kafka
//! request, a truncated handshake, an untrusted or missing client certificate (with
//! `ssl.client.auth=required`) or a timeout closes that connection with one log line naming
//! the client; every other connection goes on.

use std::rc::Rc;

use futures::future::Either;
use glommio::net::TcpStream;

use crate::config::SecurityProtocol;
use crate::metrics;
use crate::security::tls::{certificate_principal, ListenerTls};
use crate::security::Session;
use crate::shard::ShardContext;

/// Runs the TLS handshake on `stream`, sets the certificate principal (SSL listeners; on
/// SASL_SSL the SASL exchange sets it), then serves the connection.
pub(super) async fn serve_tls_connection(
    ctx: Rc<ShardContext>,
    stream: TcpStream,
    session: Rc<Session>,
    tls: Rc<ListenerTls>,
) {
    let peer = session
        .client_address
        .map_or_else(|| "unknown".to_string(), |p| p.to_string());
    let acceptor = futures_rustls::TlsAcceptor::from(tls.server_config.clone());
    let handshake = acceptor.accept(stream);
    let timeout = glommio::timer::sleep(tls.handshake_timeout);
    futures::pin_mut!(handshake);
    futures::pin_mut!(timeout);
    let stream = match futures::future::select(handshake, timeout).await {
        Either::Left((Ok(stream), _)) => stream,
        Either::Left((Err(e), _)) => {
            tracing::warn!(
                "closing connection from {peer} on listener {}: TLS handshake failed: {e}",
                session.listener_name
            );
            metrics::with(|m| m.connection_closed(metrics::CloseReason::InvalidFrame));
            return;
        }
        Either::Right(_) => {
            tracing::warn!(
                "closing connection from {peer} on listener {}: TLS handshake not finished \
                 within ringtail.ssl.handshake.timeout.ms ({} ms)",
                session.listener_name,
                tls.handshake_timeout.as_millis()
            );
            metrics::with(|m| m.connection_closed(metrics::CloseReason::InvalidFrame));
            return;
        }
    };
    let (_, connection) = stream.get_ref();
    let certificate = connection.peer_certificates().and_then(|c| c.first());
    match certificate_principal(certificate, &tls.principal_mapper) {
        Ok(principal) => {
            tracing::info!(
                "TLS handshake with {peer} on listener {} done ({:?}, {:?}), certificate principal {principal}",
                session.listener_name,
                connection.protocol_version(),
                connection.negotiated_cipher_suite().map(|s| s.suite()),
            );
            if session.security_protocol == SecurityProtocol::Ssl {
                session.set_principal(principal);
            }
        }
        Err(reason) => {
            tracing::warn!(
                "closing connection from {peer} on listener {}: SSL authentication failed: {reason}",
                session.listener_name
            );
            metrics::with(|m| m.connection_closed(metrics::CloseReason::InvalidRequest));
            return;
        }
    }
    super::serve_connection(ctx, stream, session).await;
}
