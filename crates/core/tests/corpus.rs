//! The planner on real AKS definitions (`tests/corpus/`, sources in
//! `SOURCES.md`): each case names its files and parameters and checks the
//! plan's facts — plugin, subnets, node count, required addresses, verdict —
//! not only that the files parse.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

use std::path::Path;

use aksnet_core::planner::{self, Plan};
use aksnet_core::spec::{
    self, document, Document, InputError, NetworkPlugin, Parameters, SpecInput,
};

fn corpus(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Plans `files` with `--parameters` files and `--parameter` values.
fn plan(files: &[&str], param_files: &[&str], params: &[&str]) -> Result<Plan, InputError> {
    let mut ps = Parameters::default();
    for f in param_files {
        for d in document::parse(&corpus(f), f, f.ends_with(".json"))? {
            ps.add_file(&d, f)?;
        }
    }
    for p in params {
        ps.add_flag(p)?;
    }
    let mut docs = Vec::new();
    for f in files {
        for value in document::parse(&corpus(f), f, f.ends_with(".json"))? {
            docs.push(Document {
                value,
                label: f.to_string(),
            });
        }
    }
    let input = spec::from_documents(&docs, &ps)?.overridden_by(SpecInput::default());
    planner::plan_input(&input)
}

fn warnings(p: &Plan) -> Vec<&str> {
    p.warnings.iter().map(|w| w.code.as_str()).collect()
}

fn errors(p: &Plan) -> Vec<&str> {
    p.errors.iter().map(|w| w.code.as_str()).collect()
}

#[test]
fn quickstart_aks_uses_the_parameter_default_of_three_nodes() {
    // Before: "count: [parameters('agentCount')]" stopped the plan.
    let p = plan(&["quickstart-aks.json"], &[], &[]).unwrap();
    assert!(p.valid, "{:?}", p.errors);
    assert_eq!(p.network_plugin, NetworkPlugin::Overlay);
    assert!(warnings(&p).contains(&"network-plugin-defaulted"));
    assert_eq!(p.capacity.node_count, 3);
    assert_eq!(p.network.node_pools[0].mode.as_deref(), Some("System"));
    assert_eq!(p.network.node_pools[0].max_pods, 250);
    assert_eq!(p.capacity.required_subnet_ips, 4);
    // --parameter overrides the default.
    let p = plan(&["quickstart-aks.json"], &[], &["agentCount=7"]).unwrap();
    assert_eq!(p.capacity.node_count, 7);
    // The published parameters file sets authorizedIPRange, which this
    // version of the template no longer declares: ARM refuses that
    // deployment, and so does the planner, naming the parameter.
    let e = plan(
        &["quickstart-aks.json"],
        &["quickstart-aks.parameters.json"],
        &[],
    )
    .unwrap_err();
    assert!(e.field.contains("authorizedIPRange"), "{e}");
    let e = plan(&["quickstart-aks.json"], &[], &["agentCount=many"]).unwrap_err();
    assert!(e.message.contains("not a whole number"), "{e}");
    let e = plan(&["quickstart-aks.json"], &[], &["nodeCount=3"]).unwrap_err();
    assert!(
        e.message.contains("agentCount"),
        "names what is declared: {e}"
    );
}

#[test]
fn other_quickstarts() {
    for f in [
        "quickstart-aks-azure-linux.json",
        "quickstart-aks-vmss-systemassigned-identity.json",
    ] {
        let p = plan(&[f], &[], &[]).unwrap();
        assert!(p.valid, "{f}: {:?}", p.errors);
        assert_eq!(p.capacity.node_count, 3, "{f}");
        assert_eq!(p.capacity.node_ips, 4, "{f}");
    }
    // kubernetesVersion has no default, but planning does not need it.
    let p = plan(&["quickstart-aks-osm-addon.json"], &[], &[]).unwrap();
    assert!(p.valid);
    assert_eq!(p.capacity.node_count, 3);
    assert!(
        warnings(&p).contains(&"field-not-evaluated"),
        "{:?}",
        p.warnings
    );
    assert_eq!(p.network_plugin, NetworkPlugin::Overlay);
    // The template names no plugin: AKS picks it by the version its
    // k8Version parameter gives (kubenet before 1.30, overlay from 1.30).
    let p = plan(
        &["quickstart-aks-osm-addon.json"],
        &[],
        &["k8Version=1.28.5"],
    )
    .unwrap();
    assert_eq!(p.network_plugin, NetworkPlugin::Kubenet);
    assert_eq!(p.network.kubernetes_version.as_deref(), Some("1.28.5"));
    let note = p
        .warnings
        .iter()
        .find(|w| w.code == "network-plugin-defaulted")
        .unwrap();
    assert!(
        note.message
            .contains("kubenet, AKS's default for Kubernetes 1.28.5"),
        "{}",
        note.message
    );
    assert_eq!(p.capacity.route_table_entries, 4);
    let p = plan(
        &["quickstart-aks-osm-addon.json"],
        &[],
        &["k8Version=1.30.4"],
    )
    .unwrap();
    assert_eq!(p.network_plugin, NetworkPlugin::Overlay);
}

#[test]
fn aks_baseline_two_files_charge_the_spoke_subnet() {
    let vnet = "targetVnetResourceId=/subscriptions/0/resourceGroups/rg-spokes/providers/Microsoft.Network/virtualNetworks/vnet-hub-spoke-BU0001A0008-00";
    // Without the parameter: the error names it and the flag.
    let e = plan(
        &["aks-baseline-spoke.json", "aks-baseline-cluster-stamp.json"],
        &[],
        &[],
    )
    .unwrap_err();
    assert!(e.field.contains("vnetSubnetID"), "{e}");
    assert!(
        e.message.contains("--parameter targetVnetResourceId=VALUE"),
        "{e}"
    );
    assert!(e.message.contains("--subnet-cidr"), "{e}");
    let p = plan(
        &["aks-baseline-spoke.json", "aks-baseline-cluster-stamp.json"],
        &[],
        &[vnet],
    )
    .unwrap();
    assert!(p.valid, "{:?}", p.errors);
    assert_eq!(p.network_plugin, NetworkPlugin::Azure);
    assert_eq!(p.network.vnet_cidrs[0].to_string(), "10.240.0.0/19");
    assert_eq!(
        p.capacity.subnets[0].cidr.as_deref(),
        Some("10.240.16.0/24")
    );
    // The other subnets of the spoke are known: the service CIDR avoids them.
    assert_eq!(p.network.other_subnets.len(), 3);
    assert_eq!(p.network.network_policy.as_deref(), Some("azure"));
    assert_eq!(
        p.network.outbound.outbound_type.as_deref(),
        Some("userDefinedRouting")
    );
    // 5 nodes + 1 surge, 30 pods each, on the node subnet.
    assert_eq!(p.capacity.node_count, 5);
    assert_eq!(p.capacity.required_subnet_ips, 6 * 31);
    assert_eq!(p.capacity.subnet_usable_ips, Some(251));
    assert_eq!(p.capacity.max_nodes, 7);
    // The stamp alone: the subnet is known by ID only, never a default.
    let p = plan(&["aks-baseline-cluster-stamp.json"], &[], &[vnet]).unwrap();
    assert!(warnings(&p).contains(&"subnet-range-unknown"));
    assert_eq!(p.capacity.subnet_usable_ips, None);
    assert_eq!(p.capacity.subnets[0].cidr, None);
}

#[test]
fn capz_aks_flavour() {
    let p = plan(&["capz-aks-cluster-template.yaml"], &[], &[]).unwrap();
    assert_eq!(p.network.service_cidr.to_string(), "192.168.0.0/16");
    assert_eq!(p.network.dns_service_ip.to_string(), "192.168.0.10");
    assert_eq!(p.network.subnet_cidr.to_string(), "10.240.0.0/16");
    // ${WORKER_MACHINE_COUNT:=2} in each of the two MachinePools.
    assert_eq!(p.capacity.node_count, 4);
    assert_eq!(p.network.node_pools[0].mode.as_deref(), Some("System"));
    // No plugin named: overlay's default pod CIDR falls inside CAPZ's
    // default 10.0.0.0/8 VNet.
    assert!(errors(&p).contains(&"pod-cidr-overlaps-vnet"));
    let p = plan(
        &["capz-aks-cluster-template.yaml"],
        &[],
        &["WORKER_MACHINE_COUNT=10"],
    )
    .unwrap();
    assert_eq!(p.capacity.node_count, 20);
}

#[test]
fn aso_cluster_and_its_separate_pool() {
    for (c, a) in [
        (
            "aso-managedcluster-v1api20231001.yaml",
            "aso-managedclustersagentpool-v1api20231001.yaml",
        ),
        (
            "aso-managedcluster-v20250801.yaml",
            "aso-managedclustersagentpool-v20250801.yaml",
        ),
    ] {
        let p = plan(&[c, a], &[], &[]).unwrap();
        assert!(p.valid, "{:?}", p.errors);
        assert_eq!(p.network.node_pools.len(), 2);
        assert_eq!(p.capacity.node_count, 2);
        assert_eq!(p.network.node_pools[1].mode.as_deref(), Some("User"));
        // A pool without its cluster is not a design.
        assert!(plan(&[a], &[], &[]).is_err());
    }
}

#[test]
fn az_aks_show_spellings() {
    let p = plan(&["az-aks-show-kubenet.json"], &[], &[]).unwrap();
    assert!(p.valid, "{:?}", p.errors);
    assert_eq!(p.network_plugin, NetworkPlugin::Kubenet);
    assert_eq!(p.network.dns_service_ip.to_string(), "10.0.0.10");
    assert_eq!(p.capacity.node_count, 1);
    assert_eq!(p.network.node_pools[0].max_pods, 110);
    assert_eq!(p.capacity.route_table_entries, 2);
}

#[test]
fn quickstart_prometheus_grafana_bicep_modules_with_a_parameters_file() {
    // Bicep modules compiled to inner-scope nested deployments: the VNet
    // and child subnets in one, the cluster in another, joined by the
    // network module's output (reference(...).outputs.subnet2Id.value).
    let files = ["quickstart-prometheus-grafana-excerpt.json"];
    let params = ["quickstart-prometheus-grafana.parameters.json"];
    let p = plan(&files, &params, &[]).unwrap();
    assert!(p.valid, "{:?}", p.errors);
    assert_eq!(p.network_plugin, NetworkPlugin::Overlay);
    let vnets: Vec<String> = p.network.vnet_cidrs.iter().map(|c| c.to_string()).collect();
    assert_eq!(vnets, ["10.0.0.0/16", "10.100.0.0/16"]);
    assert_eq!(p.capacity.subnets.len(), 1);
    assert_eq!(p.capacity.subnets[0].cidr.as_deref(), Some("10.100.0.0/22"));
    // The autoscaled System pool is planned at maxCount 2, 110 pods.
    assert_eq!(p.capacity.node_count, 2);
    assert_eq!(p.network.node_pools[0].max_pods, 110);
    assert_eq!(p.capacity.required_subnet_ips, 3);
    assert_eq!(p.capacity.subnet_usable_ips, Some(1019));
    assert_eq!(p.capacity.max_nodes, 255);
    // The default service CIDR 10.0.0.0/16 is the VNet's first address
    // space, which holds no subnet: allowed, not recommended.
    assert_eq!(p.network.service_cidr.to_string(), "10.0.0.0/16");
    assert!(
        warnings(&p).contains(&"service-cidr-in-vnet"),
        "{:?}",
        p.warnings
    );
    assert_eq!(p.network.network_policy.as_deref(), Some("azure"));
    // Without the parameters file the required parameters are named.
    let e = plan(&files, &[], &[]).unwrap_err();
    assert!(e.message.contains("--parameter"), "{e}");
}

#[test]
fn capz_aso_flavour_reads_the_aso_objects_inside_capz() {
    // AzureASOManagedControlPlane / AzureASOManagedMachinePool hold ASO
    // ManagedCluster / ManagedClustersAgentPool objects in spec.resources;
    // each pool's count is its MachinePool's replicas.
    let f = ["capz-aks-aso-cluster-template.yaml"];
    let p = plan(&f, &[], &[]).unwrap();
    assert!(p.valid, "{:?}", p.errors);
    assert_eq!(p.network_plugin, NetworkPlugin::Azure);
    let pools: Vec<(&str, u32, Option<&str>)> = p
        .network
        .node_pools
        .iter()
        .map(|n| (n.name.as_str(), n.count, n.mode.as_deref()))
        .collect();
    assert_eq!(
        pools,
        [("pool0", 2, Some("System")), ("pool1", 2, Some("User"))]
    );
    // Azure CNI node subnet on AKS's default subnet: (4 + 2 surge) × 31.
    assert_eq!(p.capacity.required_subnet_ips, 6 * 31);
    assert_eq!(p.network.subnet_cidr.to_string(), "10.224.0.0/16");
    let p = plan(&f, &[], &["WORKER_MACHINE_COUNT=5"]).unwrap();
    assert_eq!(p.capacity.node_count, 10);
}

#[test]
fn avm_agent_pool_module_joins_the_cluster_it_names() {
    // Azure Verified Modules' agent-pool module: languageVersion 2.0
    // symbolic resources, the cluster as an `existing` resource, Bicep's
    // nullable parameters (null when not given, never "no value").
    let pool = "avm-managed-cluster-agent-pool.json";
    // Alone it is a pool without its cluster: a clear finding (exit 2)
    // naming what to add.
    let e = plan(
        &[pool],
        &[],
        &["managedClusterName=aks101cluster", "name=user1"],
    )
    .unwrap_err();
    assert!(
        e.message
            .contains("agent pool 'user1' of cluster 'aks101cluster'")
            && e.message.contains("another --file"),
        "{e}"
    );
    // With the quickstart's cluster (clusterName defaults to aks101cluster):
    // a second pool, count and maxPods from --parameter, typed as ints.
    let p = plan(
        &["quickstart-aks.json", pool],
        &[],
        &[
            "managedClusterName=aks101cluster",
            "name=user1",
            "count=5",
            "maxPods=50",
        ],
    )
    .unwrap();
    assert!(p.valid, "{:?}", p.errors);
    let pools: Vec<(&str, u32, u32)> = p
        .network
        .node_pools
        .iter()
        .map(|n| (n.name.as_str(), n.count, n.max_pods))
        .collect();
    assert_eq!(pools, [("agentpool", 3, 250), ("user1", 5, 50)]);
    assert_eq!(p.capacity.node_count, 8);
    // One surge node per pool.
    assert_eq!(p.capacity.required_subnet_ips, 10);
    // The module's defaults: count 1, maxPods unset (the plugin's default).
    let p = plan(
        &["quickstart-aks.json", pool],
        &[],
        &["managedClusterName=aks101cluster", "name=user1"],
    )
    .unwrap();
    assert_eq!(p.network.node_pools[1].count, 1);
    assert_eq!(p.network.node_pools[1].max_pods, 250);
    // A pool of another cluster is not this cluster's.
    let p = plan(
        &["quickstart-aks.json", pool],
        &[],
        &["managedClusterName=other", "name=user1"],
    )
    .unwrap();
    assert_eq!(p.network.node_pools.len(), 1);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.code == "document-ignored" && w.message.contains("'other'")),
        "{:?}",
        p.warnings
    );
}

