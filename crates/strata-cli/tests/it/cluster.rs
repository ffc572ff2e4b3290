//! A throwaway PostgreSQL cluster (`initdb` + `pg_ctl` on a free port) for tests that
//! must stop, restart or crash the server. It runs as the `postgres` user when the
//! tests run as root (PostgreSQL refuses to run as root) and is removed on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::required;

pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
fn bin_dir() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("STRATA_PG_BIN") {
        return Some(PathBuf::from(p));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Cluster {
    /// Starts a new cluster, or returns None with a printed reason when PostgreSQL's
    /// server binaries are not installed (a failure when postgres is required).
    pub fn start(test: &str) -> Option<Cluster> {
        let Some(bin) = bin_dir() else {
            assert!(
                !required("postgres"),
                "{test}: PostgreSQL server binaries (initdb, pg_ctl) not found; set STRATA_PG_BIN"
            );
            eprintln!("skipped {test}: initdb/pg_ctl not found (set STRATA_PG_BIN)");
            return None;
        };
        let c = Cluster::empty(bin);
        let data = c.data();
        c.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        c.pg_ctl(&["start", "-w", "-t", "60"]);
        Some(c)
    }

    /// A cluster directory, owned by the server's user, on a free port.
    fn empty(bin: PathBuf) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("strata-cluster-")
            .tempdir()
            .expect("tempdir");
        if is_root() {
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(st.success(), "chown the cluster directory to postgres");
        }
        Cluster {
            dir,
            bin,
            port: free_port(),
        }
    }

    /// A hot standby of this cluster (`pg_basebackup -R`), streaming from it.
    pub fn standby(&self) -> Cluster {
        let s = Cluster::empty(self.bin.clone());
        let port = self.port.to_string();
        let data = s.data();
        s.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-D",
                data.to_str().unwrap(),
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ],
        );
        s.pg_ctl(&["start", "-w", "-t", "60"]);
        s
    }

    /// Serves TLS with a certificate for 127.0.0.1 signed by a CA generated here;
    /// returns the CA's PEM file (for `sslrootcert`).
    pub fn with_tls(&self) -> PathBuf {
        let d = self.dir.path();
        make_certs(d);
        if is_root() {
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(d)
                .status()
                .expect("chown");
            assert!(st.success());
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join("server.key"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let conf = self.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&format!(
            "\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
            d.join("server.pem").display(),
            d.join("server.key").display()
        ));
        std::fs::write(&conf, text).unwrap();
        self.restart();
        d.join("ca.pem")
    }

    /// Promotes a standby to primary.
    pub fn promote(&self) {
        self.pg_ctl(&["promote", "-w", "-t", "60"]);
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) -> std::process::Output {
        let exe = self.bin.join(tool);
        let out = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .current_dir(self.dir.path())
                .output()
        } else {
            Command::new(&exe)
                .args(args)
                .current_dir(self.dir.path())
                .output()
        }
        .unwrap_or_else(|e| panic!("run {}: {e}", exe.display()));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}\nlog:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
        );
        out
    }

    fn pg_ctl(&self, args: &[&str]) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let data = self.data();
        let log = self.dir.path().join("log");
        let mut all = vec![
            "-D",
            data.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-o",
            &opts,
        ];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all);
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Restarts the server (fast shutdown: sessions are terminated).
    pub fn restart(&self) {
        self.pg_ctl(&["restart", "-m", "fast", "-w", "-t", "60"]);
    }

    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast", "-w"]);
    }

    pub fn start_again(&self) {
        self.pg_ctl(&["start", "-w", "-t", "60"]);
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let exe = self.bin.join("pg_ctl");
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        let _ = c
            .args(["-D", data.to_str().unwrap(), "stop", "-m", "immediate"])
            .output();
    }
}

/// A throwaway MariaDB server (`mariadb-install-db` + `mariadbd` on a free port) that
/// serves TLS with a certificate signed by a CA generated here and refuses plaintext
/// (`require_secure_transport`); stopped and removed on drop.
pub struct TlsMariaDb {
    dir: tempfile::TempDir,
    child: std::process::Child,
    pub port: u16,
}

impl TlsMariaDb {
    pub fn start(test: &str) -> Option<TlsMariaDb> {
        let installed = Command::new("mariadb-install-db")
            .arg("--help")
            .output()
            .is_ok()
            && Command::new("mariadbd").arg("--version").output().is_ok();
        if !installed {
            assert!(
                !required("mysql"),
                "{test}: mariadb-install-db/mariadbd not found"
            );
            eprintln!("skipped {test}: mariadb-install-db/mariadbd not found");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("strata-mariadb-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let data = d.join("data");
        let user = if is_root() { "root" } else { "" };
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if !user.is_empty() {
            install.arg(format!("--user={user}"));
        }
        let out = install.output().expect("mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        make_certs(d);
        let port = free_port();
        let mut server = Command::new("mariadbd");
        server
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", d.join("sock").display()))
            .arg(format!("--pid-file={}", d.join("pid").display()))
            .arg(format!("--ssl-ca={}", d.join("ca.pem").display()))
            .arg(format!("--ssl-cert={}", d.join("server.pem").display()))
            .arg(format!("--ssl-key={}", d.join("server.key").display()))
            .args([
                "--require-secure-transport=ON",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=16M",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(d.join("log")).unwrap());
        if !user.is_empty() {
            server.arg(format!("--user={user}"));
        }
        let child = server.spawn().expect("mariadbd");
        let m = TlsMariaDb { dir, child, port };
        // Ready once the socket answers; then a TCP user for the tests.
        let sock = m.dir.path().join("sock");
        for _ in 0..300 {
            let ok = Command::new("mariadb")
                .arg(format!("--socket={}", sock.display()))
                .args(["-uroot", "-e", "CREATE USER IF NOT EXISTS 'strata'@'127.0.0.1'; GRANT ALL ON *.* TO 'strata'@'127.0.0.1'; CREATE DATABASE IF NOT EXISTS app"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if ok {
                return Some(m);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "mariadbd did not start: {}",
            std::fs::read_to_string(m.dir.path().join("log")).unwrap_or_default()
        );
    }

    pub fn url(&self, params: &str) -> String {
        format!("mysql://strata@127.0.0.1:{}/app{params}", self.port)
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

impl Drop for TlsMariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ca.pem` and a `server.pem`/`server.key` for 127.0.0.1 signed by it, in `d`.
fn make_certs(d: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=strata test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        d.join("san.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
}
