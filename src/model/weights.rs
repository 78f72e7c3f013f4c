//! Hugging Face checkpoints in and out: `model.safetensors` or shards listed by
//! `model.safetensors.index.json`, memory-mapped copy-on-write. A tensor whose dtype already
//! matches is a view of the map (no copy, pages read on first use; writes stay private), so a 13B
//! checkpoint is never read whole into RAM, nor once per process. Saving writes HF layout: shards
//! up to `max_shard_size` with the index, `config.json`, `generation_config.json` and the
//! tokenizer files, so `transformers` loads the directory unchanged.
use super::config::Config;
use super::llama::Llama;
use crate::util::atomic;
use anyhow::{bail, Context, Result};
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// Where one tensor lives in the mapped shards.
struct Entry {
    shard: usize,
    dtype: Dtype,
    shape: Vec<i64>,
    /// Byte range within the shard's map.
    start: usize,
    end: usize,
}

/// A checkpoint's shards, mapped, with the location of every tensor.
pub struct Checkpoint {
    dir: PathBuf,
    maps: Vec<memmap2::MmapMut>,
    entries: BTreeMap<String, Entry>,
}

impl Checkpoint {
    /// Maps the safetensors files of `dir` (single file or sharded with an index).
    pub fn open(dir: &Path) -> Result<Checkpoint> {
        let files = weight_files(dir)?;
        let mut maps = Vec::with_capacity(files.len());
        let mut entries = BTreeMap::new();
        for (shard, path) in files.iter().enumerate() {
            let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            // SAFETY: a private (copy-on-write) map: writes never reach the file, and the file is
            // not expected to be truncated by another process while a model uses it.
            let map = unsafe { memmap2::MmapOptions::new().map_copy(&file) }
                .with_context(|| format!("cannot map {}", path.display()))?;
            let st = SafeTensors::deserialize(&map)
                .with_context(|| format!("{}: not a valid safetensors file", path.display()))?;
            let base = map.as_ptr() as usize;
            for (name, view) in st.tensors() {
                let start = view.data().as_ptr() as usize - base;
                let entry = Entry {
                    shard,
                    dtype: view.dtype(),
                    shape: view.shape().iter().map(|&d| d as i64).collect(),
                    start,
                    end: start + view.data().len(),
                };
                entries.insert(name, entry);
            }
            maps.push(map);
        }
        Ok(Checkpoint { dir: dir.to_path_buf(), maps, entries })
    }

