//! The runtime side of CNI, as libcni does it, with a kill switch: the
//! conflist the agent wrote, read at every call (the agent rewrites it
//! when it restarts), each plugin run inside the node namespace, ADD in
//! order with the previous result, DEL in reverse, CHECK with the cached
//! result, GC with the valid attachments.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aksnet_lab::cni::net_conf;
use aksnet_linux::Netns;
use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::world::World;

#[derive(Debug)]
pub enum Outcome {
    /// The call succeeded (ADD: the final result).
    Done(Value),
    /// A plugin of the call was killed with SIGKILL.
    Killed,
    /// A plugin failed (its CNI error, or why it could not run).
    Failed(String),
}

pub struct Runtime {
    bin_dir: PathBuf,
    conflist: PathBuf,
    node: Netns,
}

impl Runtime {
    pub fn new(w: &World) -> Result<Runtime> {
        Ok(Runtime {
            bin_dir: w.bin_dir.clone(),
            conflist: w.conflist_path(),
            node: Netns::open(w.netns_path(&w.node_ns)).context("open the node namespace")?,
        })
    }

    fn conflist(&self) -> Result<Value, String> {
        let text = std::fs::read(&self.conflist)
            .map_err(|e| format!("{}: {e}", self.conflist.display()))?;
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", self.conflist.display()))
    }

    fn plugins(list: &Value) -> Vec<Value> {
        list.get("plugins")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    /// Runs one plugin; `kill` after that long if it is still running.
    fn exec(
        &self,
        cmd: &str,
        id: &str,
        netns: &Path,
        conf: &Value,
        kill: Option<Duration>,
    ) -> Outcome {
        let Some(ty) = conf.get("type").and_then(Value::as_str) else {
            return Outcome::Failed(format!("a plugin without a type: {conf}"));
        };
        let mut c = Command::new(self.bin_dir.join(ty));
        c.env_clear()
            .env("CNI_COMMAND", cmd)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", &self.bin_dir)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if cmd == "GC" {
            c.env_remove("CNI_CONTAINERID")
                .env_remove("CNI_NETNS")
                .env_remove("CNI_IFNAME");
        }
        if let Err(e) = self.node.set_for_command(&mut c) {
            return Outcome::Failed(e.to_string());
        }
        let mut child = match c.spawn() {
            Ok(ch) => ch,
            Err(e) => return Outcome::Failed(format!("spawn {ty}: {e}")),
        };
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(conf.to_string().as_bytes());
        }
        if let Some(after) = kill {
            let t = Instant::now();
            while t.elapsed() < after {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
                return Outcome::Killed;
            }
        }
        let out = match child.wait_with_output() {
            Ok(o) => o,
            Err(e) => return Outcome::Failed(format!("wait for {ty}: {e}")),
        };
        if out.status.success() {
            if out.stdout.iter().all(u8::is_ascii_whitespace) {
                return Outcome::Done(Value::Null);
            }
            match serde_json::from_slice(&out.stdout) {
                Ok(v) => Outcome::Done(v),
                Err(e) => Outcome::Failed(format!("{ty} {cmd}: stdout is not JSON: {e}")),
            }
        } else {
            Outcome::Failed(format!(
                "{ty} {cmd} ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    pub fn add(&self, id: &str, netns: &Path, kill: Option<Duration>) -> Outcome {
        let list = match self.conflist() {
            Ok(l) => l,
            Err(e) => return Outcome::Failed(e),
        };
        let mut prev: Option<Value> = None;
        for p in Self::plugins(&list) {
            match self.exec("ADD", id, netns, &net_conf(&list, &p, prev.as_ref()), kill) {
                Outcome::Done(v) => prev = Some(v),
                other => return other,
            }
        }
        Outcome::Done(prev.unwrap_or(Value::Null))
    }

    pub fn del(
        &self,
        id: &str,
        netns: &Path,
        cached: Option<&Value>,
        kill: Option<Duration>,
    ) -> Outcome {
        let list = match self.conflist() {
            Ok(l) => l,
            Err(e) => return Outcome::Failed(e),
        };
        for p in Self::plugins(&list).iter().rev() {
            match self.exec("DEL", id, netns, &net_conf(&list, p, cached), kill) {
                Outcome::Done(_) => {}
                other => return other,
            }
        }
        Outcome::Done(Value::Null)
    }

    pub fn check(&self, id: &str, netns: &Path, cached: &Value, kill: Option<Duration>) -> Outcome {
        let list = match self.conflist() {
            Ok(l) => l,
            Err(e) => return Outcome::Failed(e),
        };
        for p in Self::plugins(&list) {
            match self.exec("CHECK", id, netns, &net_conf(&list, &p, Some(cached)), kill) {
                Outcome::Done(_) => {}
                other => return other,
            }
        }
        Outcome::Done(Value::Null)
    }

    pub fn gc(&self, valid: &[String], kill: Option<Duration>) -> Outcome {
        let list = match self.conflist() {
            Ok(l) => l,
            Err(e) => return Outcome::Failed(e),
        };
        let attachments: Vec<Value> = valid
            .iter()
            .map(|id| json!({"containerID": id, "ifname": "eth0"}))
            .collect();
        for p in Self::plugins(&list) {
            let mut conf = net_conf(&list, &p, None);
            // GC exists from CNI 1.1.0; the agent's conflist says 1.0.0
            // for runtimes that stop there (podman's CNI backend), and
            // the plugins speak 1.1.0.
            conf["cniVersion"] = json!("1.1.0");
            conf["cni.dev/valid-attachments"] = Value::Array(attachments.clone());
            match self.exec("GC", "", Path::new(""), &conf, kill) {
                Outcome::Done(_) => {}
                other => return other,
            }
        }
        Outcome::Done(Value::Null)
    }
}
