#!/usr/bin/env bash
# Runs one benchmark main class under two class paths in balanced order A, B, B, A (the first JVM of a pair
# tends to run slower, whichever it is) and prints each run's table with the time and the load average.
#
# Usage: scripts/bench-ab.sh A_CLASSPATH_FILE B_CLASSPATH_FILE MAIN_CLASS [ARGS...]
# Each file holds one class path line: the benchmarks, samples, trainer-integration and core target/classes folders
# of a checkout followed by benchmarks/target/benchmarks-runtime.classpath (written by `mvn -DskipTests package`)
# without the dev.surgery entries. MAIN_CLASS is e.g. dev.surgery.benchmarks.B1LiveSurgery, or
# org.openjdk.jmh.Main with JMH's flags (see benchmarks/README.md). BENCH_JVM_ARGS adds JVM options, e.g. on a
# shared machine BENCH_JVM_ARGS="-Dai.djl.pytorch.num_threads=1 -Dai.djl.pytorch.num_interop_threads=1" (with
# OMP_NUM_THREADS=1).
set -euo pipefail
if [ "$#" -lt 3 ]; then
  sed -n '2,11p' "$0" >&2
  exit 2
fi
export DJL_OFFLINE=true OPT_OUT_TRACKING=true
a_cp=$(cat "$1")
b_cp=$(cat "$2")
main=$3
shift 3
for who in A B B A; do
  if [ "$who" = A ]; then cp=$a_cp; else cp=$b_cp; fi
  echo "=== $who $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)"
  java -Dai.djl.offline=true -Xmx2g ${BENCH_JVM_ARGS:-} -cp "$cp" "$main" "$@" 2>&1 | grep -v 'INFO\|WARN' || true
done
