//! strata's REST API and web console (`strata serve`, SPEC section 8), as an axum
//! [`Router`] an application can also mount in its own server.
//!
//! Every endpoint is a thin shell over the same library calls the CLI makes: the
//! [`strata_core::Migrator`] run loop, [`strata_core::Project`] for multi-database
//! projects, and the drivers' `connect_config`. Each request opens its own connection,
//! so status and health keep answering while a run holds the migration lock.
//!
//! ```no_run
//! # async fn demo(config: strata_core::Config) {
//! let state = strata_server::ApiState::new(config, strata_server::Tokens::default());
//! let app = axum::Router::new().merge(strata_server::router(state));
//! # }
//! ```

#![deny(missing_docs)]

mod api;
mod audit;
mod auth;
mod book;
mod console;
mod error;
mod guard;
mod metrics;
mod runs;
mod serve;
mod state;

pub use auth::{Caller, Role, Tokens};
pub use error::ApiError;
pub use serve::{serve, Listening, ServeOptions};
pub use state::{ApiState, MigratorFactory};

use axum::middleware;
use axum::routing::{get, post};
use axum::Router;

/// The whole interface: `/api/v1/...`, `/metrics`, `/health`, `/openapi.json` and the
/// console at `/`. API and metrics need a token when tokens are configured; the probe,
/// the OpenAPI document and the console's static files do not.
pub fn router(state: ApiState) -> Router {
    let protected = Router::new()
        .route("/api/v1/databases", get(api::databases))
        .route("/api/v1/whoami", get(api::whoami))
        .route("/api/v1/runs", get(api::runs))
        .route("/api/v1/runs/{id}", get(api::run))
        .route("/api/v1/events", get(api::events))
        .route("/api/v1/migrations/", get(api::list))
        .route("/api/v1/migrations", get(api::list))
        .route("/api/v1/migrations/status", get(api::status))
        .route("/api/v1/migrations/history", get(api::history))
        .route("/api/v1/migrations/audit", get(api::audit))
        .route("/api/v1/migrations/health", get(api::health))
        .route("/api/v1/migrations/info", get(api::info))
        .route("/api/v1/migrations/migrate", post(api::migrate))
        .route("/api/v1/migrations/rollback/{version}", post(api::rollback))
        .route("/api/v1/migrations/repair", post(api::repair))
        .route("/api/v1/migrations/stamp/{version}", post(api::stamp))
        .route("/api/v1/migrations/{version}", get(api::detail))
        .route("/metrics", get(api::metrics))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    Router::new()
        .merge(protected)
        .route("/health", get(api::probe))
        .route("/openapi.json", get(console::openapi))
        .route("/", get(console::index))
        .route("/console.js", get(console::script))
        .route("/console.css", get(console::style))
        .route("/favicon.svg", get(console::favicon))
        .fallback(api::not_found)
        .layer(middleware::from_fn(error::json_errors))
        // A request from another site, or to a name this server does not answer to,
        // is refused before anything reads it...
        .layer(middleware::from_fn_with_state(
            state.clone(),
            guard::same_site_json,
        ))
        // ...and, like every refused attempt to change something, audited.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            audit::refusals,
        ))
        .with_state(state)
}
