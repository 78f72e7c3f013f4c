//! Which libtorch the binary runs on, what accelerators it sees, and which number format suits
//! them. `vicuna env` prints it, and the test suite calls it so that CI proves libtorch links and
//! loads through the rpath. `--dtype auto` is decided here ([`DtypeChoice::resolve`]): bf16 where
//! the hardware multiplies bf16 faster than fp32 (CUDA devices of compute capability 8.0 or more,
//! CPUs with AMX), fp32 elsewhere (a CPU without AMX runs bf16 matmuls several times slower).
use serde::Serialize;

/// What a user needs to know before a long run: the libtorch in use and the devices it can reach.
#[derive(Debug, Clone, Serialize)]
pub struct Runtime {
    /// Version of the tch crate (it pins the libtorch version it binds).
    pub tch_version: &'static str,
    /// Threads libtorch uses for intra-op parallelism on CPU.
    pub cpu_threads: i32,
    /// Whether a CUDA device is usable (drivers and a GPU present).
    pub cuda_available: bool,
    /// Number of CUDA devices visible to this process.
    pub cuda_devices: i64,
    /// Whether cuDNN is usable (affects attention and conv kernels on GPU).
    pub cudnn_available: bool,
}

/// Queries libtorch; the first call loads it, so a broken install fails here with the loader's message.
pub fn runtime() -> Runtime {
    Runtime {
        tch_version: "0.26",
        cpu_threads: tch::get_num_threads(),
        cuda_available: tch::Cuda::is_available(),
        cuda_devices: tch::Cuda::device_count(),
        cudnn_available: tch::Cuda::cudnn_is_available(),
    }
}

/// Parses `--device`: `cpu`, `cuda` (device 0) or `cuda:N`; CUDA must be available.
pub fn parse_device(s: &str) -> anyhow::Result<tch::Device> {
    let device = match s.trim() {
        "cpu" => tch::Device::Cpu,
        "cuda" => tch::Device::Cuda(0),
        other => match other.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => tch::Device::Cuda(n),
            None => anyhow::bail!("--device {other:?}: use cpu, cuda or cuda:N"),
        },
    };
    if let tch::Device::Cuda(n) = device {
        let count = tch::Cuda::device_count();
        if n as i64 >= count {
            anyhow::bail!("--device {s}: this machine has {count} CUDA device(s)");
        }
    }
    Ok(device)
}

/// Floating-point formats for weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// 32-bit float.
    Fp32,
    /// bfloat16: fp32's range with 8 bits of precision; fast on recent GPUs and AMX CPUs.
    Bf16,
    /// float16.
    Fp16,
}

impl Dtype {
    /// The libtorch kind.
    pub fn kind(self) -> tch::Kind {
        match self {
            Dtype::Fp32 => tch::Kind::Float,
            Dtype::Bf16 => tch::Kind::BFloat16,
            Dtype::Fp16 => tch::Kind::Half,
        }
    }

    /// The name users type (`--dtype`).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Fp32 => "fp32",
            Dtype::Bf16 => "bf16",
            Dtype::Fp16 => "fp16",
        }
    }

    /// The format an HF config's `torch_dtype` names (`float32`, `bfloat16`, `float16`), if one of these.
    pub fn from_torch_dtype(name: &str) -> Option<Dtype> {
        match name {
            "float32" => Some(Dtype::Fp32),
            "bfloat16" => Some(Dtype::Bf16),
            "float16" => Some(Dtype::Fp16),
            _ => None,
        }
    }
}

/// What `--dtype` asks for: a format, or `auto` to let the hardware decide (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DtypeChoice {
    /// bf16 on CUDA devices that support it and on CPUs with AMX; fp32 otherwise.
    Auto,
    /// 32-bit float.
    Fp32,
    /// bfloat16.
    Bf16,
    /// float16.
    Fp16,
}

/// The format a run uses and why, printed at start so that a user sees what `auto` chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedDtype {
    pub dtype: Dtype,
    pub reason: String,
    /// Whether `auto` chose it (by hardware, so another machine may choose otherwise).
    pub auto: bool,
}

impl std::fmt::Display for ResolvedDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "dtype {}: {}", self.dtype.name(), self.reason)
    }
}

/// The facts `auto` decides on (kept apart from where they are read, so that every branch is tested).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hardware {
    /// The CPU model name, for the message.
    pub cpu_model: String,
    /// Whether the CPU has AMX with bf16 tiles (`amx_bf16` in /proc/cpuinfo).
    pub cpu_amx_bf16: bool,
    /// The CUDA device's compute capability (major, minor), or why it could not be read.
    pub cuda_capability: Option<Result<(u32, u32), String>>,
}

