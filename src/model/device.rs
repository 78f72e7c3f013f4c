//! Which libtorch the binary runs on and what accelerators it sees. `vicuna env` prints it, and the
//! test suite calls it so that CI proves libtorch links and loads through the rpath.
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
    /// 32-bit float: exact on CPU (bf16 matmuls are ten times slower there).
    Fp32,
    /// bfloat16: the GPU training and inference format.
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
}
