#!/usr/bin/env bash
# Runs the core, trainer-integration, agent and samples tests (unit tests and the forked-JVM *IT) against each DJL
# version that has a profile in pom.xml (-Pdjl-0.33 ... -Pdjl-0.36), one version after the other; prints one table.
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

modules=(core trainer-integration agent samples)
logdir=target/djl-compat
mkdir -p "$logdir"

# Sums one module's test results from the log: Maven's per-execution summary lines (surefire, then failsafe) that
# follow the module's "Building" line. (The XML reports undercount dynamic tests, so the log is the source.)
count() {
  awk -v module="$2" '
    /Building DJL Surgery :: / { current = $6 }
    current == module && /Tests run: [0-9]+, Failures: [0-9]+, Errors: [0-9]+, Skipped: [0-9]+$/ {
      gsub(/,/, ""); t += $4; f += $6 + $8; s += $10; seen = 1 }
    END { if (!seen) print "no tests ran"; else printf "%d run, %d failed%s", t, f, (s ? ", " s " skipped" : "") }
  ' "$1"
}

rows=()
status=0
for v in "${versions[@]}"; do
  log="$logdir/djl-$v.log"
  echo "=== DJL $v: $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg); log $log" >&2
  for m in "${modules[@]}"; do rm -rf "$m"/target/djl-"$v".*; done
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
    row="$row $(count "$log" "$m") |"
  done
  if [ "$rc" -eq 0 ]; then result=PASS; else
    # the first compile error or failed test names what broke
    why=$(grep -m1 -E '\[ERROR\] (/.*\.java|Tests run:.*FAIL|Failed to execute)' "$log" | cut -c1-160)
    result="FAIL: ${why:-see $log}"
  fi
  rows+=("$row $result | ${minutes} min |")
done

echo
echo "| profile | DJL | libtorch from | core | trainer-integration | agent | samples | result | time |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
exit "$status"
