//! Two jobs, both about the libtorch that torch-sys links (it exports the folder as
//! `DEP_TCH_LIBTORCH_LIB` to crates that depend on it directly; DESIGN.md, "Verified building
//! blocks"):
//! - every binary (the CLI, tests, examples) gets an rpath to it, so `vicuna` runs without
//!   `LD_LIBRARY_PATH`;
//! - the c10d shim (`src/train/dist/shim.cpp`) is compiled with `cc` against its headers: Gloo
//!   always (its declarations come from Debian's `libgloo-dev`, installed by `scripts/setup.sh`),
//!   NCCL too when the CUDA headers are there (PyPI `nvidia-cuda-crt` and `cuda-toolkit[cccl]`,
//!   also installed by the set-up); without them the binary says so when `--device cuda` asks for
//!   NCCL.
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=src/train/dist/shim.cpp");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        panic!("torch-sys did not export DEP_TCH_LIBTORCH_LIB; build with `make build` (it sets up libtorch)");
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    let torch = Path::new(&lib).parent().expect("libtorch's lib folder has a parent").to_path_buf();
    if !Path::new("/usr/include/gloo/config.h").exists() {
        panic!("Gloo's headers are missing (/usr/include/gloo): install Debian's libgloo-dev (`make build` runs scripts/setup.sh, which does)");
    }
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file("src/train/dist/shim.cpp")
        .std("c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .define("USE_C10D_GLOO", None)
        .include(torch.join("include"))
        .include(torch.join("include/torch/csrc/api/include"))
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-deprecated-declarations")
        .warnings(false);
    let nvidia = torch.parent().map(|p| p.join("nvidia")).unwrap_or_else(|| PathBuf::from("/nonexistent"));
    let nccl_headers = [nvidia.join("nccl/include"), nvidia.join("cu13/include")];
    let with_nccl = nccl_headers.iter().all(|d| d.exists()) && nvidia.join("cu13/include/cuda_runtime_api.h").exists();
    if with_nccl {
        build.define("USE_C10D_NCCL", None).define("USE_CUDA", None);
        for d in &nccl_headers {
            build.include(d);
        }
        build.include(nvidia.join("cu13/include/cccl"));
    } else {
        println!(
            "cargo:warning=building the c10d shim without NCCL: CUDA headers not found under {} (scripts/setup.sh installs them)",
            nvidia.display()
        );
    }
    build.compile("vicuna_dist");
    println!("cargo:rustc-link-search=native={lib}");
    for l in ["torch_cpu", "c10", "torch"] {
        println!("cargo:rustc-link-lib=dylib={l}");
    }
    if with_nccl {
        for l in ["torch_cuda", "c10_cuda"] {
            println!("cargo:rustc-link-lib=dylib={l}");
        }
    }
}
