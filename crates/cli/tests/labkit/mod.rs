//! What the lab tests share: running `aksnet` (with stdin), reading its
//! output, where the CNI plugins are, and the gate that skips a test
//! without root or a program (and fails it under `CI=true`).

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use aksnet_linux::testing;
use serde_json::Value;

/// `aksnet ARGS` with `stdin` written to it (warnings only in its log).
pub fn aksnet(args: &[&str], stdin: &str) -> Output {
    let mut ch = Command::new(env!("CARGO_BIN_EXE_aksnet"))
        .args(args)
        .env("AKSNET_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run aksnet");
    ch.stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    ch.wait_with_output().unwrap()
}

/// Status, stdout and stderr, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `aksnet ARGS`, which must succeed.
pub fn ok(args: &[&str], stdin: &str) -> Output {
    let o = aksnet(args, stdin);
    assert!(
        o.status.success(),
        "aksnet {}: {}",
        args.join(" "),
        text(&o)
    );
    o
}

pub fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)))
}

/// Where the CNI plugins are: `AKSNET_CNI_BIN_DIR`, else beside `aksnet`.
pub fn bin_dir() -> PathBuf {
    std::env::var_os("AKSNET_CNI_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_BIN_EXE_aksnet"))
                .parent()
                .unwrap()
                .to_path_buf()
        })
}

/// True when root, `tools` and the plugins are there; otherwise says why
/// `what` is skipped (or, under `CI=true`, fails).
pub fn ready_for(what: &str, tools: &[&str]) -> bool {
    let mut missing = testing::missing(tools);
    for p in ["aksnet-cni", "aksnet-ipam", "aksnet-portmap"] {
        if !bin_dir().join(p).exists() {
            missing.push(format!(
                "{p} in {} (cargo build --workspace)",
                bin_dir().display()
            ));
        }
    }
    testing::ready(what, &missing)
}
