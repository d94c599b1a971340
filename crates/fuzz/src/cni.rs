//! The CNI inputs: the network configuration with its `prevResult`, and
//! the `CNI_*` environment with `CNI_ARGS`.

use aksnet_cni::netconf::MainConf;
use aksnet_cni::skel::{parse_request, Command};
use aksnet_core::cni::ipam::IpamConf;
use aksnet_core::cni::version::SUPPORTED;
use aksnet_core::cni::{code, CniArgs, CniError, CniResult, NetConf};

/// The codes a plugin may print (CNI spec "Error" section, and the
/// well-known plugin codes libcni defines).
const CODES: [u32; 12] = [
    code::INCOMPATIBLE_VERSION,
    code::UNSUPPORTED_FIELD,
    code::UNKNOWN_CONTAINER,
    code::INVALID_ENV,
    code::IO,
    code::DECODE,
    code::INVALID_CONFIG,
    code::INVALID_NETNS,
    code::TRY_AGAIN,
    code::NOT_AVAILABLE,
    code::NOT_AVAILABLE_LIMITED,
    code::INTERNAL,
];

/// An error is the spec's object: a known code, a message, and the JSON
/// form carries both with the version it was asked for.
pub fn check_error(e: &CniError, version: &str) {
    assert!(
        CODES.contains(&e.code),
        "code {} is not a CNI code: {e:?}",
        e.code
    );
    assert!(
        !e.msg.trim().is_empty(),
        "an error without a message: {e:?}"
    );
    let j = e.to_json(version);
    assert_eq!(j["code"].as_u64(), Some(u64::from(e.code)), "{j}");
    assert_eq!(j["msg"].as_str(), Some(e.msg.as_str()), "{j}");
    assert_eq!(j["cniVersion"].as_str(), Some(version), "{j}");
}

/// `prevResult` in every supported version, and read back.
fn round_trip(r: &CniResult) {
    for v in SUPPORTED {
        let j = r.to_json(v);
        match CniResult::parse(&j) {
            Ok(back) => {
                // Converting the read-back result again is stable.
                assert_eq!(back.to_json(v), j, "{v}: not stable");
            }
            Err(e) => panic!("{v}: a result we printed does not parse: {e:?}\n{j}"),
        }
    }
}

/// Stdin of any plugin: `NetConf`, `prevResult`, the IPAM section, the
/// main plugin's own fields.
pub fn config(data: &[u8]) {
    let (conf, raw, version) = match NetConf::from_slice(data) {
        Ok(c) => c,
        Err(e) => return check_error(&e, "1.1.0"),
    };
    let v = version.as_str();
    match conf.prev() {
        Ok(Some(r)) => round_trip(&r),
        Ok(None) => {}
        Err(e) => check_error(&e, v),
    }
    let _ = conf.gc_attachments();
    match IpamConf::from_netconf(&conf) {
        Ok(ipam) => {
            if let Err(e) = ipam.range_sets(&conf) {
                check_error(&e, v);
            }
        }
        Err(e) => check_error(&e, v),
    }
    if let Err(e) = MainConf::parse(&raw) {
        check_error(&e, v);
    }
}

const VARS: [&str; 6] = [
    "CNI_COMMAND",
    "CNI_CONTAINERID",
    "CNI_NETNS",
    "CNI_IFNAME",
    "CNI_ARGS",
    "CNI_PATH",
];

/// The environment and stdin of one invocation: six NUL-separated values
/// (`CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`,
/// `CNI_ARGS`, `CNI_PATH`), then stdin.
pub fn request(data: &[u8]) {
    let parts = crate::fields(data, 0, VARS.len() + 1);
    let get = |name: &str| -> String {
        VARS.iter()
            .position(|v| *v == name)
            .and_then(|i| parts.get(i))
            .map(|b| crate::text(b))
            .unwrap_or_default()
    };
    let stdin = parts
        .get(VARS.len())
        .map(|b| b.to_vec())
        .unwrap_or_default();
    match parse_request(&get, stdin) {
        Ok(req) => {
            // What was accepted names nothing outside a data directory:
            // the network name always, the container ID for the commands
            // that use it (VERSION, STATUS and GC have none).
            let mut names = vec![&req.conf.name];
            if matches!(req.command, Command::Add | Command::Del | Command::Check) {
                assert!(!req.env.container_id.is_empty());
                names.push(&req.env.container_id);
            }
            for id in names {
                assert!(
                    !id.contains('/') && id != ".." && id != ".",
                    "{id:?} accepted"
                );
            }
        }
        Err((e, v)) => check_error(&e, &v),
    }
    match CniArgs::parse(&get("CNI_ARGS")) {
        Ok(a) => {
            let _ = a.get("IgnoreUnknown");
        }
        Err(e) => check_error(&e, "1.1.0"),
    }
}
