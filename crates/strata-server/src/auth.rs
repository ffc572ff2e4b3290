//! Bearer tokens: who may call the API, as what.
//!
//! Tokens are configured as the hex SHA-256 of the token (`[server.tokens]` or
//! `STRATA_API_TOKENS="name:role:<sha256hex>,..."`), never the token itself. A request's
//! token is hashed and compared with every configured hash in constant time, so neither
//! the match nor its position leaks through timing.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use strata_core::{Actor, ServerConfig, SourceError};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::ApiState;

/// What a token may do: `viewer` reads (GET), `operator` also changes (POST).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May read (GET) and dry-run.
    Viewer,
    /// May also change the database (POST).
    Operator,
}

impl Role {
    fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    name: String,
    role: Role,
    sha256: [u8; 32],
}

/// The configured tokens. Empty means no authentication, which [`crate::serve`] allows
/// on loopback addresses only.
#[derive(Debug, Clone, Default)]
pub struct Tokens(Vec<Token>);

impl Tokens {
    /// `[server.tokens]` of `strata.toml` plus `STRATA_API_TOKENS` (`env`); a bad entry
    /// is an error naming where it came from.
    pub fn load(
        server: &ServerConfig,
        config_file: Option<&std::path::Path>,
        env: Option<&str>,
    ) -> Result<Tokens, SourceError> {
        let mut tokens = Vec::new();
        let file = config_file.unwrap_or(std::path::Path::new("strata.toml"));
        for (name, t) in &server.tokens {
            let at = format!("[server.tokens] {name}");
            tokens.push(Token::new(name, &t.role, &t.sha256).map_err(|m| {
                SourceError::new(file, None, format!("{at}: {m}"))
                    .with_help("e.g. deployer = { role = \"operator\", sha256 = \"<sha256sum of the token>\" }")
            })?);
        }
        for entry in env
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let parts: Vec<&str> = entry.split(':').collect();
            let [name, role, hash] = parts.as_slice() else {
                return Err(SourceError::new(
                    "STRATA_API_TOKENS",
                    None,
                    format!("`{}` is not name:role:sha256hex", redact_entry(entry)),
                ));
            };
            tokens.push(Token::new(name, role, hash).map_err(|m| {
                SourceError::new("STRATA_API_TOKENS", None, format!("token `{name}`: {m}"))
            })?);
        }
        Ok(Tokens(tokens))
    }

    /// One token, for tests and embedding applications: `token` is the secret itself.
    pub fn single(name: &str, role: Role, token: &str) -> Tokens {
        Tokens(vec![Token {
            name: name.to_string(),
            role,
            sha256: Sha256::digest(token.as_bytes()).into(),
        }])
    }

    /// Adds one token (see [`Tokens::single`]).
    pub fn with(mut self, name: &str, role: Role, token: &str) -> Tokens {
        self.0.extend(Tokens::single(name, role, token).0);
        self
    }

    /// True when no token is configured (the server then binds loopback only).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The token whose hash matches, checking every entry whatever the outcome.
    fn find(&self, presented: &str) -> Option<&Token> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for t in &self.0 {
            if bool::from(t.sha256.ct_eq(&digest)) {
                found = Some(t);
            }
        }
        found
    }
}

impl Token {
    fn new(name: &str, role: &str, hash: &str) -> Result<Token, String> {
        let role = Role::parse(role)
            .ok_or_else(|| format!("role `{role}` is not `viewer` or `operator`"))?;
        let bytes = hex::decode(hash.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or("sha256 must be 64 hex digits (the SHA-256 of the token, not the token)")?;
        Ok(Token {
            name: name.to_string(),
            role,
            sha256: bytes,
        })
    }
}

/// Never echo what may be a pasted secret.
fn redact_entry(entry: &str) -> String {
    match entry.split_once(':') {
        Some((name, _)) => format!("{name}:…"),
        None => "…".into(),
    }
}

/// Who made a request: the token's name and role, the client's address and user
/// agent. Extracting it authenticates the request (any valid token); what the role
/// allows is checked where the request changes something (`Caller::may_change`).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's name (`local` without tokens).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The client's address.
    pub ip: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
}