    /// Tensor names in the checkpoint.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Tensor names in the order their bytes lie in the files (shard by shard, by offset): reading
    /// in this order walks each file once from start to end.
    pub fn names_in_file_order(&self) -> Vec<&str> {
        let mut names: Vec<(&String, &Entry)> = self.entries.iter().collect();
        names.sort_by_key(|(_, e)| (e.shard, e.start));
        names.into_iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Shape and stored kind of a tensor (`None` for a name the checkpoint lacks; an error for a
    /// dtype libtorch cannot hold), for code that streams tensors without building a model.
    pub fn shape_kind(&self, name: &str) -> Result<Option<(Vec<i64>, Kind)>> {
        let Some(e) = self.entries.get(name) else { return Ok(None) };
        let kind = kind_of(e.dtype)
            .with_context(|| format!("{}: tensor {name} has unsupported dtype {:?}", self.dir.display(), e.dtype))?;
        Ok(Some((e.shape.clone(), kind)))
    }

    /// Calls `f` with tensor `name` as `kind` on the CPU, then hands its pages back
    /// ([`release`](Self::release)): a view of the map when the stored kind is `kind` and the
    /// bytes are aligned (no copy: the tensor's bytes are resident once, as file pages), a
    /// converted copy otherwise. `f` must only read the tensor and must not keep it (nor a view of
    /// it) past its return: the bytes belong to the map.
    pub fn with_tensor<T>(&self, name: &str, kind: Kind, f: impl FnOnce(&Tensor) -> Result<T>) -> Result<T> {
        let e = self
            .entries
            .get(name)
            .with_context(|| format!("{}: tensor {name} is missing from the checkpoint", self.dir.display()))?;
        let stored = kind_of(e.dtype)
            .with_context(|| format!("{}: tensor {name} has unsupported dtype {:?}", self.dir.display(), e.dtype))?;
        let bytes = &self.maps[e.shard][e.start..e.end];
        let aligned = (bytes.as_ptr() as usize) % stored.elt_size_in_bytes() == 0;
        let result = if aligned && stored == kind {
            // SAFETY: the bytes hold `shape` elements of `kind` (the header said so and safetensors
            // checked the length), are aligned, and outlive the tensor, which `f` only reads and
            // does not keep (the contract above); nothing writes to the map meanwhile (`&self`).
            let view = unsafe {
                Tensor::from_blob(bytes.as_ptr(), &e.shape, &contiguous_strides(&e.shape), kind, Device::Cpu)
            };
            f(&view)
        } else {
            f(&Tensor::from_data_size(bytes, &e.shape, stored).to_kind(kind))
        };
        self.release(name);
        result
    }

    /// Hands the pages of tensor `name` back to the kernel once it has been read: a streaming pass
    /// over a checkpoint (`model delta`) would otherwise keep every page it touched resident and
    /// counted in its RSS until the end. The map is private and nothing wrote into it through
    /// [`read_flat`](Self::read_flat), so the pages are read again from the file if used again.
    /// Only for checkpoints read with `read_flat` (a model built by `load_model` has views into
    /// its own map, which no caller can reach).
    pub fn release(&self, name: &str) {
        let Some(e) = self.entries.get(name) else { return };
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(1);
        // Whole pages inside the tensor's bytes only: a page shared with a neighbour stays.
        let start = e.start.div_ceil(page) * page;
        let end = e.end / page * page;
        if end > start {
            // SAFETY: the range lies within the map; MADV_DONTNEED on a private map that was only
            // read drops clean copies of file pages, which the kernel reads again on the next
            // access; no tensor borrows these bytes (read_flat copies).
            let _ = unsafe {
                self.maps[e.shard].unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
            };
        }
    }

    /// Shape and dtype of a tensor, for `model inspect`.
    pub fn describe(&self, name: &str) -> Option<(Vec<i64>, String)> {
        self.entries.get(name).map(|e| (e.shape.clone(), format!("{:?}", e.dtype)))
    }

    /// The entry of tensor `name` and its stored kind, checked against the `shape` the config
    /// expects: missing tensors, other shapes and unsupported dtypes are errors naming the tensor.
    fn expect(&self, name: &str, shape: &[i64]) -> Result<(&Entry, Kind)> {
        let e = self
            .entries
            .get(name)
            .with_context(|| format!("{}: tensor {name} is missing from the checkpoint", self.dir.display()))?;
        if e.shape != shape {
            bail!("{}: tensor {name} has shape {:?}, the config expects {:?}", self.dir.display(), e.shape, shape);
        }
        let stored = kind_of(e.dtype)
            .with_context(|| format!("{}: tensor {name} has unsupported dtype {:?}", self.dir.display(), e.dtype))?;
        Ok((e, stored))
    }

    /// Elements `start..start + len` of tensor `name` (flattened), as `kind` on `device`: only
    /// those bytes of the map are read (a rank of a sharded run reads its slices, nothing else).
    pub fn read_flat(&self, name: &str, start: i64, len: i64, kind: Kind, device: Device) -> Result<Tensor> {
        let e = self
            .entries
            .get(name)
            .with_context(|| format!("{}: tensor {name} is missing from the checkpoint", self.dir.display()))?;
        let stored = kind_of(e.dtype)
            .with_context(|| format!("{}: tensor {name} has unsupported dtype {:?}", self.dir.display(), e.dtype))?;
        let size = stored.elt_size_in_bytes();
        let numel: i64 = e.shape.iter().product();
        if start < 0 || len < 0 || start + len > numel {
            bail!("{}: elements {start}..{} of tensor {name} are outside its {numel}", self.dir.display(), start + len);
        }
        let from = e.start + start as usize * size;
        let bytes = &self.maps[e.shard][from..from + len as usize * size];
        Ok(Tensor::from_data_size(bytes, &[len], stored).to_device(device).to_kind(kind))
    }

    /// The tensor `name` with `shape`, as `kind` on `device`: a view of the map when nothing must
    /// change (CPU, same dtype, aligned), otherwise a converted copy.
    ///
    /// # Safety contract
    /// A view borrows the map: the returned tensor must not outlive `self`. `load_model` keeps the
    /// checkpoint alive inside the model for that reason.
    fn tensor(&mut self, name: &str, shape: &[i64], kind: Kind, device: Device) -> Result<Tensor> {
        let (e, stored) = self.expect(name, shape)?;
        let (shard, range) = (e.shard, e.start..e.end);
        let bytes = &mut self.maps[shard][range];
        let aligned = (bytes.as_ptr() as usize) % stored.elt_size_in_bytes() == 0;
        let strides = contiguous_strides(shape);
        if aligned && stored == kind && device == Device::Cpu {
            // SAFETY: the bytes hold `shape` elements of `kind` (checked above), are aligned, and
            // live in a private map that outlives the tensor (see the contract above).
            return Ok(unsafe { Tensor::from_blob(bytes.as_mut_ptr(), shape, &strides, stored, Device::Cpu) });
        }
        let view = Tensor::from_data_size(bytes, shape, stored);
        Ok(view.to_device(device).to_kind(kind))
    }
}

fn contiguous_strides(shape: &[i64]) -> Vec<i64> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

fn kind_of(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::F64 => Kind::Double,
        _ => return None,
    })
}

