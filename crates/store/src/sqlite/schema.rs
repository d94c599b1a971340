//! Opening a database file and creating the schema.
//!
//! Tables:
//! * `meta(name, value)`: `schema` (version of this layout), `revision`
//!   (the cluster revision) and `compact_revision`.
//! * `kv`: the live keys with their etcd metadata.
//! * `events`: the change log the watches read, one row per put or delete,
//!   keyed by `(rev, sub)` (sub orders the changes of one revision).
//! * `leases`: granted leases and when they expire (ms since the epoch).

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use super::{db, Shared};
use crate::error::{Result, StoreError};

/// Version of the table layout below.
pub(crate) const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES
    ('schema', 1), ('revision', 1), ('compact_revision', 0);
CREATE TABLE IF NOT EXISTS kv (
    key        BLOB PRIMARY KEY NOT NULL,
    value      BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    mod_rev    INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    lease      INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_by_lease ON kv (lease) WHERE lease <> 0;
CREATE TABLE IF NOT EXISTS events (
    rev        INTEGER NOT NULL,
    sub        INTEGER NOT NULL,
    kind       INTEGER NOT NULL,
    key        BLOB NOT NULL,
    value      BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    lease      INTEGER NOT NULL,
    PRIMARY KEY (rev, sub)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ttl        INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_by_expiry ON leases (expires_ms);
";

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Retries `f` while the database is busy (another process is creating or
/// converting it), up to `limit`.
fn retry_busy<T>(
    limit: Duration,
    mut f: impl FnMut() -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(5);
    loop {
        match f() {
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

/// Opens one connection to the store file, with WAL, the busy timeout and
/// the durability setting applied.
pub(crate) fn connect(shared: &Shared) -> Result<Connection> {
    let path: &Path = &shared.path;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn =
        Connection::open_with_flags(path, flags).map_err(db(shared, "opening the database"))?;
    conn.busy_timeout(shared.options.busy_timeout)
        .map_err(db(shared, "setting the busy timeout"))?;
    let mode: String = retry_busy(shared.options.busy_timeout, || {
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
    })
    .map_err(db(shared, "switching to WAL mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt {
            store: shared.url.clone(),
            message: format!(
                "the database refused WAL mode (journal_mode is {mode:?}); is it on a file system without shared memory?"
            ),
        });
    }
    let sync = if shared.options.durable {
        "FULL"
    } else {
        "NORMAL"
    };
    conn.execute_batch(&format!("PRAGMA synchronous = {sync};"))
        .map_err(db(shared, "setting synchronous"))?;
    Ok(conn)
}

/// Creates the tables if they are missing and checks the schema version.
pub(crate) fn init(conn: &mut Connection, shared: &Shared) -> Result<()> {
    retry_busy(shared.options.busy_timeout, || {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(SCHEMA)?;
        tx.commit()
    })
    .map_err(db(shared, "creating the schema"))?;
    let version: i64 = conn
        .query_row("SELECT value FROM meta WHERE name = 'schema'", [], |r| {
            r.get(0)
        })
        .map_err(db(shared, "reading the schema version"))?;
    if version != SCHEMA_VERSION {
        return Err(StoreError::Corrupt {
            store: shared.url.clone(),
            message: format!(
                "schema version {version}, this aksnet reads version {SCHEMA_VERSION}"
            ),
        });
    }
    Ok(())
}
