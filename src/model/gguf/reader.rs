//! The GGUF container (ggml's `docs/gguf.md`, versions 2 and 3): a header (magic `GGUF`, version,
//! tensor count, metadata count), typed metadata key/values (arrays included), tensor infos
//! (name, dims in ggml order, type, offset), then the tensor data, aligned to
//! `general.alignment` (32 by default). The file is memory-mapped and every count, length and
//! offset is checked against the bytes that are really there before anything is allocated, so a
//! truncated or hostile file gives an error naming what is wrong, never a panic or a huge
//! allocation.
use super::dequant::{dequantize_into, GgmlType};
use anyhow::{bail, ensure, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file's first four bytes.
pub const MAGIC: &[u8; 4] = b"GGUF";
/// Data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most four dimensions.
pub const MAX_DIMS: usize = 4;

/// One metadata value, as typed in the file (GGUF value types 0 to 12).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    /// Elements of one type (nested arrays are allowed by the format).
    Array(Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    /// The value as an unsigned integer, when it is a non-negative integer of any width (GGUF
    /// writers differ in the width they give ids and counts).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, when it is any number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    /// The value as text, when it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The elements, when it is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// Where one tensor lives: its name, dims in ggml order (`dims[0]` is the contiguous one, so the
/// PyTorch shape is the reverse), type and offset from the start of the data section.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn numel(&self) -> u64 {
        self.dims.iter().product()
    }

    /// The shape PyTorch and Hugging Face use: the ggml dims reversed.
    pub fn hf_shape(&self) -> Vec<i64> {
        self.dims.iter().rev().map(|&d| d as i64).collect()
    }

    /// Bytes the tensor's data takes (checked for consistency when the file is opened).
    pub fn nbytes(&self) -> u64 {
        self.numel() / self.ggml_type.block_size() * self.ggml_type.type_size()
    }
}

/// An opened GGUF file: its metadata and tensor infos parsed, its data mapped.
pub struct Gguf {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    /// `general.alignment`, or 32.
    pub alignment: u64,
    /// Offset of the data section from the start of the file.
    pub data_offset: u64,
    map: memmap2::Mmap,
}

/// A cursor over the mapped header that fails, naming the file and what it was reading, instead
/// of reading past the end.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            bail!(
                "the file ends inside {} (needs {n} bytes at offset {}, {left} left): it is truncated",
                what(),
                self.pos
            );
        }
        let s = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }
    fn left(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }
    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }
    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let len = self.u64(what)?;
        let bytes = self.take(len, what)?;
        // llama.cpp's vocabularies hold a few tokens that are not valid UTF-8 on their own; keep
        // them readable rather than refusing the file.
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    /// One value of type `ty`; arrays are checked against the bytes left before allocating.
    fn value(&mut self, ty: u32, depth: usize, what: &dyn Fn() -> String) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(self.take(1, what)?[0]),
            1 => Value::I8(self.take(1, what)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.take(2, what)?.try_into().expect("2"))),
            3 => Value::I16(i16::from_le_bytes(self.take(2, what)?.try_into().expect("2"))),
            4 => Value::U32(self.u32(what)?),
            5 => Value::I32(self.u32(what)? as i32),
            6 => Value::F32(f32::from_bits(self.u32(what)?)),
            7 => match self.take(1, what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => bail!("{} is a bool of value {b} (must be 0 or 1)", what()),
            },
            8 => Value::String(self.string(what)?),
            9 => {
                ensure!(depth < 4, "{} nests arrays more than 4 deep", what());
                let elem = self.u32(what)?;
                let count = self.u64(what)?;
                let min = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    other => bail!("{} is an array of unknown value type {other}", what()),
                };
                if count.saturating_mul(min) > self.left() {
                    bail!(
                        "{} claims {count} elements but only {} bytes are left in the file: it is truncated or corrupt",
                        what(),
                        self.left()
                    );
                }
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(self.value(elem, depth + 1, what)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64(what)?),
            11 => Value::I64(self.u64(what)? as i64),
            12 => Value::F64(f64::from_bits(self.u64(what)?)),
            other => bail!("{} has unknown value type {other} (GGUF defines 0 to 12)", what()),
        })
    }
}

