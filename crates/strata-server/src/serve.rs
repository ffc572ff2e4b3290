//! `strata serve`: binds (refusing non-loopback addresses when no token is
//! configured), optionally with TLS, and serves [`crate::router`] until Ctrl-C or
//! SIGTERM, letting requests in flight finish.

use std::net::SocketAddr;
use std::path::PathBuf;

use strata_core::Error;

use crate::state::ApiState;

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// `host:port`; port 0 picks a free one (see [`Listening`]).
    pub bind: String,
    /// PEM certificate chain and private key: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// The address actually bound, reported before serving starts.
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    /// The address bound (the real port for `:0`).
    pub addr: SocketAddr,
    /// Serving HTTPS.
    pub tls: bool,
}

/// Serves until a shutdown signal. `ready` hears the bound address first.
pub async fn serve(
    state: ApiState,
    opts: ServeOptions,
    ready: impl FnOnce(Listening),
) -> Result<(), Error> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&opts.bind)
        .await
        .map_err(|e| Error::Config(format!("--bind {}: {e}", opts.bind)))?
        .collect();
    let Some(addr) = addrs.first().copied() else {
        return Err(Error::Config(format!("--bind {}: no address", opts.bind)));
    };
    if state.tokens().is_empty() && !addr.ip().is_loopback() {
        return Err(Error::Config(format!(
            "refusing to serve on {addr} without authentication: no API token is configured. \
             Set [server.tokens] in strata.toml or STRATA_API_TOKENS=\"name:role:<sha256 of the token>\", \
             or bind a loopback address (127.0.0.1)"
        )));
    }
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| Error::Config(format!("cannot listen on {addr}: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::Config(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::Config(format!("cannot listen on {addr}: {e}")))?;
    let app = crate::router(state).into_make_service_with_connect_info::<SocketAddr>();
    match opts.tls {
        None => {
            let listener = tokio::net::TcpListener::from_std(listener)
                .map_err(|e| Error::Config(format!("cannot listen on {addr}: {e}")))?;
            ready(Listening {
                addr: bound,
                tls: false,
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await
                .map_err(|e| Error::Config(format!("server stopped: {e}")))
        }
        Some((cert, key)) => {
            // One crypto provider for the process; the drivers' TLS already uses ring.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .map_err(|e| {
                    Error::Config(format!(
                        "cannot load TLS certificate {} / key {}: {e}",
                        cert.display(),
                        key.display()
                    ))
                })?;
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                stopper.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
            });
            ready(Listening {
                addr: bound,
                tls: true,
            });
            axum_server::from_tcp_rustls(listener, config)
                .map_err(|e| Error::Config(format!("cannot listen on {addr}: {e}")))?
                .handle(handle)
                .serve(app)
                .await
                .map_err(|e| Error::Config(format!("server stopped: {e}")))
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
