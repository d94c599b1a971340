//! `aksnet dns` as the lab and users run it: objects applied with `aksnet
//! apply`, the server as its own process on loopback, queries over UDP and
//! TCP, an upstream faked by an in-process server, changes made with
//! `aksnet apply`/`aksnet delete` answered without a restart, flag errors.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};

fn aksnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aksnet"))
        .args(args)
        .env_remove("AKSNET_STORE")
        .output()
        .expect("run aksnet")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

struct Cluster {
    dir: tempfile::TempDir,
    store: String,
}

impl Cluster {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ak4-dnscli-")
            .tempdir()
            .unwrap();
        let store = format!("sqlite:{}", dir.path().join("cluster.db").display());
        let o = aksnet(&["cluster", "init", "--store", &store]);
        assert!(o.status.success(), "{}", text(&o));
        Cluster { dir, store }
    }

    fn apply(&self, yaml: &str) {
        let p: PathBuf = self.dir.path().join("m.yaml");
        std::fs::write(&p, yaml).unwrap();
        let o = aksnet(&["apply", "--store", &self.store, "-f", p.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut a = vec![args[0], "--store", &self.store];
        a.extend_from_slice(&args[1..]);
        aksnet(&a)
    }

    /// Starts `aksnet dns` on a free loopback port; the port from its first line.
    fn dns(&self, extra: &[&str]) -> Dns {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aksnet"))
            .args(["dns", "--store", &self.store, "--listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("AKSNET_STORE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start aksnet dns");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let mut dns = Dns {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
        };
        dns.addr = line
            .split(" on ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in the first line: {line:?}"));
        assert!(
            line.starts_with("aksnet dns: serving cluster.local."),
            "{line}"
        );
        dns
    }
}

/// The server process, killed (by its PID) when the test ends.
struct Dns {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn query(addr: SocketAddr, name: &str, ty: RecordType, tcp: bool) -> Message {
    let mut m = Message::new(0x5151, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), ty));
    let bytes = m.to_vec().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    if tcp {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend(&bytes);
        s.write_all(&framed).unwrap();
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut body).unwrap();
        return Message::from_vec(&body).unwrap();
    }
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        s.send_to(&bytes, addr).unwrap();
        if let Ok(n) = s.recv(&mut buf) {
            return Message::from_vec(&buf[..n]).unwrap();
        }
    }
    panic!("{name} {ty}: no answer from {addr} within 5 s");
}

fn addrs(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn lines(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m
        .answers
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect();
    v.sort();
    v
}

/// A second, in-process server standing in for the upstream resolver:
/// `example.com A 192.0.2.1`, NXDOMAIN for anything else (UDP only).
struct Upstream {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    fn start() -> Upstream {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut r = Message::response(q.metadata.id, OpCode::Query);
                r.metadata.recursion_available = true;
                r.add_queries(q.queries.clone());
                let question = &q.queries[0];
                if question.name().to_ascii() == "example.com."
                    && question.query_type() == RecordType::A
                {
                    r.add_answer(Record::from_rdata(
                        question.name().clone(),
                        60,
                        RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
                    ));
                } else {
                    r.metadata.response_code = ResponseCode::NXDomain;
                }
                let _ = sock.send_to(&r.to_vec().unwrap(), from);
            }
        });
        Upstream {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const APP: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.0.0.80
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec: {containers: [{name: web, image: nginx}]}
status: {podIP: 10.244.0.7}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: shop, labels: {app: db}}
spec: {hostname: db-0, subdomain: db, containers: [{name: db, image: postgres}]}
status: {podIP: 10.244.1.9}
";

#[test]
fn serves_the_store_and_follows_it() {
    let c = Cluster::new();
    c.apply(APP);
    let up = Upstream::start();
    let upstream = up.addr.to_string();
    let dns = c.dns(&["--upstream", &upstream]);
    let at = dns.addr;
    for tcp in [false, true] {
        let m = query(at, "web.shop.svc.cluster.local.", RecordType::A, tcp);
        assert_eq!(addrs(&m), vec!["10.0.0.80"]);
        assert!(m.metadata.authoritative);
        let m = query(at, "db.shop.svc.cluster.local.", RecordType::A, tcp);
        assert_eq!(addrs(&m), vec!["10.244.1.9"]);
        let m = query(
            at,
            "_pg._tcp.db.shop.svc.cluster.local.",
            RecordType::SRV,
            tcp,
        );
        assert_eq!(
            lines(&m),
            vec!["_pg._tcp.db.shop.svc.cluster.local. SRV 0 100 5432 db-0.db.shop.svc.cluster.local."]
        );
        let m = query(at, "80.0.0.10.in-addr.arpa.", RecordType::PTR, tcp);
        assert_eq!(
            lines(&m),
            vec!["80.0.0.10.in-addr.arpa. PTR web.shop.svc.cluster.local."]
        );
        let m = query(at, "10-244-0-7.shop.pod.cluster.local.", RecordType::A, tcp);
        assert_eq!(addrs(&m), vec!["10.244.0.7"]);
        let m = query(at, "nope.shop.svc.cluster.local.", RecordType::A, tcp);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        let m = query(at, "web.shop.svc.cluster.local.", RecordType::AAAA, tcp);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
    }
    // Forwarded (the fake upstream speaks UDP).
    let m = query(at, "example.com.", RecordType::A, false);
    assert_eq!(addrs(&m), vec!["192.0.2.1"]);
    let m = query(at, "other.example.", RecordType::A, false);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    // Changes through the CLI are answered within 5 s, no restart.
    let t = Instant::now();
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: shop}\nspec: {clusterIP: 10.0.0.81, ports: [{port: 443}]}\n");
    loop {
        let m = query(at, "api.shop.svc.cluster.local.", RecordType::A, false);
        if addrs(&m) == ["10.0.0.81"] {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "not answered in 5 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = c.run(&["delete", "svc", "web", "-n", "shop"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = Instant::now();
    loop {
        let m = query(at, "web.shop.svc.cluster.local.", RecordType::A, false);
        if m.metadata.response_code == ResponseCode::NXDomain {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "still answered after 5 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // SIGTERM: a clean exit 0.
    let mut dns = dns;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(dns.child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::SIGTERM).unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = dns.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn bad_flags_are_refused_with_the_reason() {
    let c = Cluster::new();
    let cases: [(&[&str], &str); 6] = [
        (&["--listen", "127.0.0.1:0", "--ttl", "3601"], "3601"),
        (
            &["--listen", "127.0.0.1:0", "--upstream", "dns.example"],
            "dns.example",
        ),
        (
            &["--listen", "127.0.0.1:5353", "--upstream", "127.0.0.1:5353"],
            "loop",
        ),
        (
            &["--listen", "127.0.0.1:0", "--cluster-domain", "."],
            "root",
        ),
        (&["--listen", "not-an-address"], "not-an-address"),
        (&[], "--listen"),
    ];
    for (args, want) in cases {
        let mut a = vec!["dns"];
        a.extend_from_slice(args);
        let o = c.run(&a);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(want), "{args:?}: {}", text(&o));
    }
    // A taken port: the error names it.
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = c.run(&["dns", "--listen", &addr]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains(&format!("cannot listen on {addr}")),
        "{}",
        text(&o)
    );
}
