//! Stamps the version `aksnet --version` prints with the commit the
//! checkout is at (read from `.git` directly; "unknown" outside a checkout,
//! e.g. a crate tarball).

#[path = "build/git.rs"]
mod git;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let (commit, watch) = git::commit(std::path::Path::new(&manifest));
    for p in &watch {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=build/git.rs");
    let commit = commit.map(|c| c[..12].to_string());
    let commit = commit.as_deref().unwrap_or("unknown");
    let version = std::env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION");
    println!("cargo:rustc-env=AKSNET_COMMIT={commit}");
    println!("cargo:rustc-env=AKSNET_VERSION={version} (commit {commit})");
}
