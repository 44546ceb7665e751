#!/usr/bin/env bash
# Runs the core, trainer-integration and agent tests (unit tests and the forked-JVM *IT) against each DJL version
# that has a profile in pom.xml (-Pdjl-0.33 ... -Pdjl-0.36), one version after the other, and prints one table.
#
# Usage: scripts/djl-compat.sh [--online] [VERSION...]      VERSION: 0.33 0.34 0.35 0.36 (default: all four)
#   --online   let Maven download what is missing (the first run of a version); otherwise it runs with -o.
# Each version builds into <module>/target/djl-<djl version>/ (the default target/classes stay untouched); the full
# Maven log is target/djl-compat/djl-VERSION.log. Spotless is skipped (the sources are the same for every version).
# Exit status: 0 when every version passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
export DJL_OFFLINE=true OPT_OUT_TRACKING=true

offline=(-o)
versions=()
for arg in "$@"; do
  case "$arg" in
    --online) offline=() ;;
    0.33|0.34|0.35|0.36) versions+=("$arg") ;;
    *) sed -n '2,8p' "$0" >&2; exit 2 ;;
  esac
done
[ "${#versions[@]}" -gt 0 ] || versions=(0.33 0.34 0.35 0.36)

modules=(core trainer-integration agent)
logdir=target/djl-compat
mkdir -p "$logdir"

# Sums tests, failures + errors and skipped over the JUnit XML reports in one folder (surefire and failsafe).
count() {
  local files=("$1"/surefire-reports/TEST-*.xml "$1"/failsafe-reports/TEST-*.xml)
  local existing=()
  for f in "${files[@]}"; do [ -f "$f" ] && existing+=("$f"); done
  if [ "${#existing[@]}" -eq 0 ]; then echo "-"; return; fi
  grep -ho '<testsuite [^>]*>' "${existing[@]}" | awk '
    { for (i = 1; i <= NF; i++) { split($i, kv, "=") ; gsub(/"/, "", kv[2]);
        if (kv[1] == "tests") t += kv[2]; if (kv[1] == "failures" || kv[1] == "errors") f += kv[2];
        if (kv[1] == "skipped") s += kv[2] } }
    END { printf "%d run, %d failed%s", t, f, (s ? ", " s " skipped" : "") }'
}

rows=()
status=0
for v in "${versions[@]}"; do
  log="$logdir/djl-$v.log"
  echo "=== DJL $v: $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg); log $log" >&2
  rm -rf core/target/djl-"$v".* trainer-integration/target/djl-"$v".* agent/target/djl-"$v".*
  start=$(date +%s)
  mvn -B "${offline[@]}" -fae -P "djl-$v" -pl "$(IFS=,; echo "${modules[*]}")" verify \
    -Dspotless.check.skip=true >"$log" 2>&1
  rc=$?
  minutes=$(( ($(date +%s) - start + 30) / 60 ))
  [ "$rc" -eq 0 ] || status=1
  djl=$(grep -o 'djl-[0-9.]*' <<<"$(ls -d core/target/djl-"$v".* 2>/dev/null)" | head -1)
  # DJL logs where it found libtorch: it must be the pytorch-native jar from the class path (offline, no download)
  lib=$(grep -m1 -o 'pytorch-native-[a-z0-9]*-[0-9.]*-linux-x86_64\.jar' "$log" | sed 's/-linux-x86_64\.jar//')
  row="| $v | ${djl#djl-} | ${lib:-not found in the log} |"
  for m in "${modules[@]}"; do
    dir=$(ls -d "$m"/target/djl-"$v".* 2>/dev/null | head -1)
    if [ -z "$dir" ]; then row="$row not built |"; else row="$row $(count "$dir") |"; fi
  done
  if [ "$rc" -eq 0 ]; then result=PASS; else
    # the first compile error or failed test names what broke
    why=$(grep -m1 -E '\[ERROR\] (/.*\.java|Tests run:.*FAIL|Failed to execute)' "$log" | cut -c1-160)
    result="FAIL: ${why:-see $log}"
  fi
  rows+=("$row $result | ${minutes} min |")
done

echo
echo "| profile | DJL | libtorch from | core | trainer-integration | agent | result | time |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
exit "$status"
