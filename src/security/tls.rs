//! TLS listeners (issue 11): the rustls `ServerConfig` of an SSL / SASL_SSL listener, built
//! from Kafka's `ssl.*` properties (broker-wide or `listener.name.<l>.ssl.*`), and the
//! principal of a client certificate (Kafka's `DefaultKafkaPrincipalBuilder` with
//! `SslPrincipalMapper`).
//!
//! Sans-io: reads the key and trust stores from files at start-up, never touches a socket
//! (`network::tls` drives the handshake). Every error names the setting at fault and stops
//! start-up (Kafka's `SslFactory` refuses the same configurations).
//!
//! Supported stores: `ssl.keystore.type` PEM (one file with the key and its chain in
//! `ssl.keystore.location`, or inline `ssl.keystore.certificate.chain` + `ssl.keystore.key`,
//! KIP-651; an `ENCRYPTED PRIVATE KEY` is decrypted with `ssl.key.password`) and PKCS12
//! (`ssl.keystore.password`); trust stores of the same two types. JKS is refused (convert it
//! with `keytool -importkeystore -deststoretype PKCS12`).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::config::BrokerConfig;
use crate::security::KafkaPrincipal;

/// A start-up error in a listener's TLS settings: the setting at fault and why.
#[derive(Debug, thiserror::Error)]
#[error("listener {listener}: invalid {setting}: {reason}")]
pub struct TlsConfigError {
    /// The listener name (upper case).
    pub listener: String,
    /// Kafka's property name (the broker-wide name; it may have been set per listener).
    pub setting: &'static str,
    /// What is wrong.
    pub reason: String,
}

/// `ssl.client.auth` (Kafka's `SslClientAuth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslClientAuth {
    /// No client certificate asked for (Kafka's default).
    None,
    /// A certificate is asked for; a client without one is let in as `User:ANONYMOUS`.
    Requested,
    /// A client without a trusted certificate fails the handshake.
    Required,
}

/// Everything an SSL / SASL_SSL listener needs per connection.
#[derive(Debug, Clone)]
pub struct ListenerTls {
    /// The rustls server configuration (certificate, versions, suites, client verifier).
    pub server_config: Arc<ServerConfig>,
    /// `ssl.principal.mapping.rules`, parsed.
    pub principal_mapper: SslPrincipalMapper,
    /// `ssl.client.auth`.
    pub client_auth: SslClientAuth,
    /// `ringtail.ssl.handshake.timeout.ms`: a client that has not finished the handshake by
    /// then is disconnected.
    pub handshake_timeout: Duration,
}

/// Settings Kafka accepts that mean nothing with rustls: start-up warns when one is set.
const NO_EFFECT: &[(&str, &str)] = &[
    (
        "ssl.keymanager.algorithm",
        "JSSE key managers do not exist here; rustls uses the keystore's key",
    ),
    (
        "ssl.trustmanager.algorithm",
        "JSSE trust managers do not exist here; rustls verifies with WebPKI (PKIX)",
    ),
    (
        "ssl.secure.random.implementation",
        "rustls takes randomness from its crypto provider (ring)",
    ),
    (
        "ssl.endpoint.identification.algorithm",
        "a broker does not verify client host names",
    ),
    ("ssl.provider", "the TLS stack is rustls with ring"),
    (
        "ssl.engine.factory.class",
        "the TLS stack is rustls, not an SSLEngine",
    ),
    (
        "ssl.allow.dn.changes",
        "keystores are not reconfigured at run time",
    ),
    (
        "ssl.allow.san.changes",
        "keystores are not reconfigured at run time",
    ),
];

/// What [`build_all`] returns: `(listener name, its TLS settings)` per TLS listener, and the
/// warnings to log.
pub type BuiltListeners = (Vec<(String, ListenerTls)>, Vec<String>);

