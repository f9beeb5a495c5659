//! Attention (`attention.cu`): the fused attention over q/k/v tensors (one
//! block per query row, or tiled flash attention when enough query rows share
//! key tiles), and the decoder's KV cache: allocation, stores, slot copies and
//! attention over the cached keys and values.

use cudarc::driver::{LaunchConfig, PushKernelArg};

use crate::backend::{KernelError, Mask, Pos, Result, check};
use crate::cuda::{Cuda, CudaKvCache, CudaTensor, dev, grid};

/// Longest slot the cached-attention kernel's shared memory can score (48 KiB
/// per block, less the query row).
const MAX_CACHE_POSITIONS: usize = 11_000;

/// Static shared memory a block may use without opting in.
const MAX_SHARED_BYTES: usize = 48 << 10;

/// Flash attention: query rows per block (one thread each), keys per tile
/// (as `flash_rows` in attention.cu), and the fewest query rows worth it.
const FLASH_QUERIES: usize = 64;
const FLASH_KEYS: usize = 64;
const FLASH_MIN_QUERIES: usize = 16;

pub(super) fn kv_cache(
    cuda: &Cuda,
    slots: usize,
    capacity: usize,
    width: usize,
) -> Result<CudaKvCache> {
    if capacity > MAX_CACHE_POSITIONS {
        return Err(KernelError::Device(format!(
            "a CUDA KV cache holds at most {MAX_CACHE_POSITIONS} positions per sequence, asked for {capacity}"
        )));
    }
    let n = (slots * capacity * width).max(1);
    Ok(CudaKvCache {
        width,
        capacity,
        k: cuda.stream.alloc_zeros::<f32>(n).map_err(dev)?,
        v: cuda.stream.alloc_zeros::<f32>(n).map_err(dev)?,
        filled: vec![0; slots],
    })
}

pub(super) fn kv_store(
    cuda: &Cuda,
    cache: &mut CudaKvCache,
    k: &CudaTensor,
    v: &CudaTensor,
    at: &[Pos],
) -> Result<()> {
    let (w, cap) = (cache.width, cache.capacity);
    let n = check::kv_store(&k.shape, &v.shape, w, cache.filled.len(), cap, at)?;
    let k_w = cuda.wide(k)?;
    let v_w = cuda.wide(v)?;
    if n == 0 {
        return Ok(());
    }
    for p in at {
        // A sequence starting over at position 0 reuses its slot.
        let f = &mut cache.filled[p.slot];
        *f = if p.pos == 0 { 1 } else { (*f).max(p.pos + 1) };
    }
    let dst: Vec<i32> = at.iter().map(|p| (p.slot * cap + p.pos) as i32).collect();
    let dst = cuda.ints(&dst)?;
    let (ni, wi) = (n as i32, w as i32);
    let mut l = cuda.stream.launch_builder(cuda.f("kv_store_f32"));
    l.arg(&*k_w)
        .arg(&*v_w)
        .arg(&mut cache.k)
        .arg(&mut cache.v)
        .arg(&dst)
        .arg(&ni)
        .arg(&wi);
    // SAFETY: argument list matches the kernel signature; destinations were range-checked.
    unsafe { l.launch(grid(n * w)) }.map_err(dev)?;
    Ok(())
}

pub(super) fn kv_copy(
    cuda: &Cuda,
    cache: &mut CudaKvCache,
    moves: &[(usize, usize)],
    len: usize,
) -> Result<()> {
    let (w, cap) = (cache.width, cache.capacity);
    check::kv_copy(moves, len, cache.filled.len(), cap)?;
    if moves.is_empty() || len == 0 {
        return Ok(());
    }
    // Gather every source row first, then scatter (permutations are safe).
    let src: Vec<u32> = moves
        .iter()
        .flat_map(|&(from, _)| (0..len).map(move |p| (from * cap + p) as u32))
        .collect();
    let dst: Vec<i32> = moves
        .iter()
        .flat_map(|&(_, to)| (0..len).map(move |p| (to * cap + p) as i32))
        .collect();
    let idx = cuda.uints(&src)?;
    let (rows, wi) = (src.len(), w as i32);
    let mut gathered = Vec::with_capacity(2);
    for buf in [&cache.k, &cache.v] {
        let mut y = cuda.out::<f32>(rows * w)?;
        let mut l = cuda.stream.launch_builder(cuda.f("embedding_f32"));
        l.arg(buf).arg(&idx).arg(&mut y).arg(&rows).arg(&wi);
        // SAFETY: argument list matches the kernel signature; rows were range-checked.
        unsafe { l.launch(grid(rows * w)) }.map_err(dev)?;
        gathered.push(y);
    }
    let (k, v) = (&gathered[0], &gathered[1]);
    let dst = cuda.ints(&dst)?;
    let ni = src.len() as i32;
    let mut l = cuda.stream.launch_builder(cuda.f("kv_store_f32"));
    l.arg(k)
        .arg(v)
        .arg(&mut cache.k)
        .arg(&mut cache.v)
        .arg(&dst)
        .arg(&ni)
        .arg(&wi);
    // SAFETY: argument list matches the kernel signature; rows were range-checked.
    unsafe { l.launch(grid(src.len() * w)) }.map_err(dev)?;
    let filled: Vec<usize> = moves
        .iter()
        .map(|&(from, _)| cache.filled[from].min(len))
        .collect();
    for (&(_, to), f) in moves.iter().zip(filled) {
        cache.filled[to] = f;
    }
    Ok(())
}

