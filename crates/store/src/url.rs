//! Store URLs: `sqlite:PATH`, `etcd://HOST:PORT[,HOST:PORT...]` and
//! `etcds://HOST:PORT[,HOST:PORT...]` (etcd over TLS).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::StoreError;

/// Where the embedded store lives when no path is given.
pub const DEFAULT_SQLITE_PATH: &str = "/var/lib/aksnet/cluster.db";

/// The default store URL.
pub const DEFAULT_STORE_URL: &str = "sqlite:/var/lib/aksnet/cluster.db";

/// A parsed store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite:PATH` (`sqlite:` alone means [`DEFAULT_SQLITE_PATH`];
    /// `sqlite://PATH` is accepted too).
    Sqlite { path: PathBuf },
    /// `etcd://HOST:PORT[,HOST:PORT...]` (plain) or `etcds://...` (TLS,
    /// `tls`): the client endpoints of one etcd cluster, each `HOST:PORT`
    /// (IPv6 hosts in brackets).
    Etcd { endpoints: Vec<String>, tls: bool },
}

impl StoreUrl {
    /// The etcd endpoints as `http://HOST:PORT` (or `https://` for
    /// `etcds://`) URLs.
    pub fn etcd_endpoint_urls(&self) -> Vec<String> {
        match self {
            StoreUrl::Etcd { endpoints, tls } => {
                let scheme = if *tls { "https" } else { "http" };
                endpoints
                    .iter()
                    .map(|e| format!("{scheme}://{e}"))
                    .collect()
            }
            StoreUrl::Sqlite { .. } => Vec::new(),
        }
    }

    /// True for `etcds://`.
    pub fn is_tls(&self) -> bool {
        matches!(self, StoreUrl::Etcd { tls: true, .. })
    }
}

impl Default for StoreUrl {
    fn default() -> Self {
        StoreUrl::Sqlite {
            path: PathBuf::from(DEFAULT_SQLITE_PATH),
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Sqlite { path } => write!(f, "sqlite:{}", path.display()),
            StoreUrl::Etcd { endpoints, tls } => {
                let scheme = if *tls { "etcds" } else { "etcd" };
                write!(f, "{scheme}://{}", endpoints.join(","))
            }
        }
    }
}

fn bad(url: &str, reason: impl Into<String>) -> StoreError {
    StoreError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.into(),
    }
}

