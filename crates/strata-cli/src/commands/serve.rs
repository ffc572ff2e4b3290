//! `strata serve`: the REST API and web console of `strata-server`.

use strata_core::Error;
use strata_server::{ApiState, ServeOptions, Tokens};

use crate::args::ServeArgs;
use crate::context::Context;

pub async fn run(ctx: &Context, a: ServeArgs) -> Result<i32, Error> {
    let server = &ctx.config.server;
    let tokens = Tokens::load(
        server,
        ctx.config.config_path.as_deref(),
        std::env::var("STRATA_API_TOKENS").ok().as_deref(),
    )?;
    let tls = match (
        a.tls_cert.or(server.tls_cert.clone()),
        a.tls_key.or(server.tls_key.clone()),
    ) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => {
            return Err(Error::Config(
                "TLS needs both a certificate and a key (--tls-cert and --tls-key)".into(),
            ))
        }
    };
    let opts = ServeOptions {
        bind: a
            .bind
            .or(server.bind.clone())
            .unwrap_or_else(|| "127.0.0.1:8080".into()),
        tls,
    };
    let auth = if tokens.is_empty() {
        "no tokens: loopback only"
    } else {
        "bearer tokens required"
    };
    let state = ApiState::new(ctx.config.clone(), tokens);
    let json = ctx.global.json;
    strata_server::serve(state, opts, |l| {
        let scheme = if l.tls { "https" } else { "http" };
        if json {
            // Under --json, one line on stdout a supervisor can read the address from.
            let line = serde_json::json!({
                "listening": format!("{scheme}://{}", l.addr),
                "console": format!("{scheme}://{}/", l.addr),
                "auth": auth,
            });
            println!("{line}");
        }
        // Tests and scripts read the port from this line (with --bind 127.0.0.1:0).
        eprintln!(
            "strata serve: listening on {scheme}://{} ({auth}); console at {scheme}://{}/",
            l.addr, l.addr
        );
    })
    .await?;
    Ok(0)
}
