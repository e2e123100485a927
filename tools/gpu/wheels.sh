#!/usr/bin/env bash
# tools/gpu/wheels.sh
# Fetch, on a machine that reaches PyPI, the wheels the GPU check needs and the device image lacks (x86-64,
# CPython 3.12, as tools/gpu/README.md and the device notes say) into .whl/, which git ignores. The device run then
# carries .whl and installs it first:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
#     .whl/*.whl && export PYTHONPATH=/tmp/site
# Versions follow uv.lock. vLLM and faiss-gpu are far over the 64 MiB a device call may carry: without them the
# check SKIPs its vLLM and faiss-gpu rows and measures the HF generator on the GPU instead.
set -euo pipefail
cd "$(dirname "$0")/../.."
exclude="$(git rev-parse --git-path info/exclude)"
grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
locked() {  # the version uv.lock pins for a package
  awk -v name="$1" '$0 == "name = \"" name "\"" {getline; gsub(/version = |"/, ""); print; exit}' uv.lock
}
platforms=()
for n in 17 24 27 28 31 34 35; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
for pkg in pytrec-eval-terrier; do  # dome's evaluation (shared.eval.retrieval)
  version="$(locked "$pkg")"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" --platform manylinux2014_x86_64 -d .whl "$pkg==$version"
done
ls -l .whl