fn dtype_of(kind: Kind) -> Result<(Dtype, &'static str)> {
    Ok(match kind {
        Kind::Float => (Dtype::F32, "float32"),
        Kind::Half => (Dtype::F16, "float16"),
        Kind::BFloat16 => (Dtype::BF16, "bfloat16"),
        other => bail!("cannot save weights of kind {other:?}"),
    })
}

/// A model with the mapped checkpoint its weights may point into.
pub struct Loaded {
    pub model: Llama,
    /// Keeps mapped weights valid; dropped after the model (field order).
    _checkpoint: Arc<Checkpoint>,
}

/// Loads the Llama model in `dir` (config.json and safetensors) as `kind` on `device`.
pub fn load_model(dir: &Path, kind: Kind, device: Device) -> Result<Loaded> {
    let config = Config::load(&dir.join("config.json"))?;
    let mut checkpoint = Checkpoint::open(dir)?;
    let model = Llama::build(config, &mut |name, shape| checkpoint.tensor(name, shape, kind, device))?;
    check_all_used(&model, &checkpoint, dir)?;
    Ok(Loaded { model, _checkpoint: Arc::new(checkpoint) })
}

/// The Llama model in `dir` with no weights loaded: every parameter is a placeholder of the
/// right shape, kind and device that holds no memory, and the returned checkpoint reads any part
/// of any tensor on demand ([`Checkpoint::read_flat`]). The names and shapes are checked as
/// [`load_model`] checks them. Training fills its sharded fp32 state from the slices each rank
/// owns, so no process reads more of the checkpoint than it keeps.
pub fn open_model(dir: &Path, kind: Kind, device: Device) -> Result<(Llama, Checkpoint)> {
    let config = Config::load(&dir.join("config.json"))?;
    let checkpoint = Checkpoint::open(dir)?;
    let model = Llama::build(config, &mut |name, shape| {
        checkpoint.expect(name, shape)?;
        Ok(Tensor::zeros([1], (kind, device)).expand(shape, false))
    })?;
    check_all_used(&model, &checkpoint, dir)?;
    Ok((model, checkpoint))
}

/// Fails when the checkpoint holds tensors the model does not use (tied checkpoints may still
/// carry `lm_head.weight`).
fn check_all_used(model: &Llama, checkpoint: &Checkpoint, dir: &Path) -> Result<()> {
    let expected = model.named_parameters().len();
    let present = checkpoint.names().filter(|n| !(model.lm_head.is_none() && *n == "lm_head.weight")).count();
    if present != expected {
        let used: std::collections::HashSet<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();
        let extra: Vec<&str> =
            checkpoint.names().filter(|n| !used.contains(*n) && *n != "lm_head.weight").take(5).collect();
        bail!("{}: the checkpoint has tensors the config does not describe: {}", dir.display(), extra.join(", "));
    }
    Ok(())
}

