//! aksnet-linux: the only aksnet crate that touches the kernel.
//!
//! * [`netns`]: open network namespaces and enter them with a guard that
//!   always switches the thread back ([`NetnsGuard`]).
//! * [`netlink::Socket`]: a blocking rtnetlink socket bound to the namespace
//!   it was created in, with typed operations for links ([`link`]),
//!   addresses ([`addr`]), routes ([`route`]) and neighbour/FDB entries
//!   ([`neigh`]).
//! * [`sysctl`]: read and write `/proc/sys` keys of the calling thread's
//!   namespace.
//! * [`conntrack`]: list and delete connection tracking entries over
//!   ctnetlink (stale UDP flows of a Service endpoint that went).
//! * [`flock`]: exclusive file locks with a time limit.
//! * [`nft`]: the real nftables driver ([`nft::Nft`]): batches of the
//!   `aksnet-nft` model applied as one atomic `nft -j -f -` transaction in
//!   a given namespace, and listings of a table.
//!
//! Everything here is synchronous: CNI plugins are short-lived processes and
//! a thread that entered a namespace must not be shared with an async
//! executor.

// The one crate that talks to the kernel: its unsafe calls (setns, ioctl,
// getrandom, signal, prctl, raw sockets) are here and nowhere else but
// the lab's process code. Each carries a SAFETY comment.
#![allow(unsafe_code)]

pub mod addr;
pub mod conntrack;
pub mod error;
pub mod flock;
pub mod link;
pub mod mac;
pub mod neigh;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod process;
pub mod route;
pub mod sysctl;
#[cfg(feature = "testing")]
pub mod testing;
pub mod vtep;

pub use error::{Error, Result};
pub use mac::MacAddr;
pub use netlink::Socket;
pub use netns::{Netns, NetnsGuard};
