//! Calling the IPAM plugin: in-process when its type is `aksnet-ipam`
//! (saves a fork+exec per ADD and DEL), otherwise by executing the binary of
//! that name from `CNI_PATH` with the same environment and stdin, as libcni
//! delegation does.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use aksnet_core::cni::{code, CniError, CniResult};
use serde_json::Value;

use crate::ipam;
use crate::skel::Request;

/// The type name of the in-process IPAM.
pub const IN_PROCESS: &str = "aksnet-ipam";

/// What to undo if a later step of ADD fails.
#[derive(Debug, Clone)]
pub enum Undo {
    /// Release exactly these addresses (in-process IPAM: only what this
    /// ADD reserved, so a repeated ADD never frees the first one's address).
    Release(Vec<IpAddr>),
    /// Call the external IPAM with DEL.
    ExecDel,
}

/// Find plugin `name` in the `CNI_PATH` directories.
pub fn find_plugin(name: &str, path: &[String]) -> Result<PathBuf, CniError> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(CniError::config(format!(
            "plugin type {name:?} is not a plugin name"
        )));
    }
    for dir in path {
        let p = PathBuf::from(dir).join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(CniError::config(format!(
        "IPAM plugin {name:?} not found in CNI_PATH ({})",
        path.join(":")
    )))
}

/// Run plugin `name` with `command` and the request's stdin; its stdout on
/// success, its error object (or a description of the failure) otherwise.
pub fn exec(req: &Request, name: &str, command: &str) -> Result<Vec<u8>, CniError> {
    let bin = find_plugin(name, &req.env.path)?;
    let mut child = Command::new(&bin)
        .env("CNI_COMMAND", command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            CniError::new(
                code::IO,
                format!("cannot run IPAM plugin {}", bin.display()),
                e.to_string(),
            )
        })?;
    if let Some(mut sin) = child.stdin.take() {
        // A plugin that exits without reading stdin closes the pipe; its
        // exit status tells what happened.
        let _ = sin.write_all(&req.stdin);
    }
    let out = child.wait_with_output().map_err(|e| {
        CniError::new(
            code::IO,
            format!("cannot wait for IPAM plugin {}", bin.display()),
            e.to_string(),
        )
    })?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let v: Option<Value> = serde_json::from_slice(&out.stdout).ok();
    let err = v.as_ref().and_then(|v| {
        let c = v.get("code")?.as_u64()?;
        Some(CniError::new(
            u32::try_from(c).unwrap_or(code::INTERNAL),
            v.get("msg").and_then(Value::as_str).unwrap_or_default(),
            v.get("details").and_then(Value::as_str).unwrap_or_default(),
        ))
    });
    Err(err.unwrap_or_else(|| {
        CniError::internal(format!(
            "IPAM plugin {name} {command} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }))
}

/// IPAM ADD: the IPAM result and how to undo it.
pub fn add(req: &Request, ipam_type: &str) -> Result<(CniResult, Undo), CniError> {
    if ipam_type == IN_PROCESS {
        let a = ipam::allocate(req)?;
        return Ok((a.result, Undo::Release(a.fresh)));
    }
    let out = exec(req, ipam_type, "ADD")?;
    let v: Value = serde_json::from_slice(&out).map_err(|e| {
        CniError::decode(format!(
            "IPAM plugin {ipam_type} printed no JSON result: {e}"
        ))
    })?;
    let r = CniResult::parse(&v)?;
    if r.ips.is_empty() {
        // Hand the addresses back before failing: nothing will use them.
        let _ = exec(req, ipam_type, "DEL");
        return Err(CniError::internal(format!(
            "IPAM plugin {ipam_type} returned no IP address"
        )));
    }
    Ok((r, Undo::ExecDel))
}

/// Undo an IPAM ADD after a later failure (best effort: the ADD's own
/// error is what the runtime must see).
pub fn undo(req: &Request, ipam_type: &str, u: &Undo) {
    let r = match u {
        Undo::Release(ips) => ipam::release_fresh(req, ips),
        Undo::ExecDel => exec(req, ipam_type, "DEL").map(|_| ()),
    };
    if let Err(e) = r {
        tracing::warn!(error = %e, "cannot undo the IPAM allocation");
    }
}

/// IPAM DEL.
pub fn del(req: &Request, ipam_type: &str) -> Result<(), CniError> {
    if ipam_type == IN_PROCESS {
        return ipam::release(req).map(|_| ());
    }
    exec(req, ipam_type, "DEL").map(|_| ())
}

/// IPAM CHECK.
pub fn check(req: &Request, ipam_type: &str) -> Result<(), CniError> {
    if ipam_type == IN_PROCESS {
        return ipam::check(req);
    }
    exec(req, ipam_type, "CHECK").map(|_| ())
}

/// IPAM GC.
pub fn gc(req: &Request, ipam_type: &str) -> Result<(), CniError> {
    if ipam_type == IN_PROCESS {
        return ipam::gc(req).map(|_| ());
    }
    exec(req, ipam_type, "GC").map(|_| ())
}

/// IPAM STATUS.
pub fn status(req: &Request, ipam_type: &str) -> Result<(), CniError> {
    if ipam_type == IN_PROCESS {
        return ipam::status(req);
    }
    exec(req, ipam_type, "STATUS").map(|_| ())
}
