//! TLS for the metrics endpoint: a certificate from a directory holding `tls.crt` and `tls.key`
//! (a mounted Secret, as cert-manager writes it; re-read when the files change, so renewals need no
//! restart), or a self-signed one made at start. Served with rustls and the ring provider.
//!
//! [`TlsListener`] plugs into `axum::serve`: handshakes run concurrently off the accept loop, so a
//! slow or broken client cannot hold up the others.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::shell::conn_limits::{self, Guarded, Limits};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;
use tracing::{debug, info, warn};

/// The certificate file in a certificate directory.
pub const CERT_FILE: &str = "tls.crt";
/// The private key file in a certificate directory.
pub const KEY_FILE: &str = "tls.key";
/// How often a certificate directory is checked for new files.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(30);
/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why no certificate could be had.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: no PEM certificate in it", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: not a PEM private key (PKCS#8, PKCS#1 or SEC1): {message}", path.display())]
    Key { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    Pem { path: PathBuf, message: String },
    #[error("the certificate and key cannot be used: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// A certificate for `names` (DNS names or IP addresses), signed by its own key.
pub fn self_signed(names: Vec<String>) -> Result<CertifiedKey, TlsError> {
    let generated = rcgen::generate_simple_self_signed(names)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    let cert = generated.cert.der().clone();
    Ok(CertifiedKey::from_der(vec![cert], key, &provider())?)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The chain in `dir/tls.crt` and the key in `dir/tls.key`, checked to belong together.
pub fn load_dir(dir: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    let chain = CertificateDer::pem_slice_iter(&read(&cert_path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: cert_path.clone(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: cert_path });
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&key_path)?).map_err(|e| TlsError::Key {
        path: key_path.clone(),
        message: e.to_string(),
    })?;
    Ok(CertifiedKey::from_der(chain, key, &provider())?)
}

/// The certificate being served; [`watch_dir`] swaps it when the files change.
pub struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl fmt::Debug for CurrentCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CurrentCert")
    }
}

impl CurrentCert {
    pub fn new(key: CertifiedKey) -> Arc<Self> {
        Arc::new(CurrentCert(RwLock::new(Arc::new(key))))
    }

    pub fn get(&self) -> Arc<CertifiedKey> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, key: CertifiedKey) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
    }
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// A server config (TLS 1.2 and 1.3, HTTP/1.1) that serves whatever `cert` holds.
pub fn server_config(cert: Arc<CurrentCert>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn modified(dir: &Path) -> Option<(SystemTime, SystemTime)> {
    let m = |f: &str| {
        std::fs::metadata(dir.join(f))
            .and_then(|m| m.modified())
            .ok()
    };
    Some((m(CERT_FILE)?, m(KEY_FILE)?))
}

/// Re-reads `dir` every [`RELOAD_INTERVAL`] when its files changed (a Secret update swaps them);
/// a pair that does not load is reported and the previous certificate kept. Runs until aborted.
pub async fn watch_dir(dir: PathBuf, cert: Arc<CurrentCert>) {
    let mut seen = modified(&dir);
    let mut interval = tokio::time::interval(RELOAD_INTERVAL);
    interval.tick().await;
    loop {
        interval.tick().await;
        let now = modified(&dir);
        if now == seen {
            continue;
        }
        match load_dir(&dir) {
            Ok(key) => {
                cert.set(key);
                seen = now;
                info!(dir = %dir.display(), "reloaded the metrics certificate");
            }
            Err(e) => warn!(error = %e, "keeping the previous metrics certificate"),
        }
    }
}

/// A TCP listener that hands out TLS streams: `axum::serve(TlsListener::new(..), router)`.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<Guarded<TcpStream>>, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Connections are under [`Limits`] from their TCP accept on, handshake included.
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>, limits: Limits) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let accepting = tokio::spawn(async move {
            loop {
                let (stream, peer) = conn_limits::accept(&tcp, &limits).await;
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            ready,
            local,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<Guarded<TcpStream>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop never ends by itself; if it did, wait for shutdown.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