impl std::ops::Deref for Loaded {
    type Target = Llama;
    fn deref(&self) -> &Llama {
        &self.model
    }
}

/// Files copied next to saved weights when the source has them.
const TOKENIZER_FILES: &[&str] =
    &["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "added_tokens.json"];

/// Saves `model` into `dir` in Hugging Face layout, weights as `kind`, shards of at most
/// `max_shard_bytes`; tokenizer files are copied from `tokenizer_dir` when given.
pub fn save_model(
    model: &Llama,
    dir: &Path,
    kind: Kind,
    max_shard_bytes: usize,
    tokenizer_dir: Option<&Path>,
) -> Result<()> {
    let named = model.named_parameters();
    let plan: Vec<(String, Vec<i64>)> = named.iter().map(|(n, t)| (n.clone(), t.size())).collect();
    save_streamed(&model.config, dir, kind, max_shard_bytes, tokenizer_dir, &plan, &mut |i| {
        Ok(named[i].1.shallow_clone())
    })
}

/// [`save_model`] for weights that are not all in memory at once: `plan` names every tensor and
/// its shape in checkpoint order, and `fetch(i)` produces tensor `i` when its shard is written
/// (in order, each once). A sharded trainer gathers one unit at a time this way, so the largest
/// thing held is one file's worth of tensors, never the whole model.
pub fn save_streamed(
    config: &Config,
    dir: &Path,
    kind: Kind,
    max_shard_bytes: usize,
    tokenizer_dir: Option<&Path>,
    plan: &[(String, Vec<i64>)],
    fetch: &mut dyn FnMut(usize) -> Result<Tensor>,
) -> Result<()> {
    let (_, dtype_name) = dtype_of(kind)?;
    write_shards(dir, kind, max_shard_bytes, plan, fetch)?;
    let c = config;
    atomic::write_bytes(&dir.join("config.json"), serde_json::to_string_pretty(&c.to_hf_json(dtype_name))?.as_bytes())?;
    let generation = serde_json::json!({"_from_model_config": true, "bos_token_id": c.bos_token_id, "eos_token_id": c.to_hf_json(dtype_name)["eos_token_id"]});
    atomic::write_bytes(&dir.join("generation_config.json"), serde_json::to_string_pretty(&generation)?.as_bytes())?;
    if let Some(src) = tokenizer_dir {
        copy_tokenizer(src, dir)?;
    }
    Ok(())
}

/// The weights half of [`save_streamed`]: the safetensors shards of `plan` (tensors fetched in
/// order, one shard's worth held at a time, converted to `kind`) and the index when there is more
/// than one, in `dir`. Callers that write their own `config.json` (`model delta`, which keeps the
/// input's file as it is) use it directly.
pub fn write_shards(
    dir: &Path,
    kind: Kind,
    max_shard_bytes: usize,
    plan: &[(String, Vec<i64>)],
    fetch: &mut dyn FnMut(usize) -> Result<Tensor>,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    dtype_of(kind)?;
    // Group tensors into shards in checkpoint order.
    let mut shards: Vec<Vec<usize>> = vec![Vec::new()];
    let mut size = 0;
    let mut total = 0;
    for (i, (_, shape)) in plan.iter().enumerate() {
        let bytes = shape.iter().product::<i64>() as usize * kind.elt_size_in_bytes();
        if size > 0 && size + bytes > max_shard_bytes {
            shards.push(Vec::new());
            size = 0;
        }
        size += bytes;
        total += bytes;
        shards.last_mut().expect("one shard").push(i);
    }
    let n = shards.len();
    let mut weight_map = serde_json::Map::new();
    for (k, shard) in shards.iter().enumerate() {
        let file =
            if n == 1 { "model.safetensors".to_string() } else { format!("model-{:05}-of-{n:05}.safetensors", k + 1) };
        let mut tensors = Vec::with_capacity(shard.len());
        for &i in shard {
            let t = fetch(i)?.detach().to_device(Device::Cpu).to_kind(kind).contiguous();
            weight_map.insert(plan[i].0.clone(), file.clone().into());
            tensors.push((plan[i].0.clone(), t));
        }
        write_safetensors(&dir.join(&file), &tensors)?;
    }
    if n > 1 {
        let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
        atomic::write_bytes(
            &dir.join("model.safetensors.index.json"),
            serde_json::to_string_pretty(&index)?.as_bytes(),
        )?;
    } else {
        let _ = std::fs::remove_file(dir.join("model.safetensors.index.json"));
    }
    Ok(())
}

/// Copies the tokenizer files of `src` into `dir`. A tokenizer given as a file (any name) becomes
/// the directory's tokenizer.json; the files beside it that describe its special tokens come
/// along, as `Tokenizer::load` reads them.
pub fn copy_tokenizer(src: &Path, dir: &Path) -> Result<()> {
    let (src_dir, file) = if src.is_file() { (src.parent().unwrap_or(Path::new(".")), Some(src)) } else { (src, None) };
    for f in TOKENIZER_FILES {
        let from = match (f, file) {
            (&"tokenizer.json", Some(file)) => file.to_path_buf(),
            _ => src_dir.join(f),
        };
        if from.exists() && from != dir.join(f) {
            let bytes = std::fs::read(&from).with_context(|| format!("cannot read {}", from.display()))?;
            atomic::write_bytes(&dir.join(f), &bytes)?;
        }
    }
    Ok(())
}

/// A contiguous CPU tensor seen as safetensors data, borrowed: the serialiser streams it to the
/// file without a copy.
struct TensorData {
    tensor: Tensor,
    dtype: Dtype,
    shape: Vec<usize>,
}

impl safetensors::View for TensorData {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        // SAFETY: the tensor is contiguous and on the CPU (made so in `write_safetensors`), and
        // lives as long as `self`, so its storage holds `data_len` readable bytes.
        std::borrow::Cow::Borrowed(unsafe {
            std::slice::from_raw_parts(self.tensor.data_ptr() as *const u8, self.data_len())
        })
    }
    fn data_len(&self) -> usize {
        self.tensor.numel() * self.tensor.kind().elt_size_in_bytes()
    }
}

