//! The planner's `--file` (an ARM template or parameters file, or a plain
//! design, JSON or YAML) as `aksnet plan --file` reads it.

use aksnet_core::planner;
use aksnet_core::spec;

/// Input: the file's bytes. Odd first byte: read as `*.json`, else YAML.
pub fn file(data: &[u8]) {
    let json = data.first().is_some_and(|b| b % 2 == 1);
    let label = "fuzz.yaml";
    let docs = match spec::document::parse(data, label, json) {
        Ok(d) => d,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let docs: Vec<spec::Document> = docs
        .into_iter()
        .map(|value| spec::Document {
            value,
            label: label.to_string(),
        })
        .collect();
    let input = match spec::from_documents(&docs, &spec::Parameters::default()) {
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
