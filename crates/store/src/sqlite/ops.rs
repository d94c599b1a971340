//! Reads and writes inside one SQLite transaction.
//!
//! Every write goes through a [`Writer`], opened with `BEGIN IMMEDIATE`
//! so that only one process at a time writes. The writer allocates the next
//! revision on the first change, appends each change to the event log in
//! the same transaction, reaps expired leases first, and saves the new
//! revision (and compacts the log when it grew past the retention) before
//! the commit.

use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::{db, Shared};
use crate::error::{Result, StoreError};
use crate::keys::prefix_end;
use crate::types::{Compare, KeyValue, LeaseId, TxnOp, TxnOpResponse, TxnResponse};

pub(crate) const EVENT_PUT: i64 = 0;
pub(crate) const EVENT_DELETE: i64 = 1;

/// Wall-clock milliseconds since the epoch: lease deadlines are shared by
/// every process on the machine, so they use the shared clock.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The `meta` counters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    pub revision: i64,
    pub compact_revision: i64,
}

pub(crate) fn read_meta(conn: &Connection) -> rusqlite::Result<Meta> {
    conn.query_row(
        "SELECT (SELECT value FROM meta WHERE name = 'revision'),
                (SELECT value FROM meta WHERE name = 'compact_revision')",
        [],
        |r| {
            Ok(Meta {
                revision: r.get(0)?,
                compact_revision: r.get(1)?,
            })
        },
    )
}

/// True when some lease has passed its deadline and awaits reaping.
pub(crate) fn lease_due(conn: &Connection, now: i64) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM leases WHERE expires_ms <= ?1)",
        [now],
        |r| r.get(0),
    )
}

fn lease_of(raw: i64) -> Option<LeaseId> {
    (raw != 0).then_some(LeaseId(raw))
}

fn key_of(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

const KV_COLUMNS: &str = "key, value, create_rev, mod_rev, version, lease";

fn kv_from_row(r: &Row<'_>) -> rusqlite::Result<KeyValue> {
    Ok(KeyValue {
        key: key_of(r.get(0)?),
        value: r.get(1)?,
        create_revision: r.get(2)?,
        mod_revision: r.get(3)?,
        version: r.get(4)?,
        lease: lease_of(r.get(5)?),
    })
}

pub(crate) fn get_kv(conn: &Connection, key: &str) -> rusqlite::Result<Option<KeyValue>> {
    conn.prepare_cached(&format!("SELECT {KV_COLUMNS} FROM kv WHERE key = ?1"))?
        .query_row([key.as_bytes()], kv_from_row)
        .optional()
}

pub(crate) fn range_kvs(conn: &Connection, prefix: &str) -> rusqlite::Result<Vec<KeyValue>> {
    let end = prefix_end(prefix.as_bytes());
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {KV_COLUMNS} FROM kv WHERE key >= ?1 AND (?2 IS NULL OR key < ?2) ORDER BY key"
    ))?;
    let rows = stmt.query_map(params![prefix.as_bytes(), end], kv_from_row)?;
    rows.collect()
}

/// Runs `f` in a `BEGIN IMMEDIATE` transaction with a [`Writer`]; commits,
/// then wakes this process's watchers when something changed.
pub(crate) fn write_on<T>(
    conn: &mut Connection,
    shared: &Shared,
    what: &str,
    f: impl FnOnce(&mut Writer<'_>) -> Result<T>,
) -> Result<T> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db(shared, what))?;
    let meta = read_meta(&tx).map_err(db(shared, what))?;
    let mut w = Writer {
        conn: &tx,
        shared,
        what,
        base: meta.revision,
        rev: None,
        sub: 0,
        compact_revision: meta.compact_revision,
        changed: false,
    };
    w.expire_leases(now_ms())?;
    let out = f(&mut w)?;
    let changed = w.finish()?;
    tx.commit().map_err(db(shared, what))?;
    if changed {
        shared.notify.bump();
    }
    Ok(out)
}

/// The write side of one transaction.
pub(crate) struct Writer<'c> {
    conn: &'c Connection,
    shared: &'c Shared,
    what: &'c str,
    /// Last committed revision (or the last closed one in this transaction).
    base: i64,
    /// The revision being written, once something changed.
    rev: Option<i64>,
    sub: i64,
    compact_revision: i64,
    changed: bool,
}

