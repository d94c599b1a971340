//! The embedded backend: one SQLite file, shared by every process on the
//! machine.
//!
//! * WAL mode: readers never block the writer, and watches read the event
//!   log without locking.
//! * Every write is one `BEGIN IMMEDIATE` transaction that also bumps the
//!   revision counter and appends to the event log, so a write, its
//!   revision and its events are committed together or not at all; the busy
//!   timeout makes concurrent writers (threads or processes) queue.
//! * Leases carry a wall-clock deadline; whichever process touches the
//!   store next (any read, write or running watch) reaps the expired ones.
//! * Watches poll the event log from their own connection: within the
//!   process they are woken at once by writes, across processes they notice
//!   a change within [`SqliteOptions::watch_poll`].
//! * The event log keeps the last [`SqliteOptions::retain_revisions`]
//!   revisions; older ones are compacted away as writes go on.

mod ops;
mod schema;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Result, StoreError};
use crate::store::{Store, Watcher};
use crate::types::{DeleteResponse, KeyValue, Lease, LeaseId, RangeResponse, Txn, TxnResponse};

/// Tuning of the SQLite backend.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How long a writer waits for another writer before failing.
    pub busy_timeout: Duration,
    /// How often a watch checks for changes made by other processes.
    pub watch_poll: Duration,
    /// How many revisions of history the event log keeps.
    pub retain_revisions: i64,
    /// `synchronous = FULL` (every commit reaches the disk) when true,
    /// `NORMAL` (a power loss may drop the last commits) when false.
    pub durable: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: Duration::from_secs(30),
            watch_poll: Duration::from_millis(50),
            retain_revisions: 10_000,
            durable: true,
        }
    }
}

/// Wakes the watchers of this process when a write commits.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    seq: Mutex<u64>,
    cond: Condvar,
}

impl Notifier {
    fn lock(&self) -> MutexGuard<'_, u64> {
        self.seq.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn current(&self) -> u64 {
        *self.lock()
    }

    pub(crate) fn bump(&self) {
        let mut seq = self.lock();
        *seq = seq.wrapping_add(1);
        self.cond.notify_all();
    }

    /// Waits until the sequence moves past `seen` or `timeout` passes.
    pub(crate) fn wait(&self, seen: u64, timeout: Duration) {
        let guard = self.lock();
        let _ = self
            .cond
            .wait_timeout_while(guard, timeout, |seq| *seq == seen);
    }
}

/// What the store and its watch threads share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub url: String,
    pub path: PathBuf,
    pub options: SqliteOptions,
    pub notify: Notifier,
}

