//! A JPEG's luma at 1/8 scale, read from the DC coefficients alone.
//!
//! An 8x8 block's DC coefficient is its mean: `DC·q₀/8 + 128` is exactly what
//! libjpeg's 1/8-scale decode (`jpeg_idct_1x1`; Pillow's `draft("L", …)`)
//! outputs for the Y component. `phash(img, 'fast')` and `dhash(img, 'fast')`
//! resize to 32x32 and 9x8 anyway, so they start from this plane: no inverse
//! DCT, no upsampling, no colour conversion, and AC coefficients are skipped,
//! never stored. A progressive JPEG keeps its DC in scans of its own, so its
//! AC scans are not even entropy-decoded.
//!
//! Hand-written because no decoder crate does this cheaply: jpeg-decoder's DCT
//! scaling decodes every coefficient and was slower than zune-jpeg's full
//! decode (bench/RESULTS.md, phash 'fast'). Anything this reader does not take
//! (arithmetic coding, 12-bit samples, lossless, hierarchical, CMYK or RGB
//! JPEGs, a luma plane subsampled below another component) or finds malformed
//! or truncated gives `None`, and the caller takes the full decoder, which
//! names the error. Huffman decoding follows ITU T.81 Annex C/F with
//! libjpeg's lookahead tables.

/// Lookahead bits of the Huffman tables' one-symbol fast path.
const LOOK: u32 = 10;
/// Lookahead bits of the AC tables' two-symbol skip table.
const PAIR: u32 = 12;
/// Coefficients advanced by an end of block: past any position, so one test
/// ends the block, and still told apart from a run past the block's end.
const END: u32 = 128;
/// Below this position a pair of AC symbols stays inside the block (a
/// symbol advances at most 16).
const PAIR_BELOW: u32 = 64 - 16;

/// One Huffman table (ITU T.81 C.2, F.2.2.3).
struct Huff {
    /// Lookahead bits → `code length << 8 | symbol`; 0 where the code is longer.
    fast: Box<[u16; 1 << LOOK]>,
    /// AC tables: lookahead bits → the next one or two symbols with their extra
    /// bits, as bits to consume (low 5 bits) and coefficients advanced (the
    /// rest, [`END`] for an end of block); 0 where the first does not fit.
    pairs: Box<[u16; 1 << PAIR]>,
    /// Largest code of each length (index = length), -1 where there is none.
    maxcode: [i32; 17],
    /// Index into `values` of a length's codes, minus its first code.
    offset: [i32; 17],
    values: Vec<u8>,
}

/// One AC symbol's skip: (bits of code and extra bits, coefficients advanced).
fn ac_skip(len: u32, sym: u8) -> Option<(u32, u32)> {
    let (run, size) = (u32::from(sym >> 4), u32::from(sym & 15));
    match (run, size) {
        (0, 0) => Some((len, END)),
        (15, 0) => Some((len, 16)),
        (_, 0) => None,
        _ => Some((len + size, run + 1)),
    }
}

