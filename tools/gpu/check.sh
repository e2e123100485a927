#!/usr/bin/env bash
# tools/gpu/check.sh [--cpu-smoke] [--only piece,piece] [--work DIR] [--json FILE]
# The project's one GPU check (tools/gpu/README.md): a CUDA RL step with vLLM rollouts and weight sync, faiss-gpu vs
# faiss-cpu, one training run per package, a 1-process FSDP step, vLLM throughput; one table, exit 1 on a failure.
# Offline: tiny models are built locally, nothing is fetched from a hub.
#
# Python: the workspace's .venv when there is one; otherwise (a device image) $GPU_CHECK_PYTHON or python3 with the
# workspace's sources on PYTHONPATH.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
if [ -n "${GPU_CHECK_PYTHON:-}" ]; then
  PY="$GPU_CHECK_PYTHON"
elif [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
else
  PY=python3
fi
if [ "$PY" != .venv/bin/python ]; then
  SRC="$PWD/shared/src:$PWD/benchmarks/src"
  for d in packages/*/src; do SRC="$SRC:$PWD/$d"; done
  export PYTHONPATH="$SRC${PYTHONPATH:+:$PYTHONPATH}"
fi
exec "$PY" tools/gpu/check.py "$@"