fn parse_endpoint(url: &str, ep: &str) -> Result<String, StoreError> {
    if ep.is_empty() {
        return Err(bad(url, "empty endpoint in the etcd endpoint list"));
    }
    if ep.contains('/') || ep.contains('@') || ep.contains('?') {
        return Err(bad(
            url,
            format!("endpoint {ep:?} must be HOST:PORT without a path, user or query"),
        ));
    }
    let (host, port) = if let Some(rest) = ep.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| {
            bad(
                url,
                format!("endpoint {ep:?} opens '[' without closing ']'"),
            )
        })?;
        let port = after.strip_prefix(':').ok_or_else(|| {
            bad(
                url,
                format!("endpoint {ep:?} needs a port after the IPv6 address: [ADDR]:PORT"),
            )
        })?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad(url, format!("{host:?} is not an IPv6 address")));
        }
        (host, port)
    } else {
        let (host, port) = ep
            .rsplit_once(':')
            .ok_or_else(|| bad(url, format!("endpoint {ep:?} needs a port: HOST:PORT")))?;
        if host.contains(':') {
            return Err(bad(
                url,
                format!("endpoint {ep:?}: write IPv6 addresses in brackets, [ADDR]:PORT"),
            ));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(bad(url, format!("endpoint {ep:?} has an empty host")));
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
    {
        return Err(bad(
            url,
            format!("endpoint {ep:?} has an invalid host {host:?}"),
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(ep.to_owned()),
        _ => Err(bad(
            url,
            format!("endpoint {ep:?} has an invalid port {port:?} (1-65535)"),
        )),
    }
}

impl FromStr for StoreUrl {
    type Err = StoreError;

    fn from_str(url: &str) -> Result<Self, StoreError> {
        let trimmed = url.trim();
        if trimmed.is_empty() {
            return Err(bad(url, "the URL is empty"));
        }
        if let Some(rest) = trimmed.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            let path = if path.is_empty() {
                PathBuf::from(DEFAULT_SQLITE_PATH)
            } else {
                PathBuf::from(path)
            };
            if path.as_os_str().as_encoded_bytes().contains(&0) {
                return Err(bad(url, "the path contains a NUL byte"));
            }
            return Ok(StoreUrl::Sqlite { path });
        }
        for (scheme, tls) in [("etcd://", false), ("etcds://", true)] {
            let Some(rest) = trimmed.strip_prefix(scheme) else {
                continue;
            };
            if rest.is_empty() {
                return Err(bad(url, "no etcd endpoint given"));
            }
            let endpoints = rest
                .split(',')
                .map(|ep| parse_endpoint(url, ep.trim()))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(StoreUrl::Etcd { endpoints, tls });
        }
        if trimmed.starts_with("https://") {
            return Err(bad(
                url,
                "write TLS etcd endpoints as etcds://HOST:PORT (with --etcd-ca, --etcd-cert, --etcd-key)",
            ));
        }
        if trimmed.starts_with("http://") {
            return Err(bad(url, "write etcd endpoints as etcd://HOST:PORT"));
        }
        match trimmed.split_once(':') {
            Some((scheme, _)) if !scheme.contains('/') => {
                Err(bad(url, format!("unknown scheme {scheme:?}")))
            }
            _ => Err(bad(
                url,
                format!("no scheme; for a database file write sqlite:{trimmed}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> StoreUrl {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        match s.parse::<StoreUrl>() {
            Ok(u) => panic!("{s} parsed as {u:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn sqlite_forms() {
        assert_eq!(
            ok("sqlite:/tmp/x.db"),
            StoreUrl::Sqlite {
                path: "/tmp/x.db".into()
            }
        );
        assert_eq!(
            ok("sqlite:///tmp/x.db"),
            StoreUrl::Sqlite {
                path: "/tmp/x.db".into()
            }
        );
        assert_eq!(
            ok("sqlite:rel/x.db"),
            StoreUrl::Sqlite {
                path: "rel/x.db".into()
            }
        );
        assert_eq!(ok("sqlite:"), StoreUrl::default());
        assert_eq!(ok(DEFAULT_STORE_URL), StoreUrl::default());
        assert_eq!(StoreUrl::default().to_string(), DEFAULT_STORE_URL);
    }

    #[test]
    fn etcd_forms() {
        let u = ok("etcd://127.0.0.1:2379,localhost:22379, [::1]:2379");
        assert_eq!(
            u,
            StoreUrl::Etcd {
                endpoints: vec![
                    "127.0.0.1:2379".into(),
                    "localhost:22379".into(),
                    "[::1]:2379".into()
                ],
                tls: false
            }
        );
        assert_eq!(
            u.etcd_endpoint_urls()[0],
            "http://127.0.0.1:2379".to_string()
        );
        assert_eq!(
            u.to_string(),
            "etcd://127.0.0.1:2379,localhost:22379,[::1]:2379"
        );
        assert!(!u.is_tls());
        let t = ok("etcds://127.0.0.1:2379,[::1]:2380");
        assert!(t.is_tls());
        assert_eq!(
            t.etcd_endpoint_urls(),
            ["https://127.0.0.1:2379", "https://[::1]:2380"]
        );
        assert_eq!(t.to_string(), "etcds://127.0.0.1:2379,[::1]:2380");
        assert!(err("etcds://").contains("no etcd endpoint"));
        assert!(err("etcds://a").contains("needs a port"));
    }

    #[test]
    fn bad_urls_name_the_url_and_the_problem() {
        let e = err("etcd://127.0.0.1");
        assert!(
            e.contains("\"etcd://127.0.0.1\"") && e.contains("needs a port"),
            "{e}"
        );
        assert!(err("etcd://").contains("no etcd endpoint"));
        assert!(err("etcd://a:1,,b:2").contains("empty endpoint"));
        assert!(err("etcd://a:0").contains("invalid port"));
        assert!(err("etcd://a:99999").contains("invalid port"));
        assert!(err("etcd://:2379").contains("empty host"));
        assert!(err("etcd://::1:2379").contains("brackets"));
        assert!(err("etcd://[::1]").contains("needs a port"));
        assert!(err("etcd://a:1/path").contains("without a path"));
        assert!(err("https://a:1").contains("etcds://HOST:PORT"));
        assert!(err("http://a:1").contains("etcd://HOST:PORT"));
        assert!(err("postgres://x").contains("unknown scheme \"postgres\""));
        assert!(err("/var/lib/x.db").contains("sqlite:/var/lib/x.db"));
        assert!(err("").contains("empty"));
    }
}