/// Maps a SQLite error to a [`StoreError`] naming the store and the step.
pub(crate) fn db<'a>(
    shared: &'a Shared,
    what: &'a str,
) -> impl FnOnce(rusqlite::Error) -> StoreError + 'a {
    move |e| {
        if matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        ) {
            StoreError::Unavailable {
                store: shared.url.clone(),
                message: format!("{what}: the database stayed locked by another writer: {e}"),
            }
        } else if matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
        ) {
            StoreError::Corrupt {
                store: shared.url.clone(),
                message: format!(
                    "{what}: {e}; the file is not an intact aksnet store. Restore it from a \
                     backup (`sqlite3 FILE .backup COPY` makes one), or move it aside and \
                     re-create the cluster with `aksnet cluster init`"
                ),
            }
        } else {
            StoreError::backend(shared.url.clone(), what, e)
        }
    }
}

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    shared: Arc<Shared>,
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating it and its parent directories if needed) the store
    /// file at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens the store file at `path` with the given options.
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let url = format!("sqlite:{}", path.display());
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::backend(
                    url.clone(),
                    format!("creating directory {}", parent.display()),
                    e,
                )
            })?;
        }
        let shared = Arc::new(Shared {
            url,
            path,
            options,
            notify: Notifier::default(),
        });
        let mut conn = schema::connect(&shared)?;
        schema::init(&mut conn, &shared)?;
        tracing::debug!(store = %shared.url, "opened");
        Ok(SqliteStore {
            shared,
            conn: Mutex::new(conn),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write<T>(&self, what: &str, f: impl FnOnce(&mut ops::Writer<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.lock();
        ops::write_on(&mut conn, &self.shared, what, f)
    }

    /// Runs `f` in one read transaction (a consistent snapshot), after
    /// reaping expired leases so that their keys are not seen.
    fn read<T>(&self, what: &str, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let mut conn = self.lock();
        let due = ops::lease_due(&conn, ops::now_ms()).map_err(db(&self.shared, what))?;
        if due {
            ops::write_on(
                &mut conn,
                &self.shared,
                "reaping expired leases",
                |_| Ok(()),
            )?;
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(db(&self.shared, what))?;
        let out = f(&tx).map_err(db(&self.shared, what))?;
        tx.finish().map_err(db(&self.shared, what))?;
        Ok(out)
    }
}

impl Store for SqliteStore {
    fn url(&self) -> &str {
        &self.shared.url
    }

    fn revision(&self) -> Result<i64> {
        self.read("reading the revision", |c| {
            ops::read_meta(c).map(|m| m.revision)
        })
    }

    fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        crate::keys::check_key(key)?;
        self.read("reading a key", |c| ops::get_kv(c, key))
    }

    fn range(&self, prefix: &str) -> Result<RangeResponse> {
        self.read("listing a prefix", |c| {
            let revision = ops::read_meta(c)?.revision;
            let kvs = ops::range_kvs(c, prefix)?;
            Ok(RangeResponse { kvs, revision })
        })
    }

    fn put(&self, key: &str, value: &[u8], lease: Option<LeaseId>) -> Result<i64> {
        self.write("writing a key", |w| w.put(key, value, lease))
    }

    fn delete(&self, key: &str) -> Result<DeleteResponse> {
        self.write("deleting a key", |w| {
            let deleted = i64::from(w.delete(key)?);
            Ok(DeleteResponse {
                deleted,
                revision: w.revision(),
            })
        })
    }

    fn delete_prefix(&self, prefix: &str) -> Result<DeleteResponse> {
        if prefix.is_empty() {
            return Err(StoreError::InvalidKey {
                key: String::new(),
                reason: "refusing to delete every key: give a non-empty prefix".into(),
            });
        }
        self.write("deleting a prefix", |w| {
            let deleted = w.delete_prefix(prefix)?;
            Ok(DeleteResponse {
                deleted,
                revision: w.revision(),
            })
        })
    }

    fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        txn.validate()?;
        self.write("running a transaction", |w| {
            w.txn(&txn.compares, &txn.success, &txn.failure)
        })
    }

    fn lease_grant(&self, ttl_secs: i64) -> Result<Lease> {
        if ttl_secs < 1 {
            return Err(StoreError::InvalidArgument(format!(
                "lease TTL {ttl_secs}s: must be at least 1 second"
            )));
        }
        let id = self.write("granting a lease", |w| w.grant(ttl_secs))?;
        Ok(Lease { id, ttl_secs })
    }

    fn lease_keep_alive(&self, id: LeaseId) -> Result<i64> {
        self.write("refreshing a lease", |w| w.keep_alive(id))
    }

    fn lease_revoke(&self, id: LeaseId) -> Result<()> {
        if self.write("revoking a lease", |w| w.revoke(id))? {
            Ok(())
        } else {
            Err(StoreError::LeaseNotFound(id))
        }
    }

    fn lease_ttl(&self, id: LeaseId) -> Result<Option<i64>> {
        let now = ops::now_ms();
        let expires: Option<i64> = self.read("reading a lease", |c| {
            use rusqlite::OptionalExtension;
            c.query_row("SELECT expires_ms FROM leases WHERE id = ?1", [id.0], |r| {
                r.get(0)
            })
            .optional()
        })?;
        Ok(expires
            .map(|e| (e - now + 999).div_euclid(1000))
            .filter(|secs| *secs > 0))
    }

    fn watch(&self, prefix: &str, start_revision: i64) -> Result<Watcher> {
        watch::start(Arc::clone(&self.shared), prefix, start_revision)
    }

    fn compact(&self, revision: i64) -> Result<()> {
        self.write("compacting", |w| w.compact(revision))
    }
}
