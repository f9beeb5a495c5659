"""Peer for scripts/bench-images.sh: Python imagehash phash/dhash images/s on data/photos, decode included.

`--write-web DIR` first writes the `web` set both sides then read: the JPEG photos re-encoded as
most web JPEGs are (Pillow's defaults: quality 75, 4:2:0), beside the originals' higher rates."""
import multiprocessing as mp
import os
import pathlib
import sys
import time

import imagehash
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[1]
PHOTOS = sorted(p for p in (ROOT / "data" / "photos").iterdir() if p.suffix in (".png", ".jpg"))
WEB = ROOT / "target" / "bench-web"
SETS = {
    "all": [p.read_bytes() for p in PHOTOS],
    "jpeg": [p.read_bytes() for p in PHOTOS if p.suffix == ".jpg"],
}


def write_web():
    WEB.mkdir(parents=True, exist_ok=True)
    for p in PHOTOS:
        if p.suffix == ".jpg":
            with Image.open(p) as im:
                im.convert("RGB").save(WEB / p.name, "JPEG", quality=75)
BLOBS = []


def work(args):
    name, idx = args
    import io
    with Image.open(io.BytesIO(BLOBS[idx])) as im:
        if name == "decode":  # the floor under both hashes: decode + convert("L")
            return im.convert("L").size
        return str(getattr(imagehash, name)(im))


def run(name, procs, min_secs):
    done, start = 0, time.perf_counter()
    # Forked workers see the set chosen before the pool starts.
    pool = mp.Pool(procs) if procs > 1 else None
    while time.perf_counter() - start < min_secs:
        jobs = [(name, i) for i in range(len(BLOBS))]
        list(pool.map(work, jobs) if pool else map(work, jobs))
        done += len(BLOBS)
    if pool:
        pool.close()
    return done / (time.perf_counter() - start)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write-web"]:
        write_web()
        sys.exit()
    if WEB.is_dir():
        SETS["web"] = [p.read_bytes() for p in sorted(WEB.glob("*.jpg"))]
    min_secs = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    cores = os.cpu_count() or 1
    for name in ("phash", "dhash", "decode"):
        for set_name, blobs in SETS.items():
            BLOBS[:] = blobs
            for procs in (1, cores):
                rate = run(name, procs, min_secs)
                print(f"imagehash {name} set={set_name} threads={procs} images_per_s={rate:.1f}")
