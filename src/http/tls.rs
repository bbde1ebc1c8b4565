//! The client side of TLS: a rustls configuration (ring provider, the webpki-roots trust
//! anchors plus any certificates added with `ClientBuilder::add_root_certificate`) and the
//! handshake over a [`TcpStream`].

use std::sync::Arc;

use futures_rustls::client::TlsStream;
use futures_rustls::rustls;
use rustls_pki_types::{CertificateDer, ServerName};

use super::error::{Error, ErrorKind};
use crate::net::TcpStream;

/// A TLS client configuration, shared by all connections of a client.
#[derive(Clone)]
pub(crate) struct TlsConnector {
    inner: futures_rustls::TlsConnector,
}

impl TlsConnector {
    /// Builds the configuration: the webpki-roots trust anchors and `extra_roots` (DER).
    pub(crate) fn new(extra_roots: &[CertificateDer<'static>]) -> Result<TlsConnector, Error> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for cert in extra_roots {
            roots.add(cert.clone()).map_err(|err| {
                Error::with_source(ErrorKind::Tls, "invalid root certificate", err)
            })?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| Error::with_source(ErrorKind::Tls, "TLS configuration", err))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConnector {
            inner: futures_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// Runs the TLS handshake over `tcp`, with SNI and certificate checks for `host` (a DNS
    /// name, or an IP address, IPv6 with or without brackets).
    pub(crate) async fn connect(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, Error> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let name = ServerName::try_from(bare.to_owned()).map_err(|err| {
            Error::with_source(
                ErrorKind::InvalidUrl,
                format!("invalid TLS server name {host:?}"),
                err,
            )
        })?;
        self.inner
            .connect(name, tcp)
            .await
            .map_err(|err| Error::with_source(ErrorKind::Tls, "TLS handshake failed", err))
    }
}
