//! ggml's tensor types (`ggml.h`'s `ggml_type`) with their block sizes, and dequantization of
//! F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K and Q6_K to fp32 exactly as ggml's reference
//! `dequantize_row_*` (`ggml-quants.c`) and the `gguf` Python package's `gguf.quants.dequantize`
//! compute them: the same fp32 products in the same order (scale times sub-scale, then times the
//! quant, then minus the minimum), so the values are bit-identical. Blocks are independent, so
//! rows are decoded in parallel (rayon).
use anyhow::{bail, Result};
use rayon::prelude::*;

/// A ggml tensor type. The reader knows the size of every type below (so it can bound-check any
/// file); [`dequantize_into`] decodes the ones listed in the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    I8,
    I16,
    I32,
    I64,
    F64,
    BF16,
}

/// Values per super-block of the K-quants.
pub const QK_K: usize = 256;

impl GgmlType {
    /// The type of ggml's numeric id (`ggml_type`), if it is one of ours.
    pub fn from_u32(id: u32) -> Option<GgmlType> {
        use GgmlType::*;
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2K,
            11 => Q3K,
            12 => Q4K,
            13 => Q5K,
            14 => Q6K,
            15 => Q8K,
            24 => I8,
            25 => I16,
            26 => I32,
            27 => I64,
            28 => F64,
            30 => BF16,
            _ => return None,
        })
    }

    /// ggml's numeric id, as written in tensor infos.
    pub fn id(self) -> u32 {
        use GgmlType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q5_0 => 6,
            Q5_1 => 7,
            Q8_0 => 8,
            Q8_1 => 9,
            Q2K => 10,
            Q3K => 11,
            Q4K => 12,
            Q5K => 13,
            Q6K => 14,
            Q8K => 15,
            I8 => 24,
            I16 => 25,
            I32 => 26,
            I64 => 27,
            F64 => 28,
            BF16 => 30,
        }
    }

    /// ggml's name for the type (`Q4_K`, `BF16`), for messages.
    pub fn name(self) -> &'static str {
        use GgmlType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q8_1 => "Q8_1",
            Q2K => "Q2_K",
            Q3K => "Q3_K",
            Q4K => "Q4_K",
            Q5K => "Q5_K",
            Q6K => "Q6_K",
            Q8K => "Q8_K",
            I8 => "I8",
            I16 => "I16",
            I32 => "I32",
            I64 => "I64",
            F64 => "F64",
            BF16 => "BF16",
        }
    }

    /// Elements per block (1 for plain types).
    pub fn block_size(self) -> u64 {
        use GgmlType::*;
        match self {
            F32 | F16 | BF16 | I8 | I16 | I32 | I64 | F64 => 1,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 => 32,
            Q2K | Q3K | Q4K | Q5K | Q6K | Q8K => QK_K as u64,
        }
    }

    /// Bytes per block.
    pub fn type_size(self) -> u64 {
        use GgmlType::*;
        match self {
            F32 | I32 => 4,
            F16 | BF16 | I16 => 2,
            I8 => 1,
            I64 | F64 => 8,
            Q4_0 => 18,
            Q4_1 => 20,
            Q5_0 => 22,
            Q5_1 => 24,
            Q8_0 => 34,
            Q8_1 => 36,
            Q2K => 84,
            Q3K => 110,
            Q4K => 144,
            Q5K => 176,
            Q6K => 210,
            Q8K => 292,
        }
    }
}

fn f16(b: &[u8]) -> f32 {
    half_to_f32(u16::from_le_bytes([b[0], b[1]]))
}