/// Builds the TLS settings of every SSL / SASL_SSL listener of `config`, with the warnings
/// start-up should log. Errors name the listener and setting.
pub fn build_all(config: &BrokerConfig) -> Result<BuiltListeners, TlsConfigError> {
    let mut built = Vec::new();
    let mut warnings = Vec::new();
    for listener in &config.listeners {
        if listener.security_protocol.uses_tls() {
            let tls = ListenerTls::build(config, &listener.name, &mut warnings)?;
            built.push((listener.name.clone(), tls));
        }
    }
    Ok((built, warnings))
}

impl ListenerTls {
    /// The TLS settings of listener `listener` (its `listener.name.<l>.ssl.*` overrides, else
    /// the broker-wide `ssl.*`). Warnings (settings without effect) are appended to
    /// `warnings`.
    pub fn build(
        config: &BrokerConfig,
        listener: &str,
        warnings: &mut Vec<String>,
    ) -> Result<ListenerTls, TlsConfigError> {
        let get = |name: &str| {
            config
                .listener_or_broker_property(listener, name)
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let error = |setting: &'static str, reason: String| TlsConfigError {
            listener: listener.to_string(),
            setting,
            reason,
        };
        for (name, why) in NO_EFFECT {
            if config.property_is_set(listener, name) {
                warnings.push(format!(
                    "listener {listener}: {name}={} has no effect: {why}",
                    get(name).unwrap_or("")
                ));
            }
        }

        let suites = cipher_suites(get("ssl.cipher.suites"))
            .map_err(|reason| error("ssl.cipher.suites", reason))?;
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(suites) = suites {
            provider.cipher_suites = suites;
        }
        let provider = Arc::new(provider);
        match get("ssl.protocol").unwrap_or("TLSv1.3") {
            "TLS" | "TLSv1.2" | "TLSv1.3" => {}
            other => {
                return Err(error(
                    "ssl.protocol",
                    format!("`{other}` is not supported (TLS, TLSv1.2, TLSv1.3)"),
                ))
            }
        }
        let versions = protocol_versions(get("ssl.enabled.protocols"), listener, warnings)
            .map_err(|reason| error("ssl.enabled.protocols", reason))?;
        let client_auth = match get("ssl.client.auth")
            .unwrap_or("none")
            .to_ascii_lowercase()
            .as_str()
        {
            "none" => SslClientAuth::None,
            "requested" => SslClientAuth::Requested,
            "required" => SslClientAuth::Required,
            other => {
                return Err(error(
                    "ssl.client.auth",
                    format!("`{other}` is not one of none, requested, required"),
                ))
            }
        };
        let principal_mapper =
            SslPrincipalMapper::parse(get("ssl.principal.mapping.rules").unwrap_or("DEFAULT"))
                .map_err(|reason| error("ssl.principal.mapping.rules", reason))?;
        let handshake_timeout_ms: u64 = get("ringtail.ssl.handshake.timeout.ms")
            .unwrap_or("10000")
            .parse()
            .ok()
            .filter(|ms| *ms > 0)
            .ok_or_else(|| {
                error(
                    "ringtail.ssl.handshake.timeout.ms",
                    "expected a positive number of milliseconds".to_string(),
                )
            })?;

        let (chain, key) = load_keystore(&get, listener)?;
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| {
                error(
                    "ssl.cipher.suites",
                    format!("no cipher suite usable with ssl.enabled.protocols: {e}"),
                )
            })?;
        let builder = if client_auth == SslClientAuth::None {
            builder.with_no_client_auth()
        } else {
            let roots = load_truststore(&get, listener)?.ok_or_else(|| {
                error(
                    "ssl.truststore.location",
                    format!(
                        "ssl.client.auth={} needs a trust store (ssl.truststore.location or \
                         ssl.truststore.certificates)",
                        get("ssl.client.auth").unwrap_or_default()
                    ),
                )
            })?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if client_auth == SslClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| error("ssl.truststore.location", e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        };
        let server_config = builder
            .with_single_cert(chain, key)
            .map_err(|e| error("ssl.keystore.location", format!("key and certificate: {e}")))?;
        Ok(ListenerTls {
            server_config: Arc::new(server_config),
            principal_mapper,
            client_auth,
            handshake_timeout: Duration::from_millis(handshake_timeout_ms),
        })
    }
}

