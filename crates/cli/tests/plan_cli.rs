//! `aksnet plan` as users and scripts run it: exit statuses, the JSON
//! contract, file input.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

use std::io::Write;
use std::process::{Command, Output};

use serde_json::Value;

fn aksnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aksnet"))
        .args(args)
        .output()
        .expect("run aksnet")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

const EXAMPLE: [&str; 11] = [
    "plan",
    "--network-plugin",
    "azure",
    "--subnet-cidr",
    "10.240.0.0/16",
    "--vnet-cidr",
    "10.240.0.0/12",
    "--node-count",
    "50",
    "--max-pods",
    "30",
];

#[test]
fn worked_example_json() {
    let mut args = EXAMPLE.to_vec();
    args.extend(["--output", "json"]);
    let out = aksnet(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["valid"], true);
    assert_eq!(v["network_plugin"], "azure");
    assert_eq!(v["errors"], Value::Array(vec![]));
    assert_eq!(v["capacity"]["required_subnet_ips"], 1581);
    assert_eq!(v["capacity"]["min_subnet_prefix"], 21);
    assert_eq!(v["capacity"]["subnet_usable_ips"], 65531);
    for k in ["max_nodes", "max_pods", "route_table_entries"] {
        assert!(v["capacity"][k].is_u64(), "{k}");
    }
}

#[test]
fn worked_example_too_small_subnet_is_invalid() {
    let mut args = EXAMPLE.to_vec();
    args[4] = "10.240.0.0/22";
    let table = aksnet(&args);
    assert_eq!(table.status.code(), Some(1));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("INVALID"), "{text}");
    args.extend(["-o", "json"]);
    let out = aksnet(&args);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["valid"], false);
    let err = &v["errors"][0];
    assert_eq!(err["code"], "subnet-too-small");
    let msg = err["message"].as_str().unwrap();
    for part in ["1,581", "1,019", "/21"] {
        assert!(msg.contains(part), "{part}: {msg}");
    }
}

