//! nftables rule sets as data, applied as one atomic `nft -j -f -` batch.
//!
//! A [`Batch`] is a list of libnftables JSON commands. [`apply`] sends the
//! whole batch to `nft` in one transaction: either every command takes
//! effect or none does. [`list_table`] reads a table back (its chains, rules
//! with handles and comments, and sets), so that owners can find and delete
//! their own rules by comment.
//!
//! The `nft` process inherits the network namespace of the calling thread:
//! call these inside a [`crate::NetnsGuard`] to reach another namespace.

use std::io::Write;
use std::process::{Command, Stdio};

use ipnet::IpNet;
use serde_json::{json, Value};

use crate::{Error, Result};

/// An nftables address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 only.
    Ip,
    /// IPv6 only.
    Ip6,
    /// Both.
    Inet,
}

impl Family {
    /// The name nft uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
            Family::Inet => "inet",
        }
    }
}

/// The hook of a base chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseChain {
    /// `filter`, `nat` or `route`.
    pub kind: &'static str,
    /// `prerouting`, `input`, `forward`, `output` or `postrouting`.
    pub hook: &'static str,
    /// Priority (dstnat = -100, filter = 0, srcnat = 100).
    pub priority: i32,
    /// `accept` or `drop`; nft's default (accept) if `None`.
    pub policy: Option<&'static str>,
}

impl BaseChain {
    /// A NAT chain at `hook` with the usual priority for it.
    pub fn nat(hook: &'static str) -> BaseChain {
        let priority = if hook == "postrouting" || hook == "input" {
            100
        } else {
            -100
        };
        BaseChain {
            kind: "nat",
            hook,
            priority,
            policy: None,
        }
    }

    /// A filter chain at `hook`, priority 0, policy accept.
    pub fn filter(hook: &'static str) -> BaseChain {
        BaseChain {
            kind: "filter",
            hook,
            priority: 0,
            policy: None,
        }
    }
}

/// A list of nftables commands applied as one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    cmds: Vec<Value>,
}

fn table_obj(f: Family, table: &str) -> Value {
    json!({"family": f.as_str(), "name": table})
}