/// `ssl.enabled.protocols` as rustls versions. TLSv1 / TLSv1.1 (which rustls never speaks, and
/// current JDKs disable) are dropped with a warning; an unknown name or an empty result is an
/// error.
fn protocol_versions(
    value: Option<&str>,
    listener: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let mut versions = Vec::new();
    for name in value.unwrap_or("TLSv1.2,TLSv1.3").split(',').map(str::trim) {
        match name {
            "" => {}
            "TLSv1.3" => versions.push(&rustls::version::TLS13),
            "TLSv1.2" => versions.push(&rustls::version::TLS12),
            "TLSv1" | "TLSv1.1" | "SSLv3" | "SSLv2Hello" => warnings.push(format!(
                "listener {listener}: ssl.enabled.protocols: {name} is not supported by rustls; ignored"
            )),
            other => {
                return Err(format!(
                    "unknown protocol `{other}` (TLSv1.2, TLSv1.3)"
                ))
            }
        }
    }
    if versions.is_empty() {
        return Err("no supported protocol enabled (TLSv1.2, TLSv1.3)".to_string());
    }
    Ok(versions)
}

/// `ssl.cipher.suites` (JSSE / IANA names, comma-separated) as ring's rustls suites; `None`
/// (unset) keeps rustls's defaults. A name that is not a suite rustls offers is an error
/// listing those it does.
fn cipher_suites(value: Option<&str>) -> Result<Option<Vec<SupportedCipherSuite>>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    let all = rustls::crypto::ring::ALL_CIPHER_SUITES;
    let rustls_name = |suite: &SupportedCipherSuite| -> String {
        // rustls writes TLS 1.3 suites TLS13_*; JSSE and IANA write them TLS_*.
        let name = suite.suite().as_str().unwrap_or_default();
        name.replacen("TLS13_", "TLS_", 1)
    };
    let mut suites = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some(suite) = all.iter().find(|s| rustls_name(s) == name) else {
            let supported: Vec<String> = all.iter().map(rustls_name).collect();
            return Err(format!(
                "unknown or unsupported cipher suite `{name}` (supported: {})",
                supported.join(", ")
            ));
        };
        if !suites.contains(suite) {
            suites.push(*suite);
        }
    }
    if suites.is_empty() {
        return Ok(None);
    }
    Ok(Some(suites))
}

