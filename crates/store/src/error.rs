//! The one error type of the store, shared by both backends.

use crate::lease::LeaseId;

/// Boxed source error of a backend (SQLite, etcd, I/O).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything a store operation can fail with.
///
/// Every variant names the value that was wrong (the URL, key, revision,
/// lease or store) so that callers can print it as is.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL could not be parsed.
    #[error(
        "invalid store URL {url:?}: {reason} (expected sqlite:PATH or etcd://HOST:PORT[,HOST:PORT...])"
    )]
    InvalidUrl { url: String, reason: String },

    /// A key (or prefix) is not acceptable.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },

    /// Any other argument that is out of range (TTL, transaction shape, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The requested revision is older than the store's compaction point.
    #[error(
        "revision {requested} has been compacted; the oldest revision still available is {compact_revision}"
    )]
    Compacted {
        requested: i64,
        compact_revision: i64,
    },

    /// The requested revision has not happened yet.
    #[error("revision {requested} is newer than the store's current revision {current}")]
    FutureRevision { requested: i64, current: i64 },

    /// The lease does not exist (never granted, expired or revoked).
    #[error("lease {0} not found (it expired, was revoked or never existed)")]
    LeaseNotFound(LeaseId),

    /// The store could not be reached within the retry budget.
    #[error("store {store} is unavailable: {message}")]
    Unavailable { store: String, message: String },

    /// A backend operation failed.
    #[error("store {store}: {context}: {source}")]
    Backend {
        store: String,
        context: String,
        #[source]
        source: BoxError,
    },

    /// The store holds data this code cannot read (schema, encoding).
    #[error("store {store} holds unexpected data: {message}")]
    Corrupt { store: String, message: String },

    /// A read-only command named a store that does not exist (it is never
    /// created by reading it).
    #[error("no store at {store}: the file does not exist (a store is created by `aksnet cluster init` or `aksnet lab up`; check the path)")]
    Missing { store: String },

    /// A watch stopped delivering events.
    #[error("watch on prefix {prefix:?} ended: {reason}")]
    WatchClosed { prefix: String, reason: String },
}

impl StoreError {
    pub(crate) fn backend(
        store: impl Into<String>,
        context: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        StoreError::Backend {
            store: store.into(),
            context: context.into(),
            source: source.into(),
        }
    }

    /// True for errors that may go away when the same call is tried again
    /// later (the store was unreachable or busy).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// Result alias of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
