#!/usr/bin/env bash
# Re-takes issue 15's goals for two builds in balanced order (docs/benchmarks.md, "Issue 15, ... session").
#
# Usage:
#   scripts/issue15-retake.sh snapshot DIR        copy this checkout's built classes (mvn -B -q -DskipTests install
#                                                 first) into DIR, with DIR/cp.txt, the class path that runs them
#   scripts/issue15-retake.sh run NEW_DIR OLD_DIR [OUT]
#                                                 B4a 8 JVMs (new, old, old, new, new, old, old, new), B1 6 JVMs,
#                                                 JMH's idle listener, B3 6 JVMs and the SVD, on NEW_DIR's classes
#                                                 where one build is enough; tables go to OUT (default out/issue15)
# About 17 minutes on 2 cores. Take it with nothing else running; the per-JVM commands are those the tables print.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n '2,11p' "$0" >&2
  exit 2
}

case "${1:-}" in
  snapshot)
    [ "$#" -eq 2 ] || usage
    dir=$2
    for m in core trainer-integration samples benchmarks; do
      [ -d "${m}/target/classes" ] || { echo "no ${m}/target/classes: build first" >&2; exit 1; }
    done
    runtime=benchmarks/target/benchmarks-runtime.classpath
    [ -f "${runtime}" ] || { echo "no ${runtime}: mvn -B -q -DskipTests install first" >&2; exit 1; }
    # Only a folder this script made (it holds cp.txt) or an empty one is replaced.
    if [ -e "${dir}" ] && [ ! -f "${dir}/cp.txt" ] && [ -n "$(ls -A "${dir}" 2>/dev/null)" ]; then
      echo "${dir} exists and is not a snapshot (no cp.txt): name a new or empty folder" >&2
      exit 1
    fi
    rm -rf "${dir}"
    mkdir -p "${dir}"
    for m in core trainer-integration samples benchmarks; do
      cp -r "${m}/target/classes" "${dir}/${m}-classes"
    done
    abs=$(cd "${dir}" && pwd)
    # The project's own jars (installed or in a module's target/) are left out: the copied classes stand for them, and
    # a later build of this checkout must not change what the snapshot runs.
    deps=$(tr ':' '\n' <"${runtime}" | grep -v '/dev/surgery/' | grep -v "^$(pwd)/[^/]*/target/" | paste -sd: -)
    echo "${abs}/core-classes:${abs}/trainer-integration-classes:${abs}/samples-classes:${abs}/benchmarks-classes:${deps}" \
      >"${dir}/cp.txt"
    echo "snapshot in ${dir} ($(git rev-parse --short HEAD)$(git diff --quiet || echo ', with uncommitted changes'))"
    ;;
  run)
    [ "$#" -ge 3 ] || usage
    new=$2
    old=$3
    out=${4:-out/issue15}
    mkdir -p "${out}"
    export DJL_OFFLINE=true OPT_OUT_TRACKING=true OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
    one=(-Dai.djl.offline=true -Xmx2g -Dai.djl.pytorch.num_threads=1 -Dai.djl.pytorch.num_interop_threads=1
      -Dorg.slf4j.simpleLogger.defaultLogLevel=warn)
    stamp() { echo "== $1 $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"; }
    for v in "${new}" "${old}" "${old}" "${new}" "${new}" "${old}" "${old}" "${new}"; do
      stamp "B4a ${v}" >>"${out}/b4a.txt"
      java "${one[@]}" -cp "$(cat "${v}/cp.txt")" dev.surgery.benchmarks.B4ScaleAndLeaks --part scale --runs 6 2>&1 \
        | grep '^|\|Command' >>"${out}/b4a.txt"
    done
    for v in "${new}" "${old}" "${old}" "${new}" "${new}" "${old}"; do
      stamp "B1 ${v}" >>"${out}/b1.txt"
      java "${one[@]}" -cp "$(cat "${v}/cp.txt")" dev.surgery.benchmarks.B1LiveSurgery --runs 15 2>&1 \
        | grep '^|\|ratio\|rebuild parts' >>"${out}/b1.txt"
    done
    cp_new=$(cat "${new}/cp.txt")
    stamp "JMH idle listener" >>"${out}/jmh.txt"
    java "${one[@]}" -cp "${cp_new}" org.openjdk.jmh.Main -f 1 -wi 3 -i 5 -w 2s -r 3s \
      -jvmArgs "${one[*]}" ListenerIdleBenchmark 2>&1 | tail -8 >>"${out}/jmh.txt"
    for i in 1 2 3 4 5 6; do
      stamp "B3 ${i}" >>"${out}/b3.txt"
      java "${one[@]}" -cp "${cp_new}" dev.surgery.benchmarks.B3BlurPoolCost --steps 60 2>&1 | grep '^|\|%' >>"${out}/b3.txt"
    done
    stamp "SVD" >>"${out}/svd.txt"
    java -Dai.djl.offline=true -Xmx2g -cp "${cp_new}" dev.surgery.benchmarks.SvdComparison --runs 3 2>&1 \
      | grep '^|\|Command' >>"${out}/svd.txt"
    echo "tables in ${out}: b4a.txt b1.txt jmh.txt b3.txt svd.txt"
    ;;
  *)
    usage
    ;;
esac