/// The certificate chain and private key of the listener's keystore.
fn load_keystore<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    listener: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsConfigError> {
    let error = |setting: &'static str, reason: String| TlsConfigError {
        listener: listener.to_string(),
        setting,
        reason,
    };
    let store_type = get("ssl.keystore.type")
        .unwrap_or("JKS")
        .to_ascii_uppercase();
    let location = get("ssl.keystore.location");
    let inline_chain = get("ssl.keystore.certificate.chain");
    let inline_key = get("ssl.keystore.key");
    match store_type.as_str() {
        "PEM" => {
            // Kafka's DefaultSslEngineFactory: "SSL key store password cannot be specified with
            // PEM format, only key password may be specified".
            if get("ssl.keystore.password").is_some() {
                return Err(error(
                    "ssl.keystore.password",
                    "a key store password cannot be specified with PEM format, only \
                     ssl.key.password may be specified"
                        .to_string(),
                ));
            }
            let (pem, setting_chain, setting_key) = match (location, inline_chain, inline_key) {
                (Some(path), None, None) => {
                    let pem = std::fs::read(path).map_err(|e| {
                        error("ssl.keystore.location", format!("cannot read {path}: {e}"))
                    })?;
                    (
                        (pem.clone(), pem),
                        "ssl.keystore.location",
                        "ssl.keystore.location",
                    )
                }
                (None, Some(chain), Some(key)) => (
                    (chain.as_bytes().to_vec(), key.as_bytes().to_vec()),
                    "ssl.keystore.certificate.chain",
                    "ssl.keystore.key",
                ),
                (None, None, None) => {
                    return Err(error(
                        "ssl.keystore.location",
                        "a TLS listener needs a keystore: ssl.keystore.location, or \
                         ssl.keystore.certificate.chain with ssl.keystore.key"
                            .to_string(),
                    ))
                }
                (Some(_), _, _) => {
                    return Err(error(
                        "ssl.keystore.location",
                        "set either ssl.keystore.location or the inline \
                         ssl.keystore.certificate.chain / ssl.keystore.key, not both"
                            .to_string(),
                    ))
                }
                (None, Some(_), None) => {
                    return Err(error(
                        "ssl.keystore.key",
                        "ssl.keystore.certificate.chain is set without ssl.keystore.key"
                            .to_string(),
                    ))
                }
                (None, None, Some(_)) => {
                    return Err(error(
                        "ssl.keystore.certificate.chain",
                        "ssl.keystore.key is set without ssl.keystore.certificate.chain"
                            .to_string(),
                    ))
                }
            };
            let chain = pem_certificates(&pem.0).map_err(|r| error(setting_chain, r))?;
            if chain.is_empty() {
                return Err(error(setting_chain, "no PEM CERTIFICATE found".to_string()));
            }
            let key = pem_private_key(&pem.1, get("ssl.key.password")).map_err(
                |(wrong_password, r)| {
                    error(
                        if wrong_password {
                            "ssl.key.password"
                        } else {
                            setting_key
                        },
                        r,
                    )
                },
            )?;
            Ok((chain, key))
        }
        "PKCS12" => {
            let path = location.ok_or_else(|| {
                error(
                    "ssl.keystore.location",
                    "a PKCS12 keystore needs ssl.keystore.location".to_string(),
                )
            })?;
            let bytes = std::fs::read(path)
                .map_err(|e| error("ssl.keystore.location", format!("cannot read {path}: {e}")))?;
            let password = get("ssl.keystore.password").unwrap_or("");
            let store = p12_keystore::KeyStore::from_pkcs12(
                &bytes,
                password,
                p12_keystore::Pkcs12ImportPolicy::Strict,
            )
            .or_else(|first| match get("ssl.key.password") {
                Some(key_password) if key_password != password => {
                    p12_keystore::KeyStore::from_pkcs12(
                        &bytes,
                        key_password,
                        p12_keystore::Pkcs12ImportPolicy::Strict,
                    )
                    .map_err(|_| first)
                }
                _ => Err(first),
            })
            .map_err(|e| {
                error(
                    "ssl.keystore.password",
                    format!(
                        "cannot open PKCS12 keystore {path} (wrong password or not PKCS12): {e}"
                    ),
                )
            })?;
            let (_, key_chain) = store.private_key_chain().ok_or_else(|| {
                error(
                    "ssl.keystore.location",
                    format!("PKCS12 keystore {path} holds no private key with its certificate"),
                )
            })?;
            let chain = key_chain
                .certs()
                .iter()
                .map(|c| CertificateDer::from(c.as_der().to_vec()))
                .collect::<Vec<_>>();
            if chain.is_empty() {
                return Err(error(
                    "ssl.keystore.location",
                    format!("PKCS12 keystore {path}: the private key has no certificate"),
                ));
            }
            let key =
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_chain.key().as_der().to_vec()));
            Ok((chain, key))
        }
        "JKS" => Err(error(
            "ssl.keystore.type",
            "JKS keystores are not supported: convert with `keytool -importkeystore \
             -deststoretype PKCS12` or use PEM"
                .to_string(),
        )),
        other => Err(error(
            "ssl.keystore.type",
            format!("`{other}` is not supported (PEM, PKCS12)"),
        )),
    }
}

