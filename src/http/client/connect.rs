//! Opening a client connection: TCP to the target (or proxy), then TLS for `https`, within
//! the client's connect timeout.

use futures_lite::FutureExt;

use crate::http::error::{Error, ErrorKind};
use crate::net::TcpStream;

use super::pool::{Conn, Transport};
use super::redirect::Target;
use super::Client;

impl Client {
    /// Opens a connection (TCP, then TLS for `https`) within the connect timeout.
    pub(super) async fn connect(&self, target: &Target) -> Result<Conn, Error> {
        let open = async {
            let tcp = TcpStream::connect((target.bare_host(), target.key.port))
                .await
                .map_err(|err| {
                    Error::with_source(
                        ErrorKind::Connect,
                        format!("cannot connect to {}", target.host_header),
                        err,
                    )
                })?;
            let _ = tcp.set_nodelay(true);
            let io = if target.key.https {
                self.tls_handshake(target, tcp).await?
            } else {
                Transport::Plain(tcp)
            };
            Ok(Conn::new(io))
        };
        match self.inner.config.connect_timeout {
            None => open.await,
            Some(limit) => {
                open.or(async {
                    crate::time::sleep(limit).await;
                    Err(Error::new(
                        ErrorKind::Timeout,
                        format!("connecting to {} timed out", target.host_header),
                    ))
                })
                .await
            }
        }
    }

    #[cfg(feature = "tls")]
    async fn tls_handshake(&self, target: &Target, tcp: TcpStream) -> Result<Transport, Error> {
        let connector = self
            .inner
            .tls
            .get_or_init(|| {
                crate::http::tls::TlsConnector::new(&self.inner.config.root_certificates)
                    .map_err(|err| err.to_string())
            })
            .as_ref()
            .map_err(|message| Error::new(ErrorKind::Tls, message.clone()))?
            .clone();
        let stream = connector.connect(target.bare_host(), tcp).await?;
        Ok(Transport::Tls(Box::new(stream)))
    }

    #[cfg(not(feature = "tls"))]
    async fn tls_handshake(&self, _target: &Target, _tcp: TcpStream) -> Result<Transport, Error> {
        Err(Error::new(
            ErrorKind::Tls,
            "https URL, but untangle was built without TLS support (feature `tls`)",
        ))
    }
}
