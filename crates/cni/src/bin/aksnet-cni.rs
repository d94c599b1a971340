//! `aksnet-cni`: the main plugin (bridge and transparent modes).

use std::process::ExitCode;

fn main() -> ExitCode {
    aksnet_cni::skel::run(&aksnet_cni::plugin::MainPlugin)
}
