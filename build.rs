//! Gives every binary (the CLI, tests, examples) an rpath to the libtorch it was linked against, so
//! `vicuna` runs without `LD_LIBRARY_PATH`. torch-sys exports the folder as `DEP_TCH_LIBTORCH_LIB`
//! to crates that depend on it directly (DESIGN.md, "Verified building blocks").
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
