#!/usr/bin/env bash
# rediffuse vs PyTorch speed comparison (CPU, f32).
#
# Usage: bench/compare.sh [--json FILE] [--threads N] [--reps N] [--cases NAME...]
# Builds the Rust bench (release), then runs bench/compare.py, which alternates the two
# frameworks repetition by repetition and prints medians and ratios rediffuse/PyTorch.
# PYTHON selects the interpreter (default: python3); it needs torch and numpy.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
PYTHON="${PYTHON:-python3}"
# PyTorch's OpenMP threads spin-wait by default; on a shared or oversubscribed machine that
# makes its multi-threaded timings collapse (measured 2.7x slower training steps at load ~8
# on 2 cores). Passive waiting is its best setting there and matches rediffuse's sleeping
# rayon workers. Override by exporting OMP_WAIT_POLICY yourself.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "error: python interpreter '$PYTHON' not found; set PYTHON=/path/to/python" >&2
    exit 2
fi
if ! "$PYTHON" -c "import torch" >/dev/null 2>&1; then
    cat >&2 <<MSG
error: PyTorch is not importable by '$PYTHON'.
Install it (CPU build is enough) into a virtual environment, e.g.
    python3 -m venv .venv && .venv/bin/pip install torch numpy
and run again with PYTHON=.venv/bin/python bench/compare.sh
MSG
    exit 2
fi

(cd "$root" && cargo build --release -p rediffuse-bench)
target_dir="$(cd "$root" && cargo metadata --format-version 1 --no-deps 2>/dev/null \
    | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
exec "$PYTHON" "$here/compare.py" --bin "$target_dir/release/rediffuse-bench" "$@"
