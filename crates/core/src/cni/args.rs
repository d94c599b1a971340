//! `CNI_ARGS`: `K=V;K2=V2`.

use std::net::IpAddr;

use super::error::CniError;

/// The keys aksnet understands; others need `IgnoreUnknown=1`.
const KNOWN: [&str; 7] = [
    "IgnoreUnknown",
    "IP",
    "MAC",
    "K8S_POD_NAMESPACE",
    "K8S_POD_NAME",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
];

/// Parsed `CNI_ARGS`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    /// Every pair, in order.
    pub pairs: Vec<(String, String)>,
    /// Requested addresses (`IP=a[,b]`).
    pub ips: Vec<IpAddr>,
    /// Requested MAC (`MAC=`).
    pub mac: Option<String>,
}

impl CniArgs {
    /// Parse `CNI_ARGS`. A pair without `=` is error 4; so is an unknown
    /// key unless `IgnoreUnknown` is `1` or `true`; a bad `IP=` is error 4.
    pub fn parse(s: &str) -> Result<CniArgs, CniError> {
        let mut out = CniArgs::default();
        for part in s.split(';') {
            if part.is_empty() {
                continue;
            }
            let Some((k, v)) = part.split_once('=') else {
                return Err(CniError::env(format!(
                    "CNI_ARGS: {part:?} is not a KEY=VALUE pair"
                )));
            };
            out.pairs.push((k.to_string(), v.to_string()));
        }
        let ignore = out
            .get("IgnoreUnknown")
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        for (k, v) in &out.pairs {
            match k.as_str() {
                "IP" => {
                    for ip in v.split(',').filter(|s| !s.is_empty()) {
                        let ip = ip.parse::<IpAddr>().map_err(|_| {
                            CniError::env(format!(
                                "CNI_ARGS: IP={ip:?} is not an IP address (e.g. IP=10.244.0.7)"
                            ))
                        })?;
                        out.ips.push(ip);
                    }
                }
                "MAC" => out.mac = Some(v.clone()),
                other if !ignore && !KNOWN.contains(&other) => {
                    return Err(CniError::env(format!(
                        "CNI_ARGS: unknown key {other:?} (known: {}; add IgnoreUnknown=1 to pass others)",
                        KNOWN.join(", ")
                    )))
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_runtime_args() {
        let a = CniArgs::parse(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=abc;FOO=bar",
        )
        .unwrap();
        assert_eq!(a.get("K8S_POD_NAME"), Some("p"));
        assert_eq!(a.get("FOO"), Some("bar"));
        assert!(a.ips.is_empty());
    }

    #[test]
    fn ip_and_mac() {
        let a = CniArgs::parse("IP=10.0.0.5,fd00::5;MAC=02:00:00:00:00:01").unwrap();
        assert_eq!(a.ips.len(), 2);
        assert_eq!(a.mac.as_deref(), Some("02:00:00:00:00:01"));
        assert_eq!(CniArgs::parse("IP=10.0.0.500").unwrap_err().code, 4);
    }

    #[test]
    fn errors() {
        assert_eq!(CniArgs::parse("FOO=1").unwrap_err().code, 4);
        assert_eq!(CniArgs::parse("novalue").unwrap_err().code, 4);
        assert!(CniArgs::parse("").unwrap().pairs.is_empty());
        assert!(CniArgs::parse(";;").unwrap().pairs.is_empty());
        assert!(CniArgs::parse("IgnoreUnknown=true;X=").is_ok());
    }
}
