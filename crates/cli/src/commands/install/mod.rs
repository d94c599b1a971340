//! `aksnet install` and `aksnet uninstall`: put a node's aksnet in place
//! (the CNI plugins, the `aksnet` binary, the agent's systemd unit) and take
//! it away again.
//!
//! Everything is written under `--root` (`/` by default), so an image
//! builder or a test can install into a directory. Install writes a file
//! only when its content differs (atomically: a temporary file renamed over
//! the old one, so a running binary is never overwritten in place), and
//! records what it manages in `/var/lib/aksnet/install.json`; uninstall
//! removes exactly what that record lists, and with `--purge` also what the
//! agent made (the conflist, aksnet-ipam's allocations, the agent's
//! nftables tables, routes and VXLAN device). Neither runs `systemctl`
//! against a `--root` other than `/`.

pub mod unit;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use serde::{Deserialize, Serialize};

use super::agent::{Routes, DEFAULT_METRICS_ADDR};
use super::Output;

/// The plugins `install` copies into the CNI bin dir.
pub const PLUGINS: [&str; 3] = ["aksnet-cni", "aksnet-ipam", "aksnet-portmap"];
/// What install records, relative to the root.
pub const MANIFEST: &str = "/var/lib/aksnet/install.json";
/// Where a package puts the plugins, relative to the directory of `aksnet`
/// (`/usr/bin` → `/usr/lib/aksnet/cni`).
pub const PACKAGED_PLUGINS: &str = "../lib/aksnet/cni";

#[derive(Args, Debug)]
pub struct InstallArgs {
    /// Install into this directory as if it were / (an image, a test).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Where the CNI plugins go (the runtime's CNI bin dir).
    #[arg(long, value_name = "DIR", default_value = "/opt/cni/bin")]
    pub cni_bin_dir: PathBuf,
    /// Where the agent writes the node's conflist.
    #[arg(long, value_name = "DIR", default_value = "/etc/cni/net.d")]
    pub cni_conf_dir: PathBuf,
    /// aksnet-ipam's data directory.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/cni/networks")]
    pub ipam_data_dir: PathBuf,
    /// Cluster store the agent joins: sqlite:PATH or etcd://HOST:PORT[,…].
    #[arg(long, value_name = "URL")]
    pub store: String,
    /// This node's name.
    #[arg(long, value_name = "NAME")]
    pub node: String,
    /// This node's address in the node subnet.
    #[arg(long, value_name = "IP")]
    pub node_ip: Ipv4Addr,
    #[arg(long, value_enum, default_value_t = Routes::Fabric)]
    pub routes: Routes,
    /// The agent's --metrics-addr.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_METRICS_ADDR)]
    pub metrics_addr: String,
    /// Where `aksnet` is installed; the unit runs it from there. Nothing is
    /// copied when this `aksnet` already is that file (a package's /usr/bin).
    #[arg(long, value_name = "DIR", default_value = "/usr/local/bin")]
    pub bin_dir: PathBuf,
    /// Where to take the plugins from [default: beside this aksnet, else
    /// its ../lib/aksnet/cni].
    #[arg(long, value_name = "DIR")]
    pub plugins_from: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct UninstallArgs {
    /// The root install used.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// The CNI bin dir [default: what install recorded, else /opt/cni/bin].
    #[arg(long, value_name = "DIR")]
    pub cni_bin_dir: Option<PathBuf>,
    /// The conflist's directory, for --purge [default: as recorded, else /etc/cni/net.d].
    #[arg(long, value_name = "DIR")]
    pub cni_conf_dir: Option<PathBuf>,
    /// aksnet-ipam's data directory, for --purge [default: as recorded, else /var/lib/cni/networks].
    #[arg(long, value_name = "DIR")]
    pub ipam_data_dir: Option<PathBuf>,
    /// Also remove what the agent made: the conflist, the IPAM allocations,
    /// and the agent's nftables tables, routes and VXLAN device.
    #[arg(long)]
    pub purge: bool,
    /// Network namespace whose kernel state --purge removes (the caller's
    /// own when --root is /; with another --root only this one).
    #[arg(long, value_name = "PATH")]
    pub netns: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// What install manages, as recorded for uninstall (paths on the target
/// system, without the root).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub files: Vec<PathBuf>,
    /// Directories install created (uninstall removes them when empty).
    #[serde(default)]
    pub created_dirs: Vec<PathBuf>,
    pub cni_bin_dir: PathBuf,
    pub cni_conf_dir: PathBuf,
    pub ipam_data_dir: PathBuf,
}

/// One thing install or uninstall did (or found already done).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `installed`, `updated`, `unchanged`, `wrote`, `removed`, `deleted`, `skipped`.
    pub action: String,
    /// A path as written on this machine (root included), or a kernel object.
    pub what: String,
}

