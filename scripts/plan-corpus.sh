#!/usr/bin/env bash
# Plans every design of the planner corpus (crates/core/tests/corpus/) with
# one or more aksnet binaries and prints a markdown table side by side: the
# exit status, plugin, verdict and key figures each binary gives. Used for
# the before/after table in docs/planner.md:
#
#   scripts/plan-corpus.sh OLD/aksnet target/debug/aksnet
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 AKSNET [AKSNET...]" >&2; exit 2; }
bins=()
for b in "$@"; do
  p=$(command -v "$b" 2>/dev/null || true)
  [ -n "$p" ] && [ -x "$p" ] || { echo "plan-corpus: $b is not an executable" >&2; exit 2; }
  bins+=("$(cd "$(dirname "$p")" && pwd)/$(basename "$p")")
done
set -- "${bins[@]}"
cd "$(dirname "$0")/../crates/core/tests/corpus"
vnet=/subscriptions/0/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet-hub-spoke-BU0001A0008-00
# name | plan arguments
cases=(
  "quickstart aks|-f quickstart-aks.json"
  "quickstart aks-azure-linux|-f quickstart-aks-azure-linux.json"
  "quickstart aks-vmss-systemassigned-identity|-f quickstart-aks-vmss-systemassigned-identity.json"
  "quickstart aks-osm-addon|-f quickstart-aks-osm-addon.json"
  "quickstart aks-osm-addon, k8Version=1.28.5|-f quickstart-aks-osm-addon.json -p k8Version=1.28.5"
  "quickstart prometheus-grafana (excerpt) + parameters|-f quickstart-prometheus-grafana-excerpt.json --parameters quickstart-prometheus-grafana.parameters.json"
  "aks-baseline spoke + stamp|-f aks-baseline-spoke.json -f aks-baseline-cluster-stamp.json -p targetVnetResourceId=$vnet"
  "AVM agent-pool module alone|-f avm-managed-cluster-agent-pool.json -p managedClusterName=aks101cluster -p name=user1"
  "quickstart aks + AVM agent-pool module|-f quickstart-aks.json -f avm-managed-cluster-agent-pool.json -p managedClusterName=aks101cluster -p name=user1 -p count=5"
  "CAPZ AKS flavour|-f capz-aks-cluster-template.yaml"
  "CAPZ AKS ASO flavour|-f capz-aks-aso-cluster-template.yaml"
  "ASO cluster + pool v1api20231001|-f aso-managedcluster-v1api20231001.yaml -f aso-managedclustersagentpool-v1api20231001.yaml"
  "ASO cluster + pool v20250801|-f aso-managedcluster-v20250801.yaml -f aso-managedclustersagentpool-v20250801.yaml"
  "az aks show (kubenet)|-f az-aks-show-kubenet.json"
)
err=$(mktemp)
trap 'rm -f "$err"' EXIT
header="| design |"
rule="|---|"
for b in "$@"; do header+=" $b |"; rule+="---|"; done
echo "$header"
echo "$rule"
for c in "${cases[@]}"; do
  name=${c%%|*}
  read -r -a args <<<"${c#*|}"
  row="| $name |"
  for b in "$@"; do
    set +e
    out=$("$b" plan -o json "${args[@]}" 2>"$err")
    code=$?
    set -e
    if [ -z "$out" ]; then
      # Older builds printed nothing on stdout for unusable input.
      cell="exit $code: no plan, nothing on stdout ($(head -c 90 "$err" | head -n 1))"
      row+=" ${cell//|/\\|} |"
      continue
    fi
    cell=$(jq -r --arg code "$code" '
      if has("capacity") then
        "exit \($code): \(.network_plugin), \(if .valid then "valid" else "INVALID " + ([.errors[].code] | join(",")) end), \(.capacity.node_count) nodes, subnet \(.capacity.subnets[0].cidr // "unknown"), \(.capacity.required_subnet_ips) addresses needed"
      else
        "exit \($code): no plan (\(.errors[0].message // "no JSON" | .[0:90]))"
      end' <<<"$out" 2>/dev/null) || cell="exit $code: no plan (no JSON on stdout)"
    row+=" ${cell//|/\\|} |"
  done
  echo "$row"
done
