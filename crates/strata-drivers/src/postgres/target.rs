//! Where and how to connect: a `postgres://` URL or a libpq key/value conninfo string
//! (`host=db1 dbname=app sslmode=verify-full`), with the parameters strata handles
//! itself taken out: `search_path` (a tenant schema) and TLS ([`super::tls`]).

use std::time::Duration;

use strata_core::{redact, DriverError, DriverErrorKind};
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config};

use super::tls::Tls;

/// A parsed connection string.
#[derive(Clone)]
pub(crate) struct Target {
    pub config: Config,
    pub tls: Tls,
    /// `?search_path=tenant_42`: the session's search_path and the history's schema.
    pub search_path: Option<String>,
}

/// A libpq key/value string rather than a URL: `key=value` pairs, no scheme.
pub(crate) fn is_conninfo(s: &str) -> bool {
    !s.contains("://")
        && s.split_whitespace().next().is_some_and(|first| {
            first.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            })
        })
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, DriverError> {
        let mut tls = Tls::default();
        let mut search_path = None;
        let mut ours = |key: &str, value: &str| -> Result<bool, DriverError> {
            if key == "search_path" {
                search_path = Some(value.to_string());
                return Ok(true);
            }
            tls.take(key, value)
        };
        let rest = if is_conninfo(url) {
            let mut kept = Vec::new();
            for (k, v) in conninfo_pairs(url)? {
                let taken = ours(&k, &v).map_err(|e| {
                    DriverError::new(e.kind, format!("{} in {}", e.message, redact(url)))
                })?;
                if !taken {
                    kept.push(format!(
                        "{k}='{}'",
                        v.replace('\\', "\\\\").replace('\'', "\\'")
                    ));
                }
            }
            kept.join(" ")
        } else {
            crate::take_params(url, ours)?
        };
        if let Some(sp) = &search_path {
            // It travels inside the startup `options`; nothing but names may ride along.
            let ok = !sp.is_empty()
                && sp
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ',' | '$'));
            if !ok {
                return Err(DriverError::new(
                    DriverErrorKind::InvalidUrl,
                    format!(
                        "search_path `{sp}` in {} must be schema names separated by commas",
                        redact(url)
                    ),
                ));
            }
        }
        let mut config: Config = rest.parse().map_err(|e| {
            DriverError::new(
                DriverErrorKind::InvalidUrl,
                format!("invalid PostgreSQL connection string {}: {e}", redact(url)),
            )
        })?;
        if config.get_application_name().is_none() {
            config.application_name("strata");
        }
        config.connect_timeout(Duration::from_secs(10));
        config.ssl_mode(tls.ssl_mode());
        if let Some(sp) = &search_path {
            let options = config
                .get_options()
                .map(|o| format!("{o} "))
                .unwrap_or_default();
            config.options(format!("{options}-c search_path={sp}"));
        }
        Ok(Target {
            config,
            tls,
            search_path,
        })
    }

    /// Opens a connection; refused, reset or timed-out connections are transient errors,
    /// a certificate that does not verify says which setting to change.
    pub async fn open(&self) -> Result<Client, DriverError> {
        let connector = self.tls.connector()?;
        let (client, connection) = self.config.connect(connector).await.map_err(|e| {
            let transient = match e.as_db_error() {
                // Server-side refusals: starting up, shutting down, too many connections.
                Some(db) => matches!(db.code().code(), "57P03" | "57P01" | "53300"),
                None => super::exec::lost_connection(&e),
            };
            let text = super::error_text(&e);
            let mut err = DriverError::new(
                DriverErrorKind::Connect,
                format!("cannot connect to {}: {text}", self.describe()),
            );
            if text.contains("invalid peer certificate") {
                err = err.with_detail(self.tls.advice());
            } else if text.contains("unsupported startup parameter") {
                err = err.with_detail(
                    "a connection pooler (PgBouncer) refused a startup parameter: `search_path` in the URL travels as `options`, which a pooler does not pass on; set the role's search_path (ALTER ROLE … SET search_path) or connect to PostgreSQL directly"
                        .to_string(),
                );
            } else if text.contains("server does not support TLS") {
                err = err.with_detail(
                    "the server does not offer TLS: sslmode=prefer uses it only when offered"
                        .to_string(),
                );
            }
            err.retryable(transient && !text.contains("certificate"))
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("postgres connection closed: {e}");
            }
        });
        Ok(client)
    }

    /// "user@host:port,host2:port2/db", never the password: every host of a multi-host
    /// string, so an error names them all.
    pub fn describe(&self) -> String {
        let c = &self.config;
        let ports = c.get_ports();
        let hosts: Vec<String> = c
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                match h {
                    Host::Tcp(h) => format!("{h}:{port}"),
                    Host::Unix(p) => format!("{}:{port}", p.display()),
                }
            })
            .collect();
        let hosts = if hosts.is_empty() {
            "localhost:5432".to_string()
        } else {
            hosts.join(",")
        };
        format!(
            "postgres://{}@{hosts}/{}",
            c.get_user().unwrap_or(""),
            c.get_dbname().unwrap_or("")
        )
    }
}

/// The `key=value` pairs of a conninfo string; values may be single-quoted, with `\'`
/// and `\\` escapes inside.
fn conninfo_pairs(s: &str) -> Result<Vec<(String, String)>, DriverError> {
    let bad = |why: &str| {
        DriverError::new(
            DriverErrorKind::InvalidUrl,
            format!("invalid PostgreSQL connection string {}: {why}", redact(s)),
        )
    };
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(bad(&format!("`{key}` has no value")));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(bad("unterminated quoted value")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ours_are_taken_out_of_urls_and_conninfo_alike() {
        let t = Target::parse(
            "postgres://u@h1:5441,h2:5442/app?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&search_path=t1&target_session_attrs=read-write",
        )
        .unwrap();
        assert_eq!(t.search_path.as_deref(), Some("t1"));
        assert_eq!(
            t.tls.root_cert.as_deref(),
            Some(std::path::Path::new("/tmp/ca.pem"))
        );
        assert_eq!(t.describe(), "postgres://u@h1:5441,h2:5442/app");
        let k = Target::parse("host=db1 port=5433 dbname='my app' user=u sslmode=require").unwrap();
        assert_eq!(k.describe(), "postgres://u@db1:5433/my app");
        assert_eq!(k.tls.mode, super::super::tls::Mode::Require);
        assert!(is_conninfo("host=db1 dbname=app"));
        assert!(!is_conninfo("postgres://u@h/db?sslmode=require"));
        assert!(Target::parse("host=db1 dbname='open").is_err());
        assert!(Target::parse("postgres://h/db?sslmode=maybe").is_err());
    }
}