impl Gguf {
    /// Maps and parses `path`; every tensor's data range is checked to lie inside the file.
    pub fn open(path: &Path) -> Result<Gguf> {
        let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: a read-only map; the file is not expected to change while it is imported.
        let map = unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("cannot map {}", path.display()))?;
        Gguf::parse(path, map).with_context(|| format!("{}: not a readable GGUF file", path.display()))
    }

    fn parse(path: &Path, map: memmap2::Mmap) -> Result<Gguf> {
        let mut c = Cursor { bytes: &map, pos: 0 };
        let magic = c.take(4, &|| "the magic number".into())?;
        if magic != MAGIC {
            bail!("wrong magic {:?} (a GGUF file starts with \"GGUF\")", String::from_utf8_lossy(magic));
        }
        let version = c.u32(&|| "the version".into())?;
        if !(2..=3).contains(&version) {
            bail!("GGUF version {version} is not supported (2 and 3 are; convert the file with a current llama.cpp)");
        }
        let tensor_count = c.u64(&|| "the tensor count".into())?;
        let kv_count = c.u64(&|| "the metadata count".into())?;
        // Each key/value takes at least 12 bytes, each tensor info at least 24.
        if kv_count.saturating_mul(12) > c.left() || tensor_count.saturating_mul(24) > c.left() {
            bail!(
                "the header claims {tensor_count} tensors and {kv_count} metadata entries, more than the {} bytes of the file can hold: it is truncated or corrupt",
                map.len()
            );
        }
        let mut metadata = BTreeMap::new();
        for i in 0..kv_count {
            let key = c.string(&|| format!("the key of metadata entry {i}"))?;
            let what = || format!("metadata {key:?}");
            let ty = c.u32(&what)?;
            let value = c.value(ty, 0, &what)?;
            metadata.insert(key, value);
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a,
                _ => bail!("general.alignment {v:?} must be a power of two (32 by default)"),
            },
        };
        let mut tensors = Vec::with_capacity(tensor_count as usize);
        for i in 0..tensor_count {
            let name = c.string(&|| format!("the name of tensor {i}"))?;
            let what = || format!("tensor {name:?}");
            let n_dims = c.u32(&what)? as usize;
            ensure!((1..=MAX_DIMS).contains(&n_dims), "tensor {name:?} has {n_dims} dimensions (ggml allows 1 to 4)");
            let mut dims = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                dims.push(c.u64(&what)?);
            }
            let raw_type = c.u32(&what)?;
            let offset = c.u64(&what)?;
            let ggml_type = GgmlType::from_u32(raw_type)
                .with_context(|| format!("tensor {name:?} has unknown ggml type {raw_type}"))?;
            ensure!(dims.iter().all(|&d| d > 0), "tensor {name:?} has an empty dimension {dims:?}");
            let numel = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
            let numel = numel.filter(|&n| n <= 1 << 40).with_context(|| {
                format!("tensor {name:?} claims dims {dims:?}, an absurd number of elements: the file is corrupt")
            })?;
            ensure!(
                dims[0] % ggml_type.block_size() == 0,
                "tensor {name:?} has rows of {} elements, not a multiple of {}'s block of {}",
                dims[0],
                ggml_type.name(),
                ggml_type.block_size()
            );
            ensure!(offset % alignment == 0, "tensor {name:?} starts at offset {offset}, not aligned to {alignment}");
            let _ = numel;
            tensors.push(TensorInfo { name, dims, ggml_type, offset });
        }
        let data_offset = (c.pos as u64).div_ceil(alignment) * alignment;
        let data_len = (map.len() as u64).saturating_sub(data_offset);
        let mut seen = std::collections::HashSet::new();
        for t in &tensors {
            ensure!(seen.insert(t.name.as_str()), "tensor {:?} appears twice", t.name);
            let end = t.offset.checked_add(t.nbytes());
            if end.is_none_or(|e| e > data_len) {
                bail!(
                    "tensor {:?} ({} bytes at data offset {}) lies outside the file's {data_len} bytes of tensor data: the file is truncated or corrupt",
                    t.name,
                    t.nbytes(),
                    t.offset
                );
            }
        }
        Ok(Gguf { path: path.to_path_buf(), version, metadata, tensors, alignment, data_offset, map })
    }

    /// The metadata value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    /// The tensor info of `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The raw bytes of a tensor (bounds checked at open).
    pub fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        let start = (self.data_offset + info.offset) as usize;
        &self.map[start..start + info.nbytes() as usize]
    }

    /// Tensor `name` dequantized exactly as ggml does, in the Hugging Face shape (ggml dims
    /// reversed), as `kind` (values are computed in fp32 first).
    pub fn dequantize(&self, name: &str, kind: tch::Kind) -> Result<tch::Tensor> {
        let info = self.tensor(name).with_context(|| format!("{}: no tensor {name:?}", self.path.display()))?;
        let mut out = vec![0f32; info.numel() as usize];
        dequantize_into(info.ggml_type, self.tensor_bytes(info), &mut out)
            .with_context(|| format!("{}: tensor {name:?}", self.path.display()))?;
        Ok(tch::Tensor::from_slice(&out).view(info.hf_shape().as_slice()).to_kind(kind))
    }
}