impl Huff {
    /// Builds a table from its DHT counts (codes of length 1..=16) and symbols.
    fn new(counts: &[u8], values: &[u8], ac: bool) -> Option<Self> {
        let zeros = |n: usize| vec![0u16; n].into_boxed_slice();
        let mut h = Huff {
            fast: zeros(1 << LOOK).try_into().ok()?,
            pairs: zeros(1 << PAIR).try_into().ok()?,
            maxcode: [-1; 17],
            offset: [0; 17],
            values: values.to_vec(),
        };
        // One AC symbol's skip at PAIR bits of lookahead, as `pairs` entries.
        let mut single = if ac {
            vec![0u16; 1 << PAIR]
        } else {
            Vec::new()
        };
        let (mut code, mut k) = (0i32, 0usize);
        for len in 1..=16u32 {
            let n = i32::from(counts[len as usize - 1]);
            h.offset[len as usize] = k as i32 - code;
            for _ in 0..n {
                // The codes of one length must fit in it.
                if code >= 1 << len {
                    return None;
                }
                let sym = values[k];
                if len <= LOOK {
                    let base = (code as usize) << (LOOK - len);
                    h.fast[base..base + (1 << (LOOK - len))]
                        .fill((len as u16) << 8 | u16::from(sym));
                }
                if let Some((bits, adv)) = ac_skip(len, sym).filter(|&(b, _)| ac && b <= PAIR) {
                    // Every extra-bit value shares the entry: fill the code's span.
                    let base = (code as usize) << (PAIR - len);
                    single[base..base + (1 << (PAIR - len))].fill(bits as u16 | (adv as u16) << 5);
                }
                code += 1;
                k += 1;
            }
            if n > 0 {
                h.maxcode[len as usize] = code - 1;
            }
            code <<= 1;
        }
        // A second symbol joins when it fits in the bits the first leaves.
        for (i, &first) in single.iter().enumerate() {
            let (b1, adv1) = (u32::from(first & 31), u32::from(first >> 5));
            h.pairs[i] = first;
            if first == 0 || adv1 == END {
                continue;
            }
            let second = single[(i << b1) & ((1 << PAIR) - 1)];
            let b2 = u32::from(second & 31);
            if second != 0 && b1 + b2 <= PAIR {
                h.pairs[i] = (b1 + b2) as u16 | ((adv1 + u32::from(second >> 5)) as u16) << 5;
            }
        }
        Some(h)
    }

    /// Decodes one symbol; the reader holds at least 16 bits.
    fn decode(&self, bits: &mut Bits) -> Option<u8> {
        let e = self.fast[bits.peek(LOOK) as usize];
        if e != 0 {
            bits.consume(u32::from(e >> 8));
            return Some(e as u8);
        }
        let code = bits.peek(16) as i32;
        for len in LOOK + 1..=16 {
            let c = code >> (16 - len);
            if c <= self.maxcode[len as usize] {
                bits.consume(len);
                return self
                    .values
                    .get((c + self.offset[len as usize]) as usize)
                    .copied();
            }
        }
        None
    }
}

/// An entropy-coded segment read MSB first, with 0xFF00 unstuffed. At a marker
/// or the end of data it feeds zeros and counts them, so a scan that reads past
/// its data is caught afterwards instead of on every bit.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u64,
    n: u32,
    /// Zero bytes fed past a marker or the end.
    fill: u64,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        Bits {
            data,
            pos,
            acc: 0,
            n: 0,
            fill: 0,
        }
    }

    /// Tops the buffer up to at least 57 bits when it holds fewer than 32.
    #[inline(always)]
    fn ensure(&mut self) {
        if self.n >= 32 {
            return;
        }
        // Eight bytes without a 0xFF go in with one load.
        if let Some(chunk) = self.data.get(self.pos..self.pos + 8) {
            let x = u64::from_be_bytes(chunk.try_into().expect("8 bytes"));
            let inv = !x;
            let has_ff = inv.wrapping_sub(0x0101_0101_0101_0101) & !inv & 0x8080_8080_8080_8080;
            if has_ff == 0 {
                let k = (64 - self.n) / 8;
                self.acc |= (x >> (64 - 8 * k)) << (64 - self.n - 8 * k);
                self.pos += k as usize;
                self.n += 8 * k;
                return;
            }
        }
        while self.n <= 56 {
            let byte = match self.data.get(self.pos) {
                Some(&0xFF) if self.data.get(self.pos + 1) == Some(&0) => {
                    self.pos += 2;
                    0xFF
                }
                Some(&0xFF) | None => {
                    self.fill += 1;
                    0
                }
                Some(&b) => {
                    self.pos += 1;
                    b
                }
            };
            self.acc |= u64::from(byte) << (56 - self.n);
            self.n += 8;
        }
    }

    #[inline(always)]
    fn peek(&self, k: u32) -> u32 {
        (self.acc >> (64 - k)) as u32
    }

    #[inline(always)]
    fn consume(&mut self, k: u32) {
        self.acc <<= k;
        self.n -= k;
    }

    /// T.81 F.2.2.1 `RECEIVE` then `EXTEND`: `s` bits as a signed value.
    #[inline(always)]
    fn signed(&mut self, s: u32) -> i32 {
        if s == 0 {
            return 0;
        }
        let v = self.peek(s) as i32;
        self.consume(s);
        if v < 1 << (s - 1) {
            v - (1 << s) + 1
        } else {
            v
        }
    }

    /// Whether the scan consumed bits it did not have.
    fn overran(&self) -> bool {
        self.fill * 8 > u64::from(self.n)
    }

    /// Ends a restart interval: drops the padding bits and steps over the
    /// RSTn marker that must come next.
    fn restart(&mut self) -> Option<()> {
        if self.overran() {
            return None;
        }
        let (marker, at) = next_marker(self.data, self.pos)?;
        (0xD0..=0xD7).contains(&marker).then_some(())?;
        *self = Bits::new(self.data, at);
        Some(())
    }
}

