#!/usr/bin/env bash
# How long `make test` takes on a fresh clone, install included (issue 14: at most 15 minutes on the 2-core box).
#
#   benchmarks/test_suite_time.sh [COMMIT]      # default: HEAD of this repository
#
# Clones the commit into a scratch directory (beside a link to ../shared, where the tests find the data
# fixtures, as in this checkout), runs `make test` there with pytest's slowest durations listed, and prints the
# wall time of the whole command, of the install and of pytest. The log is kept (its path is printed);
# KEEP=1 keeps the scratch directory too.
set -euo pipefail

repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
commit=$(git -C "$repo" rev-parse "${1:-HEAD}")
work=$(mktemp -d "${TMPDIR:-/tmp}/mileage-test-time.XXXXXX")
if [ -d "$repo/../shared" ]; then
  ln -s "$(cd "$repo/../shared" && pwd)" "$work/shared"
fi
git clone --quiet "$repo" "$work/mileage"
git -C "$work/mileage" checkout --quiet "$commit"
log="${TMPDIR:-/tmp}/mileage-test-time-$(date +%Y%m%dT%H%M%S).log"

echo "make test on a fresh clone of $commit ($(nproc) cores) in $work/mileage; log: $log"
start=$(date +%s)
status=0
(cd "$work/mileage" && PYTEST_ADDOPTS="--durations=${DURATIONS:-40}" make test) >"$log" 2>&1 || status=$?
end=$(date +%s)

# pytest's last line: "=== N passed, M skipped in 612.34s (0:10:12) ==="
summary=$(grep -E "^=+ .*( in [0-9.]+s)" "$log" | tail -1 || true)
pytest_s=$(sed -nE 's/.* in ([0-9.]+)s.*/\1/p' <<<"$summary")
total=$((end - start))
echo "exit status:     $status"
echo "pytest:          ${summary:-<no summary: see the log>}"
echo "make test, wall: ${total} s ($((total / 60)) min $((total % 60)) s)"
if [ -n "$pytest_s" ]; then
  echo "of which install (and pytest start): about $((total - ${pytest_s%.*})) s"
fi
echo "slowest tests:"
sed -n '/slowest .*durations/,/^=/p' "$log" | head -$(( ${DURATIONS:-40} + 5 ))
if [ "${KEEP:-0}" != 1 ]; then
  rm -rf "$work"
fi
exit "$status"