fn chain_obj(f: Family, table: &str, chain: &str) -> Value {
    json!({"family": f.as_str(), "table": table, "name": chain})
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Number of commands.
    pub fn len(&self) -> usize {
        self.cmds.len()
    }

    /// True when there is no command.
    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }

    /// The commands, as libnftables JSON objects.
    pub fn commands(&self) -> &[Value] {
        &self.cmds
    }

    fn push(&mut self, verb: &str, obj: &str, body: Value) -> &mut Batch {
        self.cmds.push(json!({ verb: { obj: body } }));
        self
    }

    /// `add table` (no error if it exists).
    pub fn add_table(&mut self, f: Family, table: &str) -> &mut Batch {
        self.push("add", "table", table_obj(f, table))
    }

    /// `flush table`: remove every rule and set element, keep chains.
    pub fn flush_table(&mut self, f: Family, table: &str) -> &mut Batch {
        self.push("flush", "table", table_obj(f, table))
    }

    /// `delete table` (fails if it does not exist; add it first in the same
    /// batch to make the deletion unconditional).
    pub fn delete_table(&mut self, f: Family, table: &str) -> &mut Batch {
        self.push("delete", "table", table_obj(f, table))
    }

    /// `add chain`, a base chain if `base` is given (no error if it exists).
    pub fn add_chain(
        &mut self,
        f: Family,
        table: &str,
        chain: &str,
        base: Option<&BaseChain>,
    ) -> &mut Batch {
        let mut c = chain_obj(f, table, chain);
        if let (Some(b), Some(o)) = (base, c.as_object_mut()) {
            o.insert("type".into(), json!(b.kind));
            o.insert("hook".into(), json!(b.hook));
            o.insert("prio".into(), json!(b.priority));
            o.insert("policy".into(), json!(b.policy.unwrap_or("accept")));
        }
        self.push("add", "chain", c)
    }

    /// `flush chain`.
    pub fn flush_chain(&mut self, f: Family, table: &str, chain: &str) -> &mut Batch {
        self.push("flush", "chain", chain_obj(f, table, chain))
    }

    /// `delete chain`.
    pub fn delete_chain(&mut self, f: Family, table: &str, chain: &str) -> &mut Batch {
        self.push("delete", "chain", chain_obj(f, table, chain))
    }

    /// `add rule` with statements `expr` and an optional comment (at most
    /// 128 bytes; longer comments are rejected by nft).
    pub fn add_rule(
        &mut self,
        f: Family,
        table: &str,
        chain: &str,
        expr: Vec<Value>,
        comment: Option<&str>,
    ) -> &mut Batch {
        let mut r = json!({"family": f.as_str(), "table": table, "chain": chain, "expr": expr});
        if let (Some(c), Some(o)) = (comment, r.as_object_mut()) {
            o.insert("comment".into(), json!(c));
        }
        self.push("add", "rule", r)
    }

    /// `delete rule` by handle.
    pub fn delete_rule(&mut self, f: Family, table: &str, chain: &str, handle: u64) -> &mut Batch {
        self.push(
            "delete",
            "rule",
            json!({"family": f.as_str(), "table": table, "chain": chain, "handle": handle}),
        )
    }

    /// `add set` of element type `ty` (e.g. `"ipv4_addr"`) with `flags`
    /// (e.g. `["interval"]`).
    pub fn add_set(
        &mut self,
        f: Family,
        table: &str,
        set: &str,
        ty: &str,
        flags: &[&str],
    ) -> &mut Batch {
        let mut s = json!({"family": f.as_str(), "table": table, "name": set, "type": ty});
        if let (false, Some(o)) = (flags.is_empty(), s.as_object_mut()) {
            o.insert("flags".into(), json!(flags));
        }
        self.push("add", "set", s)
    }

    /// `add element` to a set.
    pub fn add_elements(
        &mut self,
        f: Family,
        table: &str,
        set: &str,
        elem: Vec<Value>,
    ) -> &mut Batch {
        self.push(
            "add",
            "element",
            json!({"family": f.as_str(), "table": table, "name": set, "elem": elem}),
        )
    }

    /// `delete element` from a set.
    pub fn delete_elements(
        &mut self,
        f: Family,
        table: &str,
        set: &str,
        elem: Vec<Value>,
    ) -> &mut Batch {
        self.push(
            "delete",
            "element",
            json!({"family": f.as_str(), "table": table, "name": set, "elem": elem}),
        )
    }

    /// The batch as the JSON document `nft -j -f` reads.
    pub fn to_json(&self) -> Value {
        let mut all = Vec::with_capacity(self.cmds.len() + 1);
        all.push(json!({"metainfo": {"json_schema_version": 1}}));
        all.extend(self.cmds.iter().cloned());
        json!({ "nftables": all })
    }
}

/// Expression and statement builders in libnftables JSON.
pub mod expr {
    use super::*;

    /// `{"payload": {protocol, field}}`, e.g. `("ip", "saddr")`.
    pub fn payload(protocol: &str, field: &str) -> Value {
        json!({"payload": {"protocol": protocol, "field": field}})
    }

    /// `{"meta": {"key": key}}`.
    pub fn meta(key: &str) -> Value {
        json!({"meta": {"key": key}})
    }

    /// A match statement `left op right` (`op` is `==`, `!=` or `in`).
    pub fn matches(left: Value, op: &str, right: Value) -> Value {
        json!({"match": {"op": op, "left": left, "right": right}})
    }

    /// An address or prefix as a match operand: a plain address for a host
    /// prefix, a `prefix` object otherwise.
    pub fn net(n: &IpNet) -> Value {
        if n.prefix_len() == n.max_prefix_len() {
            json!(n.addr().to_string())
        } else {
            json!({"prefix": {"addr": n.network().to_string(), "len": n.prefix_len()}})
        }
    }

