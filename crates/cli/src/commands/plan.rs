//! `aksnet plan [--compare] [--output table|json] [design flags]`.

use std::process::ExitCode;

use aksnet_core::planner;
use clap::Args;
use serde_json::json;

use super::design::DesignArgs;
use super::{Output, EXIT_INVALID, EXIT_UNUSABLE};
use crate::render;

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub design: DesignArgs,
    /// Show kubenet, Azure CNI and Overlay side by side for the same inputs.
    #[arg(long)]
    pub compare: bool,
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Exit 0 when valid (with --compare: every model valid), 1 when invalid, 2
/// when the input cannot be used.
pub fn run(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let json_out = args.output == Output::Json;
    let input = match args.design.to_input() {
        Ok(i) => i,
        Err(e) => return Ok(unusable(&e, json_out)),
    };
    let plans = if args.compare {
        planner::compare(&input)
    } else {
        planner::plan_input(&input).map(|p| vec![p])
    };
    let plans = match plans {
        Ok(p) => p,
        Err(e) => return Ok(unusable(&e, json_out)),
    };
    match (args.output, args.compare) {
        (Output::Json, true) => outln!(
            "{}",
            serde_json::to_string_pretty(&json!({ "plans": plans }))?
        ),
        (Output::Json, false) => outln!("{}", serde_json::to_string_pretty(&plans[0])?),
        (Output::Table, true) => out!("{}", render::plan::comparison(&plans)),
        (Output::Table, false) => out!("{}", render::plan::single(&plans[0])),
    }
    Ok(if plans.iter().all(|p| p.valid) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID)
    })
}

/// Whether a command line (without the program name) is `aksnet plan`
/// asking for JSON, read without clap (for the errors clap itself reports).
pub fn wants_json(args: impl Iterator<Item = String>) -> bool {
    let args: Vec<String> = args.collect();
    // Global flags may come first: `aksnet --log-format json plan ...`.
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') {
        i += if args[i] == "--log-format" { 2 } else { 1 };
    }
    if args.get(i).map(String::as_str) != Some("plan") {
        return false;
    }
    let rest = &args[i + 1..];
    rest.iter().enumerate().any(|(k, a)| {
        let next = rest.get(k + 1).map(String::as_str);
        matches!(a.as_str(), "--output=json" | "-ojson" | "-o=json")
            || (matches!(a.as_str(), "-o" | "--output") && next == Some("json"))
    })
}

/// Unusable input: the message on stderr, and with `-o json` the same as a
/// JSON object on stdout, so scripts always get JSON.
fn unusable(e: &aksnet_core::spec::InputError, json_out: bool) -> ExitCode {
    errln!("aksnet plan: {e}");
    if json_out {
        let v = json!({
            "valid": false,
            "errors": [{"code": "input-unusable", "message": e.to_string(), "field": e.field}],
        });
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    ExitCode::from(EXIT_UNUSABLE)
}
