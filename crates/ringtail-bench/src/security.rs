//! Client security properties (`--command-config FILE` or `--security-props k=v ...`, and the
//! same names inside `--producer-props`): `security.protocol` PLAINTEXT or SSL, with Kafka's
//! client names `ssl.truststore.type` (PEM), `ssl.truststore.location`,
//! `ssl.truststore.certificates`, `ssl.keystore.type` (PEM), `ssl.keystore.location` (key +
//! chain in one PEM file), `ssl.keystore.certificate.chain` / `ssl.keystore.key`,
//! `ssl.endpoint.identification.algorithm` (`https` default: the broker certificate must name
//! the host; empty turns host name checking off, as Kafka's client).
//!
//! A rustls client (ring provider) over the glommio `TcpStream` via futures-rustls: no second
//! runtime. The settings are process-wide ([`install`] once before connecting); every
//! [`crate::client::Connection`] uses them.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;

/// The names this module takes (any other is left to the caller).
pub const PROPERTIES: &[&str] = &[
    "security.protocol",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.certificates",
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.endpoint.identification.algorithm",
];

static TLS: OnceLock<Option<Arc<ClientConfig>>> = OnceLock::new();

/// Whether `key` is a security property ([`PROPERTIES`]).
pub fn is_security_property(key: &str) -> bool {
    PROPERTIES.contains(&key)
}

/// The TLS client configuration for connections, `None` for PLAINTEXT.
pub fn tls_config() -> Option<Arc<ClientConfig>> {
    TLS.get().cloned().flatten()
}

/// Parses `key=value` security properties and makes them the process's; the first call wins.
/// Errors name the property.
pub fn install(props: &[(String, String)]) -> anyhow::Result<()> {
    let config = build(props)?;
    let _ = TLS.set(config);
    Ok(())
}

fn build(props: &[(String, String)]) -> anyhow::Result<Option<Arc<ClientConfig>>> {
    let get = |name: &str| {
        props
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    for (key, _) in props {
        anyhow::ensure!(
            is_security_property(key),
            "unknown security property `{key}` (supported: {})",
            PROPERTIES.join(", ")
        );
    }
    match get("security.protocol")
        .unwrap_or("PLAINTEXT")
        .to_ascii_uppercase()
        .as_str()
    {
        "PLAINTEXT" => return Ok(None),
        "SSL" => {}
        other => anyhow::bail!(
            "security.protocol={other} is not supported by ringtail bench (PLAINTEXT, SSL)"
        ),
    }
    for store in ["ssl.truststore.type", "ssl.keystore.type"] {
        if let Some(kind) = get(store) {
            anyhow::ensure!(
                kind.eq_ignore_ascii_case("PEM"),
                "{store}={kind}: ringtail bench reads PEM stores only"
            );
        }
    }
    let mut roots = RootCertStore::empty();
    let ca_pem = match (
        get("ssl.truststore.location"),
        get("ssl.truststore.certificates"),
    ) {
        (Some(path), _) => std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("ssl.truststore.location: cannot read {path}: {e}"))?,
        (None, Some(inline)) => inline.as_bytes().to_vec(),
        (None, None) => anyhow::bail!(
            "security.protocol=SSL needs ssl.truststore.location (a PEM file of CA certificates)"
        ),
    };
    for certificate in CertificateDer::pem_slice_iter(&ca_pem) {
        let certificate =
            certificate.map_err(|e| anyhow::anyhow!("ssl.truststore: invalid PEM: {e:?}"))?;
        roots
            .add(certificate)
            .map_err(|e| anyhow::anyhow!("ssl.truststore: invalid CA certificate: {e}"))?;
    }
    anyhow::ensure!(!roots.is_empty(), "ssl.truststore: no CERTIFICATE found");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let verify_host = get("ssl.endpoint.identification.algorithm")
        .unwrap_or("https")
        .eq_ignore_ascii_case("https");
    let roots = Arc::new(roots);
    let builder = if verify_host {
        builder.with_root_certificates(roots)
    } else {
        let inner =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider).build()?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoHostCheck(inner)))
    };
    let key_pem = match (
        get("ssl.keystore.location"),
        get("ssl.keystore.certificate.chain"),
        get("ssl.keystore.key"),
    ) {
        (Some(path), _, _) => Some({
            let pem = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("ssl.keystore.location: cannot read {path}: {e}"))?;
            (pem.clone(), pem)
        }),
        (None, Some(chain), Some(key)) => {
            Some((chain.as_bytes().to_vec(), key.as_bytes().to_vec()))
        }
        _ => None,
    };
    let config = match key_pem {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            let chain = CertificateDer::pem_slice_iter(&chain)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("ssl.keystore: invalid certificate: {e:?}"))?;
            let key = PrivateKeyDer::from_pem_slice(&key)
                .map_err(|e| anyhow::anyhow!("ssl.keystore: no usable private key: {e:?}"))?;
            builder.with_client_auth_cert(chain, key)?
        }
    };
    Ok(Some(Arc::new(config)))
}

/// `ssl.endpoint.identification.algorithm=` (empty): the chain is verified against the trust
/// store, the host name is not (Kafka's client without endpoint identification).
#[derive(Debug)]
struct NoHostCheck(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for NoHostCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
