#!/usr/bin/env bash
# Usage: tools/analysis_tools/benchmark_suite.sh [--official-root DIR] [ARGS]
# Benchmarks ETRIS ViT-B/16, DETRIS-B and DETRIS-L (mmris, and the official
# models whose clones DIR holds, in the same run): training at batch 16 and
# 32, inference at batch 32; writes work_dirs/benchmark_suite/
# benchmark_suite.{json,md}. All arguments go to benchmark_suite.py (see its
# --help, e.g. --models, --device cpu, --out-dir).
set -eu
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
source "$ROOT/tools/find_python.sh"
exec "$PYTHON" "$ROOT/tools/analysis_tools/benchmark_suite.py" "$@"
