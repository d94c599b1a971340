//! `aksnet apply|get|delete` as users and scripts run them: round trips,
//! atomic applies, exit codes, published manifests, and ClusterIP/NodePort
//! allocation under many concurrent applies (SQLite and etcd).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is the test's failure"
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn aksnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aksnet"))
        .args(args)
        .env_remove("AKSNET_STORE")
        .output()
        .expect("run aksnet")
}

fn aksnet_stdin(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_aksnet"))
        .args(args)
        .env_remove("AKSNET_STORE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run aksnet");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)))
}

/// A fresh SQLite store with a cluster network (service CIDR 10.0.0.0/16,
/// DNS 10.0.0.10), in a directory removed at drop.
struct Cluster {
    _dir: tempfile::TempDir,
    path: PathBuf,
    store: String,
}

impl Cluster {
    fn new() -> Self {
        Self::with(&[])
    }

    fn with(init: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ak4-k8s-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("cluster.db");
        let store = format!("sqlite:{}", path.display());
        let mut args = vec!["cluster", "init", "--store", &store];
        args.extend_from_slice(init);
        let o = aksnet(&args);
        assert!(o.status.success(), "{}", text(&o));
        Cluster {
            _dir: dir,
            path,
            store,
        }
    }

    fn file(&self, name: &str, body: &str) -> String {
        let p = self.path.parent().unwrap().join(name);
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    }

    fn run(&self, cmd: &str, args: &[&str]) -> Output {
        let mut a = vec![cmd, "--store", &self.store];
        a.extend_from_slice(args);
        aksnet(&a)
    }

    fn revision(&self) -> i64 {
        let s = aksnet_store::open(&self.store).unwrap();
        s.revision().unwrap()
    }
}

const APP: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {team: a}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec:
  nodeName: node-1
  containers: [{name: web, image: nginx, ports: [{name: http, containerPort: 8080}]}]