/// The next marker at or after `pos` that is not stuffing or a restart, as
/// (marker byte, position after it); with `rst`, restarts count too.
fn find_marker(data: &[u8], mut pos: usize, rst: bool) -> Option<(u8, usize)> {
    loop {
        pos += memchr::memchr(0xFF, data.get(pos..)?)?;
        // Fill bytes: any run of 0xFF before the marker byte.
        while data.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let m = *data.get(pos + 1)?;
        pos += 2;
        if m != 0 && (rst || !(0xD0..=0xD7).contains(&m)) {
            return Some((m, pos));
        }
    }
}

fn next_marker(data: &[u8], pos: usize) -> Option<(u8, usize)> {
    find_marker(data, pos, true)
}

/// A frame component (T.81 B.2.2).
#[derive(Clone, Copy)]
struct Component {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
}

/// One component of a scan, with its DC predictor.
struct ScanComp<'t> {
    index: usize,
    dc: Option<&'t Huff>,
    ac: Option<&'t Huff>,
    pred: i32,
}

/// What a JPEG's headers say and what is known of its luma DCs so far.
struct Frame {
    width: usize,
    height: usize,
    progressive: bool,
    comps: Vec<Component>,
    hmax: usize,
    vmax: usize,
    /// Luma DC coefficients (not dequantised), one per block over whole MCUs.
    coef: Vec<i32>,
    stride: usize,
    /// The luma quantisation table's DC step, once a scan has read luma.
    q0: Option<i32>,
}

impl Frame {
    /// Blocks across and down of component `c` (T.81 A.1.1), without MCU padding.
    fn blocks(&self, c: usize) -> (usize, usize) {
        let comp = self.comps[c];
        let w = (self.width * comp.h).div_ceil(self.hmax);
        let h = (self.height * comp.v).div_ceil(self.vmax);
        (w.div_ceil(8), h.div_ceil(8))
    }

    fn mcus(&self) -> (usize, usize) {
        (
            self.width.div_ceil(8 * self.hmax),
            self.height.div_ceil(8 * self.vmax),
        )
    }
}

/// Per-block work of a scan: a DC first pass, a DC refinement bit, or a
/// sequential block whose AC coefficients are skipped.
#[derive(Clone, Copy, PartialEq)]
enum Pass {
    Sequential,
    DcFirst { al: u32 },
    DcRefine { al: u32 },
}

/// Decodes one block of scan component `sc`, storing its DC in `out` (luma blocks).
#[inline(always)]
fn block(bits: &mut Bits, sc: &mut ScanComp, pass: Pass, out: Option<&mut i32>) -> Option<()> {
    bits.ensure();
    if let Pass::DcRefine { al } = pass {
        let bit = bits.peek(1) as i32;
        bits.consume(1);
        if let Some(c) = out {
            *c |= bit << al;
        }
        return Some(());
    }
    let s = u32::from(sc.dc?.decode(bits)?);
    if s > 11 {
        return None;
    }
    sc.pred = sc.pred.wrapping_add(bits.signed(s));
    if let Some(c) = out {
        *c = match pass {
            Pass::DcFirst { al } => sc.pred << al,
            _ => sc.pred,
        };
    }
    if pass != Pass::Sequential {
        return Some(());
    }
    let ac = sc.ac?;
    let mut k = 1u32;
    while k < 64 {
        bits.ensure();
        if k < PAIR_BELOW {
            let e = ac.pairs[bits.peek(PAIR) as usize];
            if e != 0 {
                bits.consume(u32::from(e & 31));
                k += u32::from(e >> 5);
                continue;
            }
        }
        let rs = ac.decode(bits)?;
        let (bits_used, adv) = ac_skip(0, rs)?;
        bits.consume(bits_used);
        k += adv;
    }
    // Past 64 but short of an end of block: a run beyond the block's end.
    (k <= 64 || k >= END).then_some(())
}

