//! Watches: a thread per watch reads the event log from its own connection.
//!
//! The thread keeps a cursor `(rev, sub)` of the last change it looked at.
//! Each round it reads the revision counter and the earliest lease deadline
//! (one indexed query); only when the revision moved does it read the new
//! events under its prefix, in `(rev, sub)` order. Between rounds it sleeps
//! until a write in this process wakes it or the poll interval passes. It
//! also reaps expired leases, so keys of a dead node disappear even when
//! nobody else writes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;

use rusqlite::{params, Connection, TransactionBehavior};

use super::ops::{self, EVENT_DELETE};
use super::{db, schema, Shared};
use crate::error::{Result, StoreError};
use crate::keys::prefix_end;
use crate::store::Watcher;
use crate::types::{Event, EventKind, KeyValue, LeaseId};

/// Events read per query; a larger backlog is read in several rounds.
const BATCH: i64 = 512;
/// Consecutive failed rounds before a watch gives up.
const MAX_FAILURES: u32 = 100;

/// Sets the stop flag (and wakes the thread) when the watcher is dropped.
struct StopGuard {
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
}

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.shared.notify.bump();
    }
}

/// Position in the event log: everything up to and including `(rev, sub)`
/// has been looked at.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    rev: i64,
    sub: i64,
}

impl Cursor {
    /// The oldest revision still needed.
    fn needed(&self) -> i64 {
        if self.sub == i64::MAX {
            self.rev + 1
        } else {
            self.rev
        }
    }
}

pub(crate) fn start(shared: Arc<Shared>, prefix: &str, start_revision: i64) -> Result<Watcher> {
    if start_revision < 0 {
        return Err(StoreError::InvalidArgument(format!(
            "watch start revision {start_revision}: must be 0 (now) or positive"
        )));
    }
    let conn = schema::connect(&shared)?;
    let meta = ops::read_meta(&conn).map_err(db(&shared, "starting a watch"))?;
    let cursor = if start_revision == 0 {
        Cursor {
            rev: meta.revision,
            sub: i64::MAX,
        }
    } else {
        if start_revision < meta.compact_revision {
            return Err(StoreError::Compacted {
                requested: start_revision,
                compact_revision: meta.compact_revision,
            });
        }
        Cursor {
            rev: start_revision,
            sub: -1,
        }
    };
    let (tx, rx) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let guard = StopGuard {
        stop: Arc::clone(&stop),
        shared: Arc::clone(&shared),
    };
    let feed = Feed {
        shared,
        conn,
        prefix: prefix.to_owned(),
        end: prefix_end(prefix.as_bytes()),
        cursor,
        tx,
        stop,
    };
    std::thread::Builder::new()
        .name("aksnet-store-watch".into())
        .spawn(move || feed.run())
        .map_err(|e| StoreError::backend("sqlite", "starting a watch thread", e))?;
    Ok(Watcher::new(prefix, rx, Box::new(guard)))
}

struct Feed {
    shared: Arc<Shared>,
    conn: Connection,
    prefix: String,
    end: Option<Vec<u8>>,
    cursor: Cursor,
    tx: Sender<Result<Event>>,
    stop: Arc<AtomicBool>,
}

enum Round {
    /// Caught up; wait for the next change.
    Idle,
    /// More events are waiting; go again at once.
    More,
    /// The receiver is gone.
    Closed,
}

impl Feed {
    fn run(mut self) {
        let mut failures = 0u32;
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            let seen = self.shared.notify.current();
            match self.round() {
                Ok(Round::More) => {
                    failures = 0;
                    continue;
                }
                Ok(Round::Idle) => failures = 0,
                Ok(Round::Closed) => return,
                Err(e @ StoreError::Compacted { .. }) => {
                    let _ = self.tx.send(Err(e));
                    return;
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(store = %self.shared.url, prefix = %self.prefix, error = %e, "watch round failed");
                    if failures >= MAX_FAILURES {
                        let _ = self.tx.send(Err(e));
                        return;
                    }
                }
            }
            self.shared
                .notify
                .wait(seen, self.shared.options.watch_poll);
        }
    }

    fn round(&mut self) -> Result<Round> {
        let what = "watching";
        let now = ops::now_ms();
        if ops::lease_due(&self.conn, now).map_err(db(&self.shared, what))? {
            ops::write_on(
                &mut self.conn,
                &self.shared,
                "reaping expired leases",
                |_| Ok(()),
            )?;
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(db(&self.shared, what))?;
        let meta = ops::read_meta(&tx).map_err(db(&self.shared, what))?;
        if self.cursor.needed() > meta.revision {
            return Ok(Round::Idle);
        }
        if self.cursor.needed() < meta.compact_revision {
            return Err(StoreError::Compacted {
                requested: self.cursor.needed(),
                compact_revision: meta.compact_revision,
            });
        }
        let events = read_events(&tx, self.cursor, meta.revision, &self.prefix, &self.end)
            .map_err(db(&self.shared, what))?;
        drop(tx);
        let full = events.len() as i64 >= BATCH;
        for (cursor, event) in events {
            self.cursor = cursor;
            if self.tx.send(Ok(event)).is_err() {
                return Ok(Round::Closed);
            }
        }
        if full {
            return Ok(Round::More);
        }
        self.cursor = Cursor {
            rev: meta.revision,
            sub: i64::MAX,
        };
        Ok(Round::Idle)
    }
}

fn read_events(
    conn: &Connection,
    after: Cursor,
    upto: i64,
    prefix: &str,
    end: &Option<Vec<u8>>,
) -> rusqlite::Result<Vec<(Cursor, Event)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT rev, sub, kind, key, value, create_rev, version, lease FROM events
         WHERE (rev, sub) > (?1, ?2) AND rev <= ?3
           AND key >= ?4 AND (?5 IS NULL OR key < ?5)
         ORDER BY rev, sub LIMIT ?6",
    )?;
    let rows = stmt.query_map(
        params![after.rev, after.sub, upto, prefix.as_bytes(), end, BATCH],
        |r| {
            let rev: i64 = r.get(0)?;
            let sub: i64 = r.get(1)?;
            let kind: i64 = r.get(2)?;
            let key: Vec<u8> = r.get(3)?;
            let lease: i64 = r.get(7)?;
            let kv = KeyValue {
                key: String::from_utf8_lossy(&key).into_owned(),
                value: r.get(4)?,
                create_revision: r.get(5)?,
                mod_revision: rev,
                version: r.get(6)?,
                lease: (lease != 0).then_some(LeaseId(lease)),
            };
            let kind = if kind == EVENT_DELETE {
                EventKind::Delete
            } else {
                EventKind::Put
            };
            Ok((Cursor { rev, sub }, Event { kind, kv }))
        },
    )?;
    rows.collect()
}