/// Writes tensors as one safetensors file (with `{"format": "pt"}` metadata, which transformers
/// expects): streamed to a temporary file without copying the tensors, fsynced, renamed. Returns
/// its size and CRC32 for checkpoint manifests.
pub fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<(u64, u32)> {
    let views: Vec<(String, TensorData)> = tensors
        .iter()
        .map(|(name, t)| {
            let tensor = t.detach().to_device(Device::Cpu).contiguous();
            let (dtype, _) = dtype_of(tensor.kind())?;
            let shape = tensor.size().iter().map(|&d| d as usize).collect();
            Ok((name.clone(), TensorData { tensor, dtype, shape }))
        })
        .collect::<Result<_>>()?;
    let metadata = Some(std::collections::HashMap::from([("format".to_string(), "pt".to_string())]));
    atomic::write_via_path(path, |tmp| {
        safetensors::serialize_to_file(views, metadata, tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        // Read back, so the manifest's checksum is of what reached the file.
        file_crc32(tmp)
    })
}

/// What `vicuna model inspect` shows: the config (in HF keys), the parameter count and every
/// tensor's name, dtype and shape.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inspection {
    pub config: serde_json::Value,
    pub parameters: usize,
    /// (name, shape, dtype) of every tensor, by name.
    pub tensors: Vec<(String, Vec<i64>, String)>,
}

