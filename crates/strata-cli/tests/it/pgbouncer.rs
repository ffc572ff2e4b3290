//! A throwaway PgBouncer in transaction pooling mode (pool size 5) on a free port in
//! front of the PostgreSQL server a test database lives on; stopped by PID on drop.
//! PgBouncer refuses to run as root, so under root it runs as `postgres`.

use std::path::Path;
use std::process::Command;

use crate::support::required;

pub struct PgBouncer {
    dir: tempfile::TempDir,
    pub port: u16,
    upstream: String,
}

impl PgBouncer {
    /// Starts one in front of the server of `db_url` (a URL without a password), or
    /// returns None with a printed reason when `pgbouncer` is not installed (a failure
    /// when `pgbouncer` is required). `ignore_options` is the common workaround for
    /// clients that send `options`: PgBouncer then drops the parameter silently.
    pub fn start(test: &str, db_url: &str, ignore_options: bool) -> Option<PgBouncer> {
        if Command::new("pgbouncer").arg("--version").output().is_err() {
            assert!(
                !required("pgbouncer"),
                "{test}: pgbouncer is required but not installed (scripts/test installs it)"
            );
            eprintln!("skipped {test}: pgbouncer not installed");
            return None;
        }
        let upstream = host_port(db_url);
        let (host, port) = upstream.rsplit_once(':').expect("host:port");
        let dir = tempfile::Builder::new()
            .prefix("strata-pgbouncer-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let listen = crate::cluster::free_port();
        let ignore = if ignore_options {
            "extra_float_digits,options"
        } else {
            "extra_float_digits"
        };
        std::fs::write(
            d.join("pgbouncer.ini"),
            format!(
                "[databases]\n* = host={host} port={port}\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {listen}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {d}/users.txt\n\
                 pool_mode = transaction\ndefault_pool_size = 5\nmax_client_conn = 200\n\
                 ignore_startup_parameters = {ignore}\n\
                 logfile = {d}/log\npidfile = {d}/pid\n",
                d = d.display()
            ),
        )
        .unwrap();
        std::fs::write(d.join("users.txt"), "\"postgres\" \"\"\n").unwrap();
        let root = crate::cluster::is_root();
        if root {
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(d)
                .status()
                .unwrap();
            assert!(st.success(), "chown the pgbouncer directory");
        }
        let mut cmd = if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "pgbouncer"]);
            c
        } else {
            Command::new("pgbouncer")
        };
        let out = cmd
            .arg("-d")
            .arg(d.join("pgbouncer.ini"))
            .output()
            .expect("pgbouncer");
        assert!(
            out.status.success(),
            "pgbouncer did not start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(d.join("log")).unwrap_or_default()
        );
        let b = PgBouncer {
            dir,
            port: listen,
            upstream,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", listen)).is_ok() {
                return Some(b);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("pgbouncer is not listening: {}", b.log());
    }

    /// `db_url` with its server replaced by this pooler.
    pub fn url(&self, db_url: &str) -> String {
        db_url.replacen(&self.upstream, &format!("127.0.0.1:{}", self.port), 1)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
            // Give it a moment to exit before its directory goes.
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// "host:port" of a `postgres://user@host:port/db…` URL.
fn host_port(url: &str) -> String {
    let rest = url.split_once('@').map(|(_, r)| r).unwrap_or(url);
    let rest = rest.trim_start_matches("postgres://");
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let hp = &rest[..end];
    if hp.contains(':') {
        hp.to_string()
    } else {
        format!("{hp}:5432")
    }
}