impl Caller {
    /// For `applied_by` and `audit_log`.
    pub fn actor(&self) -> Actor {
        Actor {
            name: self.name.clone(),
            ip_address: self.ip.clone(),
            user_agent: self.user_agent.clone(),
        }
    }
}

impl Caller {
    /// Changing a database needs an operator's token; a viewer reads and dry-runs.
    pub(crate) fn may_change(&self) -> Result<(), ApiError> {
        if self.role >= Role::Operator {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "token `{}` is a viewer: it may read and dry-run; changing the database needs an operator token",
                self.name
            ),
        ))
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let tokens = state.tokens();
        if tokens.is_empty() {
            // Loopback only (enforced at bind): whoever can reach it runs this machine.
            return Ok(Caller {
                name: "local".into(),
                role: Role::Operator,
                ip,
                user_agent,
            });
        }
        let Some(presented) = bearer(&parts.headers) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this server needs a bearer token (Authorization: Bearer <token>)",
            ));
        };
        let Some(token) = tokens.find(presented) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the bearer token was not accepted: it matches no configured token",
            ));
        };
        Ok(Caller {
            name: token.name.clone(),
            role: token.role,
            ip,
            user_agent,
        })
    }
}

/// The token of `Authorization: Bearer <token>`; the scheme is case-insensitive
/// (RFC 9110 section 11.1).
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(char::is_whitespace)?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The configured token's name for a presented token (refusals are audited under it).
pub(crate) fn token_name(state: &ApiState, headers: &axum::http::HeaderMap) -> Option<String> {
    let t = bearer(headers)?;
    state.tokens().find(t).map(|t| t.name.clone())
}

/// Middleware: authenticates the request and hands its [`Caller`] to the handler.
pub async fn authenticate(
    State(state): State<ApiState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (mut parts, body) = req.into_parts();
    let caller = Caller::from_request_parts(&mut parts, &state).await?;
    parts.extensions.insert(caller);
    Ok(next.run(Request::from_parts(parts, body)).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(t: &str) -> String {
        hex::encode(Sha256::digest(t.as_bytes()))
    }

    #[test]
    fn reads_env_tokens_and_matches_by_hash() {
        let env = format!(
            "deployer:operator:{},dash:viewer:{}",
            hash("s3cret"),
            hash("look")
        );
        let t = Tokens::load(&ServerConfig::default(), None, Some(&env)).unwrap();
        assert_eq!(t.find("s3cret").unwrap().name, "deployer");
        assert_eq!(t.find("look").unwrap().role, Role::Viewer);
        assert!(t.find("nope").is_none());
        assert!(
            t.find(&hash("s3cret")).is_none(),
            "the hash itself is not a token"
        );
    }

    #[test]
    fn reads_config_tokens_from_strata_toml() {
        let dir = std::env::temp_dir().join(format!("strata-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("strata.toml");
        std::fs::write(
            &path,
            format!(
                "[server]\nbind = \"0.0.0.0:9000\"\n\n[server.tokens]\ndeployer = {{ role = \"operator\", sha256 = \"{}\" }}\n",
                hash("from-file")
            ),
        )
        .unwrap();
        let file = strata_core::ConfigFile::read(&path).unwrap();
        assert_eq!(file.server.bind.as_deref(), Some("0.0.0.0:9000"));
        let t = Tokens::load(&file.server, Some(&path), None).unwrap();
        assert_eq!(t.find("from-file").unwrap().role, Role::Operator);
        std::fs::write(
            &path,
            "[server.tokens]\nx = { role = \"operator\", token = \"plain\" }\n",
        )
        .unwrap();
        let e = strata_core::ConfigFile::read(&path).unwrap_err();
        assert!(
            e.to_string().contains("token"),
            "unknown keys are refused: {e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_bad_entries_without_echoing_them() {
        let e = Tokens::load(&ServerConfig::default(), None, Some("a:admin:00")).unwrap_err();
        assert!(e.to_string().contains("role `admin`"), "{e}");
        let e = Tokens::load(&ServerConfig::default(), None, Some("a:viewer:xyz")).unwrap_err();
        assert!(e.to_string().contains("64 hex digits"), "{e}");
        let e = Tokens::load(&ServerConfig::default(), None, Some("plaintext-secret")).unwrap_err();
        assert!(!e.to_string().contains("plaintext-secret"), "{e}");
    }
}
