//! aksnet-nft: nftables as data, with no I/O.
//!
//! * [`model`]: tables in every family, base and regular chains, named
//!   sets and maps (interval, concatenated, timeout, verdict maps);
//! * [`expr`]: rules as typed statements (payload and meta matches,
//!   conntrack, `fib`, set and map lookups, `numgen`, verdicts, NAT,
//!   counters, marks), printed as nft writes them;
//! * [`batch`]: commands rendered as one `nft -j -f -` transaction;
//! * [`diff`]: the minimal batch from one desired state to the next;
//! * [`sync`]: an [`Owner`] keeps its one table equal to its desired state
//!   across restarts; [`list_and_apply`] retries shared-table writers;
//! * [`driver`]: the one [`Driver`] trait, implemented by the real `nft`
//!   (in aksnet-linux) and by [`Fake`], an in-memory nftables that refuses
//!   what the kernel refuses and dumps its state;
//! * [`trace`]: which rules a packet hits and what becomes of it.
//!
//! Conventions for owners are in `docs/nft.md`.

pub mod batch;
pub mod diff;
pub mod driver;
pub mod expr;
pub mod fake;
pub mod json;
pub mod listing;
pub mod model;
pub mod sync;
pub mod trace;
pub mod value;

pub use batch::{Batch, Command};
pub use driver::{Driver, DriverError, ErrorKind};
pub use expr::{
    build, CtKey, Expr, Match, MetaKey, Nat, NatKind, Op, Payload, Reject, Rhs, Rule, Stmt,
    Verdict, VmapRef,
};
pub use fake::Fake;
pub use listing::{ListedChain, ListedRule, ListedSet, Listing};
pub use model::{
    priority, BaseChain, Chain, ChainType, ElemData, Element, Family, Hook, KeyType, MapData,
    Policy, Set, SetFlags, Table, TableId,
};
pub use sync::{ensure, list_and_apply, replace, Owner, Synced};
pub use trace::{trace, Final, Host, Packet, Trace};
pub use value::{CtState, CtStatus, FibType, L4Proto, Value};