/// The figure for the closing note: how many corpus designs plan.
#[test]
fn corpus_figures() {
    let vnet = "targetVnetResourceId=/subscriptions/0/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet-hub-spoke-BU0001A0008-00";
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec![
                "quickstart-prometheus-grafana-excerpt.json",
                "--parameters=quickstart-prometheus-grafana.parameters.json",
            ],
            vec![],
        ),
        (vec!["capz-aks-aso-cluster-template.yaml"], vec![]),
        (
            vec!["quickstart-aks.json", "avm-managed-cluster-agent-pool.json"],
            vec!["managedClusterName=aks101cluster", "name=user1", "count=5"],
        ),
        (vec!["quickstart-aks.json"], vec![]),
        (vec!["quickstart-aks-azure-linux.json"], vec![]),
        (
            vec!["quickstart-aks-vmss-systemassigned-identity.json"],
            vec![],
        ),
        (vec!["quickstart-aks-osm-addon.json"], vec![]),
        (
            vec!["aks-baseline-spoke.json", "aks-baseline-cluster-stamp.json"],
            vec![vnet],
        ),
        (vec!["capz-aks-cluster-template.yaml"], vec![]),
        (
            vec![
                "aso-managedcluster-v1api20231001.yaml",
                "aso-managedclustersagentpool-v1api20231001.yaml",
            ],
            vec![],
        ),
        (
            vec![
                "aso-managedcluster-v20250801.yaml",
                "aso-managedclustersagentpool-v20250801.yaml",
            ],
            vec![],
        ),
        (vec!["az-aks-show-kubenet.json"], vec![]),
    ];
    let split = |f: &[&'static str]| -> (Vec<&'static str>, Vec<&'static str>) {
        let (ps, fs): (Vec<&str>, Vec<&str>) =
            f.iter().partition(|x| x.starts_with("--parameters="));
        (
            fs,
            ps.iter()
                .map(|x| x.trim_start_matches("--parameters="))
                .collect(),
        )
    };
    let planned = cases
        .iter()
        .filter(|(f, p)| {
            let (files, param_files) = split(f);
            plan(&files, &param_files, p).is_ok()
        })
        .count();
    assert_eq!(planned, cases.len(), "every corpus design produces a plan");
    // Every file of the corpus is in a case (the quickstart's own
    // parameters file is refused on purpose, see above), and there are at
    // least 15.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "SOURCES.md")
        .collect();
    files.sort();
    assert!(files.len() >= 15, "{} corpus files", files.len());
    let sources = std::fs::read_to_string(dir.join("SOURCES.md")).unwrap();
    for f in &files {
        assert!(
            sources.contains(&format!("`{f}`")),
            "{f} is not in SOURCES.md"
        );
        let used = f == "quickstart-aks.parameters.json"
            || cases.iter().any(|(fs, _)| {
                fs.iter()
                    .any(|x| x.trim_start_matches("--parameters=") == f.as_str())
            });
        assert!(used, "{f} is in no corpus case");
    }
}