impl Change {
    fn new(action: &str, what: impl Into<String>) -> Self {
        Change {
            action: action.into(),
            what: what.into(),
        }
    }

    fn is_change(&self) -> bool {
        !matches!(self.action.as_str(), "unchanged" | "skipped")
    }
}

/// `root` + an absolute target path.
pub fn under(root: &Path, target: &Path) -> PathBuf {
    let rel = target.strip_prefix("/").unwrap_or(target);
    root.join(rel)
}

fn is_root(root: &Path) -> bool {
    root.canonicalize().is_ok_and(|p| p == Path::new("/"))
}

/// Writes `content` to `path` (mode `mode`) unless it already holds exactly
/// that; returns whether it wrote. A temporary file in the same directory
/// is renamed over the old one.
fn put_file(path: &Path, content: &[u8], mode: u32) -> anyhow::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(old) = std::fs::read(path) {
        let same_mode =
            std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o7777 == mode);
        if old == content && same_mode {
            return Ok(false);
        }
    }
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        std::fs::write(&tmp, content)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(true)
}

/// The directories `put_file` would create for `target` under `root`
/// (target paths, outermost first).
fn missing_dirs(root: &Path, target: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = target
        .ancestors()
        .skip(1)
        .filter(|d| *d != Path::new("/") && !d.as_os_str().is_empty())
        .filter(|d| !under(root, d).exists())
        .map(Path::to_path_buf)
        .collect();
    out.reverse();
    out
}

/// Where the plugins are: `--plugins-from`, else beside the running
/// `aksnet`, else the packaged location relative to it.
fn plugin_source(args: &InstallArgs, exe: &Path) -> anyhow::Result<PathBuf> {
    if let Some(d) = &args.plugins_from {
        return Ok(d.clone());
    }
    let beside = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let packaged = beside.join(PACKAGED_PLUGINS);
    for d in [&beside, &packaged] {
        if d.join(PLUGINS[0]).is_file() {
            return Ok(d.clone());
        }
    }
    bail!(
        "the CNI plugins ({}) are neither beside {} nor in {}; build them (cargo build --release) or give --plugins-from DIR",
        PLUGINS.join(", "),
        exe.display(),
        packaged.display()
    )
}

/// The flags the unit gives `aksnet agent`.
pub fn agent_flags(args: &InstallArgs) -> Vec<String> {
    let routes = match args.routes {
        Routes::Fabric => "fabric",
        Routes::HostGw => "host-gw",
        Routes::Vxlan => "vxlan",
    };
    [
        ("--store", args.store.clone()),
        ("--node", args.node.clone()),
        ("--node-ip", args.node_ip.to_string()),
        ("--cni-bin-dir", args.cni_bin_dir.display().to_string()),
        ("--cni-conf-dir", args.cni_conf_dir.display().to_string()),
        ("--ipam-data-dir", args.ipam_data_dir.display().to_string()),
        ("--routes", routes.to_string()),
        ("--metrics-addr", args.metrics_addr.clone()),
    ]
    .into_iter()
    .flat_map(|(f, v)| [f.to_string(), v])
    .collect()
}

