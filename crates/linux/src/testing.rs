//! Prerequisites of the workspace's kernel tests (feature `testing`).
//!
//! A test that needs root or a binary calls [`can_run`] (or [`ready`] with
//! its own list of what is missing): outside CI it prints why and is
//! skipped; under `CI=true` it fails, so a CI machine that lacks a
//! prerequisite cannot pass by skipping.

use std::path::Path;

/// True under CI (`CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// True when running as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// True when `tool` exists: a path (it contains `/`) that exists, or a
/// name found on `PATH`.
pub fn which(tool: &str) -> bool {
    if tool.contains('/') {
        return Path::new(tool).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// What of root and `tools` is missing, one entry each.
pub fn missing(tools: &[&str]) -> Vec<String> {
    let mut m = Vec::new();
    if !is_root() {
        m.push("root".to_string());
    }
    m.extend(tools.iter().filter(|t| !which(t)).map(|t| t.to_string()));
    m
}

/// True when nothing is missing. Otherwise prints why `what` is skipped and
/// returns false, or panics under `CI=true`.
pub fn ready(what: &str, missing: &[String]) -> bool {
    if missing.is_empty() {
        return true;
    }
    let why = format!("{what} needs {}", missing.join(", "));
    if in_ci() {
        panic!("{why} (CI=true: failing instead of skipping)");
    }
    eprintln!("skipping: {why}");
    false
}

/// Root and every tool in `tools` (names on `PATH` or paths): see [`ready`].
pub fn can_run(what: &str, tools: &[&str]) -> bool {
    ready(what, &missing(tools))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_finds_paths_and_names() {
        assert!(which("/bin/sh") || which("/usr/bin/sh"));
        assert!(which("sh"));
        assert!(!which("/nonexistent/aksnet-tool"));
        assert!(!which("aksnet-no-such-tool"));
    }

    #[test]
    fn nothing_missing_is_ready() {
        assert!(ready("a test", &[]));
    }

    #[test]
    fn a_missing_tool_is_listed() {
        let m = missing(&["aksnet-no-such-tool"]);
        assert!(m.contains(&"aksnet-no-such-tool".to_string()), "{m:?}");
    }
}
