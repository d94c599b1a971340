//! SIGINT/SIGTERM set a flag the agent's loop watches, so it stops between
//! two reconciles and never half-way through one.

pub use aksnet_linux::process::stop_flag;
