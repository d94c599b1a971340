//! One module per subcommand.

pub mod design;
pub mod lab;
pub mod plan;

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