/// The trusted CA certificates of the listener (`ssl.truststore.*`), `None` when no trust
/// store is configured.
fn load_truststore<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    listener: &str,
) -> Result<Option<RootCertStore>, TlsConfigError> {
    let error = |setting: &'static str, reason: String| TlsConfigError {
        listener: listener.to_string(),
        setting,
        reason,
    };
    let store_type = get("ssl.truststore.type")
        .unwrap_or("JKS")
        .to_ascii_uppercase();
    let location = get("ssl.truststore.location");
    let inline = get("ssl.truststore.certificates");
    let (certificates, setting): (Vec<CertificateDer<'static>>, &'static str) =
        match store_type.as_str() {
            "PEM" => {
                if get("ssl.truststore.password").is_some() {
                    return Err(error(
                        "ssl.truststore.password",
                        "a trust store password cannot be specified for PEM format".to_string(),
                    ));
                }
                match (location, inline) {
                    (None, None) => return Ok(None),
                    (Some(_), Some(_)) => {
                        return Err(error(
                            "ssl.truststore.location",
                            "set either ssl.truststore.location or ssl.truststore.certificates, \
                             not both"
                                .to_string(),
                        ))
                    }
                    (Some(path), None) => {
                        let pem = std::fs::read(path).map_err(|e| {
                            error(
                                "ssl.truststore.location",
                                format!("cannot read {path}: {e}"),
                            )
                        })?;
                        let certs = pem_certificates(&pem)
                            .map_err(|r| error("ssl.truststore.location", r))?;
                        (certs, "ssl.truststore.location")
                    }
                    (None, Some(pem)) => {
                        let certs = pem_certificates(pem.as_bytes())
                            .map_err(|r| error("ssl.truststore.certificates", r))?;
                        (certs, "ssl.truststore.certificates")
                    }
                }
            }
            "PKCS12" => {
                let Some(path) = location else {
                    return Ok(None);
                };
                let bytes = std::fs::read(path).map_err(|e| {
                    error(
                        "ssl.truststore.location",
                        format!("cannot read {path}: {e}"),
                    )
                })?;
                let store = p12_keystore::KeyStore::from_pkcs12(
                    &bytes,
                    get("ssl.truststore.password").unwrap_or(""),
                    p12_keystore::Pkcs12ImportPolicy::Relaxed,
                )
                .map_err(|e| {
                    error(
                        "ssl.truststore.password",
                        format!(
                        "cannot open PKCS12 trust store {path} (wrong password or not PKCS12): {e}"
                    ),
                    )
                })?;
                let mut certs = Vec::new();
                for (_, entry) in store.entries() {
                    match entry {
                        p12_keystore::KeyStoreEntry::Certificate(c) => {
                            certs.push(CertificateDer::from(c.as_der().to_vec()))
                        }
                        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) => certs.extend(
                            chain
                                .certs()
                                .iter()
                                .map(|c| CertificateDer::from(c.as_der().to_vec())),
                        ),
                        p12_keystore::KeyStoreEntry::Secret(_) => {}
                    }
                }
                (certs, "ssl.truststore.location")
            }
            "JKS" => {
                if location.is_none() && inline.is_none() {
                    return Ok(None);
                }
                return Err(error(
                    "ssl.truststore.type",
                    "JKS trust stores are not supported: convert with `keytool -importkeystore \
                     -deststoretype PKCS12` or use PEM"
                        .to_string(),
                ));
            }
            other => {
                return Err(error(
                    "ssl.truststore.type",
                    format!("`{other}` is not supported (PEM, PKCS12)"),
                ))
            }
        };
    if certificates.is_empty() {
        return Err(error(
            setting,
            "the trust store holds no certificate".to_string(),
        ));
    }
    let mut roots = RootCertStore::empty();
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|e| error(setting, format!("invalid CA certificate: {e}")))?;
    }
    Ok(Some(roots))
}

/// `pem` with every `-----BEGIN X----- ... -----END X-----` block re-flowed into lines:
/// inline values (`ssl.keystore.key`, `ssl.keystore.certificate.chain`,
/// `ssl.truststore.certificates`) are often written on one line in a `.properties` file, and
/// Kafka's `PemParser` ignores the whitespace inside a block.
fn normalize_pem(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(pem);
    let Ok(block) =
        regex::Regex::new(r"(?s)-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END ([A-Z0-9 ]+)-----")
    else {
        return pem.to_vec();
    };
    let mut out = String::new();
    for captures in block.captures_iter(&text) {
        let label = &captures[1];
        let body: String = captures[2].chars().filter(|c| !c.is_whitespace()).collect();
        out.push_str(&format!("-----BEGIN {label}-----\n"));
        for line in body.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str(&format!("-----END {}-----\n", &captures[3]));
    }
    out.into_bytes()
}

