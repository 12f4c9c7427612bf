#!/usr/bin/env bash
# Trains the f32 reference models models/mnist-{mlp,cnn}/float.{safetensors,json} from
# data/mnist/train.safetensors (run scripts/mnist/make-data.sh first if data/mnist is missing).
# Creates scripts/mnist/.venv with the pinned requirements. Extra arguments go to train.py.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
if [ ! -f "$repo/data/mnist/train.safetensors" ]; then
  echo "data/mnist/train.safetensors missing: run scripts/mnist/make-data.sh" >&2
  exit 1
fi
if [ ! -x "$here/.venv/bin/python" ]; then
  python3 -m venv "$here/.venv"
fi
"$here/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
status=0
"$here/.venv/bin/python" "$here/train.py" "$@" || status=$?
echo
echo "f32 accuracies (models/*/float.json):"
"$here/.venv/bin/python" - "$repo" <<'PY'
import json, os, sys
for m in ["mlp", "cnn"]:
    f = os.path.join(sys.argv[1], "models", f"mnist-{m}", "float.json")
    if not os.path.exists(f):
        continue
    d = json.load(open(f))
    a, t = d["accuracy_f32"], d["training"]
    print("  {}: train {:.4f} ({}), held-out {:.4f} ({}), {} epochs, {:.0f}s".format(
        d["model"], a["train"], a["train_correct"], a["held_out"], a["held_out_correct"],
        t["epochs"], t["seconds"]))
PY
exit $status
