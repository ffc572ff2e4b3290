//! A throwaway 3-node MariaDB Galera cluster (`galera-4`): `mariadb-install-db` for the
//! first node, which bootstraps the cluster (`--wsrep-new-cluster`); the other two join
//! it by rsync state transfer. Every node has its own ports (client, group
//! communication, IST, SST) on 127.0.0.1 and its own directory; all are killed on drop.
//! Under root the servers run as `mysql`: rsync's daemon, which receives the state
//! transfer, would otherwise switch to `nobody` and be unable to write.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::cluster::{free_port, is_root};
use crate::support::required;

const PROVIDER: &str = "/usr/lib/galera/libgalera_smm.so";

pub struct Galera {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
}

struct Node {
    port: u16,
    gcomm: u16,
    ist: u16,
    sst: u16,
    child: Option<Child>,
}

impl Galera {
    /// Starts the cluster with a `strata` user and database `app`, or returns None with
    /// a printed reason when Galera or MariaDB is not installed (a failure when `galera`
    /// is required).
    pub fn start(test: &str) -> Option<Galera> {
        let installed = Path::new(PROVIDER).exists()
            && Command::new("mariadbd").arg("--version").output().is_ok()
            && Command::new("rsync").arg("--version").output().is_ok();
        if !installed {
            assert!(
                !required("galera"),
                "{test}: galera-4, mariadbd and rsync are required (scripts/topology installs them)"
            );
            eprintln!("skipped {test}: galera-4/mariadbd/rsync not installed");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("strata-galera-")
            .tempdir()
            .unwrap();
        let mut g = Galera {
            dir,
            nodes: (0..3)
                .map(|_| Node {
                    port: free_port(),
                    gcomm: free_port(),
                    ist: free_port(),
                    sst: free_port(),
                    child: None,
                })
                .collect(),
        };
        let first = g.data(0);
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", first.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if is_root() {
            install.arg("--user=mysql");
            g.chown(g.dir.path());
        }
        let out = install.output().expect("mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        g.spawn(0, true);
        g.wait_synced(0);
        g.sql(
            0,
            "CREATE USER 'strata'@'127.0.0.1'; GRANT ALL ON *.* TO 'strata'@'127.0.0.1'; CREATE DATABASE app",
        );
        for n in 1..3 {
            std::fs::create_dir_all(g.data(n)).unwrap();
            if is_root() {
                g.chown(&g.data(n));
            }
            g.spawn(n, false);
            g.wait_synced(n);
        }
        assert_eq!(
            g.sql(2, "SHOW STATUS LIKE 'wsrep_cluster_size'"),
            ["wsrep_cluster_size\t3"]
        );
        Some(g)
    }

    /// `mysql://strata@127.0.0.1:PORT/db` for node `n` (0, 1 or 2).
    pub fn url(&self, n: usize, db: &str) -> String {
        format!("mysql://strata@127.0.0.1:{}/{db}", self.nodes[n].port)
    }

    /// Kills node `n` with SIGKILL, as a crash would.
    pub fn kill(&mut self, n: usize) {
        if let Some(mut c) = self.nodes[n].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs `sql` on node `n` as root over its socket; the rows, tab-separated.
    pub fn sql(&self, n: usize, sql: &str) -> Vec<String> {
        let out = Command::new("mariadb")
            .arg(format!("--socket={}", self.socket(n).display()))
            .args(["-uroot", "-N", "-B", "-e", sql])
            .output()
            .expect("mariadb client");
        assert!(
            out.status.success(),
            "node {n}: {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn data(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("data{n}"))
    }

    fn socket(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("sock{n}"))
    }

    fn log(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("log{n}"))
    }

    fn chown(&self, p: &Path) {
        let st = Command::new("chown")
            .args(["-R", "mysql:mysql"])
            .arg(p)
            .status()
            .expect("chown");
        assert!(st.success(), "chown {} to mysql", p.display());
    }

    fn spawn(&mut self, n: usize, bootstrap: bool) {
        let node = &self.nodes[n];
        let peers = if bootstrap {
            "gcomm://".to_string()
        } else {
            format!("gcomm://127.0.0.1:{}", self.nodes[0].gcomm)
        };
        let mut cmd = Command::new("mariadbd");
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", self.data(n).display()))
            .arg(format!("--port={}", node.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", self.socket(n).display()))
            .arg(format!("--pid-file={}", self.dir.path().join(format!("pid{n}")).display()))
            .args([
                "--skip-log-bin",
                "--binlog-format=ROW",
                "--innodb-autoinc-lock-mode=2",
                "--innodb-buffer-pool-size=16M",
                "--innodb-flush-log-at-trx-commit=2",
                "--wsrep-on=ON",
                "--wsrep-cluster-name=strata-test",
                "--wsrep-sst-method=rsync",
            ])
            .arg(format!("--wsrep-provider={PROVIDER}"))
            .arg(format!("--wsrep-cluster-address={peers}"))
            .arg(format!("--wsrep-node-address=127.0.0.1:{}", node.gcomm))
            .arg(format!("--wsrep-sst-receive-address=127.0.0.1:{}", node.sst))
            // Without its own IST port, a joining node collides with the next one.
            .arg(format!(
                "--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:{};ist.recv_addr=127.0.0.1:{};gcache.size=32M",
                node.gcomm, node.ist
            ))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(self.log(n)).unwrap());
        if bootstrap {
            cmd.arg("--wsrep-new-cluster");
        }
        if is_root() {
            cmd.arg("--user=mysql");
        }
        self.nodes[n].child = Some(cmd.spawn().expect("mariadbd"));
    }

    /// Waits until node `n` answers and reports itself `Synced` with the cluster.
    fn wait_synced(&mut self, n: usize) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(120) {
            if let Some(Ok(Some(st))) = self.nodes[n].child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "galera node {n} exited ({st}): {}",
                    std::fs::read_to_string(self.log(n)).unwrap_or_default()
                );
            }
            let out = Command::new("mariadb")
                .arg(format!("--socket={}", self.socket(n).display()))
                .args([
                    "-uroot",
                    "-N",
                    "-B",
                    "-e",
                    "SHOW STATUS LIKE 'wsrep_local_state_comment'",
                ])
                .output();
            if let Ok(o) = out {
                if String::from_utf8_lossy(&o.stdout).contains("Synced") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "galera node {n} did not sync: {}",
            std::fs::read_to_string(self.log(n)).unwrap_or_default()
        );
    }
}

impl Drop for Galera {
    fn drop(&mut self) {
        for n in 0..self.nodes.len() {
            self.kill(n);
        }
    }
}
