//! The GGUF v3 container as ggml's `docs/gguf.md` specifies it, write side only: the header
//! (magic, version, counts), typed metadata key/value pairs, tensor infos (name, dimensions
//! innermost first, ggml type, offset) and the tensor data, each piece aligned to
//! `general.alignment` bytes. Also the element encodings the exporter writes: F32, F16, BF16, and
//! Q8_0 quantized exactly as ggml's reference quantizer (`quantize_row_q8_0_ref`) does.
use anyhow::{bail, Context, Result};
use std::io::Write;
use tch::{Kind, Tensor};

/// The byte boundary of tensor data (ggml's default, and the `general.alignment` we write).
pub const ALIGNMENT: u64 = 32;

/// Elements per Q8_0 block (ggml's `QK8_0`).
pub const QK8_0: usize = 32;

/// A metadata value, with the GGUF value type it is written as.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    /// An array of strings (token texts, merges).
    Strs(Vec<String>),
    /// An array of int32 (token types).
    I32s(Vec<i32>),
    /// An array of float32 (token scores).
    F32s(Vec<f32>),
}

/// The ggml tensor types the exporter writes, with their ids in `ggml_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q8_0,
}

impl GgmlType {
    /// The id of this type in ggml's `ggml_type` enum (what the tensor info stores).
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q8_0 => 8,
            GgmlType::BF16 => 30,
        }
    }

    /// Bytes taken by `n` elements (for Q8_0, `n` must be a multiple of 32: 2 bytes of scale and
    /// 32 of quants per block).
    pub fn bytes(self, n: u64) -> u64 {
        match self {
            GgmlType::F32 => 4 * n,
            GgmlType::F16 | GgmlType::BF16 => 2 * n,
            GgmlType::Q8_0 => n / QK8_0 as u64 * (2 + QK8_0 as u64),
        }
    }

    /// ggml's name of the type, for messages.
    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::BF16 => "BF16",
            GgmlType::Q8_0 => "Q8_0",
        }
    }
}

/// One tensor's entry in the header: its name, its dimensions innermost first (ggml's `ne`: a
/// PyTorch `[rows, cols]` matrix is `[cols, rows]`), its type, and its data offset.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: GgmlType,
}

impl TensorInfo {
    /// Bytes of this tensor's data, before alignment padding.
    pub fn data_bytes(&self) -> u64 {
        self.ty.bytes(self.dims.iter().product())
    }
}

