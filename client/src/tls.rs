//! Mutual TLS for TCP connections (rustls with the ring provider): the client checks the
//! server's certificate against a CA and the address's host name (or IP), and shows its own
//! certificate, whose name is its identity on the server (`cert:NAME`).

use crate::error::{Error, Result};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A client's TLS settings: the CA the server's certificate must chain to, and the client's
/// own certificate and key.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient").finish_non_exhaustive()
    }
}

impl TlsClient {
    /// Loads PEM files: the server's CA, this client's certificate chain and its key.
    ///
    /// # Errors
    /// `InvalidArgument` naming the file that cannot be read or used.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<TlsClient> {
        let invalid = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
            Error::InvalidArgument(format!("{what} {}: {e}", path.display()))
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for der in read_certs(ca).map_err(|e| invalid("CA", ca, &e))? {
            roots.add(der).map_err(|e| invalid("CA", ca, &e))?;
        }
        let chain = read_certs(cert).map_err(|e| invalid("certificate", cert, &e))?;
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| invalid("key", key, &e))?;
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::InvalidArgument(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key_der)
            .map_err(|e| invalid("certificate and key", cert, &e))?;
        Ok(TlsClient { connector: TlsConnector::from(Arc::new(config)) })
    }

    /// The TLS handshake over `tcp` with the server at `host`.
    pub(crate) async fn connect(&self, host: &str, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host:?} as a TLS name: {e}")))?;
        self.connector.connect(name, tcp).await
    }
}

fn read_certs(path: &Path) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<std::result::Result<Vec<_>, _>>)
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no certificate in the file".into());
    }
    Ok(certs)
}