impl Writer<'_> {
    fn err(&self) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        db(self.shared, self.what)
    }

    /// The revision readers see now.
    pub fn revision(&self) -> i64 {
        self.rev.unwrap_or(self.base)
    }

    fn next_change(&mut self) -> (i64, i64) {
        let rev = *self.rev.get_or_insert(self.base + 1);
        let sub = self.sub;
        self.sub += 1;
        self.changed = true;
        (rev, sub)
    }

    /// Ends the current revision: the next change gets a new one.
    fn close_revision(&mut self) {
        if let Some(rev) = self.rev.take() {
            self.base = rev;
            self.sub = 0;
        }
    }

    fn log(&self, rev: i64, sub: i64, kind: i64, kv: &KeyValue) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO events (rev, sub, kind, key, value, create_rev, version, lease)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    rev,
                    sub,
                    kind,
                    kv.key.as_bytes(),
                    kv.value,
                    kv.create_revision,
                    kv.version,
                    kv.lease.map_or(0, |l| l.0)
                ])
            })
            .map_err(self.err())?;
        Ok(())
    }

    pub fn lease_exists(&self, id: LeaseId) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM leases WHERE id = ?1)",
                [id.0],
                |r| r.get(0),
            )
            .map_err(self.err())
    }

    pub fn put(&mut self, key: &str, value: &[u8], lease: Option<LeaseId>) -> Result<i64> {
        crate::keys::check_key(key)?;
        if let Some(id) = lease {
            if !self.lease_exists(id)? {
                return Err(StoreError::LeaseNotFound(id));
            }
        }
        let old = get_kv(self.conn, key).map_err(self.err())?;
        let (rev, sub) = self.next_change();
        let kv = KeyValue {
            key: key.to_owned(),
            value: value.to_vec(),
            create_revision: old.as_ref().map_or(rev, |o| o.create_revision),
            mod_revision: rev,
            version: old.as_ref().map_or(1, |o| o.version + 1),
            lease,
        };
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO kv (key, value, create_rev, mod_rev, version, lease)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    key.as_bytes(),
                    value,
                    kv.create_revision,
                    rev,
                    kv.version,
                    lease.map_or(0, |l| l.0)
                ])
            })
            .map_err(self.err())?;
        self.log(rev, sub, EVENT_PUT, &kv)?;
        Ok(rev)
    }

    fn delete_existing(&mut self, key: &str) -> Result<()> {
        let (rev, sub) = self.next_change();
        self.conn
            .prepare_cached("DELETE FROM kv WHERE key = ?1")
            .and_then(|mut s| s.execute([key.as_bytes()]))
            .map_err(self.err())?;
        let tomb = KeyValue {
            key: key.to_owned(),
            value: Vec::new(),
            create_revision: 0,
            mod_revision: rev,
            version: 0,
            lease: None,
        };
        self.log(rev, sub, EVENT_DELETE, &tomb)
    }

    /// Deletes one key; true when it existed.
    pub fn delete(&mut self, key: &str) -> Result<bool> {
        crate::keys::check_key(key)?;
        let exists: bool = self
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM kv WHERE key = ?1)",
                [key.as_bytes()],
                |r| r.get(0),
            )
            .map_err(self.err())?;
        if exists {
            self.delete_existing(key)?;
        }
        Ok(exists)
    }

    /// Deletes every key under `prefix`; returns how many.
    pub fn delete_prefix(&mut self, prefix: &str) -> Result<i64> {
        let keys: Vec<String> = range_kvs(self.conn, prefix)
            .map_err(self.err())?
            .into_iter()
            .map(|kv| kv.key)
            .collect();
        for key in &keys {
            self.delete_existing(key)?;
        }
        Ok(keys.len() as i64)
    }

    fn delete_lease_keys(&mut self, id: i64) -> Result<()> {
        let keys: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT key FROM kv WHERE lease = ?1 ORDER BY key")
                .map_err(self.err())?;
            let rows = stmt
                .query_map([id], |r| r.get::<_, Vec<u8>>(0))
                .map_err(self.err())?;
            rows.map(|r| r.map(key_of))
                .collect::<rusqlite::Result<_>>()
                .map_err(self.err())?
        };
        for key in &keys {
            self.delete_existing(key)?;
        }
        self.conn
            .execute("DELETE FROM leases WHERE id = ?1", [id])
            .map_err(self.err())?;
        Ok(())
    }

    /// Revokes a lease and deletes its keys in one revision; false when the
    /// lease does not exist.
    pub fn revoke(&mut self, id: LeaseId) -> Result<bool> {
        if !self.lease_exists(id)? {
            return Ok(false);
        }
        self.close_revision();
        self.delete_lease_keys(id.0)?;
        self.close_revision();
        Ok(true)
    }

    /// Reaps every lease whose deadline passed, one revision per lease (as
    /// etcd revokes each expired lease on its own).
    pub fn expire_leases(&mut self, now: i64) -> Result<usize> {
        let due: Vec<i64> = {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT id FROM leases WHERE expires_ms <= ?1 ORDER BY expires_ms, id",
                )
                .map_err(self.err())?;
            let rows = stmt.query_map([now], |r| r.get(0)).map_err(self.err())?;
            rows.collect::<rusqlite::Result<_>>().map_err(self.err())?
        };
        for id in &due {
            tracing::debug!(store = %self.shared.url, lease = %LeaseId(*id), "lease expired");
            self.close_revision();
            self.delete_lease_keys(*id)?;
        }
        self.close_revision();
        Ok(due.len())
    }

    pub fn grant(&mut self, ttl_secs: i64) -> Result<LeaseId> {
        let expires = now_ms().saturating_add(ttl_secs.saturating_mul(1000));
        self.conn
            .execute(
                "INSERT INTO leases (ttl, expires_ms) VALUES (?1, ?2)",
                [ttl_secs, expires],
            )
            .map_err(self.err())?;
        Ok(LeaseId(self.conn.last_insert_rowid()))
    }

    /// Pushes a lease's deadline to now + TTL; returns the TTL.
    pub fn keep_alive(&mut self, id: LeaseId) -> Result<i64> {
        let ttl: Option<i64> = self
            .conn
            .query_row("SELECT ttl FROM leases WHERE id = ?1", [id.0], |r| r.get(0))
            .optional()
            .map_err(self.err())?;
        let ttl = ttl.ok_or(StoreError::LeaseNotFound(id))?;
        let expires = now_ms().saturating_add(ttl.saturating_mul(1000));
        self.conn
            .execute(
                "UPDATE leases SET expires_ms = ?1 WHERE id = ?2",
                [expires, id.0],
            )
            .map_err(self.err())?;
        Ok(ttl)
    }

    /// Forgets the event log before `revision`.
    pub fn compact(&mut self, revision: i64) -> Result<()> {
        let current = self.revision();
        if revision > current {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current,
            });
        }
        if revision <= self.compact_revision {
            return Ok(());
        }
        self.conn
            .execute("DELETE FROM events WHERE rev < ?1", [revision])
            .map_err(self.err())?;
        self.conn
            .execute(
                "UPDATE meta SET value = ?1 WHERE name = 'compact_revision'",
                [revision],
            )
            .map_err(self.err())?;
        self.compact_revision = revision;
        Ok(())
    }

    /// Runs a transaction's compares and the branch they choose.
    pub fn txn(
        &mut self,
        compares: &[Compare],
        success: &[TxnOp],
        failure: &[TxnOp],
    ) -> Result<TxnResponse> {
        let mut succeeded = true;
        for c in compares {
            let current = get_kv(self.conn, &c.key).map_err(self.err())?;
            if !c.evaluate(current.as_ref()) {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded { success } else { failure };
        // etcd checks every lease of the branch before running any of it.
        for op in ops {
            if let TxnOp::Put {
                lease: Some(id), ..
            } = op
            {
                if !self.lease_exists(*id)? {
                    return Err(StoreError::LeaseNotFound(*id));
                }
            }
        }
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                TxnOp::Put { key, value, lease } => TxnOpResponse::Put {
                    revision: self.put(key, value, *lease)?,
                },
                TxnOp::Delete { key } => TxnOpResponse::Delete {
                    deleted: i64::from(self.delete(key)?),
                },
                TxnOp::DeletePrefix { prefix } => TxnOpResponse::Delete {
                    deleted: self.delete_prefix(prefix)?,
                },
                TxnOp::Get { key } => {
                    TxnOpResponse::Get(get_kv(self.conn, key).map_err(self.err())?)
                }
                TxnOp::Range { prefix } => {
                    TxnOpResponse::Range(range_kvs(self.conn, prefix).map_err(self.err())?)
                }
            });
        }
        Ok(TxnResponse {
            succeeded,
            revision: self.revision(),
            responses,
        })
    }

    /// Saves the revision counter and compacts the log when due; true when
    /// anything changed.
    fn finish(mut self) -> Result<bool> {
        self.close_revision();
        if !self.changed {
            return Ok(false);
        }
        self.conn
            .execute(
                "UPDATE meta SET value = ?1 WHERE name = 'revision'",
                [self.base],
            )
            .map_err(self.err())?;
        let retain = self.shared.options.retain_revisions.max(1);
        // Compact in steps of a tenth of the retention, not on every write.
        if self.base - self.compact_revision > retain + retain / 10 {
            let to = self.base - retain;
            tracing::debug!(store = %self.shared.url, revision = to, "compacting the event log");
            self.compact(to)?;
        }
        Ok(true)
    }
}
