#!/usr/bin/env bash
# Proves the GPU path of DJL Surgery on a Linux x86_64 machine with NVIDIA GPUs (see docs/gpu.md).
#
#   scripts/gpu-check.sh [--no-build] [--offline]
#
# Builds with -Pcuda (Maven downloads DJL's CUDA build of libtorch, pytorch-native-cu128, from Maven
# Central once), then runs, each in its own JVM:
#   probe                  which libtorch DJL loaded, the CUDA runtime, the GPUs, a product on each
#   main-job-1-gpu         the main job (ResNetJob under the agent, BlurPool after epoch 1), --devices 1
#   main-job-all-gpus      the same on every GPU (SKIP with fewer than 2: it is the 1-GPU run)
#   surgery-1-gpu          live BlurPool + squeeze-excite under Adam, model arrays on the CPU, trainer
#                          on gpu(0): the trainer trains device copies
#   surgery-all-gpus       the same with the trainer on every GPU (SKIP with fewer than 2)
#   oracle-gpu             core's ExactnessMatrixTest and TrainedCopiesTest with the CUDA jar on
#                          the test class path, on the first GPU
# One line per check, PASS/FAIL/SKIP and its name, then what ran where. Logs: out/gpu-check/.
# Exit status: 0 all passed, 1 a check failed, 2 no GPU (no NVIDIA driver lists one, checked before
# the build, or DJL sees none: nothing was proved), 3 a usage error.
#
# --no-build  reuse the last -Pcuda build (samples/target/samples-runtime.classpath).
# --offline   Maven offline (-o) and DJL offline; by default DJL may contact its own download host,
#             as `mvn -Pcuda ... exec:exec` does, when the bundled flavour does not fit the machine.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
root=$(pwd)
out="${root}/out/gpu-check"
mkdir -p "${out}"

build=true
offline=false
for arg in "$@"; do
  case "${arg}" in
    --no-build) build=false ;;
    --offline) offline=true ;;
    *)
      echo "usage: scripts/gpu-check.sh [--no-build] [--offline]" >&2
      exit 3
      ;;
  esac
done
# This run's logs only: the summary prints what each log says.
rm -f "${out}"/*.log

# ------------------------------------------------------------------ a GPU at all?
# Before the build, which downloads DJL's CUDA libtorch (over a gigabyte): a machine whose NVIDIA
# driver lists no GPU has nothing to prove. (DJL's own look, after the build, is the probe below.)
gpus_listed() {
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    return 0
  fi
  [ -d /proc/driver/nvidia/gpus ] && [ -n "$(ls -A /proc/driver/nvidia/gpus 2>/dev/null)" ]
}
if ! gpus_listed; then
  echo "SKIP build (no GPU)"
  echo "NO GPU: no NVIDIA driver lists a GPU here (nvidia-smi -L, /proc/driver/nvidia/gpus):" \
    "nothing was built or checked (exit 2)"
  exit 2
fi

export OPT_OUT_TRACKING=true
export DJL_OFFLINE="${offline}"
mvn_flags=(-B)
if [ "${offline}" = true ]; then
  mvn_flags+=(-o)
fi

failed=0
results=()

# result STATUS NAME DETAIL: prints and remembers one line per check.
result() {
  local line="$1 $2"
  if [ -n "${3:-}" ]; then
    line="${line} (${3})"
  fi
  echo "${line}"
  results+=("${line}")
  if [ "$1" = FAIL ]; then
    failed=1
  fi
}

summary() {
  echo
  echo "== what ran where =="
  for log in "${out}"/*.log; do
    [ -f "${log}" ] || continue
    local pattern='surgery:|devices \[|replaced [0-9]+ blocks|Found matching platform|Ignore mismatching platform|No matching cuda flavor|Tests run: [0-9]+, Failures'
    if [ "$(basename "${log}")" = probe.log ]; then
      pattern="^(engine|native jar|loaded|capabilities|CUDA runtime|GPUs DJL sees|  gpu\\()|${pattern}"
    fi
    grep -hE "${pattern}" "${log}" | sed "s|^|$(basename "${log}" .log): |" | awk '!seen[$0]++'
  done
  echo
  echo "== results =="
  printf '%s\n' "${results[@]}"
}

# ------------------------------------------------------------------ build
classpath_file="${root}/samples/target/samples-runtime.classpath"
if [ "${build}" = true ]; then
  echo "building with -Pcuda (first time: Maven downloads pytorch-native-cu128, over a gigabyte) ..."
  if mvn "${mvn_flags[@]}" -q -Pcuda -DskipTests verify >"${out}/build.log" 2>&1; then
    result PASS build "mvn -Pcuda -DskipTests verify"
  else
    result FAIL build "see ${out}/build.log"
    summary
    exit 1
  fi
fi
if [ ! -f "${classpath_file}" ]; then
  result FAIL classpath "no ${classpath_file}: build with -Pcuda first"
  summary
  exit 1
fi
runtime_cp=$(cat "${classpath_file}")
cuda_jar=$(tr ':' '\n' <<<"${runtime_cp}" | grep -E '/pytorch-native-cu[0-9]+-[^/]*\.jar$' | head -n 1 || true)
if [ -z "${cuda_jar}" ] || grep -q '/pytorch-native-cpu-' <<<"${runtime_cp}"; then
  result FAIL classpath "the samples class path is not the -Pcuda one (rebuild without --no-build)"
  summary
  exit 1
fi
cp_all="${root}/samples/target/classes:${runtime_cp}"
agent="${root}/agent/target/surgery-agent.jar"
config="${root}/samples/configs/blurpool.yaml"
java_flags=(-Xmx4g "-Dai.djl.offline=${offline}")

# ------------------------------------------------------------------ probe
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi -L >"${out}/nvidia-smi.log" 2>&1 || true
fi
java "${java_flags[@]}" -cp "${cp_all}" dev.surgery.samples.gpu.GpuCheck probe >"${out}/probe.log" 2>&1
status=$?
if [ "${status}" -eq 2 ]; then
  result SKIP probe "NO GPU: DJL sees no GPU; see ${out}/probe.log"
  for name in main-job-1-gpu main-job-all-gpus surgery-1-gpu surgery-all-gpus oracle-gpu; do
    result SKIP "${name}" "no GPU"
  done
  summary
  echo "NO GPU: nothing was checked on a GPU (exit 2). nvidia-smi says: $(head -n 1 "${out}/nvidia-smi.log" 2>/dev/null || echo 'not installed')"
  exit 2
elif [ "${status}" -ne 0 ]; then
  result FAIL probe "see ${out}/probe.log"
  summary
  exit 1
fi
gpus=$(sed -n 's/^GPUs DJL sees: \([0-9]*\).*/\1/p' "${out}/probe.log")
result PASS probe "${gpus} GPU(s)"

