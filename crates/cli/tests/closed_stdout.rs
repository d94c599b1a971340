//! Every command that prints, with a reader that has gone away
//! (`aksnet plan | head -1`): a quiet exit with the command's own status,
//! never a panic (`print!` panics on `EPIPE`).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

use std::process::{Command, Stdio};

fn aksnet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aksnet"));
    c.env_remove("AKSNET_STORE");
    c
}

/// Runs `aksnet ARGS` with a stdout pipe whose read end is closed before
/// the command starts, so its first write fails with `EPIPE` whatever the
/// output's size; returns the exit status and stderr.
fn closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = aksnet()
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn assert_quiet(args: &[&str], code: i32) {
    let (got, stderr) = closed_stdout(args);
    assert!(!stderr.contains("panicked"), "aksnet {args:?}: {stderr}");
    assert!(!stderr.contains("Broken pipe"), "aksnet {args:?}: {stderr}");
    assert_eq!(got, Some(code), "aksnet {args:?}: {stderr}");
}

#[test]
fn plan_keeps_its_verdict_when_the_reader_is_gone() {
    assert_quiet(&["plan"], 0);
    assert_quiet(&["plan", "--compare"], 0);
    assert_quiet(&["plan", "-o", "json"], 0);
    assert_quiet(&["plan", "--compare", "-o", "json"], 0);
    // Invalid (exit 1), and unusable input with -o json (exit 2): the
    // status still says which.
    assert_quiet(
        &[
            "plan",
            "--subnet-cidr",
            "10.240.0.0/29",
            "--node-count",
            "50",
        ],
        1,
    );
    assert_quiet(&["plan", "-o", "json", "--subnet-cidr", "nonsense"], 2);
}

#[test]
fn generated_docs_survive_a_closed_reader() {
    for shell in ["bash", "zsh", "fish"] {
        assert_quiet(&["completions", shell], 0);
    }
    let dir = tempfile::tempdir().unwrap();
    assert_quiet(&["man", dir.path().to_str().unwrap()], 0);
    assert!(
        dir.path().join("aksnet.1").exists(),
        "the pages are written"
    );
}

#[test]
fn store_commands_survive_a_closed_reader() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("c.db").display());
    assert_quiet(&["cluster", "init", "--store", &store], 0);
    assert_quiet(&["cluster", "show", "--store", &store], 0);
    assert_quiet(&["cluster", "show", "--store", &store, "-o", "json"], 0);
    assert_quiet(&["node", "list", "--store", &store], 0);
    let manifest = dir.path().join("ns.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
    )
    .unwrap();
    let m = manifest.to_str().unwrap();
    assert_quiet(&["apply", "--store", &store, "-f", m], 0);
    assert_quiet(&["get", "--store", &store, "namespaces"], 0);
    assert_quiet(&["get", "--store", &store, "namespaces", "-o", "yaml"], 0);
    assert_quiet(&["delete", "--store", &store, "-f", m], 0);
}

#[test]
fn a_real_pipe_into_head_gets_one_line_and_a_clean_exit() {
    // What a user types. The bash script (118 KB) is larger than a pipe's
    // buffer, so it is still writing when `head` exits; with pipefail the
    // pipeline's status is aksnet's own.
    for cmd in [
        "completions bash",
        "plan --compare",
        "plan --compare -o json",
    ] {
        let script = format!("set -o pipefail; \"$0\" {cmd} | head -1");
        let out = Command::new("bash")
            .args(["-c", &script, env!("CARGO_BIN_EXE_aksnet")])
            .env_remove("AKSNET_STORE")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{cmd}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{cmd}: {stderr}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().count(),
            1,
            "{cmd}"
        );
    }
}

#[test]
fn a_full_disk_is_an_error_not_a_quiet_exit() {
    // Not a closed reader: the output is lost, so the status says so.
    if !std::path::Path::new("/dev/full").exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "/dev/full is missing"
        );
        return;
    }
    let out = aksnet()
        .arg("plan")
        .stdout(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("cannot write to standard output"),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(2), "{stderr}");
}

#[test]
fn a_closed_stderr_too_keeps_the_status() {
    // `aksnet plan ... 2>&1 | head -1`: the messages on stderr hit the same
    // closed pipe.
    for (args, code) in [
        (&["plan", "--subnet-cidr", "x"][..], 2),
        (&["plan", "-f", "/nonexistent/design.json"][..], 2),
        (&["plan", "--node-count", "abc"][..], 2),
        (
            &[
                "plan",
                "--network-plugin",
                "kubenet",
                "--network-policy",
                "azure",
            ][..],
            1,
        ),
        (&["plan"][..], 0),
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let status = aksnet()
            .args(args)
            .stdin(Stdio::null())
            .stdout(writer.try_clone().unwrap())
            .stderr(writer)
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(code), "aksnet {args:?}");
    }
}
