//! TLS: PEM files -> rustls `ServerConfig` (TLS 1.2/1.3, ALPN h2 + http/1.1),
//! certificate reload, and the upstream client's `ClientConfig`.
//!
//! The crypto provider is `ring`, chosen explicitly everywhere (never the
//! process default) so that no code path can pick up another provider: it
//! builds in seconds on a small machine with no C toolchain beyond `cc`, and
//! is as fast as aws-lc-rs for the handshakes and AES-GCM/ChaCha20 records a
//! webhook gateway does. The trade-off is FIPS: aws-lc-rs has a FIPS mode,
//! ring has none (see the README).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// Why certificates or keys cannot be used; always names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{file}: cannot read a PEM certificate chain: {message}")]
    Certs { file: String, message: String },
    #[error("{file}: no CERTIFICATE block found")]
    NoCerts { file: String },
    #[error("{file}: cannot read a PEM private key (PKCS#8, PKCS#1 or SEC1): {message}")]
    Key { file: String, message: String },
    #[error("{cert} / {key}: the key cannot be used with the certificate: {message}")]
    Mismatch {
        cert: String,
        key: String,
        message: String,
    },
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

/// The one crypto provider hookgate uses, server and client side.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM certificate chain (leaf first).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file = path.display().to_string();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::Certs {
            file: file.clone(),
            message: e.to_string(),
        })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certs {
            file: file.clone(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCerts { file });
    }
    Ok(certs)
}

/// Loads and checks a certificate chain and its private key.
pub fn load_certified_key(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let certs = read_certs(&files.cert)?;
    // The first PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block.
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Key {
        file: files.key.display().to_string(),
        message: e.to_string(),
    })?;
    CertifiedKey::from_der(certs, key, &provider()).map_err(|e| TlsError::Mismatch {
        cert: files.cert.display().to_string(),
        key: files.key.display().to_string(),
        message: e.to_string(),
    })
}

/// Serves whichever certificate was loaded last: a reload swaps it for new
/// handshakes while established connections keep the one they negotiated.
pub struct CertStore {
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertStore")
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The public listener's TLS: an acceptor and the certificate it serves.
pub struct Tls {
    pub acceptor: TlsAcceptor,
    certs: Arc<CertStore>,
}

impl Tls {
    pub fn new(files: &TlsFiles) -> Result<Self, TlsError> {
        let certs = Arc::new(CertStore {
            current: ArcSwap::from_pointee(load_certified_key(files)?),
        });
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&certs) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certs,
        })
    }

    /// Serves `key` (from [`load_certified_key`]) to new handshakes from now on.
    pub fn install(&self, key: CertifiedKey) {
        self.certs.current.store(Arc::new(key));
    }
}

/// The upstream client's TLS: the built-in web PKI roots, or only the CAs in
/// `ca_file` (a private CA) when it is set. Both TLS 1.2 and 1.3.
pub fn client_config(ca_file: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in read_certs(path)? {
                roots.add(cert).map_err(|e| TlsError::Certs {
                    file: path.display().to_string(),
                    message: e.to_string(),
                })?;
            }
        }
        // Compiled in: works without a CA bundle on the image and offline.
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
