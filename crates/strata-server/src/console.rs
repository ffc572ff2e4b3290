//! The web console and the OpenAPI document: static files compiled into the binary, so
//! the console works with no network and no build step at run time.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::state::ApiState;

const INDEX: &str = include_str!("../assets/console.html");
const SCRIPT: &str = include_str!("../assets/console.js");
const STYLE: &str = include_str!("../assets/console.css");
const FAVICON: &str = include_str!("../assets/favicon.svg");
const OPENAPI: &str = include_str!("../assets/openapi.json");

/// Security headers for the console: nothing but this origin, no framing.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'";

pub async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        INDEX,
    )
}

pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

pub async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

pub async fn favicon() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "image/svg+xml")], FAVICON)
}

/// The OpenAPI document, with `?database=` narrowed to this server's databases so
/// clients and API testers know the valid names.
pub async fn openapi(State(s): State<ApiState>) -> impl IntoResponse {
    let mut doc: serde_json::Value =
        serde_json::from_str(OPENAPI).expect("assets/openapi.json is valid JSON");
    let names: Vec<String> = s.all().into_iter().map(|d| d.name).collect();
    if let Some(paths) = doc["paths"].as_object_mut() {
        for op in paths
            .values_mut()
            .filter_map(|p| p.as_object_mut())
            .flat_map(|p| p.values_mut())
        {
            let params = op.get_mut("parameters").and_then(|p| p.as_array_mut());
            for param in params.into_iter().flatten() {
                if param["name"] == "database" {
                    param["schema"]["enum"] = serde_json::json!(names);
                }
            }
        }
    }
    doc["info"]["version"] = serde_json::json!(env!("CARGO_PKG_VERSION"));
    axum::Json(doc)
}