/// Reads the scan starting at `pos`; returns where its data ended.
fn scan(
    frame: &mut Frame,
    comps: &mut [ScanComp],
    pass: Pass,
    ri: usize,
    data: &[u8],
    pos: usize,
) -> Option<usize> {
    let mut bits = Bits::new(data, pos);
    let stride = frame.stride;
    let interleaved = comps.len() > 1;
    let (units_x, units_y) = match interleaved {
        true => frame.mcus(),
        false => frame.blocks(comps[0].index),
    };
    let mut done = 0usize;
    for uy in 0..units_y {
        for ux in 0..units_x {
            if ri > 0 && done > 0 && done.is_multiple_of(ri) {
                bits.restart()?;
                comps.iter_mut().for_each(|c| c.pred = 0);
            }
            for sc in comps.iter_mut() {
                let comp = frame.comps[sc.index];
                let (h, v) = if interleaved {
                    (comp.h, comp.v)
                } else {
                    (1, 1)
                };
                for by in 0..v {
                    for bx in 0..h {
                        let out = (sc.index == 0)
                            .then(|| (uy * v + by) * stride + ux * h + bx)
                            .and_then(|i| frame.coef.get_mut(i));
                        block(&mut bits, sc, pass, out)?;
                    }
                }
            }
            done += 1;
        }
    }
    (!bits.overran()).then_some(bits.pos)
}

