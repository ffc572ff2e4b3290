//! Whether this connection reaches PostgreSQL through a pooler (PgBouncer, pgcat,
//! Odyssey, Supavisor, RDS Proxy…).
//!
//! A pooler answers the startup with a cancel key of its own, since a cancel request
//! must come back to it; a server (or a plain TCP proxy in front of one) sends its
//! backend's process id. So the process id in the client's cancel key differs from
//! `pg_backend_pid()` exactly when something pools the connection. tokio-postgres does
//! not expose that id, but it writes it into a cancel request, which is sent here into
//! an in-memory pipe and read back: nothing goes to the network.
//!
//! Behind a pooler each transaction may run on a different server session, so a session
//! lock or a session `SET` is meaningless (or leaks into other clients' sessions): the
//! driver then takes the lease lock and keeps no session state.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use strata_core::DriverError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, TlsConnect, TlsStream};
use tokio_postgres::Client;

/// The protocol codes of an `SSLRequest` and a `CancelRequest`.
const SSL_REQUEST: i32 = 80877103;
const CANCEL_REQUEST: i32 = 80877102;

/// True when `client` goes through a pooler (see the module documentation).
pub(super) async fn detect(client: &Client) -> Result<bool, DriverError> {
    let rows = super::history::rows(client, "SELECT pg_backend_pid()::text").await?;
    let backend: Option<i32> = rows
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next().flatten())
        .and_then(|p| p.parse().ok());
    match (key_process_id(client).await, backend) {
        (Some(key), Some(backend)) => Ok(key != backend),
        _ => {
            // Unreachable in practice (both are protocol facts); a pooler is the safe guess.
            tracing::warn!(
                "could not compare the cancel key with pg_backend_pid(); assuming a pooler"
            );
            Ok(true)
        }
    }
}

/// The process id of the client's cancel key, read from a cancel request written into
/// a pipe.
async fn key_process_id(client: &Client) -> Option<i32> {
    let (ours, mut peer) = tokio::io::duplex(256);
    let token = client.cancel_token();
    let send = token.cancel_query_raw(ours, Passthrough);
    let read = async {
        loop {
            let mut len = [0u8; 4];
            peer.read_exact(&mut len).await.ok()?;
            let len = (u32::from_be_bytes(len) as usize).checked_sub(4)?;
            if !(4..=64).contains(&len) {
                return None;
            }
            let mut body = vec![0u8; len];
            peer.read_exact(&mut body).await.ok()?;
            match i32::from_be_bytes(body[..4].try_into().ok()?) {
                // With sslmode=prefer/require the client first asks for TLS: say yes,
                // and the "TLS" below is the pipe itself.
                SSL_REQUEST => peer.write_all(b"S").await.ok()?,
                CANCEL_REQUEST if len >= 8 => {
                    return Some(i32::from_be_bytes(body[4..8].try_into().ok()?))
                }
                _ => return None,
            }
        }
    };
    let (_, pid) = tokio::join!(send, read);
    pid
}

/// A "TLS" connector that hands back the stream unchanged: the cancel request goes into
/// an in-memory pipe, never to a server.
struct Passthrough;

impl TlsConnect<DuplexStream> for Passthrough {
    type Stream = Plain;
    type Error = io::Error;
    type Future = std::future::Ready<Result<Plain, io::Error>>;

    fn connect(self, stream: DuplexStream) -> Self::Future {
        std::future::ready(Ok(Plain(stream)))
    }
}

struct Plain(DuplexStream);

impl TlsStream for Plain {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for Plain {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Plain {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
