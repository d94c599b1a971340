//! A batch: commands applied as one transaction (`nft -j -f -`): all of
//! them take effect or none does.

use std::fmt;

use serde_json::{json, Value as J};

use crate::expr::Rule;
use crate::json;
use crate::model::{BaseChain, Element, Set, TableId};
use crate::value::Value;

/// One command of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `add table` (no error when it exists).
    AddTable(TableId),
    /// `delete table` (fails when it does not exist).
    DeleteTable(TableId),
    /// `add chain`, a base chain when `base` is given (no error when it
    /// exists with the same hook).
    AddChain {
        table: TableId,
        chain: String,
        base: Option<BaseChain>,
    },
    /// `flush chain`: remove its rules.
    FlushChain { table: TableId, chain: String },
    /// `delete chain` (fails when it has rules or something jumps to it).
    DeleteChain { table: TableId, chain: String },
    /// `add rule` (appends).
    AddRule {
        table: TableId,
        chain: String,
        rule: Rule,
    },
    /// `delete rule` by the handle a listing gave.
    DeleteRule {
        table: TableId,
        chain: String,
        handle: u64,
    },
    /// `add set` / `add map`: the declaration, without elements.
    AddSet {
        table: TableId,
        set: String,
        decl: Set,
    },
    /// `flush set` / `flush map`: remove every element.
    FlushSet {
        table: TableId,
        set: String,
        map: bool,
    },
    /// `delete set` / `delete map` (fails when a rule uses it).
    DeleteSet {
        table: TableId,
        set: String,
        map: bool,
    },
    /// `add element` (an identical element already there is no error; the
    /// same key with other data is).
    AddElements {
        table: TableId,
        set: String,
        elements: Vec<(Value, Element)>,
    },
    /// `create element` (fails when any key exists).
    CreateElements {
        table: TableId,
        set: String,
        elements: Vec<(Value, Element)>,
    },
    /// `delete element` (fails when any key is missing).
    DeleteElements {
        table: TableId,
        set: String,
        keys: Vec<Value>,
    },
}

impl Command {
    /// The table the command is about.
    pub fn table(&self) -> &TableId {
        match self {
            Command::AddTable(t) | Command::DeleteTable(t) => t,
            Command::AddChain { table, .. }
            | Command::FlushChain { table, .. }
            | Command::DeleteChain { table, .. }
            | Command::AddRule { table, .. }
            | Command::DeleteRule { table, .. }
            | Command::AddSet { table, .. }
            | Command::FlushSet { table, .. }
            | Command::DeleteSet { table, .. }
            | Command::AddElements { table, .. }
            | Command::CreateElements { table, .. }
            | Command::DeleteElements { table, .. } => table,
        }
    }

    /// The libnftables JSON command.
    pub fn to_json(&self) -> J {
        let set_kw = |map: bool| if map { "map" } else { "set" };
        match self {
            Command::AddTable(t) => json!({"add": {"table": json::table(t)}}),
            Command::DeleteTable(t) => json!({"delete": {"table": json::table(t)}}),
            Command::AddChain { table, chain, base } => {
                json!({"add": {"chain": json::chain(table, chain, base.as_ref())}})
            }
            Command::FlushChain { table, chain } => {
                json!({"flush": {"chain": json::chain(table, chain, None)}})
            }
            Command::DeleteChain { table, chain } => {
                json!({"delete": {"chain": json::chain(table, chain, None)}})
            }
            Command::AddRule { table, chain, rule } => {
                json!({"add": {"rule": json::rule(table, chain, rule)}})
            }
            Command::DeleteRule {
                table,
                chain,
                handle,
            } => json!({"delete": {"rule": {"family": table.family.as_str(),
                "table": table.name, "chain": chain, "handle": handle}}}),
            Command::AddSet { table, set, decl } => {
                let (kw, body) = json::set(table, set, decl);
                json!({"add": { kw: body }})
            }
            Command::FlushSet { table, set, map } => {
                json!({"flush": { set_kw(*map): {"family": table.family.as_str(), "table": table.name, "name": set}}})
            }
            Command::DeleteSet { table, set, map } => {
                json!({"delete": { set_kw(*map): {"family": table.family.as_str(), "table": table.name, "name": set}}})
            }
            Command::AddElements {
                table,
                set,
                elements,
            } => json!({"add": {"element": json::elements(table, set,
                elements.iter().map(|(k, e)| json::element(k, e)).collect())}}),
            Command::CreateElements {
                table,
                set,
                elements,
            } => json!({"create": {"element": json::elements(table, set,
                elements.iter().map(|(k, e)| json::element(k, e)).collect())}}),
            Command::DeleteElements { table, set, keys } => {
                json!({"delete": {"element": json::elements(table, set,
                keys.iter().map(json::value).collect())}})
            }
        }
    }
}

