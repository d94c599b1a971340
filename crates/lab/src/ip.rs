//! iproute2, driven in batches inside lab namespaces only (nftables goes
//! through aksnet-linux's driver, see [`crate::fabric::apply_nft`]).
//!
//! Every call names a lab namespace (`ip -n NS`); nothing here runs a
//! command that changes the root namespace.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{LabError, Result};
use crate::topology::NETNS_DIR;

fn run(mut cmd: Command, input: Option<&str>, label: String) -> Result<String> {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| LabError::Spawn {
        cmd: label.clone(),
        source,
    })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|source| LabError::Spawn {
                cmd: label.clone(),
                source,
            })?;
    }
    let out = child.wait_with_output().map_err(|source| LabError::Spawn {
        cmd: label.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(LabError::Command {
            cmd: label,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip -n NS -batch -` with one command per line; stops at the first error.
pub fn batch(ns: &str, lines: &[String]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("ip");
    cmd.args(["-n", ns, "-batch", "-"]);
    let text = lines.join("\n") + "\n";
    let label = format!("ip -n {ns} -batch - ({})", first_lines(lines));
    run(cmd, Some(&text), label).map(|_| ())
}

/// `ip -batch -` in the root namespace, only for `netns add|del` of lab names.
pub fn netns_batch(lines: &[String]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    for l in lines {
        if !(l.starts_with("netns add aksnet-lab-") || l.starts_with("netns del aksnet-lab-")) {
            return Err(LabError::Invalid(format!(
                "refusing `ip {l}`: only lab namespaces are added or removed"
            )));
        }
    }
    let mut cmd = Command::new("ip");
    cmd.args(["-batch", "-"]);
    let text = lines.join("\n") + "\n";
    run(
        cmd,
        Some(&text),
        format!("ip -batch - ({})", first_lines(lines)),
    )
    .map(|_| ())
}

/// `ip -j -n NS ARGS...` parsed as JSON.
pub fn json(ns: &str, args: &[&str]) -> Result<serde_json::Value> {
    let mut cmd = Command::new("ip");
    cmd.args(["-j", "-n", ns]).args(args);
    let label = format!("ip -j -n {ns} {}", args.join(" "));
    let out = run(cmd, None, label.clone())?;
    if out.trim().is_empty() {
        return Ok(serde_json::Value::Array(vec![]));
    }
    serde_json::from_str(&out).map_err(|e| LabError::Command {
        cmd: label,
        stderr: format!("output is not JSON: {e}"),
    })
}

/// `ip -j -n NS route show table T`; a table with no route yet is empty.
pub fn routes_json(ns: &str, table: u32) -> Result<serde_json::Value> {
    match json(ns, &["route", "show", "table", &table.to_string()]) {
        Err(LabError::Command { stderr, .. }) if stderr.contains("table does not exist") => {
            Ok(serde_json::Value::Array(vec![]))
        }
        r => r,
    }
}

/// Named namespaces (`/run/netns`), sorted.
pub fn netns_list() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(NETNS_DIR)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

pub fn netns_exists(ns: &str) -> bool {
    Path::new(NETNS_DIR).join(ns).exists()
}

fn first_lines(lines: &[String]) -> String {
    let mut s = lines.iter().take(2).cloned().collect::<Vec<_>>().join("; ");
    if lines.len() > 2 {
        s.push_str(&format!("; … {} more", lines.len() - 2));
    }
    s
}
