#!/usr/bin/env bash
# Set up (if needed) and run the test suite on CPU.
#   bash tools/run_tests.sh            the default suite (the tests marked
#                                      slow are skipped, and say so)
#   bash tools/run_tests.sh --all      also the slow end-to-end tests (CI)
#   bash tools/run_tests.sh --slow-only
# Any other argument goes to pytest (e.g. a test path, -k EXPR, -x).
# Skipped tests are listed with their reason (-rs), e.g. the web demo's
# tests without the optional extras (requirements/optional.txt) or Debian's
# chromium + chromium-driver; the slowest tests are listed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
export CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
set +e
.venv/bin/python -m pytest tests -q -p no:cacheprovider -rs --durations=10 "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then echo "no tests collected"; exit 1; fi
exit $rc