#[test]
fn unusable_input_exits_2_naming_the_flag() {
    let out = aksnet(&["plan", "--pod-cidr", "10.244.0.0/40"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--pod-cidr") && err.contains("'40'"), "{err}");
    assert!(out.stdout.is_empty());
    let out = aksnet(&["plan", "--service-cidr", "10.0.0.0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--service-cidr"));
    let out = aksnet(&["plan", "--network-plugin", "flannel"]);
    assert_eq!(out.status.code(), Some(2));
    let out = aksnet(&["plan", "--node-count", "lots"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap usage errors are unusable input too"
    );
    let out = aksnet(&["plan", "--file", "/nonexistent/aksnet.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/aksnet.yaml"));
}

#[test]
fn compare_json_has_three_plans() {
    let out = aksnet(&["plan", "--compare", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    let plugins: Vec<&str> = v["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["network_plugin"].as_str().unwrap())
        .collect();
    assert_eq!(plugins, ["kubenet", "azure", "overlay"]);
    // One model invalid makes the comparison exit 1.
    let out = aksnet(&[
        "plan",
        "--compare",
        "--route-table-limit",
        "2",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["plans"][0]["valid"], false);
    assert_eq!(v["plans"][2]["valid"], true);
}

fn temp_file(name: &str, body: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("aksnet-plan-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    path
}

#[test]
fn reads_yaml_and_json_files_and_flags_override() {
    let yaml = temp_file(
        "cluster.yaml",
        "type: Microsoft.ContainerService/managedClusters\nproperties:\n  networkProfile:\n    networkPlugin: kubenet\n    podCidr: 10.96.0.0/16\n  agentPoolProfiles:\n    - name: sys\n      count: 5\n      maxPods: 60\n      upgradeSettings:\n        maxSurge: \"50%\"\n",
    );
    let out = aksnet(&["plan", "-f", yaml.to_str().unwrap(), "-o", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["network_plugin"], "kubenet");
    assert_eq!(v["capacity"]["node_count"], 5);
    assert_eq!(v["capacity"]["surge_nodes"], 3);
    assert_eq!(v["capacity"]["route_table_entries"], 8);
    assert_eq!(v["network"]["pod_cidr"], "10.96.0.0/16");

    let jsonf = temp_file(
        "profile.json",
        r#"{"networkPlugin": "azure", "serviceCidr": "10.3.0.0/16", "dnsServiceIP": "10.3.0.10"}"#,
    );
    let out = aksnet(&[
        "plan",
        "-f",
        jsonf.to_str().unwrap(),
        "--network-plugin",
        "kubenet",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["network_plugin"], "kubenet", "flags override the file");
    assert_eq!(v["network"]["service_cidr"], "10.3.0.0/16");

    let bad = temp_file("bad.json", r#"{"networkProfile": {"serviceCidr": 7}}"#);
    let out = aksnet(&["plan", "-f", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("networkProfile.serviceCidr"));
    let _ = std::fs::remove_dir_all(yaml.parent().unwrap());
}

fn corpus(name: &str) -> String {
    format!("{}/../core/tests/corpus/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn unusable_input_with_json_prints_a_json_object() {
    let out = aksnet(&["plan", "--pod-cidr", "10.0.0.0/33", "-o", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let v = json(&out);
    assert_eq!(v["valid"], false);
    assert!(v["errors"][0]["code"].is_string());
    assert!(v["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("--pod-cidr"));
}

#[test]
fn stdin_and_several_files() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_aksnet"))
        .args(["plan", "--file", "-", "-o", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let body = std::fs::read(corpus("az-aks-show-kubenet.json")).unwrap();
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["network_plugin"], "kubenet");
    // aks-baseline: the spoke VNet and the cluster stamp side by side.
    let out = aksnet(&[
        "plan",
        "-f",
        &corpus("aks-baseline-spoke.json"),
        "-f",
        &corpus("aks-baseline-cluster-stamp.json"),
        "--parameter",
        "targetVnetResourceId=/subscriptions/0/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet-hub-spoke-BU0001A0008-00",
        "-o",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["capacity"]["subnets"][0]["cidr"], "10.240.16.0/24");
    assert_eq!(v["capacity"]["required_subnet_ips"], 186);
    // A missing parameter names the flag that supplies it.
    let out = aksnet(&["plan", "-f", &corpus("aks-baseline-cluster-stamp.json")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--parameter targetVnetResourceId=VALUE"));
}

#[test]
fn refusals_the_issue_lists() {
    for (args, code) in [
        (
            vec!["--network-plugin", "kubenet", "--network-policy", "azure"],
            "network-policy-unsupported",
        ),
        (
            vec![
                "--network-dataplane",
                "cilium",
                "--network-policy",
                "calico",
            ],
            "cilium-dataplane-policy",
        ),
        (
            vec![
                "--node-count",
                "20",
                "--load-balancer-outbound-ports",
                "8000",
            ],
            "snat-ports-exhausted",
        ),
        (
            vec!["--outbound-type", "userDefinedRouting"],
            "udr-needs-own-subnet",
        ),
    ] {
        let mut a = vec!["plan", "-o", "json"];
        a.extend(args);
        let out = aksnet(&a);
        assert_eq!(out.status.code(), Some(1), "{a:?}");
        let v = json(&out);
        let codes: Vec<&str> = v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["code"].as_str().unwrap())
            .collect();
        assert!(codes.contains(&code), "{a:?}: {codes:?}");
    }
}

#[test]
fn the_kubernetes_version_picks_the_default_plugin() {
    // No plugin named: AKS uses kubenet before 1.30, overlay from 1.30.
    for (version, plugin) in [
        ("1.29.9", "kubenet"),
        ("1.30", "overlay"),
        ("1.33.1", "overlay"),
    ] {
        let out = aksnet(&["plan", "--kubernetes-version", version, "-o", "json"]);
        assert_eq!(out.status.code(), Some(0), "{version}");
        let v = json(&out);
        assert_eq!(v["network_plugin"], plugin, "{version}");
        assert_eq!(v["network"]["kubernetes_version"], version);
        let said = v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["code"] == "network-plugin-defaulted");
        assert!(said, "{version}: {v}");
    }
    // A named plugin wins, and then nothing is said about the default.
    let out = aksnet(&[
        "plan",
        "--kubernetes-version",
        "1.29",
        "--network-plugin",
        "azure",
        "-o",
        "json",
    ]);
    let v = json(&out);
    assert_eq!(v["network_plugin"], "azure");
    assert!(!v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["code"] == "network-plugin-defaulted"));
}

#[test]
fn flags_clap_refuses_still_answer_in_json() {
    for args in [
        &["plan", "--node-count", "abc", "-o", "json"][..],
        &["plan", "-o", "json", "--bogus"][..],
        &[
            "--log-format",
            "json",
            "plan",
            "--output=json",
            "--max-pods",
            "-1",
        ][..],
        &["plan", "-ojson", "--compare", "--network-plugin"][..],
    ] {
        let out = aksnet(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let v = json(&out);
        assert_eq!(v["valid"], false, "{args:?}");
        assert_eq!(v["errors"][0]["code"], "input-unusable", "{args:?}");
        assert!(v["errors"][0]["message"].is_string(), "{args:?}");
        // The person at the terminal still gets clap's message.
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("error:"),
            "{args:?}"
        );
    }
    let v = json(&aksnet(&["plan", "--node-count", "abc", "-o", "json"]));
    assert_eq!(v["errors"][0]["field"], "--node-count <N>");
    // Without -o json, stdout stays empty; help is not an error.
    let out = aksnet(&["plan", "--node-count", "abc"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let out = aksnet(&["plan", "--help", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
}

/// `--api-server-authorized-ip-ranges` and `apiServerAccessProfile` in a
/// file: an unparsable range is unusable input (exit 2, naming where it
/// came from); too many, a private cluster or a Basic load balancer are
/// refusals (exit 1) with their codes; 0.0.0.0/0 is a warning.
#[test]
fn authorized_ip_ranges() {
    let codes = |v: &Value, what: &str| -> Vec<String> {
        v[what]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["code"].as_str().unwrap().to_string())
            .collect()
    };
    let ok = aksnet(&[
        "plan",
        "-o",
        "json",
        "--api-server-authorized-ip-ranges",
        "20.30.40.0/24,20.30.41.7",
    ]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        json(&ok)["network"]["authorized_ip_ranges"],
        serde_json::json!(["20.30.40.0/24", "20.30.41.7"])
    );
    for bad in ["20.30.40.0/33", "20.30.40", "nope"] {
        let out = aksnet(&["plan", "--api-server-authorized-ip-ranges", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--api-server-authorized-ip-ranges") && err.contains(bad),
            "{bad}: {err}"
        );
    }
    let many: Vec<String> = (0..201)
        .map(|i| format!("20.{}.{}.0/24", i / 250, i % 250))
        .collect();
    let out = aksnet(&[
        "plan",
        "-o",
        "json",
        "--api-server-authorized-ip-ranges",
        &many.join(","),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(codes(&json(&out), "errors").contains(&"authorized-ip-ranges-too-many".to_string()));
    let private = aksnet(&[
        "plan",
        "-o",
        "json",
        "--api-server-authorized-ip-ranges",
        "20.30.40.0/24",
        "--enable-private-cluster",
    ]);
    assert_eq!(private.status.code(), Some(1));
    assert!(codes(&json(&private), "errors")
        .contains(&"authorized-ip-ranges-private-cluster".to_string()));
    let open = aksnet(&[
        "plan",
        "-o",
        "json",
        "--api-server-authorized-ip-ranges",
        "0.0.0.0/0",
    ]);
    assert_eq!(open.status.code(), Some(0));
    assert!(codes(&json(&open), "warnings").contains(&"authorized-ip-ranges-open".to_string()));
    // ARM: apiServerAccessProfile with a Basic load balancer.
    let arm = temp_file(
        "aks-ranges.json",
        r#"{"type": "Microsoft.ContainerService/managedClusters", "apiVersion": "2024-05-01", "name": "c",
            "properties": {"networkProfile": {"networkPlugin": "azure", "networkPluginMode": "overlay", "loadBalancerSku": "basic"},
                           "apiServerAccessProfile": {"authorizedIPRanges": ["20.30.40.0/24"]}}}"#,
    );
    let out = aksnet(&["plan", "-o", "json", "--file", arm.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(codes(&json(&out), "errors").contains(&"authorized-ip-ranges-basic-lb".to_string()));
    // az aks show spells it authorizedIpRanges, and a private cluster.
    let az = temp_file(
        "az-show.json",
        r#"{"name": "c", "networkProfile": {"networkPlugin": "kubenet"},
            "apiServerAccessProfile": {"authorizedIpRanges": ["20.30.40.0/24"], "enablePrivateCluster": true}}"#,
    );
    let out = aksnet(&["plan", "-o", "json", "--file", az.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        codes(&json(&out), "errors").contains(&"authorized-ip-ranges-private-cluster".to_string())
    );
    // An unparsable range in a file: exit 2, naming the field.
    let bad = temp_file(
        "az-bad.json",
        r#"{"name": "c", "networkProfile": {"networkPlugin": "kubenet"},
            "apiServerAccessProfile": {"authorizedIpRanges": ["20.30.40.0/99"]}}"#,
    );
    let out = aksnet(&["plan", "--file", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("20.30.40.0/99") && err.contains("uthorized"),
        "{err}"
    );
}
