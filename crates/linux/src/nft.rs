//! The real nftables driver: [`Nft`] implements [`aksnet_nft::Driver`] by
//! running `nft -j -f -` for a batch (one atomic transaction) and
//! `nft -j list table` for a listing, in a given network namespace (the
//! child enters it between fork and exec; the caller never moves). The
//! rule sets themselves are data of the `aksnet-nft` model.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use aksnet_nft::{Batch, Driver, DriverError, ErrorKind, Listing, TableId};

use crate::Netns;

/// `nft` in one network namespace.
#[derive(Debug, Clone, Default)]
pub struct Nft {
    netns: Option<Arc<Netns>>,
}

impl Nft {
    /// `nft` in the calling thread's namespace.
    pub fn current() -> Nft {
        Nft::default()
    }

    /// `nft` in `ns`.
    pub fn in_netns(ns: Arc<Netns>) -> Nft {
        Nft { netns: Some(ns) }
    }

    /// `nft` in the namespace at `path` (e.g. `/run/netns/NAME`).
    pub fn at(path: impl AsRef<Path>) -> crate::Result<Nft> {
        Ok(Nft::in_netns(Arc::new(Netns::open(path)?)))
    }

    fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, DriverError> {
        let bin = nft_binary();
        let unavailable = |m: String| DriverError::new(ErrorKind::Unavailable, m);
        let mut cmd = Command::new(&bin);
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(ns) = &self.netns {
            ns.set_for_command(&mut cmd)
                .map_err(|e| unavailable(format!("enter {}: {e}", ns.path().display())))?;
        }
        let mut child = cmd.spawn().map_err(|e| {
            unavailable(format!(
                "cannot run {bin}: {e} (install the nftables package)"
            ))
        })?;
        if let (Some(data), Some(mut sin)) = (stdin, child.stdin.take()) {
            sin.write_all(data)
                .map_err(|e| unavailable(format!("write to {bin}: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| unavailable(format!("wait for {bin}: {e}")))?;
        if !out.status.success() {
            return Err(DriverError::from_nft_stderr(&String::from_utf8_lossy(
                &out.stderr,
            )));
        }
        Ok(out.stdout)
    }

    /// Checks `batch` without applying it (`nft -c`).
    pub fn check(&self, batch: &Batch) -> Result<(), DriverError> {
        let doc = batch.to_json().to_string();
        self.run(&["-c", "-j", "-f", "-"], Some(doc.as_bytes()))
            .map(|_| ())
    }
}

impl Driver for Nft {
    fn apply(&mut self, batch: &Batch) -> Result<(), DriverError> {
        if batch.is_empty() {
            return Ok(());
        }
        let doc = batch.to_json().to_string();
        self.run(&["-j", "-f", "-"], Some(doc.as_bytes()))
            .map(|_| ())
    }

    fn list(&mut self, table: &TableId) -> Result<Option<Listing>, DriverError> {
        match self.run(
            &["-j", "list", "table", table.family.as_str(), &table.name],
            None,
        ) {
            Ok(out) => {
                let doc: serde_json::Value = serde_json::from_slice(&out).map_err(|e| {
                    DriverError::new(
                        ErrorKind::Unavailable,
                        format!("nft listed table {table} as unreadable JSON: {e}"),
                    )
                })?;
                Ok(Some(Listing::parse(&doc)))
            }
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The `nft` binary: `$AKSNET_NFT`, else the first of `/usr/sbin/nft`,
/// `/sbin/nft`, `/usr/bin/nft` that exists, else `nft` from `PATH`.
pub fn nft_binary() -> String {
    if let Ok(p) = std::env::var("AKSNET_NFT") {
        if !p.is_empty() {
            return p;
        }
    }
    for p in ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"] {
        if std::path::Path::new(p).exists() {
            return p.to_string();
        }
    }
    "nft".to_string()
}
