//! Opening what a [`Config`] names: its database (retrying for a state-changing run)
//! and, for a multi-database project, every member. The CLI and the server both start
//! here, so they connect the same way.

use strata_core::{Config, Driver, DriverErrorKind, Error, Member, Project, UrlSource};

use crate::HistoryNames;

/// Connects once: read-only commands answer at once when the database is down.
pub async fn connect_config(config: &Config) -> Result<Box<dyn Driver>, Error> {
    let names = HistoryNames::from_config(config);
    crate::connect(&config.database_url, &names)
        .await
        .map_err(|mut e| {
            if e.kind == DriverErrorKind::InvalidUrl {
                e.detail = Some(format!("the URL was set by {}", url_origin(config)));
            }
            e.into()
        })
}

/// Connects for a command that changes state. A database that is down fails at once,
/// as for every other command (retries are for failures mid-run), unless
/// `connect_retries` asks to wait for one that is starting (a deploy racing a database
/// restart).
pub async fn connect_for_change(config: &Config) -> Result<Box<dyn Driver>, Error> {
    let settings = &config.settings;
    let mut attempt = 0;
    loop {
        match connect_config(config).await {
            Err(e) if e.is_transient() && attempt < settings.connect_retries() => {
                attempt += 1;
                let delay = settings.retry_delay() * attempt;
                tracing::warn!(
                    attempt,
                    of = settings.connect_retries(),
                    "cannot connect, retrying in {}s: {e}",
                    delay.as_secs_f64()
                );
                tokio::time::sleep(delay).await;
            }
            other => return other,
        }
    }
}

/// Which setting the database URL came from, for errors about it.
fn url_origin(config: &Config) -> String {
    match config.url_source {
        UrlSource::Flag => "--database-url".into(),
        UrlSource::Environment => "DATABASE_URL (or DB_HOST/DB_NAME/...)".into(),
        UrlSource::ConfigFile => match &config.config_path {
            Some(p) => format!("database_url in {}", p.display()),
            None => "the config file".into(),
        },
        UrlSource::Default => "the default".into(),
    }
}

/// A multi-database project with `selected` chosen (all when empty). For a change,
/// every member is connected, since any may depend on (or be depended on by) a
/// selected one; otherwise only the selected are.
pub async fn open_project(
    config: &Config,
    selected: &[String],
    change: bool,
) -> Result<Project, Error> {
    let names: Vec<String> = config
        .select(selected)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let mut members = Vec::new();
    for (name, c) in &config.databases {
        let migrator = c.migrator()?;
        let chosen = names.contains(name);
        if change && chosen {
            migrator.check_sum()?;
        }
        let driver = match (change, chosen) {
            (true, _) => Some(connect_for_change(c).await?),
            (false, true) => Some(connect_config(c).await?),
            (false, false) => None,
        };
        members.push(Member {
            name: name.clone(),
            url: c.redacted_url(),
            migrator,
            driver,
            selected: chosen,
        });
    }
    Project::new(members)
}
