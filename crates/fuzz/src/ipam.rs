//! The host-local file store as `aksnet-ipam` finds it on disk: whatever
//! files a crash, another plugin or a person left in the network's
//! directory, then ADD, CHECK, DEL and GC in-process.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use aksnet_cni::ipam;
use aksnet_cni::skel::{parse_request, Request};
use serde_json::json;

use crate::cni::check_error;

const NET: &str = "fuzznet";

fn request(cmd: &str, data_dir: &Path, id: &str, valid: Option<&[&str]>) -> Request {
    let mut conf = json!({
        "cniVersion": "1.1.0", "name": NET, "type": "aksnet-ipam",
        "ipam": {"type": "aksnet-ipam", "dataDir": data_dir.display().to_string(),
                 "ranges": [[{"subnet": "10.9.0.0/29"}], [{"subnet": "fd00:9::/125"}]]}
    });
    if let Some(ids) = valid {
        conf["cni.dev/valid-attachments"] = ids
            .iter()
            .map(|i| json!({"containerID": i, "ifname": "eth0"}))
            .collect();
    }
    let env = |k: &str| -> String {
        match k {
            "CNI_COMMAND" => cmd.into(),
            "CNI_CONTAINERID" => id.into(),
            "CNI_NETNS" => "/run/netns/fuzz".into(),
            "CNI_IFNAME" => "eth0".into(),
            "CNI_PATH" => "/nonexistent".into(),
            _ => String::new(),
        }
    };
    match parse_request(&env, conf.to_string().into_bytes()) {
        Ok(r) => r,
        Err((e, _)) => panic!("the fixed request does not parse: {e:?}"),
    }
}

/// Address file name → content, and the other files.
fn disk(dir: &Path) -> (BTreeMap<IpAddr, Vec<u8>>, Vec<String>) {
    let mut ips = BTreeMap::new();
    let mut other = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            match name.parse::<IpAddr>() {
                Ok(ip) => {
                    ips.insert(ip, std::fs::read(e.path()).unwrap_or_default());
                }
                Err(_) => other.push(name),
            }
        }
    }
    (ips, other)
}

fn owner(content: &[u8]) -> Option<String> {
    aksnet_core::cni::ipam::parse_owner(&String::from_utf8_lossy(content)).map(|(id, _)| id)
}

/// Whether the file is (`id`, `eth0`)'s, as DEL matches it (a legacy file
/// without an interface name matches every interface).
fn is_attachment(content: &[u8], id: &str) -> bool {
    aksnet_core::cni::ipam::parse_owner(&String::from_utf8_lossy(content))
        .is_some_and(|(i, ifname)| i == id && ifname.is_none_or(|n| n == "eth0"))
}

/// Input: records separated by NUL, each `NAME` `\x01` `CONTENT`; a
/// record's NAME is a file in the network's directory (names with `/`,
/// `.` or `..` are skipped). The first record names the container to ADD.
pub fn store(data: &[u8]) {
    let Ok(tmp) = tempfile::tempdir() else {
        return;
    };
    let net = tmp.path().join(NET);
    if std::fs::create_dir_all(&net).is_err() {
        return;
    }
    let mut records = data.split(|b| *b == 0);
    let me = records
        .next()
        .map(crate::text)
        .filter(|s| aksnet_core::cni::is_valid_id(s))
        .unwrap_or_else(|| "fuzz-me".into());
    for r in records.take(64) {
        let f = crate::fields(r, 1, 2);
        let name = crate::text(f[0]);
        if name.is_empty() || name == "." || name == ".." || name.contains('/') || name == "lock" {
            continue;
        }
        let _ = std::fs::write(net.join(&name), f.get(1).copied().unwrap_or_default());
    }
    let (before, _) = disk(&net);

    let add = request("ADD", tmp.path(), &me, None);
    match ipam::allocate(&add) {
        Ok(a) => {
            let (after, _) = disk(&net);
            for ipc in &a.result.ips {
                let ip = ipc.address.addr();
                // Ours now, and not someone else's before.
                assert_eq!(owner(&after[&ip]).as_deref(), Some(me.as_str()), "{ip}");
                if let Some(prev) = before.get(&ip) {
                    let o = owner(prev);
                    assert!(
                        o.is_none() || o.as_deref() == Some(me.as_str()),
                        "{ip} was {o:?}'s and was handed to {me}"
                    );
                    assert!(o.is_some(), "{ip} had a file and was handed out again");
                }
            }
            if let Err(e) = ipam::check(&request("CHECK", tmp.path(), &me, None)) {
                check_error(&e, "1.1.0");
            }
        }
        Err(e) => check_error(&e, "1.1.0"),
    }
    if let Err(e) = ipam::release(&request("DEL", tmp.path(), &me, None)) {
        check_error(&e, "1.1.0");
    }
    let (after_del, _) = disk(&net);
    assert!(
        !after_del.values().any(|c| is_attachment(c, &me)),
        "DEL left an address of {me}: {after_del:?}"
    );
    match ipam::gc(&request("GC", tmp.path(), "", Some(&[]))) {
        Ok(_) => {
            let (ips, other) = disk(&net);
            assert!(ips.is_empty(), "GC keeping nothing left {ips:?}");
            assert!(
                !other
                    .iter()
                    .any(|n| n.starts_with(ipam::store::TEMP_PREFIX)),
                "{other:?}"
            );
        }
        Err(e) => check_error(&e, "1.1.0"),
    }
}
