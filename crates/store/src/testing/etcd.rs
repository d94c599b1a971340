//! Throwaway etcd servers and clusters on 127.0.0.1, for tests.
//!
//! Each member runs `/usr/bin/etcd` (Debian `etcd-server`; override with
//! `AKSNET_ETCD_BIN`) on random free loopback ports, with its data in a
//! temporary directory (in `/dev/shm` when it exists, so that fsync is
//! cheap). Members are killed by PID when the cluster is dropped (also
//! during a panic) and the directory is removed. As a safety net each
//! member also gets `PR_SET_PDEATHSIG`, so it dies with the *thread* that
//! started it: start clusters from the test's own thread, not from a
//! short-lived helper thread.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::etcd::{EtcdOptions, EtcdStore, EtcdTls};
use crate::store::Store;
use crate::testing::pki::TestPki;

/// Where the etcd binary is, if anywhere.
pub fn etcd_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AKSNET_ETCD_BIN") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let default = PathBuf::from("/usr/bin/etcd");
    if default.is_file() {
        return Some(default);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("etcd"))
            .find(|p| p.is_file())
    })
}

/// True when running under CI (`CI=true`), where missing tools must fail
/// tests instead of skipping them.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The etcd binary for `test`; panics under CI when there is none,
/// otherwise prints why the test is skipped and returns `None`.
pub fn require_etcd(test: &str) -> Option<PathBuf> {
    match etcd_binary() {
        Some(p) => Some(p),
        None if in_ci() => panic!(
            "{test}: no etcd binary (looked at $AKSNET_ETCD_BIN, /usr/bin/etcd and $PATH); \
             install it with `apt-get install -y etcd-server`"
        ),
        None => {
            eprintln!("SKIP {test}: no etcd binary; install etcd-server to run it");
            None
        }
    }
}

static CLUSTER_SEQ: AtomicU32 = AtomicU32::new(0);

#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    log: PathBuf,
    child: Option<Child>,
}

/// A running etcd cluster of one or more members on 127.0.0.1.
#[derive(Debug)]
pub struct EtcdCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    token: String,
    members: Vec<Member>,
    /// Set for a cluster serving clients over TLS with `--client-cert-auth`.
    pki: Option<TestPki>,
}

fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    // Hold every listener until all ports are known so they differ.
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

fn tail(path: &Path, bytes: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(bytes)));
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    s
}

impl EtcdCluster {
    /// Starts a one-member etcd.
    pub fn single(bin: &Path) -> Result<Self, String> {
        Self::start(bin, 1)
    }

    /// Starts a cluster of `size` members and waits until every member
    /// answers a linearizable read (so a leader is elected). Retries with
    /// new ports if a port was taken meanwhile.
    pub fn start(bin: &Path, size: usize) -> Result<Self, String> {
        Self::start_with(bin, size, false)
    }

    /// Starts a cluster whose client URLs are `https://` with a fresh test
    /// CA ([`TestPki`]) and `--client-cert-auth`: a client must present a
    /// certificate the CA signed. [`EtcdCluster::pki`] has the files.
    pub fn start_tls(bin: &Path, size: usize) -> Result<Self, String> {
        Self::start_with(bin, size, true)
    }