/// Every `CERTIFICATE` of a PEM text, in order.
fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = normalize_pem(pem);
    CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM certificate: {e:?}"))
}

/// The private key of a PEM text: `PRIVATE KEY` (PKCS#8), `RSA PRIVATE KEY`, `EC PRIVATE KEY`,
/// or `ENCRYPTED PRIVATE KEY` (PKCS#8 PBES2, decrypted with `ssl.key.password`). The error
/// says whether the password is at fault.
fn pem_private_key(
    pem: &[u8],
    password: Option<&str>,
) -> Result<PrivateKeyDer<'static>, (bool, String)> {
    const BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    const END: &str = "-----END ENCRYPTED PRIVATE KEY-----";
    let pem = &normalize_pem(pem);
    let text = String::from_utf8_lossy(pem);
    if let Some(start) = text.find(BEGIN) {
        let Some(password) = password else {
            return Err((
                true,
                "the private key is encrypted: set ssl.key.password".to_string(),
            ));
        };
        let end = text[start..]
            .find(END)
            .map(|e| start + e + END.len())
            .ok_or_else(|| (false, "unterminated ENCRYPTED PRIVATE KEY".to_string()))?;
        let (_, der) = pkcs8::der::pem::decode_vec(text[start..end].as_bytes())
            .map_err(|e| (false, format!("invalid ENCRYPTED PRIVATE KEY: {e}")))?;
        let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
            .map_err(|e| (false, format!("invalid ENCRYPTED PRIVATE KEY: {e}")))?;
        let document = encrypted.decrypt(password).map_err(|e| {
            (
                true,
                format!("cannot decrypt the private key (wrong password?): {e}"),
            )
        })?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            document.as_bytes().to_vec(),
        )));
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| (false, format!("no usable private key: {e:?}")))
}

/// Kafka's `SslPrincipalMapper.RULE_SPLITTER` and the rule parser built from its
/// `RULE_PATTERN`, compiled once: the splitter finds each comma- or newline-separated rule,
/// the parser reads one as `DEFAULT` (group 1) or `RULE:` pattern (2), replacement (3) and
/// case flag (4). Both patterns are constants, so compiling them cannot fail on any input.
/// Compiling them on every `parse` cost about 1 ms per call in the instrumented fuzz build
/// (696 against 2,573 calls/s; results/fuzz/README.md, session 27).
static RULE_SYNTAX: LazyLock<(regex::Regex, regex::Regex)> = LazyLock::new(|| {
    const RULE: &str = r"(DEFAULT)|RULE:((?:\\.|[^\\/])*)/((?:\\.|[^\\/])*)/([LU]?).*?|(.*?)";
    let splitter = regex::Regex::new(&format!(r"\s*({RULE})\s*(?:[,\n]\s*|$)"))
        .expect("RULE_SPLITTER is a valid constant pattern");
    let parser = regex::Regex::new(&format!("^(?:{RULE})"))
        .expect("RULE_PATTERN is a valid constant pattern");
    (splitter, parser)
});

/// Kafka's `SslPrincipalMapper`: `ssl.principal.mapping.rules`, a comma- (or newline-)
/// separated list of `DEFAULT` and `RULE:pattern/replacement/[LU]` applied in order to the
/// certificate's distinguished name; the first rule whose pattern matches the whole name
/// gives the principal name (KIP-371).
#[derive(Debug, Clone)]
pub struct SslPrincipalMapper {
    rules: Vec<MappingRule>,
    source: String,
}

#[derive(Debug, Clone)]
enum MappingRule {
    Default,
    Rule {
        pattern: regex::Regex,
        anchored: regex::Regex,
        replacement: String,
        lower_case: bool,
        upper_case: bool,
    },
}

