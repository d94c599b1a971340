//! The plugin skeleton: environment, stdin, dispatch, and printing the
//! result or the spec's error object on stdout with a non-zero exit code.

use std::io::{Read, Write};
use std::process::ExitCode;

use aksnet_core::cni::version::version_answer;
use aksnet_core::cni::{code, CniArgs, CniError, CniResult, NetConf, Version};
use serde_json::Value;

/// A CNI command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// ADD
    Add,
    /// DEL
    Del,
    /// CHECK
    Check,
    /// VERSION
    Version,
    /// STATUS
    Status,
    /// GC
    Gc,
}

impl Command {
    fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            _ => return None,
        })
    }
}

/// The CNI environment variables.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS` (may be empty for DEL).
    pub netns: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`, raw.
    pub args: String,
    /// `CNI_PATH`, split.
    pub path: Vec<String>,
}

/// Everything a plugin gets for one invocation.
#[derive(Debug, Clone)]
pub struct Request {
    /// The command.
    pub command: Command,
    /// The environment.
    pub env: Env,
    /// The shared configuration fields.
    pub conf: NetConf,
    /// The whole configuration, as received.
    pub raw: Value,
    /// The raw stdin bytes (passed on to delegated plugins).
    pub stdin: Vec<u8>,
    /// The configuration's version (results are printed in it).
    pub version: Version,
    /// Parsed `CNI_ARGS`.
    pub args: CniArgs,
}

/// A plugin's commands. ADD returns the result to print; the others print
/// nothing on success.
pub trait Plugin {
    /// ADD.
    fn add(&self, req: &Request) -> Result<CniResult, CniError>;
    /// DEL: must succeed when what it would remove is already gone.
    fn del(&self, req: &Request) -> Result<(), CniError>;
    /// CHECK.
    fn check(&self, req: &Request) -> Result<(), CniError>;
    /// STATUS.
    fn status(&self, req: &Request) -> Result<(), CniError>;
    /// GC.
    fn gc(&self, req: &Request) -> Result<(), CniError>;
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// Read the environment and stdin into a request. The version string to
/// print errors with is returned with the error.
pub fn read_request(stdin: Vec<u8>) -> Result<Request, (CniError, String)> {
    parse_request(&var, stdin)
}

/// [`read_request`] with the environment given as a lookup (an unset
/// variable reads as empty), so the parsing can be tested and fuzzed
/// without touching the process's environment.
pub fn parse_request(
    var: &dyn Fn(&str) -> String,
    stdin: Vec<u8>,
) -> Result<Request, (CniError, String)> {
    let cmd_s = var("CNI_COMMAND");
    let fallback = Version::V1_1_0.as_str().to_string();
    let command = Command::parse(&cmd_s).ok_or_else(|| {
        (
            CniError::env(format!(
                "CNI_COMMAND {cmd_s:?} is not one of ADD, DEL, CHECK, VERSION, STATUS, GC"
            )),
            fallback.clone(),
        )
    })?;
    let env = Env {
        container_id: var("CNI_CONTAINERID"),
        netns: var("CNI_NETNS"),
        ifname: var("CNI_IFNAME"),
        args: var("CNI_ARGS"),
        path: var("CNI_PATH")
            .split(':')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    };
    // The version to print errors in: the configuration's if readable.
    let ver_s = serde_json::from_slice::<Value>(&stdin)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or(fallback);
    let fail = |e: CniError| (e, ver_s.clone());
    let (conf, raw, version) = NetConf::from_slice(&stdin).map_err(fail)?;
    let mut missing = Vec::new();
    let needs_id = matches!(command, Command::Add | Command::Del | Command::Check);
    if needs_id && env.container_id.is_empty() {
        missing.push("CNI_CONTAINERID");
    }
    if needs_id && env.ifname.is_empty() {
        missing.push("CNI_IFNAME");
    }
    if matches!(command, Command::Add | Command::Check) && env.netns.is_empty() {
        missing.push("CNI_NETNS");
    }
    if command != Command::Version && env.path.is_empty() {
        missing.push("CNI_PATH");
    }
    if !missing.is_empty() {
        return Err(fail(CniError::env(format!(
            "required environment variables missing: {}",
            missing.join(", ")
        ))));
    }
    if needs_id && !aksnet_core::cni::is_valid_id(&env.container_id) {
        return Err(fail(CniError::env(format!(
            "CNI_CONTAINERID {:?} is invalid: it must start with a letter or digit and contain only [A-Za-z0-9_.-]",
            env.container_id
        ))));
    }
    if needs_id && !aksnet_core::cni::is_valid_ifname(&env.ifname) {
        return Err(fail(CniError::env(format!(
            "CNI_IFNAME {:?} is not a valid interface name (1-15 characters, no '/', ':' or spaces)",
            env.ifname
        ))));
    }
    if command == Command::Check && !version.has_check() {
        return Err(fail(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("CHECK is not defined for CNI version {version}"),
            "CHECK needs cniVersion 0.4.0 or later",
        )));
    }
    if matches!(command, Command::Gc | Command::Status) && !version.has_gc_status() {
        return Err(fail(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("{cmd_s} is not defined for CNI version {version}"),
            "GC and STATUS need cniVersion 1.1.0 or later",
        )));
    }
    let args = CniArgs::parse(&env.args).map_err(fail)?;
    Ok(Request {
        command,
        env,
        conf,
        raw,
        stdin,
        version,
        args,
    })
}

fn print_json(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, v);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

fn print_error(e: &CniError, version: &str) -> ExitCode {
    tracing::warn!(code = e.code, msg = %e.msg, details = %e.details, "failed");
    print_json(&e.to_json(version));
    ExitCode::FAILURE
}

/// Set up logging: stderr, level from `AKSNET_CNI_LOG` (default `warn`),
/// or appended to the file `AKSNET_CNI_LOG_FILE` when set. Never stdout.
pub fn init_logging() {
    let level = std::env::var("AKSNET_CNI_LOG").unwrap_or_else(|_| "warn".into());
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false);
    let file = std::env::var("AKSNET_CNI_LOG_FILE")
        .ok()
        .filter(|p| !p.is_empty())
        .and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        });
    let _ = match file {
        Some(f) => builder.with_writer(std::sync::Mutex::new(f)).try_init(),
        None => builder.with_writer(std::io::stderr).try_init(),
    };
}

/// Run `plugin` for this process: read the environment and stdin, dispatch,
/// print, and return the exit code.
pub fn run(plugin: &dyn Plugin) -> ExitCode {
    init_logging();
    let mut stdin = Vec::with_capacity(4096);
    let is_version = var("CNI_COMMAND") == "VERSION";
    if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
        return print_error(
            &CniError::new(code::IO, format!("cannot read stdin: {e}"), ""),
            Version::V1_1_0.as_str(),
        );
    }
    if is_version {
        // VERSION needs only {"cniVersion"}; be lenient about the rest.
        let asked = serde_json::from_slice::<Value>(&stdin).ok().and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        print_json(&version_answer(asked.as_deref()));
        return ExitCode::SUCCESS;
    }
    let req = match read_request(stdin) {
        Ok(r) => r,
        Err((e, v)) => return print_error(&e, &v),
    };
    let _span = tracing::info_span!(
        "cni",
        cmd = ?req.command,
        id = %req.env.container_id,
        ifname = %req.env.ifname
    )
    .entered();
    let ver = req.version.as_str();
    let outcome = match req.command {
        Command::Add => plugin
            .add(&req)
            .map(|r| print_json(&r.to_json(req.version))),
        Command::Del => plugin.del(&req),
        Command::Check => plugin.check(&req),
        Command::Status => plugin.status(&req),
        Command::Gc => plugin.gc(&req),
        Command::Version => Ok(()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => print_error(&e, ver),
    }
}