/// IEEE half to single precision (exact: every half is a float).
pub fn half_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: normalise the mantissa.
            let shift = m.leading_zeros() - 21;
            let m = (m << shift) & 0x3ff;
            sign | ((127 - 15 + 1 - shift) << 23) | (m << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// Unpacks sub-block `j`'s 6-bit scale and minimum from a K-quant's 12 scale bytes
/// (`get_scale_min_k4`).
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

fn block(ty: GgmlType, x: &[u8], y: &mut [f32]) {
    match ty {
        GgmlType::F32 => y[0] = f32::from_le_bytes([x[0], x[1], x[2], x[3]]),
        GgmlType::F16 => y[0] = f16(x),
        GgmlType::BF16 => y[0] = f32::from_bits((u16::from_le_bytes([x[0], x[1]]) as u32) << 16),
        GgmlType::Q8_0 => {
            let d = f16(x);
            for (y, &q) in y.iter_mut().zip(&x[2..34]) {
                *y = (q as i8) as f32 * d;
            }
        }
        GgmlType::Q4_0 => {
            let d = f16(x);
            for (j, &q) in x[2..18].iter().enumerate() {
                y[j] = d * ((q & 0xF) as i32 - 8) as f32;
                y[j + 16] = d * ((q >> 4) as i32 - 8) as f32;
            }
        }
        GgmlType::Q4_1 => {
            let (d, m) = (f16(x), f16(&x[2..]));
            for (j, &q) in x[4..20].iter().enumerate() {
                y[j] = d * (q & 0xF) as f32 + m;
                y[j + 16] = d * (q >> 4) as f32 + m;
            }
        }
        GgmlType::Q4K => {
            let (d, dmin) = (f16(x), f16(&x[2..]));
            let (scales, qs) = (&x[4..16], &x[16..144]);
            for g in 0..4 {
                let q = &qs[g * 32..g * 32 + 32];
                let (sc1, m1) = scale_min_k4(2 * g, scales);
                let (sc2, m2) = scale_min_k4(2 * g + 1, scales);
                let (d1, min1) = (d * sc1 as f32, dmin * m1 as f32);
                let (d2, min2) = (d * sc2 as f32, dmin * m2 as f32);
                for l in 0..32 {
                    y[g * 64 + l] = d1 * (q[l] & 0xF) as f32 - min1;
                    y[g * 64 + 32 + l] = d2 * (q[l] >> 4) as f32 - min2;
                }
            }
        }
        GgmlType::Q5K => {
            let (d, dmin) = (f16(x), f16(&x[2..]));
            let (scales, qh, qs) = (&x[4..16], &x[16..48], &x[48..176]);
            for g in 0..4 {
                let q = &qs[g * 32..g * 32 + 32];
                let (sc1, m1) = scale_min_k4(2 * g, scales);
                let (sc2, m2) = scale_min_k4(2 * g + 1, scales);
                let (d1, min1) = (d * sc1 as f32, dmin * m1 as f32);
                let (d2, min2) = (d * sc2 as f32, dmin * m2 as f32);
                for l in 0..32 {
                    let h1 = (qh[l] >> (2 * g)) & 1;
                    let h2 = (qh[l] >> (2 * g + 1)) & 1;
                    y[g * 64 + l] = d1 * ((q[l] & 0xF) | (h1 << 4)) as f32 - min1;
                    y[g * 64 + 32 + l] = d2 * ((q[l] >> 4) | (h2 << 4)) as f32 - min2;
                }
            }
        }
        GgmlType::Q6K => {
            let (ql, qh, sc) = (&x[0..128], &x[128..192], &x[192..208]);
            let d = f16(&x[208..]);
            for half in 0..2 {
                let (ql, qh) = (&ql[half * 64..half * 64 + 64], &qh[half * 32..half * 32 + 32]);
                let y = &mut y[half * 128..half * 128 + 128];
                let sc = &sc[half * 8..half * 8 + 8];
                for l in 0..32 {
                    let q = [
                        ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32,
                        ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32,
                        ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32,
                        ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32,
                    ];
                    for (k, q) in q.into_iter().enumerate() {
                        let e = k * 32 + l;
                        y[e] = d * (sc[e / 16] as i8) as f32 * q as f32;
                    }
                }
            }
        }
        _ => unreachable!("checked by dequantize_into"),
    }
}

/// Decodes `bytes` (whole blocks of `ty`) into `out` (one value per element).
pub fn dequantize_into(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    use GgmlType::*;
    if !matches!(ty, F32 | F16 | BF16 | Q8_0 | Q4_0 | Q4_1 | Q4K | Q5K | Q6K) {
        bail!(
            "has ggml type {}, which this importer does not dequantize (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K); requantize the file with llama.cpp's llama-quantize",
            ty.name()
        );
    }
    let (bs, ts) = (ty.block_size() as usize, ty.type_size() as usize);
    if out.len() % bs != 0 || bytes.len() != out.len() / bs * ts {
        bail!(
            "has {} bytes for {} elements of {}: the data does not match its type",
            bytes.len(),
            out.len(),
            ty.name()
        );
    }
    // About 64k values per task: large enough to amortise scheduling, small enough to balance.
    let per_task = (65536 / bs).max(1);
    out.par_chunks_mut(per_task * bs).zip(bytes.par_chunks(per_task * ts)).for_each(|(y, x)| {
        for (y, x) in y.chunks_exact_mut(bs).zip(x.chunks_exact(ts)) {
            block(ty, x, y);
        }
    });
    Ok(())
}
