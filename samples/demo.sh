#!/usr/bin/env bash
# `make demo`: runs every step in samples/demo.d/ in name order on the bundled samples,
# writing into $DEMO_OUT, then says where the outputs are.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEMO_OUT="${DEMO_OUT:-demo-out}"
mkdir -p "$DEMO_OUT"
for step in samples/demo.d/*.sh; do
    echo "== $(basename "$step" .sh)"
    bash "$step"
done
echo
echo "Demo outputs are in $(cd "$DEMO_OUT" && pwd):"
find "$DEMO_OUT" -type f | sort | sed 's/^/  /'
