#!/usr/bin/env bash
# Writes data/minilm/reference.json, the numpy reference of all-MiniLM-L6-v2 on the project's
# sentences (data/sentences/): token ids of every sentence, embeddings of the test sentences.
# Fetches the model first (scripts/minilm/fetch.sh) and creates scripts/minilm/.venv with the
# pinned requirements. Extra arguments go to reference.py (e.g. --check to compare, not write).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
"$here/fetch.sh"
if [ ! -x "$here/.venv/bin/python" ]; then
  python3 -m venv "$here/.venv"
fi
"$here/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
# One BLAS thread: the same sums in the same order on every run.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
exec "$here/.venv/bin/python" "$here/reference.py" \
  --model "${OPML_CACHE:-$repo/.cache}/minilm/all-MiniLM-L6-v2" --repo "$repo" "$@"
