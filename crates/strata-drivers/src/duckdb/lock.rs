//! Opening the file is taking the lock: DuckDB refuses a second read-write process
//! with "Could not set lock on file … (PID n)". We retry until the wait runs out.

use std::path::Path;
use std::time::{Duration, Instant};

use duckdb::Connection;
use strata_core::{DriverError, DriverErrorKind};

pub(super) fn open(path: &Path, wait: Duration) -> Result<Connection, DriverError> {
    let deadline = Instant::now() + wait;
    let mut logged = false;
    loop {
        let opened = if path.as_os_str() == ":memory:" {
            Connection::open_in_memory()
        } else {
            Connection::open(path)
        };
        match opened {
            Ok(c) => return Ok(c),
            Err(e) if e.to_string().contains("Could not set lock") => {
                let holder = holder(&e.to_string());
                if Instant::now() >= deadline {
                    return Err(DriverError::new(
                        DriverErrorKind::LockTimeout,
                        format!(
                            "the migration lock (DuckDB's file lock on {}) is held by {holder}; gave up after {}s",
                            path.display(),
                            wait.as_secs_f64()
                        ),
                    ));
                }
                if !logged {
                    tracing::info!("waiting for {} held by {holder}", path.display());
                    logged = true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                return Err(DriverError::new(
                    DriverErrorKind::Connect,
                    format!("cannot open DuckDB database {}: {e}", path.display()),
                ))
            }
        }
    }
}

/// "PID 1234" from DuckDB's message, when it names one.
fn holder(message: &str) -> String {
    message
        .split("PID ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .map(|pid| format!("process {pid}"))
        .unwrap_or_else(|| "another process".into())
}