    /// The payload protocol of an address family (`ip` or `ip6`).
    pub fn l3(n: &IpNet) -> &'static str {
        if n.addr().is_ipv4() {
            "ip"
        } else {
            "ip6"
        }
    }

    /// `ip[6] saddr op net`.
    pub fn saddr(op: &str, n: &IpNet) -> Value {
        matches(payload(l3(n), "saddr"), op, net(n))
    }

    /// `ip[6] daddr op net`.
    pub fn daddr(op: &str, n: &IpNet) -> Value {
        matches(payload(l3(n), "daddr"), op, net(n))
    }

    /// `meta l4proto proto` (`tcp`, `udp`, `sctp`).
    pub fn l4proto(proto: &str) -> Value {
        matches(meta("l4proto"), "==", json!(proto))
    }

    /// `proto dport == port`.
    pub fn dport(proto: &str, port: u16) -> Value {
        matches(payload(proto, "dport"), "==", json!(port))
    }

    /// `fib daddr type local`.
    pub fn fib_daddr_local() -> Value {
        matches(
            json!({"fib": {"result": "type", "flags": ["daddr"]}}),
            "==",
            json!("local"),
        )
    }

    /// `ct status dnat`.
    pub fn ct_status_dnat() -> Value {
        matches(json!({"ct": {"key": "status"}}), "in", json!("dnat"))
    }

    /// `counter`.
    pub fn counter() -> Value {
        json!({"counter": null})
    }

    /// `masquerade`.
    pub fn masquerade() -> Value {
        json!({"masquerade": null})
    }

    /// `dnat [ip|ip6] to addr[:port]` (the family is needed in inet tables).
    pub fn dnat(addr: std::net::IpAddr, port: Option<u16>) -> Value {
        let fam = if addr.is_ipv4() { "ip" } else { "ip6" };
        match port {
            Some(p) => json!({"dnat": {"family": fam, "addr": addr.to_string(), "port": p}}),
            None => json!({"dnat": {"family": fam, "addr": addr.to_string()}}),
        }
    }

    /// `snat [ip|ip6] to addr`.
    pub fn snat(addr: std::net::IpAddr) -> Value {
        let fam = if addr.is_ipv4() { "ip" } else { "ip6" };
        json!({"snat": {"family": fam, "addr": addr.to_string()}})
    }

    /// `accept`.
    pub fn accept() -> Value {
        json!({"accept": null})
    }

    /// `drop`.
    pub fn drop() -> Value {
        json!({"drop": null})
    }

    /// `return`.
    pub fn ret() -> Value {
        json!({"return": null})
    }

    /// `jump chain`.
    pub fn jump(chain: &str) -> Value {
        json!({"jump": {"target": chain}})
    }
}

/// A rule as listed by nft.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedRule {
    /// Chain it is in.
    pub chain: String,
    /// Handle (for deletion).
    pub handle: u64,
    /// Its comment, if any.
    pub comment: Option<String>,
    /// Its statements.
    pub expr: Vec<Value>,
}

/// A table as listed by nft.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// Chain names.
    pub chains: Vec<String>,
    /// Rules, in listing order.
    pub rules: Vec<ListedRule>,
    /// Sets: name and elements (raw JSON).
    pub sets: Vec<(String, Vec<Value>)>,
}

impl Table {
    /// Parse `nft -j list table` output.
    pub fn parse(doc: &Value) -> Table {
        let mut t = Table::default();
        let items = doc
            .get("nftables")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for item in items {
            if let Some(c) = item.get("chain") {
                if let Some(n) = c.get("name").and_then(Value::as_str) {
                    t.chains.push(n.to_string());
                }
            } else if let Some(r) = item.get("rule") {
                let (Some(chain), Some(handle)) = (
                    r.get("chain").and_then(Value::as_str),
                    r.get("handle").and_then(Value::as_u64),
                ) else {
                    continue;
                };
                t.rules.push(ListedRule {
                    chain: chain.to_string(),
                    handle,
                    comment: r.get("comment").and_then(Value::as_str).map(str::to_string),
                    expr: r
                        .get("expr")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                });
            } else if let Some(s) = item.get("set") {
                if let Some(n) = s.get("name").and_then(Value::as_str) {
                    let elems = s
                        .get("elem")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    t.sets.push((n.to_string(), elems));
                }
            }
        }
        t
    }