fn check_install_args(args: &InstallArgs) -> anyhow::Result<()> {
    args.store
        .parse::<aksnet_store::StoreUrl>()
        .with_context(|| format!("--store {}", args.store))?;
    for (flag, dir) in [
        ("--cni-bin-dir", &args.cni_bin_dir),
        ("--cni-conf-dir", &args.cni_conf_dir),
        ("--ipam-data-dir", &args.ipam_data_dir),
        ("--bin-dir", &args.bin_dir),
    ] {
        if !dir.is_absolute() {
            bail!(
                "{flag} {} must be an absolute path on the node",
                dir.display()
            );
        }
    }
    if args.metrics_addr != "off" && args.metrics_addr.parse::<std::net::SocketAddr>().is_err() {
        bail!(
            "--metrics-addr '{}' is not IP:PORT (such as {DEFAULT_METRICS_ADDR}) or off",
            args.metrics_addr
        );
    }
    if args.node.is_empty() {
        bail!("--node must not be empty");
    }
    Ok(())
}

/// Installs; returns what it did, in order.
pub fn install(args: &InstallArgs, exe: &Path) -> anyhow::Result<Vec<Change>> {
    check_install_args(args)?;
    if !args.root.is_dir() {
        bail!("--root {} is not a directory", args.root.display());
    }
    let src = plugin_source(args, exe)?;
    let old = read_manifest(&args.root)?.unwrap_or_default();
    let mut created_dirs = old.created_dirs.clone();
    let mut note_dirs = |target: &Path| {
        for d in missing_dirs(&args.root, target) {
            if !created_dirs.contains(&d) {
                created_dirs.push(d);
            }
        }
    };
    let mut changes = Vec::new();
    let mut files = Vec::new();
    let mut copy = |from: &Path,
                    target: PathBuf,
                    changes: &mut Vec<Change>,
                    note_dirs: &mut dyn FnMut(&Path)|
     -> anyhow::Result<()> {
        let dest = under(&args.root, &target);
        note_dirs(&target);
        let existed = dest.exists();
        let content = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
        let action = match (put_file(&dest, &content, 0o755)?, existed) {
            (false, _) => "unchanged",
            (true, false) => "installed",
            (true, true) => "updated",
        };
        changes.push(Change::new(action, dest.display().to_string()));
        files.push(target);
        Ok(())
    };
    for p in PLUGINS {
        copy(
            &src.join(p),
            args.cni_bin_dir.join(p),
            &mut changes,
            &mut note_dirs,
        )?;
    }
    let aksnet_target = args.bin_dir.join("aksnet");
    let aksnet_dest = under(&args.root, &aksnet_target);
    let is_self = match (aksnet_dest.canonicalize(), exe.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if is_self {
        changes.push(Change::new("unchanged", aksnet_dest.display().to_string()));
    } else {
        copy(exe, aksnet_target.clone(), &mut changes, &mut note_dirs)?;
    }

    let unit_target = Path::new(unit::UNIT_DIR).join(unit::UNIT_NAME);
    let unit_dest = under(&args.root, &unit_target);
    let text = unit::render(&aksnet_target, &agent_flags(args));
    note_dirs(&unit_target);
    let existed = unit_dest.exists();
    let action = match (put_file(&unit_dest, text.as_bytes(), 0o644)?, existed) {
        (false, _) => "unchanged",
        (true, false) => "wrote",
        (true, true) => "updated",
    };
    changes.push(Change::new(action, unit_dest.display().to_string()));
    files.push(unit_target);

    note_dirs(Path::new(MANIFEST));
    // A file an earlier install managed and this one does not (another
    // --cni-bin-dir or --bin-dir): nothing would remove it later.
    for f in old.files.iter().filter(|f| !files.contains(f)) {
        remove(&under(&args.root, f), &mut changes)?;
    }
    let manifest = Manifest {
        files,
        created_dirs,
        cni_bin_dir: args.cni_bin_dir.clone(),
        cni_conf_dir: args.cni_conf_dir.clone(),
        ipam_data_dir: args.ipam_data_dir.clone(),
    };
    let mut json = serde_json::to_vec_pretty(&manifest)?;
    json.push(b'\n');
    let mdest = under(&args.root, Path::new(MANIFEST));
    let existed = mdest.exists();
    let action = match (put_file(&mdest, &json, 0o644)?, existed) {
        (false, _) => "unchanged",
        (true, false) => "wrote",
        (true, true) => "updated",
    };
    changes.push(Change::new(action, mdest.display().to_string()));
    Ok(changes)
}

fn read_manifest(root: &Path) -> anyhow::Result<Option<Manifest>> {
    let path = under(root, Path::new(MANIFEST));
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not what aksnet install writes; remove it by hand",
                path.display()
            )
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn remove(path: &Path, changes: &mut Vec<Change>) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => changes.push(Change::new("removed", path.display().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    Ok(())
}

/// Uninstalls; returns what it did, in order.
pub fn uninstall(args: &UninstallArgs) -> anyhow::Result<Vec<Change>> {
    if !args.root.is_dir() {
        bail!("--root {} is not a directory", args.root.display());
    }
    let manifest = read_manifest(&args.root)?;
    let recorded = manifest.clone().unwrap_or_else(|| Manifest {
        files: Vec::new(),
        created_dirs: Vec::new(),
        cni_bin_dir: "/opt/cni/bin".into(),
        cni_conf_dir: "/etc/cni/net.d".into(),
        ipam_data_dir: "/var/lib/cni/networks".into(),
    });
    let cni_bin_dir = args.cni_bin_dir.clone().unwrap_or(recorded.cni_bin_dir);
    let cni_conf_dir = args.cni_conf_dir.clone().unwrap_or(recorded.cni_conf_dir);
    let ipam_data_dir = args.ipam_data_dir.clone().unwrap_or(recorded.ipam_data_dir);
    // Without a record: the plugins and the unit, never an `aksnet` binary
    // (it may be a package's).
    let recorded_dirs = recorded.created_dirs.clone();
    let files = match manifest {
        Some(m) => m.files,
        None => PLUGINS
            .iter()
            .map(|p| cni_bin_dir.join(p))
            .chain([Path::new(unit::UNIT_DIR).join(unit::UNIT_NAME)])
            .collect(),
    };
    let mut changes = Vec::new();
    let on_host = is_root(&args.root);
    if on_host {
        stop_service(&mut changes);
    }
    for f in &files {
        remove(&under(&args.root, f), &mut changes)?;
    }
    if args.purge {
        let conf = under(&args.root, &cni_conf_dir);
        let data = under(&args.root, &ipam_data_dir);
        for p in aksnet_agent::purge::files(&conf, &data)? {
            changes.push(Change::new("removed", p.display().to_string()));
        }
        if on_host || args.netns.is_some() {
            let k = aksnet_agent::purge::kernel(
                args.netns.as_deref(),
                &aksnet_agent::purge::agent_tables(),
            )?;
            let place = args
                .netns
                .as_ref()
                .map(|p| format!(" in {}", p.display()))
                .unwrap_or_default();
            for t in k.tables {
                changes.push(Change::new("deleted", format!("nftables table {t}{place}")));
            }
            for r in k.routes {
                changes.push(Change::new("deleted", format!("route {r}{place}")));
            }
            for l in k.links {
                changes.push(Change::new("deleted", format!("link {l}{place}")));
            }
        } else {
            changes.push(Change::new(
                "skipped",
                format!(
                    "kernel state: --root {} is not /; give --netns PATH to purge a namespace",
                    args.root.display()
                ),
            ));
        }
    }
    let mpath = under(&args.root, Path::new(MANIFEST));
    remove(&mpath, &mut changes)?;
    // Innermost first, and only when empty: the agent's or another
    // program's files may live there too.
    for d in recorded_dirs.iter().rev() {
        let path = under(&args.root, d);
        if std::fs::remove_dir(&path).is_ok() {
            changes.push(Change::new("removed", format!("{}/", path.display())));
        }
    }
    Ok(changes)
}

/// On a host running systemd, stops and disables the agent before its
/// unit goes (a running agent would program everything again).
fn stop_service(changes: &mut Vec<Change>) {
    if !Path::new("/run/systemd/system").is_dir() {
        return;
    }
    let out = std::process::Command::new("systemctl")
        .args(["disable", "--now", unit::UNIT_NAME])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            changes.push(Change::new("stopped", unit::UNIT_NAME));
        }
        Ok(o) => tracing::warn!(
            "systemctl disable --now {}: {}",
            unit::UNIT_NAME,
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => tracing::warn!("systemctl: {e}"),
    }
}

fn print(changes: &[Change], output: Output, done_hint: Option<&str>) -> anyhow::Result<()> {
    match output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(changes)?),
        Output::Table => {
            for c in changes {
                outln!("{:<9} {}", c.action, c.what);
            }
            if !changes.iter().any(Change::is_change) {
                outln!("nothing to change");
            } else if let Some(h) = done_hint {
                outln!("{h}");
            }
        }
    }
    Ok(())
}