pub(super) fn kv_attention(
    cuda: &Cuda,
    q: &CudaTensor,
    cache: &CudaKvCache,
    at: &[Pos],
    heads: usize,
) -> Result<CudaTensor> {
    let (w, cap) = (cache.width, cache.capacity);
    let (rows, d, kv_heads) = check::kv_attention(&q.shape, w, cache.filled.len(), cap, at, heads)?;
    let q_w = cuda.wide(q)?;
    if let Some(p) = at.iter().find(|p| cache.filled[p.slot] < p.pos + 1) {
        return Err(KernelError::Shape {
            op: "kv_attention",
            detail: format!(
                "slot {} has no keys stored up to position {}",
                p.slot, p.pos
            ),
        });
    }
    let mut o = cuda.out::<f32>(rows * heads * d)?;
    if rows > 0 {
        let base: Vec<i32> = at.iter().map(|p| (p.slot * cap) as i32).collect();
        let len: Vec<i32> = at.iter().map(|p| p.pos as i32 + 1).collect();
        let longest = at.iter().map(|p| p.pos + 1).max().unwrap_or(1);
        let (base, len) = (cuda.ints(&base)?, cuda.ints(&len)?);
        let (hi, di, wi, gi, scale) = (
            heads as i32,
            d as i32,
            w as i32,
            (heads / kv_heads) as i32,
            1.0f32 / (d as f32).sqrt(),
        );
        let mut l = cuda.stream.launch_builder(cuda.f("kv_attention_f32"));
        l.arg(&*q_w)
            .arg(&cache.k)
            .arg(&cache.v)
            .arg(&mut o)
            .arg(&base)
            .arg(&len)
            .arg(&hi)
            .arg(&di)
            .arg(&wi)
            .arg(&gi)
            .arg(&scale);
        let cfg = LaunchConfig {
            grid_dim: (rows as u32, heads as u32, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: ((longest + d) * 4) as u32,
        };
        // SAFETY: argument list matches the kernel signature; shared memory
        // holds the longest row's scores and a query head.
        unsafe { l.launch(cfg) }.map_err(dev)?;
    }
    Ok(CudaTensor::f32(q.shape.clone(), o))
}

pub(super) fn attention(
    cuda: &Cuda,
    q: &CudaTensor,
    k: &CudaTensor,
    v: &CudaTensor,
    heads: usize,
    mask: &Mask,
) -> Result<CudaTensor> {
    check::attention(&q.shape, &k.shape, &v.shape, heads, mask)?;
    let q_w = cuda.wide(q)?;
    let k_w = cuda.wide(k)?;
    let v_w = cuda.wide(v)?;
    let (b, sq, hd) = (q.shape[0], q.shape[1], q.shape[2]);
    let sk = k.shape[1];
    let d = hd / heads;
    let lens: Vec<i32> = match &mask.key_lens {
        Some(l) => l.iter().map(|&x| x.min(sk) as i32).collect(),
        None => vec![sk as i32; b],
    };
    let lens = cuda.ints(&lens)?;
    let mut o = cuda.out::<f32>(b * sq * hd)?;
    let (sqi, ski, hi, di, causal, scale) = (
        sq as i32,
        sk as i32,
        heads as i32,
        d as i32,
        mask.causal as i32,
        1.0f32 / (d as f32).sqrt(),
    );
    // Tiled flash attention where a block has queries to share key tiles
    // with; else one block per query row, scores in shared memory.
    let flash = sq >= FLASH_MIN_QUERIES && (d == 32 || d == 64);
    if !flash && (sk + d) * 4 > MAX_SHARED_BYTES {
        return Err(KernelError::Device(format!(
            "attention over {sk} keys with head width {d} needs the flash kernel (head width 32 or 64)"
        )));
    }
    let kernel = if flash {
        "flash_attention_f32"
    } else {
        "attention_f32"
    };
    let mut l = cuda.stream.launch_builder(cuda.f(kernel));
    l.arg(&*q_w)
        .arg(&*k_w)
        .arg(&*v_w)
        .arg(&mut o)
        .arg(&lens)
        .arg(&sqi)
        .arg(&ski)
        .arg(&hi)
        .arg(&di)
        .arg(&causal)
        .arg(&scale);
    let cfg = if flash {
        LaunchConfig {
            grid_dim: (sq.div_ceil(FLASH_QUERIES) as u32, heads as u32, b as u32),
            block_dim: (FLASH_QUERIES as u32, 1, 1),
            shared_mem_bytes: (2 * FLASH_KEYS * d * 4) as u32,
        }
    } else {
        LaunchConfig {
            grid_dim: (sq as u32, heads as u32, b as u32),
            block_dim: (128, 1, 1),
            shared_mem_bytes: ((sk + d) * 4) as u32,
        }
    };
    // SAFETY: argument list matches the kernel signature; shared memory holds
    // a key and a value tile, or sk scores and d query values (bounded above).
    unsafe { l.launch(cfg) }.map_err(dev)?;
    Ok(CudaTensor::f32(q.shape.clone(), o))
}
