//! One module per subcommand.

pub mod agent;
pub mod cluster;
pub mod design;
pub mod dns;
pub mod docs;
pub mod explain;
pub mod install;
pub mod k8s;
pub mod lab;
pub mod node;
pub mod plan;
pub mod status;
pub mod store;

/// Exit status for a design the planner rejects.
pub const EXIT_INVALID: u8 = 1;
/// Exit status for input that cannot be used at all.
pub const EXIT_UNUSABLE: u8 = 2;

/// `--output` for every command that prints results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}