pub fn run_install(args: &InstallArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("finding the running aksnet")?;
    let changes = install(args, &exe)?;
    let hint = is_root(&args.root)
        .then_some("next: systemctl daemon-reload && systemctl enable --now aksnet-agent");
    print(&changes, args.output, hint)?;
    Ok(ExitCode::SUCCESS)
}

pub fn run_uninstall(args: &UninstallArgs) -> anyhow::Result<ExitCode> {
    let changes = uninstall(args)?;
    print(&changes, args.output, None)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cli;
    use clap::Parser;

    fn parse(words: &[&str]) -> InstallArgs {
        let cli = Cli::try_parse_from(["aksnet", "install"].iter().chain(words)).unwrap();
        match cli.command {
            crate::Command::Install(a) => a,
            _ => unreachable!("parsed as install"),
        }
    }

    fn args(root: &Path, plugins: &Path) -> InstallArgs {
        parse(&[
            "--root",
            root.to_str().unwrap(),
            "--store",
            "sqlite:/var/lib/aksnet/cluster.db",
            "--node",
            "node-1",
            "--node-ip",
            "10.224.0.4",
            "--plugins-from",
            plugins.to_str().unwrap(),
        ])
    }

    #[test]
    fn the_units_exec_start_is_an_agent_command_line_with_the_install_flags() {
        let a = parse(&[
            "--store",
            "sqlite:/x y/c.db",
            "--node",
            "n%1",
            "--node-ip",
            "10.224.0.4",
        ]);
        let text = unit::render(Path::new("/usr/local/bin/aksnet"), &agent_flags(&a));
        let words = unit::exec_start(&text).unwrap();
        assert_eq!(words[0], "/usr/local/bin/aksnet");
        let cli = Cli::try_parse_from(&words).unwrap();
        let crate::Command::Agent(agent) = cli.command else {
            panic!("not an agent command: {words:?}");
        };
        assert_eq!(agent.store.url, "sqlite:/x y/c.db");
        assert_eq!(agent.node, "n%1");
        assert_eq!(agent.node_ip.to_string(), "10.224.0.4");
        assert_eq!(agent.cni_bin_dir, Path::new("/opt/cni/bin"));
        assert_eq!(agent.cni_conf_dir, Path::new("/etc/cni/net.d"));
        assert_eq!(agent.routes, Routes::Fabric);
        assert_eq!(
            agent.metrics_addr,
            super::super::agent::MetricsAddr::On("127.0.0.1:9965".parse().unwrap())
        );
    }

    #[test]
    fn bad_flags_name_the_value() {
        let t = tempfile::tempdir().unwrap();
        let mut a = args(t.path(), t.path());
        a.store = "ftp://x".into();
        let e = format!("{:#}", install(&a, Path::new("/bin/true")).unwrap_err());
        assert!(e.contains("--store ftp://x"), "{e}");
        let mut a = args(t.path(), t.path());
        a.cni_bin_dir = "opt/cni".into();
        let e = format!("{:#}", install(&a, Path::new("/bin/true")).unwrap_err());
        assert!(
            e.contains("--cni-bin-dir opt/cni must be an absolute path"),
            "{e}"
        );
        let a = args(t.path(), &t.path().join("none"));
        let e = format!("{:#}", install(&a, Path::new("/bin/true")).unwrap_err());
        assert!(e.contains("none/aksnet-cni"), "{e}");
    }
}
