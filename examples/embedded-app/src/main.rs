//! An application that carries its migrations in its binary.
//!
//! ```text
//! AUTO_MIGRATE=true DATABASE_URL=sqlite://app.db cargo run -p embedded-app
//! AUTO_MIGRATE=true DATABASE_URL=postgres://postgres@127.0.0.1/app cargo run -p embedded-app
//! DATABASE_URL=sqlite://app.db cargo run -p embedded-app -- health
//! DATABASE_URL=sqlite://app.db cargo run -p embedded-app -- serve 127.0.0.1:3000
//! ```
//! On start-up it opens its own database connection (a `rusqlite::Connection` or a
//! `tokio_postgres::Client`) and, when `AUTO_MIGRATE=true`, applies the embedded SQL
//! files and one code migration (003, which fills in slugs in Rust) on that same
//! connection before using it. `health` prints what its health endpoint would return. `serve` runs the application's
//! own HTTP server with strata's API and console mounted in it, serving these same
//! embedded and code migrations, and a `/healthz` that fails while any is pending.

use strata::{CodeContext, CodeError, CodeMigration, Migrator};

/// Code migration 003: computes a slug for every note, something SQL does badly.
struct FillSlugs;

#[strata::async_trait]
impl CodeMigration for FillSlugs {
    fn version(&self) -> &str {
        "003"
    }
    fn name(&self) -> &str {
        "fill_slugs"
    }
    fn description(&self) -> Option<&str> {
        Some("slugs from titles, computed in Rust")
    }

    async fn up(&self, db: &mut CodeContext<'_>) -> Result<(), CodeError> {
        match db.kind() {
            "sqlite" => {
                let conn = db.require::<strata::rusqlite::Connection>()?;
                let notes: Vec<(i64, String)> = conn
                    .prepare("SELECT id, title FROM notes")?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                for (id, title) in notes {
                    conn.execute(
                        "UPDATE notes SET slug = ?1 WHERE id = ?2",
                        strata::rusqlite::params![slug(&title), id],
                    )?;
                }
            }
            "postgres" => {
                let client = db.require::<strata::tokio_postgres::Client>()?;
                for row in client.query("SELECT id, title FROM notes", &[]).await? {
                    let (id, title): (i32, String) = (row.get(0), row.get(1));
                    client
                        .execute(
                            "UPDATE notes SET slug = $1 WHERE id = $2",
                            &[&slug(&title), &id],
                        )
                        .await?;
                }
            }
            other => {
                return Err(
                    format!("this example runs on SQLite and PostgreSQL, not {other}").into(),
                )
            }
        }
        Ok(())
    }

    async fn down(&self, _db: &mut CodeContext<'_>) -> Result<(), CodeError> {
        // 002's rollback drops the column; nothing to undo here.
        Ok(())
    }
}

fn slug(title: &str) -> String {
    title
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// The embedded files plus the code migration, planned together.
fn migrator() -> Result<Migrator, strata::Error> {
    strata::embed_migrations!("migrations")
        .migrator()?
        .register(FillSlugs)
}

/// What a `/health` endpoint returns: current version, pending count, problems.
async fn health(url: &str) -> Result<serde_json::Value, strata::Error> {
    let report = migrator()?.health(url).await;
    Ok(serde_json::to_value(&report).expect("the report serialises"))
}

/// The application's own server: its routes plus strata's API and console.
async fn serve(url: &str, bind: &str) -> Result<(), Box<dyn std::error::Error>> {
    use axum::{http::StatusCode, routing::get, Json};
    use strata::server::{ApiState, Tokens};

    let config = strata::core::Config::load(
        &strata::core::Overrides {
            database_url: Some(url.to_string()),
            ..Default::default()
        },
        &|k| std::env::var(k).ok(),
    )?;
    let tokens = Tokens::load(
        &config.server,
        None,
        std::env::var("STRATA_API_TOKENS").ok().as_deref(),
    )?;
    // The API serves the migrations compiled into this binary, code migration included.
    let state =
        ApiState::new(config, tokens).with_migrations(|_| migrator().map(Migrator::into_core));
    let db_url = url.to_string();
    let healthz = move || {
        let url = db_url.clone();
        async move {
            match health(&url).await {
                Ok(h) if h["pending"] == 0 && h["status"] != "unhealthy" => {
                    (StatusCode::OK, Json(h))
                }
                Ok(h) => (StatusCode::SERVICE_UNAVAILABLE, Json(h)),
                Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(e.to_json())),
            }
        }
    };
    let app = axum::Router::new()
        .route("/healthz", get(healthz))
        .merge(strata::server::router(state));
    let listener = tokio::net::TcpListener::bind(bind).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://app.db".into());
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("health") => {
            println!("{}", health(&url).await?);
            return Ok(());
        }
        Some("serve") => {
            let bind = args.next().unwrap_or_else(|| "127.0.0.1:3000".into());
            return serve(&url, &bind).await;
        }
        _ => {}
    }
    let migrate = std::env::var("AUTO_MIGRATE").is_ok_and(|v| v == "true");
    if !migrate {
        eprintln!("AUTO_MIGRATE is not true: not migrating");
    }
    // The application's own connection: strata migrates on it, then the application
    // goes on using it.
    let notes = if url.starts_with("postgres") {
        use strata::tokio_postgres;
        let (mut client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        if migrate {
            let run = migrator()?.up(&mut client, strata::Target::Head).await?;
            eprintln!("migrated: {} applied", run.done.len());
        }
        match client.query_one("SELECT count(*) FROM notes", &[]).await {
            Ok(row) => Some(row.get::<_, i64>(0)),
            Err(_) => None,
        }
    } else {
        let path = url.trim_start_matches("sqlite://");
        let mut conn = strata::rusqlite::Connection::open(path)?;
        if migrate {
            let run = migrator()?.up(&mut conn, strata::Target::Head).await?;
            eprintln!("migrated: {} applied", run.done.len());
        }
        conn.query_row("SELECT count(*) FROM notes", [], |r| r.get::<_, i64>(0))
            .ok()
    };
    match notes {
        Some(n) => println!("ready: {n} notes"),
        None => println!("ready: no notes table"),
    }
    Ok(())
}