/// The luma plane at 1/8 scale (one pixel per 8x8 block, `ceil(w/8) x
/// ceil(h/8)`) with the image's width and height, when the image's short side is at least `min_side` pixels at
/// that scale. `None` for anything this reader does not take; see the module
/// docs. Callers check the declared size against the decode limits first: the
/// plane takes 4 bytes per 64 pixels.
pub(crate) fn luma_eighth(data: &[u8], min_side: usize) -> Option<(Vec<u8>, usize, usize)> {
    if data.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut frame: Option<Frame> = None;
    let mut dc_tabs: [Option<Huff>; 4] = Default::default();
    let mut ac_tabs: [Option<Huff>; 4] = Default::default();
    let mut quant = [None::<i32>; 4];
    let (mut ri, mut adobe_rgb) = (0usize, false);
    let mut pos = 2;
    loop {
        let (marker, at) = find_marker(data, pos, false)?;
        if marker == 0xD9 {
            break;
        }
        if marker == 0x01 {
            pos = at;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([*data.get(at)?, *data.get(at + 1)?]));
        let seg = data.get(at + 2..at + len.max(2))?;
        if len < 2 {
            return None;
        }
        pos = at + len;
        match marker {
            0xC0..=0xC2 => {
                if frame.is_some() || seg.len() < 6 || seg[0] != 8 {
                    return None;
                }
                let height = usize::from(u16::from_be_bytes([seg[1], seg[2]]));
                let width = usize::from(u16::from_be_bytes([seg[3], seg[4]]));
                let n = usize::from(seg[5]);
                if width == 0 || height == 0 || !(n == 1 || n == 3) || seg.len() < 6 + 3 * n {
                    return None;
                }
                let comps: Vec<Component> = seg[6..6 + 3 * n]
                    .chunks_exact(3)
                    .map(|c| Component {
                        id: c[0],
                        h: usize::from(c[1] >> 4),
                        v: usize::from(c[1] & 15),
                        tq: usize::from(c[2]),
                    })
                    .collect();
                if comps
                    .iter()
                    .any(|c| !(1..=4).contains(&c.h) || !(1..=4).contains(&c.v) || c.tq > 3)
                {
                    return None;
                }
                // libjpeg's rule for three components: Adobe's transform 0 or
                // ids 'R','G','B' mean RGB, which has no luma plane to read.
                let rgb_ids = comps.iter().map(|c| c.id).eq(*b"RGB");
                if n == 3 && (adobe_rgb || rgb_ids) {
                    return None;
                }
                let hmax = comps.iter().map(|c| c.h).max()?;
                let vmax = comps.iter().map(|c| c.v).max()?;
                // Luma must be the full-resolution plane for one DC per output pixel.
                if n == 3 && (comps[0].h != hmax || comps[0].v != vmax) {
                    return None;
                }
                let mut f = Frame {
                    width,
                    height,
                    progressive: marker == 0xC2,
                    comps,
                    hmax,
                    vmax,
                    coef: Vec::new(),
                    stride: 0,
                    q0: None,
                };
                let (bw, bh) = f.blocks(0);
                if bw.min(bh) < min_side {
                    return None;
                }
                let (mx, my) = f.mcus();
                f.stride = (mx * f.comps[0].h).max(bw);
                f.coef = vec![0; f.stride * (my * f.comps[0].v).max(bh)];
                frame = Some(f);
            }
            // Other frame types: lossless, hierarchical, arithmetic-coded.
            0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return None,
            0xC4 => {
                let mut s = seg;
                while !s.is_empty() {
                    let (class, id) = (s[0] >> 4, usize::from(s[0] & 15));
                    let counts = s.get(1..17)?;
                    let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
                    let values = s.get(17..17 + total)?;
                    let table = Some(Huff::new(counts, values, class == 1)?);
                    match (class, id) {
                        (0, 0..=3) => dc_tabs[id] = table,
                        (1, 0..=3) => ac_tabs[id] = table,
                        _ => return None,
                    }
                    s = &s[17 + total..];
                }
            }
            0xDB => {
                let mut s = seg;
                while !s.is_empty() {
                    let (pq, id) = (usize::from(s[0] >> 4), usize::from(s[0] & 15));
                    let size = 1 + 64 * (pq + 1);
                    if pq > 1 || id > 3 || s.len() < size {
                        return None;
                    }
                    quant[id] = Some(match pq {
                        0 => i32::from(s[1]),
                        _ => i32::from(u16::from_be_bytes([s[1], s[2]])),
                    });
                    s = &s[size..];
                }
            }
            0xDD => ri = usize::from(u16::from_be_bytes([*seg.first()?, *seg.get(1)?])),
            0xEE if seg.starts_with(b"Adobe") => adobe_rgb = seg.get(11) == Some(&0),
            0xDA => {
                let f = frame.as_mut()?;
                let n = usize::from(*seg.first()?);
                let spec = seg.get(1 + 2 * n..4 + 2 * n)?;
                let (ss, se, ah, al) = (
                    spec[0],
                    spec[1],
                    u32::from(spec[2] >> 4),
                    u32::from(spec[2] & 15),
                );
                let mut comps = Vec::with_capacity(n);
                for c in seg.get(1..1 + 2 * n)?.chunks_exact(2) {
                    let index = f.comps.iter().position(|fc| fc.id == c[0])?;
                    let (td, ta) = (usize::from(c[1] >> 4), usize::from(c[1] & 15));
                    comps.push(ScanComp {
                        index,
                        dc: dc_tabs.get(td)?.as_ref(),
                        ac: ac_tabs.get(ta)?.as_ref(),
                        pred: 0,
                    });
                }
                let has_luma = comps.iter().any(|c| c.index == 0);
                let pass = match (f.progressive, ss, ah) {
                    (false, 0, 0) if se == 63 => Some(Pass::Sequential),
                    (false, ..) => return None,
                    (true, 0, 0) if se == 0 && al < 14 => Some(Pass::DcFirst { al }),
                    (true, 0, _) if se == 0 && al < 14 => Some(Pass::DcRefine { al }),
                    (true, 0, _) => return None,
                    // AC scans hold nothing the plane needs.
                    (true, ..) => None,
                };
                let Some(pass) = pass.filter(|_| has_luma) else {
                    continue;
                };
                if f.q0.is_none() {
                    f.q0 = Some(quant[f.comps[0].tq]?);
                }
                pos = scan(f, &mut comps, pass, ri, data, pos)?;
            }
            _ => {}
        }
    }
    let f = frame?;
    let q0 = f.q0?;
    let (bw, bh) = f.blocks(0);
    let mut plane = Vec::with_capacity(bw * bh);
    for row in f.coef.chunks_exact(f.stride).take(bh) {
        // jpeg_idct_1x1: DESCALE(dc·q, 3) + CENTERJSAMPLE, range-limited.
        plane.extend(row[..bw].iter().map(|&c| {
            (c.saturating_mul(q0).saturating_add(4) >> 3)
                .saturating_add(128)
                .clamp(0, 255) as u8
        }));
    }
    Some((plane, f.width, f.height))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/hash/dc");
        std::fs::read(format!("{dir}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// A binary PGM as Pillow writes it: `P5\n<w> <h>\n255\n` then the pixels.
    fn pgm(bytes: &[u8]) -> (Vec<u8>, usize, usize) {
        let text = String::from_utf8_lossy(&bytes[..20]);
        let fields: Vec<&str> = text.split_ascii_whitespace().take(4).collect();
        assert_eq!((fields[0], fields[3]), ("P5", "255"));
        let (w, h) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
        (bytes[bytes.len() - w * h..].to_vec(), w, h)
    }

    /// Every layout in the fixtures (4:2:0, 4:2:2, 4:4:4, grey, optimised
    /// tables, progressive with DC refinement, restart markers) and the real
    /// photos: the plane equals libjpeg-turbo's 1/8-scale decode to the byte.
    #[test]
    fn eighth_scale_matches_libjpeg_turbo() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/hash/dc");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".eighth.pgm").map(str::to_owned))
            .collect();
        names.sort();
        assert_eq!(names.len(), 14, "{names:?}");
        for name in names {
            let jpeg = match std::fs::read(format!("{dir}/{name}.jpg")) {
                Ok(b) => b,
                Err(_) => ["data/photos", "tests/fixtures/hash"]
                    .iter()
                    .find_map(|d| {
                        std::fs::read(format!("{}/../{d}/{name}.jpg", env!("CARGO_MANIFEST_DIR")))
                            .ok()
                    })
                    .unwrap(),
            };
            let want = pgm(&fixture(&format!("{name}.eighth.pgm")));
            let got = luma_eighth(&jpeg, 1).unwrap_or_else(|| panic!("{name}: not read"));
            assert_eq!(
                (got.1.div_ceil(8), got.2.div_ceil(8)),
                (want.1, want.2),
                "{name}"
            );
            assert!(got.0 == want.0, "{name}: planes differ");
        }
    }

    #[test]
    fn small_images_are_left_to_the_full_decoder() {
        let jpeg = fixture("b420.jpg");
        // 203x157 is 26x20 at 1/8 scale.
        assert!(luma_eighth(&jpeg, 20).is_some());
        assert!(luma_eighth(&jpeg, 21).is_none());
    }

    /// Truncated at every length, or with any byte changed: no panic, and a
    /// truncated file is never read as whole.
    #[test]
    fn damaged_files_fail_cleanly() {
        for name in ["progressive.jpg", "restart_rows.jpg", "grey.jpg"] {
            let jpeg = fixture(name);
            let whole = luma_eighth(&jpeg, 1).unwrap();
            for cut in 0..jpeg.len() - 1 {
                assert!(
                    luma_eighth(&jpeg[..cut], 1).is_none(),
                    "{name} cut at {cut}"
                );
            }
            let mut flipped = 0;
            for at in (0..jpeg.len()).step_by(7) {
                let mut bad = jpeg.clone();
                bad[at] ^= 0x5A;
                flipped += usize::from(luma_eighth(&bad, 1).is_none_or(|p| p != whole));
            }
            assert!(flipped > 0, "{name}: no damage noticed");
        }
        // CMYK has no luma plane; the full decoder takes it.
        let cmyk = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/bad/cmyk.jpg"
        ))
        .unwrap();
        assert!(luma_eighth(&cmyk, 1).is_none());
    }
}
