//! The bodies of aksnet's fuzz targets, one per input a user or another
//! program can hand aksnet: each takes arbitrary bytes, feeds them to the
//! real parser, and panics only when an invariant breaks (a panic inside
//! the parser is the finding, too). libFuzzer drives them from `fuzz/`
//! (`scripts/fuzz.sh`); `cargo test -p aksnet-fuzz` replays the kept
//! corpus and the crashes found so far, and mutates it for a bounded run.
//!
//! Invariants checked besides "no panic":
//! * every CNI error is the spec's object with one of the spec's codes;
//! * a configuration that parses converts its `prevResult` to every
//!   supported version and back;
//! * the IPAM directory, whatever files it starts with, never hands one
//!   address to two containers and holds no allocation after a GC that
//!   keeps none;
//! * a store listing decodes without panicking and reports every record it
//!   could not read;
//! * a manifest's objects are each applied or rejected with a reason;
//! * the DNS server answers only with messages that decode, and still
//!   answers a real query correctly after any datagram.

pub mod cni;
pub mod dns;
pub mod ipam;
pub mod manifests;
pub mod plan;
pub mod records;

/// One fuzz target: its name (the `fuzz/fuzz_targets/NAME.rs` binary and
/// the `fuzz/corpus/NAME/` directory) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("cni_config", cni::config),
    ("cni_request", cni::request),
    ("dns_query", dns::query),
    ("ipam_store", ipam::store),
    ("manifests", manifests::apply),
    ("planner_file", plan::file),
    ("store_records", records::listing),
];

/// Splits `data` at `sep` into at most `n` fields (the last keeps the rest).
pub(crate) fn fields(data: &[u8], sep: u8, n: usize) -> Vec<&[u8]> {
    data.splitn(n, |b| *b == sep).collect()
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