impl SslPrincipalMapper {
    /// Parses the rules as Kafka's `SslPrincipalMapper.fromRules`; an invalid rule is an error
    /// quoting it.
    pub fn parse(rules: &str) -> Result<SslPrincipalMapper, String> {
        let (splitter, parser) = &*RULE_SYNTAX;
        let mut parsed = Vec::new();
        for captures in splitter.captures_iter(rules.trim()) {
            let rule = captures.get(1).map_or("", |m| m.as_str());
            let m = parser
                .captures(rule)
                .ok_or_else(|| format!("Invalid rule: {rule}"))?;
            let end = m.get(0).map_or(0, |m| m.end());
            if end != rule.len() {
                return Err(format!(
                    "Invalid rule: `{rule}`, unmatched substring: `{}`",
                    &rule[end..]
                ));
            }
            if m.get(1).is_some() {
                parsed.push(MappingRule::Default);
            } else if let Some(pattern) = m.get(2) {
                let pattern = pattern.as_str().replace(r"\/", "/");
                let replacement = m.get(3).map_or("", |r| r.as_str()).replace(r"\/", "/");
                let case = m.get(4).map_or("", |c| c.as_str());
                let compile = |p: &str| {
                    regex::Regex::new(p).map_err(|e| format!("Invalid rule: {rule}: {e}"))
                };
                parsed.push(MappingRule::Rule {
                    anchored: compile(&format!("^(?:{pattern})$"))?,
                    pattern: compile(&pattern)?,
                    replacement: java_replacement(&replacement),
                    lower_case: case == "L",
                    upper_case: case == "U",
                });
            } else if !rule.is_empty() {
                return Err(format!("Invalid rule: {rule}"));
            }
        }
        Ok(SslPrincipalMapper {
            rules: parsed,
            source: rules.to_string(),
        })
    }

    /// The principal name of distinguished name `dn` (Kafka's `getName`); an error when no
    /// rule applies ("No rules apply to ...").
    pub fn name(&self, dn: &str) -> Result<String, String> {
        for rule in &self.rules {
            match rule {
                MappingRule::Default => return Ok(dn.to_string()),
                MappingRule::Rule {
                    pattern,
                    anchored,
                    replacement,
                    lower_case,
                    upper_case,
                } => {
                    if !anchored.is_match(dn) {
                        continue;
                    }
                    let result = pattern.replace_all(dn, replacement.as_str()).into_owned();
                    return Ok(if *lower_case {
                        result.to_lowercase()
                    } else if *upper_case {
                        result.to_uppercase()
                    } else {
                        result
                    });
                }
            }
        }
        Err(format!("No rules apply to {dn}, rules {}", self.source))
    }
}