/// Reads a model directory's config and tensor headers (no weights are loaded).
pub fn inspect(dir: &Path) -> Result<Inspection> {
    let config = Config::load(&dir.join("config.json"))?;
    let checkpoint = Checkpoint::open(dir)?;
    let tensors = checkpoint
        .names()
        .filter_map(|n| checkpoint.describe(n).map(|(shape, dtype)| (n.to_string(), shape, dtype)))
        .collect();
    let config_json = config.to_hf_json(config.torch_dtype.as_deref().unwrap_or("float32"));
    Ok(Inspection { config: config_json, parameters: config.parameter_count(), tensors })
}

impl std::fmt::Display for Inspection {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        writeln!(f, "{}", serde_json::to_string_pretty(&self.config).map_err(|_| std::fmt::Error)?)?;
        writeln!(f, "parameters: {}", self.parameters)?;
        for (name, shape, dtype) in &self.tensors {
            writeln!(f, "  {name:<48} {dtype:<5} {shape:?}")?;
        }
        Ok(())
    }
}

/// `vicuna model init`: a model of `config` with random weights from `seed`, saved in `kind` to
/// `out` (shards of at most `max_shard_bytes`) with the tokenizer files of `tokenizer`.
pub fn init_model(
    config: Config,
    seed: i64,
    kind: Kind,
    max_shard_bytes: usize,
    tokenizer: &Path,
    out: &Path,
) -> Result<()> {
    let model = Llama::init(config, seed, kind, Device::Cpu)?;
    save_model(&model, out, kind, max_shard_bytes, Some(tokenizer))
}

/// The safetensors files of a model directory: the shards its index lists, or `model.safetensors`.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index).with_context(|| format!("cannot read {}", index.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", index.display()))?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .with_context(|| format!("{}: no weight_map", index.display()))?;
        let mut names: Vec<&str> = map.values().filter_map(|f| f.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        Ok(names.into_iter().map(|n| dir.join(n)).collect())
    } else if dir.join("model.safetensors").exists() {
        Ok(vec![dir.join("model.safetensors")])
    } else {
        bail!(
            "{}: no model.safetensors or model.safetensors.index.json; pass a Hugging Face model directory",
            dir.display()
        );
    }
}

/// What a model directory holds, by content rather than by path: the CRC32 of `config.json` and
/// the size and CRC32 of every weights file. The same model reached by another path (`./m`, an
/// absolute path, a copy) has the same identity; a different model under the same path does not.
pub fn identity(dir: &Path) -> Result<String> {
    let (_, config_crc) = file_crc32(&dir.join("config.json"))?;
    let mut parts = vec![format!("config.json crc32 {config_crc:08x}")];
    for path in weight_files(dir)? {
        let (bytes, crc) = file_crc32(&path)?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        parts.push(format!("{name} {bytes} bytes crc32 {crc:08x}"));
    }
    Ok(parts.join("; "))
}

/// Size and CRC32 of a file, read in 8 MB blocks.
pub fn file_crc32(path: &Path) -> Result<(u64, u32)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 8 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hasher.finalize()))
}

/// Reads every tensor of a safetensors file (copies, in their stored dtype, on the CPU).
pub fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: read-only map, used only while this function copies out of it.
    let map = unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("cannot map {}", path.display()))?;
    let st =
        SafeTensors::deserialize(&map).with_context(|| format!("{}: not a valid safetensors file", path.display()))?;
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let kind = kind_of(view.dtype()).with_context(|| {
                format!("{}: tensor {name} has unsupported dtype {:?}", path.display(), view.dtype())
            })?;
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            Ok((name, Tensor::from_data_size(view.data(), &shape, kind)))
        })
        .collect()
}

/// Parses a size like `5GB`, `500MB`, `64KiB` or a plain byte count (for `--max-shard-size`).
pub fn parse_size(s: &str) -> Result<usize> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .with_context(|| format!("size {s:?}: expected a number with an optional unit (KB, MB, GB, KiB, MiB, GiB)"))?;
    let scale: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KIB" => 1024.0,
        "MIB" => 1024.0 * 1024.0,
        "GIB" => 1024.0 * 1024.0 * 1024.0,
        other => bail!("size {s:?}: unknown unit {other:?} (use KB, MB, GB, KiB, MiB, GiB)"),
    };
    Ok((value * scale) as usize)
}