impl Hardware {
    /// Reads /proc/cpuinfo and, for a CUDA device, `nvidia-smi` (installed with every NVIDIA driver).
    pub fn probe(device: tch::Device) -> Hardware {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        let flags = field("flags").unwrap_or_default();
        let cuda_capability = match device {
            tch::Device::Cuda(n) => Some(cuda_capability(n)),
            _ => None,
        };
        Hardware {
            cpu_model: field("model name").unwrap_or_else(|| "unknown CPU".into()),
            cpu_amx_bf16: flags.split_whitespace().any(|f| f == "amx_bf16"),
            cuda_capability,
        }
    }
}

/// CUDA device `n`'s compute capability from `nvidia-smi` (libtorch's C API does not expose it).
fn cuda_capability(n: usize) -> Result<(u32, u32), String> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=compute_cap", "--format=csv,noheader", &format!("--id={n}")])
        .output()
        .map_err(|e| format!("cannot run nvidia-smi: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let parsed = text.trim().split_once('.').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
    match (out.status.success(), parsed) {
        (true, Some(cap)) => Ok(cap),
        _ => Err(format!("nvidia-smi gave no compute capability ({})", text.trim())),
    }
}

impl DtypeChoice {
    /// The format for `device` on this machine: a fixed choice as given, `auto` by [`decide`].
    pub fn resolve(self, device: tch::Device) -> ResolvedDtype {
        match self.fixed() {
            Some(dtype) => ResolvedDtype { dtype, reason: "as asked (--dtype or VICUNA_DTYPE)".into(), auto: false },
            None => decide(&Hardware::probe(device)),
        }
    }

    /// The format when one was named.
    pub fn fixed(self) -> Option<Dtype> {
        match self {
            DtypeChoice::Auto => None,
            DtypeChoice::Fp32 => Some(Dtype::Fp32),
            DtypeChoice::Bf16 => Some(Dtype::Bf16),
            DtypeChoice::Fp16 => Some(Dtype::Fp16),
        }
    }
}

/// `auto`'s rule: bf16 on a CUDA device of compute capability 8.0 or more (as
/// `torch.cuda.is_bf16_supported`), bf16 on a CPU with AMX, fp32 otherwise; with the reason.
pub fn decide(hw: &Hardware) -> ResolvedDtype {
    let (dtype, reason) = match &hw.cuda_capability {
        Some(Ok((major, minor))) if *major >= 8 => {
            (Dtype::Bf16, format!("the CUDA device has compute capability {major}.{minor} (bf16 needs 8.0)"))
        }
        Some(Ok((major, minor))) => (
            Dtype::Fp32,
            format!("the CUDA device has compute capability {major}.{minor}, below the 8.0 that bf16 needs"),
        ),
        Some(Err(why)) => (Dtype::Fp32, format!("{why}; pass --dtype bf16 if the device supports it")),
        None if hw.cpu_amx_bf16 => (Dtype::Bf16, format!("the CPU ({}) has AMX with bf16", hw.cpu_model)),
        None => {
            (Dtype::Fp32, format!("the CPU ({}) has no AMX, where bf16 matmuls are slower than fp32", hw.cpu_model))
        }
    };
    ResolvedDtype { dtype, reason: format!("auto: {reason}"), auto: true }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hw(amx: bool, cuda: Option<Result<(u32, u32), String>>) -> Hardware {
        Hardware { cpu_model: "Test CPU".into(), cpu_amx_bf16: amx, cuda_capability: cuda }
    }

    #[test]
    fn auto_picks_bf16_only_where_the_hardware_does_it_fast_and_says_why() {
        let cases = [
            (hw(true, None), Dtype::Bf16, "auto: the CPU (Test CPU) has AMX with bf16"),
            (
                hw(false, None),
                Dtype::Fp32,
                "auto: the CPU (Test CPU) has no AMX, where bf16 matmuls are slower than fp32",
            ),
            (
                hw(false, Some(Ok((9, 0)))),
                Dtype::Bf16,
                "auto: the CUDA device has compute capability 9.0 (bf16 needs 8.0)",
            ),
            (
                hw(true, Some(Ok((7, 0)))),
                Dtype::Fp32,
                "auto: the CUDA device has compute capability 7.0, below the 8.0 that bf16 needs",
            ),
            (
                hw(true, Some(Err("cannot run nvidia-smi: not found".into()))),
                Dtype::Fp32,
                "auto: cannot run nvidia-smi: not found; pass --dtype bf16 if the device supports it",
            ),
        ];
        for (h, dtype, reason) in cases {
            assert_eq!(decide(&h), ResolvedDtype { dtype, reason: reason.into(), auto: true }, "{h:?}");
        }
        assert_eq!(DtypeChoice::Bf16.resolve(tch::Device::Cpu).dtype, Dtype::Bf16);
    }
}