    fn start_with(bin: &Path, size: usize, tls: bool) -> Result<Self, String> {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(bin, size, tls) {
                Ok(c) => return Ok(c),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn try_start(bin: &Path, size: usize, tls: bool) -> Result<Self, String> {
        let base = Path::new("/dev/shm");
        let mut builder = tempfile::Builder::new();
        builder.prefix("aksnet-etcd-");
        let dir = if base.is_dir() {
            builder.tempdir_in(base)
        } else {
            builder.tempdir()
        }
        .map_err(|e| format!("creating an etcd data directory: {e}"))?;
        let ports = free_ports(2 * size).map_err(|e| format!("finding free ports: {e}"))?;
        let members = (0..size)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                log: dir.path().join(format!("m{i}.log")),
                child: None,
            })
            .collect();
        let token = format!(
            "aksnet-test-{}-{}",
            std::process::id(),
            CLUSTER_SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let pki = if tls {
            Some(TestPki::generate(&dir.path().join("pki"))?)
        } else {
            None
        };
        let mut cluster = EtcdCluster {
            bin: bin.to_path_buf(),
            dir,
            token,
            members,
            pki,
        };
        for i in 0..size {
            cluster.spawn(i)?;
        }
        cluster.wait_ready(Duration::from_secs(30))?;
        Ok(cluster)
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let initial = self.initial_cluster();
        let data_dir = self.dir.path().join(format!("m{i}.etcd"));
        let m = &mut self.members[i];
        let log = File::options()
            .create(true)
            .append(true)
            .open(&m.log)
            .map_err(|e| format!("creating {}: {e}", m.log.display()))?;
        let scheme = if self.pki.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.token])
            .args(["--heartbeat-interval", "50"])
            .args(["--election-timeout", "500"])
            .args(["--snapshot-count", "10000"])
            .args([
                "--logger",
                "zap",
                "--log-outputs",
                "stderr",
                "--log-level",
                "warn",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(pki) = &self.pki {
            cmd.arg("--cert-file")
                .arg(&pki.server_cert)
                .arg("--key-file")
                .arg(&pki.server_key)
                .arg("--trusted-ca-file")
                .arg(&pki.ca)
                .arg("--client-cert-auth");
        }
        // etcd reads ETCD_* variables as flags; keep the caller's out.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCD_") {
                cmd.env_remove(k);
            }
        }
        aksnet_linux::process::die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.bin.display()))?;
        m.child = Some(child);
        Ok(())
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        for i in 0..self.members.len() {
            loop {
                self.check_alive(i)?;
                let addr = format!("127.0.0.1:{}", self.members[i].client_port);
                let up = TcpStream::connect(&addr).is_ok()
                    && EtcdStore::connect(vec![addr.clone()], self.client_options(quick_options()))
                        .and_then(|s| s.revision())
                        .is_ok();
                if up {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "etcd member {i} on {addr} not ready after {limit:?}; log:\n{}",
                        tail(&self.members[i].log, 2000)
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    fn check_alive(&mut self, i: usize) -> Result<(), String> {
        let m = &mut self.members[i];
        if let Some(child) = m.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                m.child = None;
                return Err(format!(
                    "etcd member {i} exited with {status}; log:\n{}",
                    tail(&m.log, 2000)
                ));
            }
        }
        Ok(())
    }

    /// `127.0.0.1:PORT` of every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// `etcd://` (or, with TLS, `etcds://`) URL naming every member.
    pub fn store_url(&self) -> String {
        let scheme = if self.pki.is_some() { "etcds" } else { "etcd" };
        format!("{scheme}://{}", self.endpoints().join(","))
    }

    /// The test CA of a TLS cluster.
    pub fn pki(&self) -> Option<&TestPki> {
        self.pki.as_ref()
    }

    /// The TLS files a client of this cluster needs (empty without TLS).
    pub fn client_tls(&self) -> EtcdTls {
        self.pki
            .as_ref()
            .map(TestPki::client_tls)
            .unwrap_or_default()
    }

    /// `options` with this cluster's client TLS files, if it has TLS.
    pub fn client_options(&self, options: EtcdOptions) -> EtcdOptions {
        EtcdOptions {
            tls: self.pki.as_ref().map(TestPki::client_tls),
            ..options
        }
    }

    /// Opens a store on every member with test-friendly time-outs.
    pub fn open_store(&self) -> Result<EtcdStore, crate::StoreError> {
        EtcdStore::connect(self.endpoints(), self.client_options(test_options()))
    }

    /// PID of member `i`, if it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members.get(i)?.child.as_ref().map(Child::id)
    }

    /// Kills member `i` (SIGKILL by PID) and reaps it.
    pub fn stop_member(&mut self, i: usize) {
        if let Some(mut child) = self.members.get_mut(i).and_then(|m| m.child.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a stopped member again with its data directory and waits
    /// until it answers.
    pub fn restart_member(&mut self, i: usize) -> Result<(), String> {
        if self.members.get(i).is_some_and(|m| m.child.is_none()) {
            self.spawn(i)?;
        }
        self.wait_ready(Duration::from_secs(30))
    }

    /// Kills every member in `ids` (those running), starts them all again
    /// on their data directories, then waits until the cluster answers:
    /// for members that must be started again together (two of three
    /// down is no quorum, so one restart alone would never be ready).
    pub fn restart_members(&mut self, ids: &[usize]) -> Result<(), String> {
        for &i in ids {
            self.stop_member(i);
        }
        for &i in ids {
            if self.members.get(i).is_some_and(|m| m.child.is_none()) {
                self.spawn(i)?;
            }
        }
        self.wait_ready(Duration::from_secs(30))
    }

    /// Index of the member that is the raft leader now, if one answers.
    pub fn leader(&self) -> Option<usize> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            for (i, m) in self.members.iter().enumerate() {
                if m.child.is_none() {
                    continue;
                }
                let (ep, opts) = match &self.pki {
                    Some(pki) => (
                        format!("https://127.0.0.1:{}", m.client_port),
                        Some(
                            etcd_client::ConnectOptions::new()
                                .with_tls(pki.client_tls().load().ok()?),
                        ),
                    ),
                    None => (format!("http://127.0.0.1:{}", m.client_port), None),
                };
                let fut = async {
                    let mut c = etcd_client::Client::connect([ep], opts).await?;
                    c.status().await
                };
                if let Ok(Ok(st)) = tokio::time::timeout(Duration::from_secs(2), fut).await {
                    if st.header().map(|h| h.member_id()) == Some(st.leader()) {
                        return Some(i);
                    }
                }
            }
            None
        })
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True for a cluster without members (never, once started).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

/// Time-outs that let tests notice a dead member quickly.
pub fn test_options() -> EtcdOptions {
    EtcdOptions {
        request_timeout: Duration::from_secs(3),
        retry_for: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(1),
        runtime_threads: 2,
        tls: None,
    }
}

fn quick_options() -> EtcdOptions {
    EtcdOptions {
        request_timeout: Duration::from_millis(500),
        retry_for: Duration::from_millis(200),
        connect_timeout: Duration::from_millis(300),
        runtime_threads: 1,
        tls: None,
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        for i in 0..self.members.len() {
            if panicking {
                eprintln!(
                    "--- etcd member {i} log ({}):\n{}",
                    self.members[i].log.display(),
                    tail(&self.members[i].log, 1500)
                );
            }
            self.stop_member(i);
        }
        // The TempDir removes the data directories after this.
    }
}
