//! Data types of the store API: key-values, events, transactions, leases.

use crate::error::{Result, StoreError};

pub use crate::lease::LeaseId;

/// A granted lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub id: LeaseId,
    /// The TTL the store granted, in seconds (etcd may raise a small TTL to
    /// its minimum).
    pub ttl_secs: i64,
}

/// A key with its value and etcd metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the put that created the key (since its last deletion).
    pub create_revision: i64,
    /// Revision of the last put (or, in a delete event, of the delete).
    pub mod_revision: i64,
    /// Number of puts since creation: 1 after the first put; 0 for a deleted key.
    pub version: i64,
    /// The lease the key is attached to.
    pub lease: Option<LeaseId>,
}

impl KeyValue {
    /// The value as UTF-8 text, if it is.
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change seen by a watch.
///
/// For a delete, `kv` holds the key and `kv.mod_revision` is the revision of
/// the delete; the value is empty and the other numbers are 0 (as in etcd).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
}

impl Event {
    /// The revision at which the change happened.
    pub fn revision(&self) -> i64 {
        self.kv.mod_revision
    }
}

/// Result of a prefix list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeResponse {
    /// Keys in byte order.
    pub kvs: Vec<KeyValue>,
    /// The store revision the list was read at; watch from `revision + 1`
    /// to see every later change.
    pub revision: i64,
}

/// Result of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteResponse {
    /// How many keys were deleted.
    pub deleted: i64,
    /// Store revision after the delete (unchanged when nothing was deleted).
    pub revision: i64,
}

/// Comparison operator of a transaction compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Greater,
    Less,
}

impl CompareOp {
    pub(crate) fn holds<T: Ord + ?Sized>(self, actual: &T, expected: &T) -> bool {
        match self {
            CompareOp::Equal => actual == expected,
            CompareOp::NotEqual => actual != expected,
            CompareOp::Greater => actual > expected,
            CompareOp::Less => actual < expected,
        }
    }
}

/// What a compare looks at. A missing key has version, create and mod
/// revision 0; a value compare on a missing key is always false (etcd).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareTarget {
    Version(i64),
    CreateRevision(i64),
    ModRevision(i64),
    Value(Vec<u8>),
}

/// One condition of a transaction: `key`'s `target` `op` the given number or value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    pub key: String,
    pub op: CompareOp,
    pub target: CompareTarget,
}

impl Compare {
    pub fn version(key: impl Into<String>, op: CompareOp, version: i64) -> Self {
        Compare {
            key: key.into(),
            op,
            target: CompareTarget::Version(version),
        }
    }
    pub fn create_revision(key: impl Into<String>, op: CompareOp, revision: i64) -> Self {
        Compare {
            key: key.into(),
            op,
            target: CompareTarget::CreateRevision(revision),
        }
    }
    pub fn mod_revision(key: impl Into<String>, op: CompareOp, revision: i64) -> Self {
        Compare {
            key: key.into(),
            op,
            target: CompareTarget::ModRevision(revision),
        }
    }
    pub fn value(key: impl Into<String>, op: CompareOp, value: impl Into<Vec<u8>>) -> Self {
        Compare {
            key: key.into(),
            op,
            target: CompareTarget::Value(value.into()),
        }
    }
    /// The key does not exist (`version == 0`): the create-if-absent guard.
    pub fn absent(key: impl Into<String>) -> Self {
        Self::version(key, CompareOp::Equal, 0)
    }
    /// The key exists.
    pub fn exists(key: impl Into<String>) -> Self {
        Self::version(key, CompareOp::Greater, 0)
    }

    /// Evaluates the compare against the current state of its key.
    pub fn evaluate(&self, current: Option<&KeyValue>) -> bool {
        let (version, create, modr) = current
            .map(|kv| (kv.version, kv.create_revision, kv.mod_revision))
            .unwrap_or((0, 0, 0));
        match &self.target {
            CompareTarget::Version(v) => self.op.holds(&version, v),
            CompareTarget::CreateRevision(r) => self.op.holds(&create, r),
            CompareTarget::ModRevision(r) => self.op.holds(&modr, r),
            CompareTarget::Value(v) => match current {
                Some(kv) => self.op.holds(kv.value.as_slice(), v.as_slice()),
                None => false,
            },
        }
    }
}

/// One operation of a transaction branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    Put {
        key: String,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    },
    Delete {
        key: String,
    },
    DeletePrefix {
        prefix: String,
    },
    Get {
        key: String,
    },
    Range {
        prefix: String,
    },
}

