//! One driver for every owner: the real `nft` (aksnet-linux) or the
//! in-memory [`crate::Fake`]. An owner renders its table as data and hands
//! batches to a driver; it never writes nft text itself.

use std::fmt;

use crate::batch::Batch;
use crate::listing::Listing;
use crate::model::TableId;

/// Why a batch was refused, as the kernel says it (errno classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// ENOENT: a table, chain, set, element or handle does not exist.
    NotFound,
    /// EEXIST: the element (or an overlapping interval) exists, or an
    /// object exists with another type.
    Exists,
    /// EBUSY: the object is still used (a rule jumps to the chain or looks
    /// up the set) or not empty.
    Busy,
    /// EINVAL/EOPNOTSUPP: the batch is malformed for the kernel (wrong
    /// key type, a statement the hook does not allow, ...).
    Invalid,
    /// `nft` could not be run or its output could not be read.
    Unavailable,
}

impl ErrorKind {
    /// Errors another writer of the same table can cause between a listing
    /// and the batch built from it: worth listing again and retrying.
    pub fn is_conflict(self) -> bool {
        matches!(
            self,
            ErrorKind::NotFound | ErrorKind::Exists | ErrorKind::Busy
        )
    }

    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "No such file or directory",
            ErrorKind::Exists => "File exists",
            ErrorKind::Busy => "Device or resource busy",
            ErrorKind::Invalid => "Invalid argument",
            ErrorKind::Unavailable => "nft unavailable",
        }
    }
}

/// A refused batch or an unusable driver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DriverError {
    pub kind: ErrorKind,
    /// What was refused and why (nft's own message for the real driver).
    pub message: String,
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl DriverError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> DriverError {
        DriverError {
            kind,
            message: message.into(),
        }
    }

    /// Classifies nft's stderr by the errno text the kernel's answer carries.
    pub fn from_nft_stderr(stderr: &str) -> DriverError {
        let kind = if stderr.contains("No such file or directory") {
            ErrorKind::NotFound
        } else if stderr.contains("File exists") {
            ErrorKind::Exists
        } else if stderr.contains("Device or resource busy") {
            ErrorKind::Busy
        } else {
            ErrorKind::Invalid
        };
        DriverError::new(kind, stderr.trim())
    }
}

/// Applies batches and lists tables. Like netavark's `FirewallDriver`:
/// one trait, a real implementation and a fake.
pub trait Driver {
    /// Applies `batch` atomically (an empty batch is a no-op).
    fn apply(&mut self, batch: &Batch) -> Result<(), DriverError>;
    /// The table's current content, `None` when it does not exist.
    fn list(&mut self, table: &TableId) -> Result<Option<Listing>, DriverError>;
}

impl<D: Driver + ?Sized> Driver for &mut D {
    fn apply(&mut self, batch: &Batch) -> Result<(), DriverError> {
        (**self).apply(batch)
    }
    fn list(&mut self, table: &TableId) -> Result<Option<Listing>, DriverError> {
        (**self).list(table)
    }
}

impl<D: Driver + ?Sized> Driver for Box<D> {
    fn apply(&mut self, batch: &Batch) -> Result<(), DriverError> {
        (**self).apply(batch)
    }
    fn list(&mut self, table: &TableId) -> Result<Option<Listing>, DriverError> {
        (**self).list(table)
    }
}
