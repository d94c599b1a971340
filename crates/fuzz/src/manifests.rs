//! Kubernetes manifests as `aksnet apply -f` reads them: multi-document
//! YAML or JSON, each document read, then every object validated and
//! planned (ClusterIP and NodePort allocation included) against an empty
//! cluster, as the API server would.

use aksnet_core::k8s::apply::{plan_apply, ApplyContext, Input};
use aksnet_core::k8s::documents::{self, Parsed};
use aksnet_core::k8s::K8sState;
use aksnet_core::planner;
use aksnet_core::spec::SpecInput;

/// Input: the manifest file's text.
pub fn apply(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let docs = match documents::parse("fuzz.yaml", text) {
        Ok(d) => d,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let mut inputs = vec![];
    for d in docs {
        match documents::read(d) {
            Ok(Parsed::Object { object, source }) => inputs.push(Input {
                object: *object,
                source,
            }),
            Ok(Parsed::Ignored(_)) => {}
            Err(documents::ReadError::Input(e)) => assert!(!e.to_string().is_empty()),
            Err(documents::ReadError::Object(e)) => assert!(!e.to_string().is_empty()),
        }
    }
    let Ok(plan) = planner::plan_input(&SpecInput::default()) else {
        return;
    };
    let ctx = ApplyContext {
        now: "2026-01-01T00:00:00Z".into(),
        seed: 7,
    };
    let n = inputs.len();
    match plan_apply(&K8sState::default(), &plan.network, &ctx, inputs) {
        // Every object is answered: applied (one outcome per input, in
        // order), or rejected naming what is wrong.
        Ok(p) => assert_eq!(p.outcomes.len(), n, "an object without an outcome"),
        Err(errors) => {
            assert!(!errors.is_empty(), "rejected without a reason");
            for e in errors {
                assert!(!e.to_string().is_empty());
            }
        }
    }
}
