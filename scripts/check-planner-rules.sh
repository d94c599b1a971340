#!/usr/bin/env bash
# Mutation check for the planner: renames each finding code in turn and
# confirms the test suite notices. Prints one line per code; exits 1 if any
# code survives (a rule no test pins down).
set -uo pipefail
cd "$(dirname "$0")/.."
rules=crates/core/src/planner/rules.rs
orig=$(mktemp)
cp "$rules" "$orig"
trap 'cp "$orig" "$rules"; rm -f "$orig"' EXIT
codes=$(grep -oE '(error|warn)\(\s*"[a-z0-9-]+"' "$rules" | grep -oE '"[a-z0-9-]+"' | tr -d '"'; \
        grep -oE '^\s+"[a-z-]+",$' "$rules" | tr -d ' ",')
survivors=0
for c in $(echo "$codes" | sort -u); do
  sed -i "s/\"$c\"/\"$c-mutated\"/g" "$rules"
  if cargo test -q -p aksnet-core --lib >/dev/null 2>&1; then
    echo "SURVIVED $c"; survivors=$((survivors + 1))
  else
    echo "caught   $c"
  fi
  cp "$orig" "$rules"
done
[ "$survivors" -eq 0 ]