# ------------------------------------------------------------------ the main job
# main_job NAME EXPECTED_DEVICES [--devices N]: ResNetJob under the agent in its own directory.
main_job() {
  local name="$1" expected="$2"
  shift 2
  local dir="${out}/${name}"
  rm -rf "${dir}"
  mkdir -p "${dir}"
  (cd "${dir}" && java "${java_flags[@]}" "-javaagent:${agent}=${config}" -cp "${cp_all}" \
    dev.surgery.samples.jobs.ResNetJob --epochs 2 --max-batches 8 --batch-size 32 "$@") \
    >"${out}/${name}.log" 2>&1
  local rc=$?
  local report="${dir}/out/resnet-job/surgery-report.json"
  local devices
  devices=$(sed -n 's/.*"devices": *"\([^"]*\)".*/\1/p' "${report}" 2>/dev/null | head -n 1)
  if [ "${rc}" -ne 0 ]; then
    result FAIL "${name}" "exit ${rc}; see ${out}/${name}.log"
  elif ! grep -q 'Surgery: blurpool at epoch 1 replaced' "${out}/${name}.log"; then
    result FAIL "${name}" "BlurPool did not run; see ${out}/${name}.log"
  elif [ "${devices}" != "${expected}" ]; then
    result FAIL "${name}" "trained on '${devices}', expected '${expected}'"
  else
    result PASS "${name}" "trained on ${devices}"
  fi
}

all_gpus=$(seq 0 $((gpus - 1)) | sed 's/.*/gpu(&)/' | paste -sd, -)
main_job main-job-1-gpu "gpu(0)" --devices 1
if [ "${gpus}" -ge 2 ]; then
  main_job main-job-all-gpus "${all_gpus}"
else
  result SKIP main-job-all-gpus "1 GPU: the same run as main-job-1-gpu"
fi

# ------------------------------------------------------------------ live surgery on device copies
surgery() {
  local name="$1"
  shift
  java "${java_flags[@]}" -cp "${cp_all}" dev.surgery.samples.gpu.GpuCheck surgery "$@" \
    >"${out}/${name}.log" 2>&1
  local rc=$?
  if [ "${rc}" -eq 0 ]; then
    result PASS "${name}" "$(grep -m 1 '^surgery:' "${out}/${name}.log")"
  else
    result FAIL "${name}" "$(grep -m 1 -E '^(FAILED|NO GPU)' "${out}/${name}.log"); see ${out}/${name}.log"
  fi
}

surgery surgery-1-gpu --devices 1
if [ "${gpus}" -ge 2 ]; then
  surgery surgery-all-gpus --devices 0
else
  result SKIP surgery-all-gpus "1 GPU"
fi

# ------------------------------------------------------------------ the optimizer oracle on the GPU
# Core's tests with the CUDA jar added to their class path: DJL prefers the CUDA build when both are
# there and it fits the machine. One GPU: the oracle compares one trained copy per parameter.
visible="${CUDA_VISIBLE_DEVICES:-0}"
CUDA_VISIBLE_DEVICES="${visible%%,*}" \
  mvn "${mvn_flags[@]}" -pl core test -Dtest='ExactnessMatrixTest,TrainedCopiesTest' \
  -Dsurefire.failIfNoSpecifiedTests=false "-Dmaven.test.additionalClasspath=${cuda_jar}" \
  >"${out}/oracle-gpu.log" 2>&1
rc=$?
tests=$(grep -E 'Tests run: [0-9]+, Failures' "${out}/oracle-gpu.log" | tail -n 1)
if ! grep -q 'Found matching platform from: .*pytorch-native-cu' "${out}/oracle-gpu.log"; then
  result FAIL oracle-gpu "the tests did not load the CUDA libtorch; see ${out}/oracle-gpu.log"
elif [ "${rc}" -ne 0 ]; then
  result FAIL oracle-gpu "${tests:-mvn exit ${rc}}; see ${out}/oracle-gpu.log"
else
  result PASS oracle-gpu "${tests}"
fi

summary
exit "${failed}"
