"""PyTorch peer of `bench_models knn`: exact k-NN by cosine of N random queries
against N random corpus vectors, blocked like lakecap (1024 queries at a time,
full corpus per block: torch's matmul + topk), same thread count.

    python bench/knn_peer.py N [DIM] [K]
"""
import sys
import time

import torch

n = int(sys.argv[1])
d = int(sys.argv[2]) if len(sys.argv) > 2 else 512
k = int(sys.argv[3]) if len(sys.argv) > 3 else 10
g = torch.Generator().manual_seed(0)
q = torch.rand(n, d, generator=g) * 2 - 1
c = torch.rand(n, d, generator=g) * 2 - 1
start = time.perf_counter()
q = torch.nn.functional.normalize(q, dim=1)
c = torch.nn.functional.normalize(c, dim=1)
with torch.inference_mode():
    for i in range(0, n, 1024):
        torch.topk(q[i : i + 1024] @ c.T, k, dim=1)
secs = time.perf_counter() - start
print(f"peer_knn_n={n} peer_knn_seconds={secs:.2f} peer_knn_pairs_per_s={n * n / secs:.3e}")
