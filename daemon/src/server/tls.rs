//! Mutual TLS on the TCP listener (rustls with the ring provider): the server shows its
//! certificate, every client must show one signed by the configured CA, and the client's
//! identity is its certificate's name (`cert:NAME`): the subject's common name, else its
//! first DNS name.

use baton_proto::Principal;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Where the server's certificate, its key and the CA of client certificates are.
#[derive(Clone, Debug)]
pub struct TlsFiles<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
    pub client_ca: &'a Path,
}

pub struct TlsServer {
    acceptor: TlsAcceptor,
}

impl TlsServer {
    /// Loads the PEM files and builds a server that requires client certificates.
    pub fn load(files: &TlsFiles<'_>) -> Result<TlsServer, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = read_certs(files.cert)?;
        let key = PrivateKeyDer::from_pem_file(files.key)
            .map_err(|e| format!("cannot read the TLS key {}: {e}", files.key.display()))?;
        let mut roots = RootCertStore::empty();
        for ca in read_certs(files.client_ca)? {
            roots.add(ca).map_err(|e| format!("client CA {}: {e}", files.client_ca.display()))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| format!("client CA {}: {e}", files.client_ca.display()))?;
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .map_err(|e| format!("TLS certificate {} and key {}: {e}", files.cert.display(), files.key.display()))?;
        Ok(TlsServer { acceptor: TlsAcceptor::from(Arc::new(config)) })
    }

    /// The handshake, within `timeout`; then who the client's certificate says it is.
    pub async fn accept(&self, tcp: TcpStream, timeout: Duration) -> Result<(TlsStream<TcpStream>, Principal), String> {
        let stream = match tokio::time::timeout(timeout, self.acceptor.accept(tcp)).await {
            Err(_) => return Err("no TLS handshake in time".into()),
            Ok(Err(e)) => return Err(format!("TLS handshake failed: {e}")),
            Ok(Ok(stream)) => stream,
        };
        let (_, session) = stream.get_ref();
        let leaf = session.peer_certificates().and_then(|certs| certs.first()).ok_or("no client certificate")?;
        let name = certificate_name(leaf)?;
        Ok((stream, Principal::Cert(name)))
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", path.display()));
    }
    Ok(certs)
}

/// The subject's common name, else the first DNS subject alternative name.
fn certificate_name(der: &CertificateDer<'_>) -> Result<String, String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("unreadable client certificate: {e}"))?;
    if let Some(cn) = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()) {
        return Ok(cn.to_owned());
    }
    let dns = cert.subject_alternative_name().ok().flatten().and_then(|san| {
        san.value.general_names.iter().find_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            _ => None,
        })
    });
    dns.ok_or_else(|| "the client certificate names no one (no common name, no DNS name)".into())
}
