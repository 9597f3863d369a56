#!/usr/bin/env bash
# The GPU measurements of issue 19, as one prepared command for a lent GPU machine.
#
# On the device machine, from the repository root (the tree travels; the wheels of
# benchmarks/fetch_gpu_wheels.sh travel as the carried folder .whl):
#   bash benchmarks/gpu_checks.sh                  # results under $OUT (else runs/gpu_checks)
# The device call (device tool): command `bash benchmarks/gpu_checks.sh`, carry [".whl"],
# timeout_s 480. A rehearsal on a CPU, with this project's environment and tiny windows:
#   DEVICE=cpu QUICK=1 PYTHON=.venv/bin/python bash benchmarks/gpu_checks.sh /tmp/gpu_checks
# (WHEELS=DIR installs the wheels of DIR instead of .whl/; a missing DIR installs none.)
#
# Steps, most wanted first, each under its own time limit so that the whole stays under about
# 7 minutes and a step cut short costs only its own result (each writes its own JSON):
#   1. versions and the device (and that spikerl imports under the machine's torch);
#   2. `spikerl bench --sections seeds`: 8 stacked seeds against one run (target: >= 5x);
#   3. benchmarks/replay_on_device.py: the replay buffer on the device against the host
#      buffer, 8 stacked seeds of ANN-TD3;
#   4. `spikerl bench --sections training` (no Stable-Baselines3, no opt-in variants);
#   5. `spikerl bench --sections sequence`: windows/s of the quadrotor controller's update.
# Render a JSON here with `spikerl bench --from-json FILE --markdown FILE.md`.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-runs/gpu_checks}}
device=${DEVICE:-cuda}
python=${PYTHON:-python3}
mkdir -p "$out"
exec > >(tee -a "$out/gpu_checks.log") 2>&1
wheels=${WHEELS:-.whl}
if compgen -G "$wheels/*.whl" >/dev/null; then
  "$python" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/spikerl-site "$wheels"/*.whl || exit 1
  export PYTHONPATH=/tmp/spikerl-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 MUJOCO_GL=egl

step() {  # step LIMIT_S COMMAND...: run it under a time limit and say how it ended
  local limit=$1 start=$SECONDS
  shift
  echo "== $(date -u +%H:%M:%S) $* (limit ${limit} s)"
  timeout "$limit" "$@"
  echo "== exit $? after $((SECONDS - start)) s"
}

quick=()
[ -n "${QUICK:-}" ] && quick=(--quick)
window=(--window 200)
[ -n "${QUICK:-}" ] && window=()
replay=(--repeats 5 --window 200)
[ -n "${QUICK:-}" ] && replay=(--repeats 1 --window 5 --warmup 2)
bench=("$python" -m spikerl.cli bench --device "$device" --no-sb3 "${quick[@]}" "${window[@]}")

step 45 "$python" -c "
import platform, sys, torch, gymnasium, mujoco, spikerl
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device'
print('python', sys.version.split()[0], '| torch', torch.__version__, '| gymnasium',
      gymnasium.__version__, '| mujoco', mujoco.__version__, '| spikerl', spikerl.__version__)
print(gpu, '|', platform.processor() or platform.machine(), '|', torch.get_num_threads(), 'threads')
print('gymnasium from', gymnasium.__file__, '| spikerl from', spikerl.__file__)
"
step 150 "${bench[@]}" --sections seeds --json "$out/seeds.json" --markdown "$out/seeds.md"
step 70 "$python" benchmarks/replay_on_device.py --device "$device" --variant ANN-TD3 --seeds 8 \
  --threads "$(nproc)" "${replay[@]}" --json "$out/replay_on_device.json"
step 120 "${bench[@]}" --sections training --no-opt-in --json "$out/training.json" \
  --markdown "$out/training.md"
step 45 "${bench[@]}" --sections sequence --json "$out/sequence.json" --markdown "$out/sequence.md"
echo "== done: $(ls "$out" | tr '\n' ' ')"
