//! Client security properties (`--command-config FILE` or `--security-props k=v ...`, and the
//! same names inside `--producer-props`): `security.protocol` PLAINTEXT or SSL, with Kafka's
//! client names `ssl.truststore.type` (PEM or PKCS12), `ssl.truststore.location`,
//! `ssl.truststore.password` (PKCS12), `ssl.truststore.certificates` (inline PEM),
//! `ssl.keystore.type` (PEM or PKCS12), `ssl.keystore.location` (PEM: key + chain in one file;
//! PKCS12: the store), `ssl.keystore.password` / `ssl.key.password` (PKCS12: the store's and
//! the key's password, Kafka's `SslFactory` names), `ssl.keystore.certificate.chain` /
//! `ssl.keystore.key` (inline PEM, KIP-651), `ssl.endpoint.identification.algorithm` (`https`
//! default: the broker certificate must name the host; empty turns host name checking off, as
//! Kafka's client). The store type defaults to PEM when unset (Kafka's default is JKS, which
//! is refused here with the advice to convert).
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
    "ssl.truststore.password",
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.key.password",
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
    let store_type = |store: &str| -> anyhow::Result<StoreType> {
        match get(store).map(str::to_ascii_uppercase).as_deref() {
            None | Some("PEM") => Ok(StoreType::Pem),
            Some("PKCS12") => Ok(StoreType::Pkcs12),
            Some(kind) => anyhow::bail!(
                "{store}={kind}: ringtail bench reads PEM and PKCS12 stores (convert JKS with \
                 `keytool -importkeystore -deststoretype PKCS12`)"
            ),
        }
    };
    let truststore_type = store_type("ssl.truststore.type")?;
    let keystore_type = store_type("ssl.keystore.type")?;
    let mut roots = RootCertStore::empty();
    let ca_certificates = match (
        truststore_type,
        get("ssl.truststore.location"),
        get("ssl.truststore.certificates"),
    ) {
        (StoreType::Pkcs12, Some(path), _) => {
            pkcs12_certificates(path, get("ssl.truststore.password").unwrap_or(""))?
        }
        (StoreType::Pkcs12, None, _) => anyhow::bail!(
            "ssl.truststore.type=PKCS12 needs ssl.truststore.location (a PKCS12 file)"
        ),
        (StoreType::Pem, Some(path), _) => {
            pem_certificates(&std::fs::read(path).map_err(|e| {
                anyhow::anyhow!("ssl.truststore.location: cannot read {path}: {e}")
            })?)?
        }
        (StoreType::Pem, None, Some(inline)) => pem_certificates(inline.as_bytes())?,
        (StoreType::Pem, None, None) => anyhow::bail!(
            "security.protocol=SSL needs ssl.truststore.location (a PEM file of CA certificates)"
        ),
    };
    for certificate in ca_certificates {
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
    let client_key = match (
        keystore_type,
        get("ssl.keystore.location"),
        get("ssl.keystore.certificate.chain"),
        get("ssl.keystore.key"),
    ) {
        (StoreType::Pkcs12, Some(path), _, _) => Some(pkcs12_key_chain(
            path,
            get("ssl.keystore.password").unwrap_or(""),
            get("ssl.key.password"),
        )?),
        (StoreType::Pkcs12, None, _, _) => {
            anyhow::bail!("ssl.keystore.type=PKCS12 needs ssl.keystore.location (a PKCS12 file)")
        }
        (StoreType::Pem, Some(path), _, _) => {
            let pem = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("ssl.keystore.location: cannot read {path}: {e}"))?;
            Some(pem_key_chain(&pem, &pem)?)
        }
        (StoreType::Pem, None, Some(chain), Some(key)) => {
            Some(pem_key_chain(chain.as_bytes(), key.as_bytes())?)
        }
        _ => None,
    };
    let config = match client_key {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
    };
    Ok(Some(Arc::new(config)))
}

/// `ssl.truststore.type` / `ssl.keystore.type`.
#[derive(Clone, Copy)]
enum StoreType {
    Pem,
    Pkcs12,
}

fn pem_certificates(pem: &[u8]) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("ssl.truststore: invalid PEM: {e:?}"))
}

type KeyChain = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn pem_key_chain(chain: &[u8], key: &[u8]) -> anyhow::Result<KeyChain> {
    let chain = CertificateDer::pem_slice_iter(chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("ssl.keystore: invalid certificate: {e:?}"))?;
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| anyhow::anyhow!("ssl.keystore: no usable private key: {e:?}"))?;
    Ok((chain, key))
}

fn open_pkcs12(
    setting: &str,
    path: &str,
    password: &str,
    other_password: Option<&str>,
) -> anyhow::Result<p12_keystore::KeyStore> {
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("{setting}: cannot read {path}: {e}"))?;
    let policy = p12_keystore::Pkcs12ImportPolicy::Relaxed;
    p12_keystore::KeyStore::from_pkcs12(&bytes, password, policy)
        .or_else(|first| match other_password {
            Some(other) if other != password => {
                p12_keystore::KeyStore::from_pkcs12(&bytes, other, policy).map_err(|_| first)
            }
            _ => Err(first),
        })
        .map_err(|e| {
            anyhow::anyhow!(
                "{setting}: cannot open PKCS12 store {path} (wrong password or not PKCS12): {e}"
            )
        })
}

/// Every certificate of a PKCS12 trust store (trusted entries and the chains of key entries).
fn pkcs12_certificates(path: &str, password: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let store = open_pkcs12("ssl.truststore.location", path, password, None)?;
    let mut certificates = Vec::new();
    for (_, entry) in store.entries() {
        match entry {
            p12_keystore::KeyStoreEntry::Certificate(c) => {
                certificates.push(CertificateDer::from(c.as_der().to_vec()))
            }
            p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) => certificates.extend(
                chain
                    .certs()
                    .iter()
                    .map(|c| CertificateDer::from(c.as_der().to_vec())),
            ),
            p12_keystore::KeyStoreEntry::Secret(_) => {}
        }
    }
    Ok(certificates)
}

/// The private key and its chain from a PKCS12 keystore (`ssl.keystore.password`, else
/// `ssl.key.password` opens it).
fn pkcs12_key_chain(
    path: &str,
    password: &str,
    key_password: Option<&str>,
) -> anyhow::Result<KeyChain> {
    let store = open_pkcs12("ssl.keystore.location", path, password, key_password)?;
    let (_, key_chain) = store.private_key_chain().ok_or_else(|| {
        anyhow::anyhow!("ssl.keystore.location: PKCS12 store {path} holds no private key")
    })?;
    let chain: Vec<_> = key_chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    anyhow::ensure!(
        !chain.is_empty(),
        "ssl.keystore.location: PKCS12 store {path}: the private key has no certificate"
    );
    let key = PrivateKeyDer::Pkcs8(rustls_pki_types::PrivatePkcs8KeyDer::from(
        key_chain.key().as_der().to_vec(),
    ));
    Ok((chain, key))
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