/// Rounds `n` up to the next multiple of [`ALIGNMENT`].
pub fn align(n: u64) -> u64 {
    n.div_ceil(ALIGNMENT) * ALIGNMENT
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, value: &Value) {
    // GGUF value types: 4 uint32, 5 int32, 6 float32, 7 bool, 8 string, 9 array.
    let u32le = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_le_bytes());
    match value {
        Value::U32(v) => {
            u32le(out, 4);
            u32le(out, *v);
        }
        Value::I32(v) => {
            u32le(out, 5);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::F32(v) => {
            u32le(out, 6);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::Bool(v) => {
            u32le(out, 7);
            out.push(*v as u8);
        }
        Value::Str(s) => {
            u32le(out, 8);
            put_str(out, s);
        }
        Value::Strs(items) => {
            u32le(out, 9);
            u32le(out, 8);
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            items.iter().for_each(|s| put_str(out, s));
        }
        Value::I32s(items) => {
            u32le(out, 9);
            u32le(out, 5);
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            items.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        }
        Value::F32s(items) => {
            u32le(out, 9);
            u32le(out, 6);
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            items.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        }
    }
}

/// The header of a GGUF v3 file: magic, version, counts, metadata, tensor infos (each tensor's
/// offset laid out in order, aligned), padded to the alignment so tensor data can follow.
pub fn header(metadata: &[(String, Value)], tensors: &[TensorInfo]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"GGUF");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata {
        put_str(&mut out, key);
        put_value(&mut out, value);
    }
    let mut offset = 0u64;
    for t in tensors {
        put_str(&mut out, &t.name);
        out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        t.dims.iter().for_each(|d| out.extend_from_slice(&d.to_le_bytes()));
        out.extend_from_slice(&t.ty.id().to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        offset += align(t.data_bytes());
    }
    out.resize(align(out.len() as u64) as usize, 0);
    out
}

/// Writes `data` and the zero padding that brings it to the alignment.
pub fn write_padded(out: &mut impl Write, data: &[u8]) -> std::io::Result<()> {
    out.write_all(data)?;
    let pad = align(data.len() as u64) as usize - data.len();
    out.write_all(&[0u8; ALIGNMENT as usize][..pad])
}

/// The bytes of `tensor` (any float kind, any shape) encoded as `ty`: F32, F16 and BF16 through
/// libtorch's round-to-nearest-even conversions, Q8_0 through [`quantize_q8_0`].
pub fn encode(tensor: &Tensor, ty: GgmlType) -> Result<Vec<u8>> {
    let kind = match ty {
        GgmlType::F32 | GgmlType::Q8_0 => Kind::Float,
        GgmlType::F16 => Kind::Half,
        GgmlType::BF16 => Kind::BFloat16,
    };
    let t = tensor.to_kind(kind).contiguous();
    let numel = t.numel();
    let mut bytes = vec![0u8; numel * kind.elt_size_in_bytes()];
    t.f_copy_data_u8(&mut bytes, numel).context("cannot copy tensor data")?;
    if ty != GgmlType::Q8_0 {
        return Ok(bytes);
    }
    let values: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    quantize_q8_0(&values)
}

/// Q8_0 as ggml's reference quantizer computes it: for each block of 32 values, the scale
/// `d = max|x| / 127` (stored as f16, rounded to nearest even) and the quants `round(x / d)`,
/// computed in f32 as `x * (1/d)` and rounded half away from zero; an all-zero block has d = 0.
pub fn quantize_q8_0(values: &[f32]) -> Result<Vec<u8>> {
    if values.len() % QK8_0 != 0 {
        bail!("Q8_0 needs a multiple of {QK8_0} values, got {}", values.len());
    }
    let scales: Vec<f32> =
        values.chunks_exact(QK8_0).map(|block| block.iter().fold(0.0f32, |m, x| m.max(x.abs())) / 127.0).collect();
    // The scales as f16 bits, through libtorch's round-to-nearest-even conversion (ggml's
    // GGML_FP32_TO_FP16).
    let half = Tensor::from_slice(&scales).to_kind(Kind::Half);
    let mut bits = vec![0u8; 2 * scales.len()];
    half.f_copy_data_u8(&mut bits, scales.len()).context("cannot convert Q8_0 scales to f16")?;
    let mut out = Vec::with_capacity(values.len() / QK8_0 * (2 + QK8_0));
    for ((block, &d), bits) in values.chunks_exact(QK8_0).zip(&scales).zip(bits.chunks_exact(2)) {
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(bits);
        // f32::round rounds half away from zero, as C's roundf.
        out.extend(block.iter().map(|x| (x * id).round() as i8 as u8));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_blocks_hold_the_f16_scale_then_rounded_quants() {
        let mut values = vec![0.0f32; 64];
        values[0] = 127.0; // scale exactly 1
        values[1] = -63.5; // halves round away from zero, not to even
        values[2] = 2.5;
        values[3] = 0.49;
        let out = quantize_q8_0(&values).unwrap();
        assert_eq!(out.len(), 68);
        assert_eq!(u16::from_le_bytes([out[0], out[1]]), 0x3c00, "f16 1.0");
        assert_eq!(out[2..6].iter().map(|&b| b as i8).collect::<Vec<_>>(), [127, -64, 3, 0]);
        // An all-zero block: scale 0, quants 0.
        assert!(out[34..].iter().all(|&b| b == 0));
        assert!(quantize_q8_0(&[0.0; 31]).is_err());
    }
}
