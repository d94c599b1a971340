#!/usr/bin/env bash
# Runs the examples README.md and docs/*.md show and compares what they print
# with what the docs say they print.
#
# An example is a ```console block. Its `$ COMMAND` lines (a trailing `\`
# continues a command) are run in order in one shell, each followed by the
# lines the docs show for it (stdout and stderr together). Only blocks whose
# every command is safe are run: `aksnet plan ...` (it reads flags and the
# corpus files, and changes nothing) and `echo $?`. Blocks with anything
# else (root `#` commands, labs, stores, dig, podman) are listed as skipped.
# Commands run in crates/core/tests/corpus, where the files the docs name
# are. In the docs, a line holding only `…` (or starting with ` …`) stands
# for any number of lines; trailing blanks are ignored.
#
#   scripts/docs-examples.sh [AKSNET]   (default: target/debug/aksnet, built if missing)
#
# Exit 0 when every run example matches, 1 when one differs (a diff is
# printed), 2 on a usage problem.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=${1:-${AKSNET_BIN:-$root/target/debug/aksnet}}
if [ ! -x "$bin" ]; then
  if [ $# -eq 0 ]; then
    cargo build -q -p aksnet --bin aksnet
  else
    echo "docs-examples: $bin is not an executable" >&2
    exit 2
  fi
fi
bindir=$(cd "$(dirname "$bin")" && pwd)
[ "$(basename "$bin")" = aksnet ] || { echo "docs-examples: the binary must be named aksnet" >&2; exit 2; }
work=$(mktemp -d /tmp/aksnet-docs-examples.XXXXXX)
trap 'rm -rf "$work"' EXIT

safe_command() {
  case "$1" in
    "aksnet plan"|"aksnet plan "*) ;;
    'echo $?') return 0 ;;
    *) return 1 ;;
  esac
  # No redirection into files, no pipes to other programs, no ;/&& chains.
  case "$1" in *'>'*|*'|'*|*';'*|*'&&'*) return 1 ;; esac
}

# Splits the console blocks of one file into $work/N.cmds (one command per
# line) and $work/N.want (the expected transcript: "$ cmd" then its output).
split_blocks() {
  awk -v dir="$work" -v file="$1" '
    function flush() {
      if (n > 0) { print file ":" start > (dir "/" id ".where") }
    }
    /^```console[[:space:]]*$/ {
      # A block opened inside another: the first was never closed.
      if (inblock) { flush(); print file ":" start >> (dir "/unclosed") }
      inblock = 1; id++; n = 0; start = NR; cont = 0; next
    }
    /^```/ && inblock { flush(); inblock = 0; next }
    inblock {
      line = $0
      if (cont) {
        sub(/^[[:space:]]+/, "", line)
        cmd = cmd " " line
        if (cmd ~ /\\$/) { sub(/[[:space:]]*\\$/, "", cmd); next }
        cont = 0
        print cmd > (dir "/" id ".cmds"); print "$ " cmd > (dir "/" id ".want"); n++
        next
      }
      if (line ~ /^\$ /) {
        cmd = substr(line, 3)
        if (cmd ~ /\\$/) { sub(/[[:space:]]*\\$/, "", cmd); cont = 1; next }
        print cmd > (dir "/" id ".cmds"); print "$ " cmd > (dir "/" id ".want"); n++
        next
      }
      if (line ~ /^# /) { print "#ROOT " substr(line, 3) > (dir "/" id ".cmds"); n++; next }
      print line > (dir "/" id ".want")
    }
    END { if (inblock) { flush(); print file ":" start >> (dir "/unclosed") } }
  ' "$1"
}

# True when `got` matches `want`, where a `…` line in want matches any lines.
matches() {
  awk -v gotfile="$1" '
    function trim(s) { sub(/[[:space:]]+$/, "", s); return s }
    BEGIN { while ((getline l < gotfile) > 0) got[++ng] = trim(l) }
    { want[++nw] = trim($0) }
    END {
      # Backtracking-free greedy match: a wildcard skips to the next line
      # that equals the line after it.
      i = 1; j = 1
      while (j <= nw) {
        w = want[j]
        if (w == "…" || w ~ /^ …/) {
          if (j == nw) { exit 0 }
          nxt = want[j + 1]
          while (i <= ng && got[i] != nxt) i++
          if (i > ng) exit 1
          j++
          continue
        }
        if (i > ng || got[i] != w) exit 1
        i++; j++
      }
      exit (i <= ng) ? 1 : 0
    }
  ' "$2"
}

checked=0 skipped=0 failed=0
for doc in README.md docs/*.md; do
  rm -f "$work"/*.cmds "$work"/*.want "$work"/*.where "$work/unclosed"
  split_blocks "$doc"
  if [ -e "$work/unclosed" ]; then
    while IFS= read -r where; do
      failed=$((failed + 1))
      echo "FAIL $where: the console block is not closed (the text after it renders as code)"
    done <"$work/unclosed"
  fi
  for cmds in "$work"/*.cmds; do
    [ -e "$cmds" ] || continue
    id=$(basename "$cmds" .cmds)
    where=$(cat "$work/$id.where")
    ok=1
    while IFS= read -r c; do
      safe_command "$c" || { ok=0; break; }
    done <"$cmds"
    if [ $ok -eq 0 ]; then
      skipped=$((skipped + 1))
      continue
    fi
    # One shell for the block, so `echo $?` sees the command before it.
    script="$work/$id.sh"
    : >"$script"
    while IFS= read -r c; do
      # The echo of the command keeps $? for an `echo $?` that follows.
      printf '__s=$?; printf "%%s\\n" %q; (exit $__s); %s 2>&1\n' "\$ $c" "$c" >>"$script"
    done <"$cmds"
    (cd crates/core/tests/corpus && PATH="$bindir:$PATH" AKSNET_LOG=off bash "$script" >"$work/$id.got" 2>&1) || true
    checked=$((checked + 1))
    if matches "$work/$id.got" "$work/$id.want"; then
      echo "ok   $where ($(wc -l <"$cmds") commands)"
    else
      failed=$((failed + 1))
      echo "FAIL $where: the output differs from the docs (- docs, + now):"
      diff -u "$work/$id.want" "$work/$id.got" | tail -n +3 | sed 's/^/     /' || true
    fi
  done
done
echo "docs-examples: $checked examples run, $failed differ, $skipped skipped (not safe to run here: root, lab, store, network or other programs)"
[ $failed -eq 0 ]