impl TxnOp {
    pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        TxnOp::Put {
            key: key.into(),
            value: value.into(),
            lease: None,
        }
    }
    pub fn put_with_lease(
        key: impl Into<String>,
        value: impl Into<Vec<u8>>,
        lease: Option<LeaseId>,
    ) -> Self {
        TxnOp::Put {
            key: key.into(),
            value: value.into(),
            lease,
        }
    }
    pub fn delete(key: impl Into<String>) -> Self {
        TxnOp::Delete { key: key.into() }
    }
    pub fn delete_prefix(prefix: impl Into<String>) -> Self {
        TxnOp::DeletePrefix {
            prefix: prefix.into(),
        }
    }
    pub fn get(key: impl Into<String>) -> Self {
        TxnOp::Get { key: key.into() }
    }
    pub fn range(prefix: impl Into<String>) -> Self {
        TxnOp::Range {
            prefix: prefix.into(),
        }
    }
}

/// An etcd transaction: if every compare holds, run `success`, else `failure`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub success: Vec<TxnOp>,
    pub failure: Vec<TxnOp>,
}

impl Txn {
    /// etcd's default `--max-txn-ops`; both backends enforce it.
    pub const MAX_OPS: usize = 128;

    pub fn new() -> Self {
        Self::default()
    }
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.compares.extend(compares);
        self
    }
    pub fn and_then(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.success.extend(ops);
        self
    }
    pub fn or_else(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.failure.extend(ops);
        self
    }

    /// Checks the shape both backends accept: non-empty keys and
    /// prefixes to delete, at most [`Txn::MAX_OPS`] compares and ops per
    /// branch, and no key written twice in one branch (etcd rejects that as
    /// "duplicate key").
    pub fn validate(&self) -> Result<()> {
        for c in &self.compares {
            crate::keys::check_key(&c.key)?;
        }
        for (what, n) in [
            ("compares", self.compares.len()),
            ("success ops", self.success.len()),
            ("failure ops", self.failure.len()),
        ] {
            if n > Self::MAX_OPS {
                return Err(StoreError::InvalidArgument(format!(
                    "transaction has {n} {what}; etcd allows at most {}",
                    Self::MAX_OPS
                )));
            }
        }
        for branch in [&self.success, &self.failure] {
            let mut written: Vec<&str> = Vec::new();
            let mut prefixes: Vec<&str> = Vec::new();
            for op in branch {
                match op {
                    TxnOp::Put { key, .. } | TxnOp::Delete { key } => {
                        crate::keys::check_key(key)?;
                        if written.contains(&key.as_str()) {
                            return Err(StoreError::InvalidArgument(format!(
                                "transaction writes key {key:?} twice in one branch"
                            )));
                        }
                        written.push(key);
                    }
                    TxnOp::DeletePrefix { prefix } => {
                        if prefix.is_empty() {
                            return Err(StoreError::InvalidKey {
                                key: String::new(),
                                reason: "refusing to delete every key: give a non-empty prefix"
                                    .into(),
                            });
                        }
                        prefixes.push(prefix)
                    }
                    TxnOp::Get { key } => crate::keys::check_key(key)?,
                    TxnOp::Range { .. } => {}
                }
            }
            for p in &prefixes {
                if let Some(k) = written.iter().find(|k| k.starts_with(*p)) {
                    return Err(StoreError::InvalidArgument(format!(
                        "transaction writes key {k:?} and deletes its prefix {p:?} in one branch"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The result of one transaction operation, in the order of the branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOpResponse {
    Put { revision: i64 },
    Delete { deleted: i64 },
    Get(Option<KeyValue>),
    Range(Vec<KeyValue>),
}

/// Result of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResponse {
    /// True when every compare held and the `success` branch ran.
    pub succeeded: bool,
    /// Store revision after the transaction.
    pub revision: i64,
    pub responses: Vec<TxnOpResponse>,
}

impl TxnResponse {
    /// The `Get` result of operation `index` of the branch that ran.
    pub fn get(&self, index: usize) -> Option<&KeyValue> {
        match self.responses.get(index) {
            Some(TxnOpResponse::Get(kv)) => kv.as_ref(),
            _ => None,
        }
    }
    /// The `Range` result of operation `index` of the branch that ran.
    pub fn range(&self, index: usize) -> &[KeyValue] {
        match self.responses.get(index) {
            Some(TxnOpResponse::Range(kvs)) => kvs,
            _ => &[],
        }
    }
}
