//! The lease handle: a leaf module, so that the error type can name a
//! lease without depending on the rest of the API's types.

use std::fmt;

/// A lease handle. etcd lease ids are non-zero; so are these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseId(pub i64);

impl fmt::Display for LeaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // etcd tools print lease ids in hex.
        write!(f, "{:x}", self.0)
    }
}
