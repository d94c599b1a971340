//! The planner's `--file` (an ARM template or parameters file, or a plain
//! design, JSON or YAML) as `aksnet plan --file` reads it.

use aksnet_core::planner;
use aksnet_core::spec;

/// Input: the file's text. Odd first byte: read as `*.json`, else YAML.
pub fn file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let json = data.first().is_some_and(|b| b % 2 == 1);
    let input = match spec::from_text(text, json, "fuzz.yaml") {
        Ok(i) => i,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    match planner::plan_input(&input) {
        Ok(plan) => {
            // A valid plan has no error finding, an invalid one at least one.
            assert_eq!(plan.valid, plan.errors.is_empty(), "{plan:?}");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
