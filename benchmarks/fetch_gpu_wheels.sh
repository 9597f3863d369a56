#!/usr/bin/env bash
# Fetch, on this machine, the wheels that a lent GPU machine lacks for benchmarks/gpu_checks.sh.
#
# The device machines' image has Python 3.12 with PyTorch (CUDA), NumPy, PyYAML, tqdm and
# matplotlib, but no Gymnasium or MuJoCo, and nothing can be downloaded there. This puts
# Gymnasium and MuJoCo (the versions the committed CPU benchmarks ran with) and their missing
# dependencies, about 24 MB, into .whl/ (listed in .git/info/exclude, so git ignores it), for
# the device call to carry. Usage, from anywhere:
#   bash benchmarks/fetch_gpu_wheels.sh            # Python 3.12 wheels into .whl/
#   PY=3.11 WHEELS=/tmp/whl311 bash benchmarks/fetch_gpu_wheels.sh   # for a rehearsal here
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=${WHEELS:-.whl}
if [ "$wheels" = .whl ] && ! grep -qxF '/.whl/' .git/info/exclude 2>/dev/null; then
  echo '/.whl/' >>.git/info/exclude
fi
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
  manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "${PY:-3.12}" \
  --implementation cp "${platforms[@]}" -d "$wheels" \
  gymnasium==1.4.0 farama-notifications==0.0.6 mujoco==4.0.1 mujoco-core==4.0.1 \
  mujoco-studio==4.0.1 mujoco-studio-wasm==4.0.1 glfw==2.11.0 pyopengl==3.1.10 websockets==17.4
ls "$wheels"