    /// Rules whose comment equals `comment`.
    pub fn rules_with_comment<'a>(
        &'a self,
        comment: &'a str,
    ) -> impl Iterator<Item = &'a ListedRule> + 'a {
        self.rules
            .iter()
            .filter(move |r| r.comment.as_deref() == Some(comment))
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

fn run_nft(args: &[&str], stdin: Option<&[u8]>, op: &str) -> Result<Vec<u8>> {
    let bin = nft_binary();
    let mut cmd = Command::new(&bin);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::Nft {
        op: op.to_string(),
        msg: format!("cannot run {bin}: {e} (install the nftables package)"),
    })?;
    if let (Some(data), Some(mut sin)) = (stdin, child.stdin.take()) {
        sin.write_all(data).map_err(|e| Error::Nft {
            op: op.to_string(),
            msg: format!("write to nft: {e}"),
        })?;
    }
    let out = child.wait_with_output().map_err(|e| Error::Nft {
        op: op.to_string(),
        msg: format!("wait for nft: {e}"),
    })?;
    if !out.status.success() {
        return Err(Error::Nft {
            op: op.to_string(),
            msg: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

/// Apply `batch` atomically. An empty batch is a no-op.
pub fn apply(batch: &Batch) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let doc = batch.to_json().to_string();
    run_nft(&["-j", "-f", "-"], Some(doc.as_bytes()), "apply batch").map(|_| ())
}

/// Check `batch` without applying it (`nft -c`).
pub fn check(batch: &Batch) -> Result<()> {
    let doc = batch.to_json().to_string();
    run_nft(
        &["-c", "-j", "-f", "-"],
        Some(doc.as_bytes()),
        "check batch",
    )
    .map(|_| ())
}

/// List table `family name`; `None` if it does not exist.
pub fn list_table(f: Family, name: &str) -> Result<Option<Table>> {
    match run_nft(
        &["-j", "list", "table", f.as_str(), name],
        None,
        "list table",
    ) {
        Ok(out) => {
            let doc: Value = serde_json::from_slice(&out).map_err(|e| Error::Nft {
                op: "list table".into(),
                msg: format!("unreadable JSON: {e}"),
            })?;
            Ok(Some(Table::parse(&doc)))
        }
        Err(Error::Nft { msg, .. }) if msg.contains("No such file or directory") => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::expr::*;
    use super::*;

    #[test]
    fn batch_renders_libnftables_json() {
        let mut b = Batch::new();
        let pod: IpNet = "10.244.0.5/32".parse().unwrap();
        let subnet: IpNet = "10.244.0.0/24".parse().unwrap();
        b.add_table(Family::Ip, "aksnet")
            .add_chain(
                Family::Ip,
                "aksnet",
                "post",
                Some(&BaseChain::nat("postrouting")),
            )
            .add_rule(
                Family::Ip,
                "aksnet",
                "post",
                vec![saddr("==", &pod), daddr("!=", &subnet), masquerade()],
                Some("id"),
            )
            .delete_rule(Family::Ip, "aksnet", "post", 7);
        let j = b.to_json();
        let expected = json!({"nftables": [
            {"metainfo": {"json_schema_version": 1}},
            {"add": {"table": {"family": "ip", "name": "aksnet"}}},
            {"add": {"chain": {"family": "ip", "table": "aksnet", "name": "post",
                "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}},
            {"add": {"rule": {"family": "ip", "table": "aksnet", "chain": "post", "comment": "id",
                "expr": [
                    {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.244.0.5"}},
                    {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                        "right": {"prefix": {"addr": "10.244.0.0", "len": 24}}}},
                    {"masquerade": null}
                ]}}},
            {"delete": {"rule": {"family": "ip", "table": "aksnet", "chain": "post", "handle": 7}}}
        ]});
        assert_eq!(j, expected);
        assert_eq!(b.len(), 4);
    }

    #[test]
    fn v6_operands_and_dnat() {
        let n: IpNet = "fd00::/64".parse().unwrap();
        assert_eq!(
            daddr("==", &n),
            json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}},
                "right": {"prefix": {"addr": "fd00::", "len": 64}}}})
        );
        assert_eq!(
            dnat("10.0.0.2".parse().unwrap(), Some(80)),
            json!({"dnat": {"family": "ip", "addr": "10.0.0.2", "port": 80}})
        );
    }

    #[test]
    fn parse_listing() {
        let doc = json!({"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "ip", "name": "t", "handle": 1}},
            {"chain": {"family": "ip", "table": "t", "name": "post", "handle": 1}},
            {"rule": {"family": "ip", "table": "t", "chain": "post", "handle": 2, "comment": "a b",
                "expr": [{"masquerade": null}]}},
            {"rule": {"family": "ip", "table": "t", "chain": "post", "handle": 3, "expr": []}},
            {"rule": {"family": "ip", "table": "t", "chain": "post"}},
            {"set": {"family": "ip", "table": "t", "name": "s", "elem": ["10.0.0.1"]}}
        ]});
        let t = Table::parse(&doc);
        assert_eq!(t.chains, vec!["post"]);
        assert_eq!(t.rules.len(), 2);
        assert_eq!(
            t.rules_with_comment("a b")
                .map(|r| r.handle)
                .collect::<Vec<_>>(),
            vec![2]
        );
        assert_eq!(t.sets, vec![("s".to_string(), vec![json!("10.0.0.1")])]);
        assert_eq!(Table::parse(&json!({})), Table::default());
    }
}