fn elems(f: &mut fmt::Formatter<'_>, items: &[(Value, Element)]) -> fmt::Result {
    let parts: Vec<String> = items
        .iter()
        .map(|(k, e)| {
            let mut s = k.to_string();
            if let Some(t) = e.timeout {
                s.push_str(&format!(" timeout {t}s"));
            }
            if let Some(c) = &e.comment {
                s.push_str(&format!(" comment \"{c}\""));
            }
            if let Some(d) = &e.data {
                s.push_str(&format!(" : {d}"));
            }
            s
        })
        .collect();
    write!(f, "{{ {} }}", parts.join(", "))
}

/// The nft script form (`nft -f`), for logs and reports.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kw = |map: bool| if map { "map" } else { "set" };
        match self {
            Command::AddTable(t) => write!(f, "add table {t}"),
            Command::DeleteTable(t) => write!(f, "delete table {t}"),
            Command::AddChain { table, chain, base } => {
                write!(f, "add chain {table} {chain}")?;
                if let Some(b) = base {
                    write!(
                        f,
                        " {{ type {} hook {} priority {}; policy {}; }}",
                        b.kind.as_str(),
                        b.hook.as_str(),
                        b.priority,
                        b.policy.as_str()
                    )?;
                }
                Ok(())
            }
            Command::FlushChain { table, chain } => write!(f, "flush chain {table} {chain}"),
            Command::DeleteChain { table, chain } => write!(f, "delete chain {table} {chain}"),
            Command::AddRule { table, chain, rule } => {
                write!(f, "add rule {table} {chain} {rule}")
            }
            Command::DeleteRule {
                table,
                chain,
                handle,
            } => write!(f, "delete rule {table} {chain} handle {handle}"),
            Command::AddSet { table, set, decl } => {
                let key: Vec<&str> = decl.key.iter().map(|k| k.as_str()).collect();
                write!(
                    f,
                    "add {} {table} {set} {{ type {}",
                    kw(decl.is_map()),
                    key.join(" . ")
                )?;
                match &decl.data {
                    Some(crate::MapData::Verdict) => write!(f, " : verdict")?,
                    Some(crate::MapData::Values(d)) => {
                        let d: Vec<&str> = d.iter().map(|k| k.as_str()).collect();
                        write!(f, " : {}", d.join(" . "))?
                    }
                    None => {}
                }
                write!(f, ";")?;
                let mut fl = Vec::new();
                if decl.flags.interval {
                    fl.push("interval");
                }
                if decl.flags.timeout {
                    fl.push("timeout");
                }
                if !fl.is_empty() {
                    write!(f, " flags {};", fl.join(","))?;
                }
                if let Some(t) = decl.timeout {
                    write!(f, " timeout {t}s;")?;
                }
                write!(f, " }}")
            }
            Command::FlushSet { table, set, map } => write!(f, "flush {} {table} {set}", kw(*map)),
            Command::DeleteSet { table, set, map } => {
                write!(f, "delete {} {table} {set}", kw(*map))
            }
            Command::AddElements {
                table,
                set,
                elements,
            } => {
                write!(f, "add element {table} {set} ")?;
                elems(f, elements)
            }
            Command::CreateElements {
                table,
                set,
                elements,
            } => {
                write!(f, "create element {table} {set} ")?;
                elems(f, elements)
            }
            Command::DeleteElements { table, set, keys } => {
                let k: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
                write!(f, "delete element {table} {set} {{ {} }}", k.join(", "))
            }
        }
    }
}

/// Commands applied in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    pub commands: Vec<Command>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    pub fn push(&mut self, c: Command) -> &mut Batch {
        self.commands.push(c);
        self
    }

    pub fn extend(&mut self, other: Batch) -> &mut Batch {
        self.commands.extend(other.commands);
        self
    }

    pub fn len(&self) -> usize {
        self.commands.len()
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// The whole document for `nft -j -f -`.
    pub fn to_json(&self) -> J {
        let mut all = vec![json!({"metainfo": {"json_schema_version": 1}})];
        all.extend(self.commands.iter().map(Command::to_json));
        json!({ "nftables": all })
    }
}

/// One command a line, as an nft script.
impl fmt::Display for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.commands {
            writeln!(f, "{c}")?;
        }
        Ok(())
    }
}