/// A Java `Matcher.replaceAll` replacement (`$1`, `\$`) in the regex crate's syntax (`${1}`,
/// `$$`).
fn java_replacement(java: &str) -> String {
    let mut out = String::new();
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    out.push_str("$$");
                } else {
                    out.push_str(&format!("${{{digits}}}"));
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// The principal of a TLS client (Kafka's `DefaultKafkaPrincipalBuilder` on an SSL listener):
/// `User:ANONYMOUS` without a certificate, else `User:<mapped subject>` with the subject in
/// RFC 2253 form as Java's `X500Principal.getName()` writes it, mapped by
/// `ssl.principal.mapping.rules`. An error when the certificate cannot be parsed or no rule
/// applies (Kafka fails the authentication).
pub fn certificate_principal(
    peer_certificate: Option<&CertificateDer<'_>>,
    mapper: &SslPrincipalMapper,
) -> Result<KafkaPrincipal, String> {
    let Some(certificate) = peer_certificate else {
        return Ok(KafkaPrincipal::anonymous());
    };
    let dn = rfc2253_subject(certificate.as_ref())?;
    Ok(KafkaPrincipal::user(mapper.name(&dn)?))
}

/// The subject of DER certificate `der` in RFC 2253 form, as Java's `X500Principal.getName()`:
/// RDNs last-to-first separated by `,`, multi-valued RDNs joined by `+`, RFC 2253 keywords
/// (CN, C, L, ST, O, OU, STREET, DC, UID) else the dotted OID with `#` and the hex DER value.
pub fn rfc2253_subject(der: &[u8]) -> Result<String, String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("invalid client certificate: {e}"))?;
    let mut rdns = Vec::new();
    for rdn in certificate.subject().iter() {
        let mut attributes = Vec::new();
        for attribute in rdn.iter() {
            let oid = attribute.attr_type().to_id_string();
            let keyword = match oid.as_str() {
                "2.5.4.3" => Some("CN"),
                "2.5.4.6" => Some("C"),
                "2.5.4.7" => Some("L"),
                "2.5.4.8" => Some("ST"),
                "2.5.4.10" => Some("O"),
                "2.5.4.11" => Some("OU"),
                "2.5.4.9" => Some("STREET"),
                "0.9.2342.19200300.100.1.25" => Some("DC"),
                "0.9.2342.19200300.100.1.1" => Some("UID"),
                _ => None,
            };
            let value = attribute.attr_value();
            match (keyword, attribute.as_str()) {
                (Some(keyword), Ok(text)) => {
                    attributes.push(format!("{keyword}={}", escape_rfc2253(text)))
                }
                _ => {
                    let name = keyword.map_or(oid.clone(), str::to_string);
                    let mut encoded = vec![value.header.tag().0 as u8];
                    let length = value.data.len();
                    if length < 0x80 {
                        encoded.push(length as u8);
                    } else {
                        let bytes = length.to_be_bytes();
                        let skip = bytes.iter().take_while(|b| **b == 0).count();
                        encoded.push(0x80 | (bytes.len() - skip) as u8);
                        encoded.extend_from_slice(&bytes[skip..]);
                    }
                    encoded.extend_from_slice(value.data);
                    let hex: String = encoded.iter().map(|b| format!("{b:02x}")).collect();
                    attributes.push(format!("{name}=#{hex}"));
                }
            }
        }
        rdns.push(attributes.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

/// RFC 2253 section 2.4 escaping of an attribute value.
fn escape_rfc2253(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let escape = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_mapping_rules_as_kafka() {
        // Cases from Kafka's SslPrincipalMapperTest.
        let mapper = SslPrincipalMapper::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U,DEFAULT",
        )
        .expect("valid rules");
        assert_eq!(
            mapper
                .name("CN=kafka-server1,OU=ServiceUsers,O=kafka")
                .unwrap(),
            "kafka-server1"
        );
        assert_eq!(
            mapper
                .name("CN=Duke,OU=JavaSoft,O=Sun Microsystems,L=Santa Clara,ST=CA,C=US")
                .unwrap(),
            "duke@javasoft"
        );
        assert_eq!(
            mapper
                .name("cn=duke,OU=JavaSoft,O=Sun Microsystems")
                .unwrap(),
            "DUKE"
        );
        assert_eq!(
            mapper.name("OU=JavaSoft,O=Sun").unwrap(),
            "OU=JavaSoft,O=Sun"
        );
        let strict = SslPrincipalMapper::parse("RULE:^CN=(.*)$/$1/").unwrap();
        assert!(strict.name("OU=x").is_err());
        assert!(SslPrincipalMapper::parse("DEFAULT, bad").is_err());
        assert!(SslPrincipalMapper::parse("RULE:^CN=(.*)$/$1/X").is_err());
        assert_eq!(
            SslPrincipalMapper::parse("DEFAULT")
                .unwrap()
                .name("CN=a")
                .unwrap(),
            "CN=a"
        );
    }

    #[test]
    fn rfc2253_escaping() {
        assert_eq!(escape_rfc2253("a,b"), "a\\,b");
        assert_eq!(escape_rfc2253(" #x "), "\\ #x\\ ");
        assert_eq!(escape_rfc2253("#x"), "\\#x");
    }

    #[test]
    fn cipher_suite_names_are_jsse_names() {
        let suites = cipher_suites(Some(
            "TLS_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(suites.len(), 2);
        assert!(cipher_suites(Some("TLS_RSA_WITH_NULL_MD5")).is_err());
        assert!(cipher_suites(None).unwrap().is_none());
    }
}
