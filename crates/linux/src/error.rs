//! Errors of kernel operations.

use std::io;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from the kernel or from a tool this crate runs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call or file operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done, with the object it was done to.
        op: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The kernel refused a netlink request.
    #[error("netlink {op}: {source}")]
    Netlink {
        /// The request, with the object it was about.
        op: String,
        /// The errno the kernel answered with.
        #[source]
        source: io::Error,
    },
    /// A netlink answer could not be decoded.
    #[error("netlink {op}: cannot decode the kernel's answer: {msg}")]
    Decode {
        /// The request the answer belonged to.
        op: String,
        /// What was wrong.
        msg: String,
    },
    /// A netlink answer is malformed.
    #[error("netlink {op}: cannot decode the kernel's answer: {source}")]
    Malformed {
        /// The request the answer belonged to.
        op: String,
        /// The decoder's error.
        #[source]
        source: netlink_packet_core::DecodeError,
    },
    /// `nft` failed or could not be run.
    #[error("nft {op}: {msg}")]
    Nft {
        /// What nft was asked to do.
        op: String,
        /// nft's own message (its stderr) or why it could not run.
        msg: String,
    },
    /// A value given to this crate is not usable.
    #[error("invalid {what}: {msg}")]
    Invalid {
        /// Which value.
        what: String,
        /// What is wrong and what would be right.
        msg: String,
    },
}

impl Error {
    pub(crate) fn io(op: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            op: op.into(),
            source,
        }
    }

    /// The errno of a failed system call or netlink request, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } | Error::Netlink { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// True when the object to create already exists (`EEXIST`).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// True when the object does not exist (`ENOENT`, `ENODEV`, `ESRCH`,
    /// `EADDRNOTAVAIL`): what a deletion of something already gone reports.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno(),
            Some(libc::ENOENT | libc::ENODEV | libc::ESRCH | libc::EADDRNOTAVAIL)
        )
    }
}