status:
  podIP: 10.244.0.7
  conditions: [{type: Ready, status: \"True\"}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {a: b}
";

#[test]
fn apply_get_delete_round_trip() {
    let c = Cluster::new();
    let f = c.file("app.yaml", APP);
    let o = c.run("apply", &["-f", &f]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        stdout(&o),
        "namespace/shop created\ndeployment.apps/web created\nservice/web created\npod/web-1 created\nconfigmap/settings ignored (no networking)\n"
    );
    // Applying the same file again changes nothing.
    let rev = c.revision();
    let o = c.run("apply", &["-f", &f, "-o", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let r = json(&o);
    let actions: Vec<&str> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "unchanged",
            "unchanged",
            "unchanged",
            "unchanged",
            "ignored"
        ]
    );
    assert_eq!(r["results"][4]["reason"], "no networking");
    assert_eq!(c.revision(), rev, "an unchanged apply writes nothing");

    // get: a named object is the object; a list is a List.
    let o = c.run("get", &["svc", "web", "-n", "shop", "-o", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let svc = json(&o);
    assert_eq!(svc["kind"], "Service");
    let cip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(cip.starts_with("10.0.") && cip != "10.0.0.10", "{cip}");
    let np = svc["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&np));
    assert_eq!(
        svc["metadata"]["resourceVersion"]
            .as_str()
            .map(|s| s.parse::<i64>().is_ok()),
        Some(true)
    );
    let o = c.run("get", &["services", "-A", "-o", "json"]);
    let list = json(&o);
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let o = c.run("get", &["ns", "shop", "-o", "yaml"]);
    let ns: Value = serde_yaml::from_slice(&o.stdout).unwrap();
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "shop"
    );
    assert_eq!(ns["metadata"]["labels"]["team"], "a");
    let o = c.run("get", &["ns"]);
    let t = stdout(&o);
    assert!(
        t.starts_with("NAME")
            && t.contains("default")
            && t.contains("kube-system")
            && t.contains("shop"),
        "{t}"
    );
    // Every spelling of a kind.
    for k in ["svc", "service", "services", "Service", "SERVICES"] {
        let o = c.run("get", &[k, "-n", "shop", "-o", "json"]);
        assert_eq!(json(&o)["items"].as_array().unwrap().len(), 1, "{k}");
    }
    for k in [
        "po",
        "pod",
        "pods",
        "deploy",
        "deployment",
        "deployments.apps",
        "endpointslices",
        "endpointslice",
    ] {
        let o = c.run("get", &[k, "-n", "shop", "-o", "json"]);
        assert!(o.status.success(), "{k}: {}", text(&o));
        assert!(!json(&o)["items"].as_array().unwrap().is_empty(), "{k}");
    }
    let o = c.run("get", &["svc", "-n", "shop"]);
    let t = stdout(&o);
    assert!(t.starts_with("NAME   TYPE       CLUSTER-IP"), "{t}");
    assert!(t.contains(&format!("80:{np}/TCP")), "{t}");

    // The Service's endpoints are derived from the ready Pod.
    let o = c.run("get", &["endpointslices", "-n", "shop", "-o", "json"]);
    let slices = json(&o);
    let s = &slices["items"][0];
    assert_eq!(s["metadata"]["labels"]["kubernetes.io/service-name"], "web");
    assert_eq!(
        s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(s["endpoints"][0]["addresses"][0], "10.244.0.7");
    assert_eq!(s["endpoints"][0]["conditions"]["ready"], true);
    assert_eq!(s["endpoints"][0]["nodeName"], "node-1");
    assert_eq!(s["ports"][0]["port"], 8080);

    // Re-applying updates in place: labels, replicas.
    let changed = APP
        .replace("labels: {team: a}", "labels: {team: b}")
        .replace("replicas: 3", "replicas: 5")
        .replace(
            "labels: {app: web}}\nspec:\n  nodeName",
            "labels: {app: web, tier: front}}\nspec:\n  nodeName",
        );
    let f2 = c.file("app2.yaml", &changed);
    let o = c.run("apply", &["-f", &f2]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        stdout(&o),
        "namespace/shop configured\ndeployment.apps/web configured\nservice/web unchanged\npod/web-1 configured\nconfigmap/settings ignored (no networking)\n"
    );
    let o = c.run("get", &["deploy", "web", "-n", "shop", "-o", "json"]);
    assert_eq!(json(&o)["spec"]["replicas"], 5);
    let o = c.run("get", &["po", "web-1", "-n", "shop", "-o", "json"]);
    let pod = json(&o);
    assert_eq!(pod["metadata"]["labels"]["tier"], "front");
    assert_eq!(pod["status"]["podIP"], "10.244.0.7");
    let o = c.run("get", &["svc", "web", "-n", "shop", "-o", "json"]);
    assert_eq!(
        json(&o)["spec"]["clusterIP"],
        cip.as_str(),
        "the ClusterIP stays"
    );

    // delete by kind and name, then by file; a missing object is exit 1.
    let o = c.run("delete", &["svc", "web", "-n", "shop"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o), "service \"web\" deleted\n");
    let o = c.run("get", &["svc", "web", "-n", "shop"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("services \"web\" not found"),
        "{}",
        text(&o)
    );
    let store = aksnet_store::open(&c.store).unwrap();
    let allocs = store.range("/aksnet/k8s/nodeports/").unwrap().kvs.len()
        + store.range("/aksnet/k8s/ipaddresses/").unwrap().kvs.len();
    assert_eq!(allocs, 0, "the Service's ClusterIP and NodePort are freed");
    let o = c.run("delete", &["svc", "web", "-n", "shop"]);
    assert_eq!(o.status.code(), Some(1));
    let o = c.run(
        "delete",
        &["svc", "web", "-n", "shop", "--ignore-not-found"],
    );
    assert_eq!(o.status.code(), Some(0));
    let o = c.run("delete", &["-f", &f]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "the Service is gone already: {}",
        text(&o)
    );
    assert!(
        stdout(&o).contains("namespace \"shop\" deleted"),
        "{}",
        text(&o)
    );
    assert!(
        stdout(&o).contains("configmap/settings ignored"),
        "{}",
        text(&o)
    );
    let o = c.run("get", &["po", "-A", "-o", "json"]);
    assert!(json(&o)["items"].as_array().unwrap().is_empty());
    let o = c.run("delete", &["ns", "default"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("may not be deleted"), "{}", text(&o));
}

#[test]
fn one_bad_object_applies_nothing() {
    let c = Cluster::new();
    let f = c.file(
        "taken.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: first}\nspec:\n  type: NodePort\n  clusterIP: 10.0.0.50\n  ports: [{port: 80, nodePort: 30080}]\n",
    );
    assert!(c.run("apply", &["-f", &f]).status.success());
    let rev = c.revision();
    for (name, body, field) in [
        (
            "bad-np.yaml",
            "  type: NodePort\n  ports: [{port: 80, nodePort: 40000}]\n",
            "spec.ports[0].nodePort: Invalid value: 40000",
        ),
        (
            "dup-np.yaml",
            "  type: NodePort\n  ports: [{port: 80, nodePort: 30080}]\n",
            "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated",
        ),
        (
            "outside.yaml",
            "  clusterIP: 10.1.0.5\n  ports: [{port: 80}]\n",
            "spec.clusterIP: Invalid value: \"10.1.0.5\"",
        ),
        (
            "dup-ip.yaml",
            "  clusterIP: 10.0.0.50\n  ports: [{port: 80}]\n",
            "provided IP is already allocated",
        ),
        (
            "port.yaml",
            "  ports: [{port: 0}]\n",
            "spec.ports[0].port: Invalid value: 0",
        ),
    ] {
        let body = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: fresh}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: good, namespace: fresh}}\nspec:\n  ports: [{{port: 80}}]\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: bad}}\nspec:\n{body}"
        );
        let f = c.file(name, &body);
        let o = c.run("apply", &["-f", &f]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", text(&o));
        let t = text(&o);
        assert!(
            t.contains("Service default/bad") && t.contains(field),
            "{name}: {t}"
        );
        assert!(t.contains("nothing was applied"), "{t}");
        assert_eq!(c.revision(), rev, "{name}: nothing is written");
        let o = c.run("get", &["ns", "fresh"]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{name}: the good objects were not stored"
        );
        let o = c.run("apply", &["-f", &f, "-o", "json"]);
        let r = json(&o);
        assert_eq!(r["applied"], false);
        assert_eq!(r["errors"][0]["object"], "Service default/bad");
        assert!(r["errors"][0]["errors"][0]["field"]
            .as_str()
            .unwrap()
            .starts_with("spec."));
    }
}

#[test]
fn exit_codes() {
    let c = Cluster::new();
    // 2: unusable input.
    let o = aksnet_stdin(&["apply", "--store", &c.store, "-f", "-"], "a: [\n");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not valid YAML"), "{}", text(&o));
    let o = c.run("apply", &["-f", "/nonexistent/app.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("/nonexistent/app.yaml"));
    let o = aksnet_stdin(
        &["apply", "--store", &c.store, "-f", "-"],
        "metadata: {name: x}\n",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("apiVersion and kind not set"),
        "{}",
        text(&o)
    );
    let o = c.run("get", &["frobnicators"]);
    assert_eq!(o.status.code(), Some(2));
    let o = c.run("get", &["cm"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("ConfigMap"), "{}", text(&o));
    let o = c.run("get", &["svc", "-o", "wide"]);
    assert_eq!(o.status.code(), Some(2));
    let o = aksnet(&["apply", "--lab", "no-such-lab-here", "-f", "-"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("no lab named 'no-such-lab-here'"),
        "{}",
        text(&o)
    );
    let o = aksnet(&["apply", "--lab", "x", "--store", &c.store, "-f", "-"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "--store and --lab together: {}",
        text(&o)
    );
    // 1: rejected objects, retired versions with the version to use.
    for (manifest, want) in [
        ("apiVersion: apps/v1beta1\nkind: Deployment\nmetadata: {name: d}\n", "use apiVersion: apps/v1"),
        ("apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: d}\n", "use apiVersion: apps/v1"),
        ("apiVersion: extensions/v1beta1\nkind: NetworkPolicy\nmetadata: {name: d}\n", "use apiVersion: networking.k8s.io/v1"),
        ("apiVersion: networking.k8s.io/v1beta1\nkind: NetworkPolicy\nmetadata: {name: d}\n", "use apiVersion: networking.k8s.io/v1"),
        ("apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: d}\n", "use apiVersion: discovery.k8s.io/v1"),
        ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: \"http\"}]}\n", "spec.ports[0].port"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: nowhere}\nspec: {containers: [{name: c, image: x}]}\n", "namespace \"nowhere\" not found"),
    ] {
        let o = aksnet_stdin(&["apply", "--store", &c.store, "-f", "-"], manifest);
        assert_eq!(o.status.code(), Some(1), "{manifest}: {}", text(&o));
        assert!(text(&o).contains(want), "{want}: {}", text(&o));
    }
    // 0: only ignored kinds.
    let o = aksnet_stdin(
        &["apply", "--store", &c.store, "-f", "-"],
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: h}\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n---\napiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: k}\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        stdout(&o),
        "horizontalpodautoscaler.autoscaling/h ignored (no networking)\ningress.networking.k8s.io/i ignored (aksnet has no ingress controller)\nwidget.example.com/w ignored (no networking)\nservice.serving.knative.dev/k ignored (no networking)\n"
    );
    // An uninitialised store: refused, saying what to do.
    let dir = tempfile::Builder::new()
        .prefix("ak4-k8s-")
        .tempdir()
        .unwrap();
    let bare = format!("sqlite:{}", dir.path().join("c.db").display());
    let o = aksnet_stdin(
        &["apply", "--store", &bare, "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("cluster init"), "{}", text(&o));
}

#[test]
fn json_lists_and_kind_list_input() {
    let c = Cluster::new();
    let list = r#"{"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}, "spec": {"ports": [{"port": 80}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "b"}, "spec": {"clusterIP": "None", "selector": {"app": "b"}}}
    ]}"#;
    let f = c.file("list.json", list);
    let o = c.run("apply", &["-f", &f]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o), "service/a created\nservice/b created\n");
    // What `get -o json` prints applies again, unchanged.
    let o = c.run("get", &["svc", "-o", "json"]);
    let dump = c.file("dump.json", &stdout(&o));
    let o = c.run("apply", &["-f", &dump]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o), "service/a unchanged\nservice/b unchanged\n");
    let o = c.run("get", &["svc", "b", "-o", "json"]);
    assert_eq!(json(&o)["spec"]["clusterIP"], "None");
    // A directory applies its manifests in name order; -n sets the namespace.
    let dir = c.path.parent().unwrap().join("dir");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("b.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 1}]}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("a.yml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n",
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "not a manifest").unwrap();
    let o = c.run("apply", &["-f", &dir.display().to_string(), "-n", "team"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o), "namespace/team created\nservice/x created\n");
    let o = c.run("get", &["svc", "x", "-n", "team", "-o", "json"]);
    assert_eq!(json(&o)["metadata"]["namespace"], "team");
}

#[test]
fn published_manifests_apply_as_they_are() {
    let c = Cluster::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/manifests");
    let guestbook = dir.join("guestbook-all-in-one.yaml");
    let o = c.run("apply", &["-f", &guestbook.display().to_string()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o).lines().count(), 6);
    let nginx = dir.join("ingress-nginx-deploy.yaml");
    let o = c.run("apply", &["-f", &nginx.display().to_string(), "-o", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let r = json(&o);
    let rows = r["results"].as_array().unwrap();
    let count = |a: &str| rows.iter().filter(|x| x["action"] == a).count();
    assert_eq!((count("created"), count("ignored")), (4, 15), "{r:#}");
    let o = c.run(
        "get",
        &[
            "svc",
            "ingress-nginx-controller",
            "-n",
            "ingress-nginx",
            "-o",
            "json",
        ],
    );
    let lb = json(&o);
    assert_eq!(lb["spec"]["type"], "LoadBalancer");
    assert_eq!(lb["spec"]["externalTrafficPolicy"], "Local");
    let hc = lb["spec"]["healthCheckNodePort"].as_i64().unwrap();
    let ports: BTreeSet<i64> = lb["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nodePort"].as_i64().unwrap())
        .collect();
    assert_eq!(ports.len(), 2);
    assert!(!ports.contains(&hc));
    // The Deployment kept what aksnet does not model.
    let o = c.run(
        "get",
        &[
            "deploy",
            "ingress-nginx-controller",
            "-n",
            "ingress-nginx",
            "-o",
            "json",
        ],
    );
    let d = json(&o);
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(
        d["spec"]["template"]["spec"]["serviceAccountName"],
        "ingress-nginx"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUser"],
        101
    );
    // Both again: unchanged.
    let o = c.run("apply", &["-f", &dir.display().to_string()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        !stdout(&o).contains("created") && !stdout(&o).contains("configured"),
        "{}",
        stdout(&o)
    );
}

/// Services of one concurrent applier: `n` NodePort Services.
fn many_services(who: usize, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: s{who}-{i}}}\nspec:\n  type: NodePort\n  ports: [{{name: a, port: 80}}, {{name: b, port: 81}}]\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// `procs` concurrent `aksnet apply` processes, each creating `per`
/// Services with a ClusterIP and two NodePorts: all succeed, and no
/// address or port is given twice.
fn concurrent_applies(store: &str, dir: &Path, procs: usize, per: usize) {
    let files: Vec<String> = (0..procs)
        .map(|w| {
            let p = dir.join(format!("svc-{w}.yaml"));
            std::fs::write(&p, many_services(w, per)).unwrap();
            p.display().to_string()
        })
        .collect();
    let started = std::time::Instant::now();
    let children: Vec<_> = files
        .iter()
        .map(|f| {
            Command::new(env!("CARGO_BIN_EXE_aksnet"))
                .args(["apply", "--store", store, "-f", f, "-o", "json"])
                .env_remove("AKSNET_STORE")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut attempts = 0;
    for ch in children {
        let o = ch.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
        attempts += json(&o)["attempts"].as_u64().unwrap();
    }
    let took = started.elapsed();
    let o = aksnet(&["get", "--store", store, "svc", "-o", "json"]);
    let list = json(&o);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), procs * per);
    let ips: BTreeSet<&str> = items
        .iter()
        .map(|s| s["spec"]["clusterIP"].as_str().unwrap())
        .collect();
    let ports: Vec<i64> = items
        .iter()
        .flat_map(|s| {
            s["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["nodePort"].as_i64().unwrap())
        })
        .collect();
    let distinct: BTreeSet<i64> = ports.iter().copied().collect();
    assert_eq!(ips.len(), procs * per, "a ClusterIP given twice");
    assert_eq!(distinct.len(), ports.len(), "a NodePort given twice");
    assert!(
        !ips.contains("10.0.0.10"),
        "the DNS address is never picked"
    );
    let kv = aksnet_store::open(store).unwrap();
    assert_eq!(
        kv.range("/aksnet/k8s/ipaddresses/").unwrap().kvs.len(),
        procs * per
    );
    assert_eq!(
        kv.range("/aksnet/k8s/nodeports/").unwrap().kvs.len(),
        ports.len()
    );
    eprintln!(
        "{procs} concurrent applies of {per} NodePort Services each on {store}: {} Services, {} NodePorts, all distinct, {attempts} transactions ({} lost races), in {took:?}",
        procs * per,
        ports.len(),
        attempts as usize - procs
    );
}

#[test]
fn concurrent_applies_never_share_an_address_or_port_sqlite() {
    // A /24 service CIDR: 128 Services take half its addresses, so the
    // appliers' random picks collide and some must lose and retry.
    let c = Cluster::with(&["--service-cidr", "10.0.0.0/24"]);
    concurrent_applies(&c.store, c.path.parent().unwrap(), 16, 8);
}

#[test]
fn concurrent_applies_never_share_an_address_or_port_etcd() {
    let Some(bin) = aksnet_store::testing::etcd::require_etcd("concurrent applies on etcd") else {
        return;
    };
    let etcd = aksnet_store::testing::etcd::EtcdCluster::single(&bin).expect("etcd");
    let store = etcd.store_url();
    let o = aksnet(&[
        "cluster",
        "init",
        "--store",
        &store,
        "--service-cidr",
        "10.0.0.0/24",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let dir = tempfile::Builder::new()
        .prefix("ak4-k8s-")
        .tempdir()
        .unwrap();
    concurrent_applies(&store, dir.path(), 8, 8);
}

#[test]
fn lab_targets_the_labs_store() {
    // A lab directory as `lab up` leaves it (state file and store), under a
    // root of our own: `--lab` needs no root and no namespaces to store objects.
    let root = tempfile::Builder::new()
        .prefix("ak4-k8s-lab-")
        .tempdir()
        .unwrap();
    let lab = root.path().join("shop");
    std::fs::create_dir_all(&lab).unwrap();
    std::fs::write(lab.join("state.json"), "{}").unwrap();
    let store = format!("sqlite:{}", lab.join("cluster.db").display());
    assert!(aksnet(&["cluster", "init", "--store", &store])
        .status
        .success());
    let run = |args: &[&str], input: &str| {
        use std::io::Write;
        let mut ch = Command::new(env!("CARGO_BIN_EXE_aksnet"))
            .args(args)
            .env("AKSNET_LAB_ROOT", root.path())
            .env_remove("AKSNET_STORE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        ch.stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        ch.wait_with_output().unwrap()
    };
    let o = run(
        &["apply", "--lab", "shop", "-f", "-"],
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {selector: {app: web}, ports: [{port: 80}]}\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = aksnet(&["get", "--store", &store, "svc", "web", "-o", "json"]);
    assert_eq!(
        json(&o)["metadata"]["name"],
        "web",
        "stored in the lab's store"
    );
    let o = run(&["get", "--lab", "shop", "svc", "-o", "json"], "");
    assert_eq!(json(&o)["items"].as_array().unwrap().len(), 1);
    let o = run(&["delete", "--lab", "shop", "svc", "web"], "");
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["get", "--lab", "other", "svc"], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("no lab named 'other'"), "{}", text(&o));
    let o = run(&["get", "--lab", "Not_A_Name", "svc"], "");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn get_all_and_selectors() {
    let c = Cluster::new();
    let f = c.file("app.yaml", APP);
    assert!(c.run("apply", &["-f", &f]).status.success());
    let o = c.run("get", &["all", "-n", "shop"]);
    let t = stdout(&o);
    assert!(
        t.contains("pod/web-1") && t.contains("service/web") && t.contains("deployment.apps/web"),
        "{t}"
    );
    let o = c.run("get", &["svc,po", "-n", "shop", "-o", "json"]);
    let both = json(&o);
    let kinds: Vec<&str> = both["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Service", "Pod"]);
    let o = c.run("get", &["svc/web", "-n", "shop", "-o", "json"]);
    assert_eq!(json(&o)["kind"], "Service");
    let o = c.run("get", &["po", "-A", "-l", "app=web", "-o", "json"]);
    assert_eq!(json(&o)["items"].as_array().unwrap().len(), 1);
    let o = c.run("get", &["po", "-A", "-l", "app notin (web)", "-o", "json"]);
    assert!(json(&o)["items"].as_array().unwrap().is_empty());
    let o = c.run("get", &["po", "-l", "app in web"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_published_kustomize_directory_applies_as_it_is() {
    let c = Cluster::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/manifests/podinfo");
    let o = c.run("apply", &["-f", &dir.display().to_string()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        stdout(&o),
        "deployment.apps/podinfo created\n\
         horizontalpodautoscaler.autoscaling/podinfo ignored (no networking)\n\
         ingressroute.traefik.io/podinfo-ingressroute ignored (no networking)\n\
         service/podinfo created\nservice/podinfo-stable created\nservice/podinfo-canary created\n"
    );
    let o = c.run("get", &["deploy", "podinfo", "-o", "json"]);
    let d = json(&o);
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    assert_eq!(
        d["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"],
        "9797"
    );
}

/// `get netpol` says whether every node's agent enforces a policy, from
/// the state each agent publishes in its node record.
#[test]
fn netpol_status_follows_what_the_nodes_publish() {
    use aksnet_core::cluster::{node_key, NodeRecord, PolicyStatus, RouteMode};
    let c = Cluster::new();
    let f = c.file(
        "deny.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: default}\nspec: {podSelector: {}}\n",
    );
    let o = c.run("apply", &["-f", &f]);
    assert!(o.status.success(), "{}", text(&o));
    let written = c.revision();
    let store = aksnet_store::open(&c.store).unwrap();
    let publish = |name: &str, ip: &str, revision: i64, failed: Option<&str>| {
        let rec = NodeRecord {
            policy: Some(PolicyStatus {
                revision,
                failed: failed.map(str::to_string),
                ..PolicyStatus::default()
            }),
            ..NodeRecord::new(name, ip.parse().unwrap(), RouteMode::HostGw)
        };
        store
            .put(&node_key(name), &serde_json::to_vec(&rec).unwrap(), None)
            .unwrap();
    };
    let cond = || {
        let o = c.run("get", &["netpol", "deny", "-o", "json"]);
        assert!(o.status.success(), "{}", text(&o));
        json(&o)["status"].clone()
    };
    publish("node-1", "10.224.0.4", written, None);
    publish("node-2", "10.224.0.5", written - 1, None);
    let s = cond();
    assert_eq!(s["conditions"][0]["type"], "Programmed", "{s}");
    assert_eq!(s["conditions"][0]["status"], "Unknown", "{s}");
    assert_eq!(s["nodes"][1]["reason"], "Pending", "{s}");
    publish("node-2", "10.224.0.5", written, None);
    assert_eq!(cond()["conditions"][0]["status"], "True");
    publish(
        "node-2",
        "10.224.0.5",
        written,
        Some("nft: Error: Could not process rule"),
    );
    let s = cond();
    assert_eq!(s["conditions"][0]["status"], "False", "{s}");
    assert!(s["conditions"][0]["message"]
        .as_str()
        .unwrap()
        .contains("node-2: nft: Error"));
    // A list carries it too.
    let o = c.run("get", &["netpol", "-A", "-o", "json"]);
    assert_eq!(
        json(&o)["items"][0]["status"]["conditions"][0]["status"],
        "False"
    );
}
