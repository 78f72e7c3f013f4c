//! `vicuna model export`: the GGUF it writes reads back in the `gguf` package (metadata, tensor
//! names, shapes and types as llama.cpp's converter writes them; values equal to the model's,
//! Q/K permuted for llama.cpp's rope layout; Q8_0 bit-identical to `gguf.quants.quantize`), and
//! llama.cpp itself (llama-cpp-python) loads it and continues a prompt with the same greedy tokens
//! as `vicuna generate`. Tied embeddings stay tied; bad input is refused with a clear error. The
//! references are `scripts/fixtures/gguf_export_check.py` in the project's .venv (`make test`
//! installs `gguf` and `llama-cpp-python` through scripts/setup.sh).
mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> PathBuf {
    let venv = std::env::var_os("VIRTUAL_ENV").map(PathBuf::from).unwrap_or_else(|| repo().join(".venv"));
    venv.join("bin/python")
}

/// Runs the reference script with `args` and returns the JSON it wrote to its last argument.
fn check(args: &[&str]) -> Value {
    let run = Command::new(python())
        .arg(repo().join("scripts/fixtures/gguf_export_check.py"))
        .args(args)
        .output()
        .expect("run scripts/fixtures/gguf_export_check.py (make test installs gguf and llama-cpp-python)");
    assert!(run.status.success(), "gguf_export_check.py {args:?} failed:\n{}", String::from_utf8_lossy(&run.stderr));
    let out = args.last().unwrap();
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

/// Exports `model` as `outtype` into `s` and returns the file.
fn export(s: &Scratch, model: &Path, outtype: &str) -> PathBuf {
    let out = s.path(&format!("{}-{outtype}.gguf", model.file_name().unwrap().to_string_lossy()));
    ok(&["model", "export", model.to_str().unwrap(), "-o", out.to_str().unwrap(), "--outtype", outtype]);
    out
}

/// What the `gguf` package reads from `file`, compared with `model`'s safetensors.
fn read(s: &Scratch, file: &Path, model: &Path) -> Value {
    let out = s.path("read.json");
    check(&["read", file.to_str().unwrap(), model.to_str().unwrap(), out.to_str().unwrap()])
}

fn config(model: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap()
}

fn set_config(model: &Path, key: &str, value: Value) {
    let mut c = config(model);
    c[key] = value;
    std::fs::write(model.join("config.json"), serde_json::to_string_pretty(&c).unwrap()).unwrap();
}

/// A tiny model (`model init --preset tiny`) with the tokenizer in `tokenizer`.
fn tiny_with(s: &Scratch, name: &str, tokenizer: &Path) -> PathBuf {
    let dir = s.path(name);
    ok(&[
        "model",
        "init",
        "--preset",
        "tiny",
        "--tokenizer",
        tokenizer.to_str().unwrap(),
        "-o",
        dir.to_str().unwrap(),
        "--seed",
        "3",
    ]);
    dir
}

#[test]
fn the_gguf_package_reads_every_outtype_with_our_values() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let c = config(&model);
    let vocab = c["vocab_size"].as_u64().unwrap();
    let tok_config: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("tokenizer_config.json")).unwrap()).unwrap();
    for (outtype, matrix_type, file_type) in
        [("f32", "F32", 0), ("f16", "F16", 1), ("bf16", "BF16", 32), ("q8_0", "Q8_0", 7)]
    {
        let file = export(&s, &model, outtype);
        let r = read(&s, &file, &model);
        let f = &r["fields"];
        for (key, want) in [
            ("general.architecture", Value::from("llama")),
            ("general.alignment", 32.into()),
            ("general.file_type", file_type.into()),
            ("llama.block_count", 2.into()),
            ("llama.context_length", 2048.into()),
            ("llama.embedding_length", 64.into()),
            ("llama.feed_forward_length", 172.into()),
            ("llama.attention.head_count", 4.into()),
            ("llama.attention.head_count_kv", 2.into()),
            ("llama.rope.dimension_count", 16.into()),
            ("llama.rope.freq_base", 10000.0.into()),
            ("llama.vocab_size", vocab.into()),
            ("tokenizer.ggml.model", "gpt2".into()),
            ("tokenizer.ggml.pre", "gpt-2".into()),
            ("tokenizer.ggml.bos_token_id", c["bos_token_id"].clone()),
            ("tokenizer.ggml.eos_token_id", c["eos_token_id"].clone()),
            ("tokenizer.ggml.add_bos_token", true.into()),
            ("tokenizer.chat_template", tok_config["chat_template"].clone()),
        ] {
            assert_eq!(f[key], want, "{outtype}: {key}");
        }
        let eps = f["llama.attention.layer_norm_rms_epsilon"].as_f64().unwrap();
        assert!((eps - 1e-6).abs() < 1e-12, "{outtype}: rms eps {eps}");
        assert_eq!(f["tokenizer.ggml.tokens"].as_array().unwrap().len() as u64, vocab);
        assert_eq!(f["tokenizer.ggml.token_type"].as_array().unwrap().len() as u64, vocab);
        assert_eq!(f["tokenizer.ggml.tokens"][0], "<s>");
        assert_eq!(f["tokenizer.ggml.token_type"][0], 3, "special tokens are CONTROL");
        assert!(f["tokenizer.ggml.merges"].as_array().unwrap().len() > 100);

        let tensors = r["tensors"].as_array().unwrap();
        let mut names: Vec<&str> = tensors.iter().map(|t| t["name"].as_str().unwrap()).collect();
        names.sort_unstable();
        let mut want: Vec<String> =
            ["token_embd.weight", "output_norm.weight", "output.weight"].map(String::from).to_vec();
        for l in 0..2 {
            for part in
                ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"]
            {
                want.push(format!("blk.{l}.{part}.weight"));
            }
        }
        want.sort_unstable();
        assert_eq!(names, want, "{outtype}: tensor names");
        for t in tensors {
            let name = t["name"].as_str().unwrap();
            let shape: Vec<u64> = serde_json::from_value(t["shape"].clone()).unwrap();
            let want_shape: Vec<u64> = match name.split('.').nth(2).unwrap_or(name.split('.').next().unwrap()) {
                "token_embd" | "output" => vec![64, vocab],
                "attn_q" | "attn_output" => vec![64, 64],
                "attn_k" | "attn_v" => vec![64, 32],
                "ffn_gate" | "ffn_up" => vec![64, 172],
                "ffn_down" => vec![172, 64],
                _ => vec![64],
            };
            assert_eq!(shape, want_shape, "{outtype}: {name} shape (innermost first)");
            let ty = t["type"].as_str().unwrap();
            let max_diff = t["max_diff"].as_f64().unwrap();
            if shape.len() == 1 {
                assert_eq!(ty, "F32", "{outtype}: {name} (1-D tensors stay F32)");
            } else if outtype == "q8_0" && shape[0] % 32 != 0 {
                assert_eq!(ty, "F16", "{outtype}: {name} rows of {} cannot be Q8_0", shape[0]);
            } else {
                assert_eq!(ty, matrix_type, "{outtype}: {name}");
            }
            if ty == "Q8_0" {
                assert_eq!(t["requantized_equal"], true, "{name}: our Q8_0 bytes equal gguf.quants.quantize's");
                // Half a quantization step, plus the f16 rounding of the scale.
                let bound = t["max_abs"].as_f64().unwrap() * (0.5 / 127.0 + 1.0 / 2048.0);
                assert!(max_diff <= bound, "{name}: Q8_0 error {max_diff} exceeds {bound}");
            } else {
                assert_eq!(max_diff, 0.0, "{outtype}: {name} differs from the model's values");
            }
        }
    }
}

/// Greedy continuation of `prompt`: `vicuna generate` on `model`, and llama.cpp on `file` from the
/// same prompt ids. Returns (vicuna's tokens, llama.cpp's tokens).
fn continuations(
    s: &Scratch,
    model: &Path,
    file: &Path,
    template: &str,
    prompt: &str,
    n: usize,
) -> (Vec<u64>, Vec<u64>) {
    let n_text = n.to_string();
    let out = ok(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--template",
        template,
        "--prompt",
        prompt,
        "--max-new-tokens",
        &n_text,
        "--json",
    ]);
    let ours: Value = serde_json::from_str(out.trim()).unwrap();
    let prompt_ids: Vec<u64> = serde_json::from_value(ours["prompt_ids"].clone()).unwrap();
    let ids: Vec<u64> = serde_json::from_value(ours["ids"].clone()).unwrap();
    let ids_path = s.write("prompt_ids.json", &serde_json::to_string(&prompt_ids).unwrap());
    let out = s.path("llama_cpp.json");
    let theirs =
        check(&["generate", file.to_str().unwrap(), ids_path.to_str().unwrap(), &n_text, out.to_str().unwrap()]);
    (ids, serde_json::from_value(theirs["ids"].clone()).unwrap())
}

/// Texts whose tokenization llama.cpp and the model's tokenizer must agree on: prose, code,
/// digits, whitespace runs, CJK, emoji, and the chat template's special tokens.
const TEXTS: &[&str] = &[
    "Hello world, it's   me",
    "What is the capital of Japan?",
    "fn main() {\n    println!(\"{}\", 12345 + 678);\n}\n",
    "  leading and trailing spaces  ",
    "\n\n\ttabs\tand\r\nnewlines\n",
    "東京は日本の首都です。",
    "emoji: 🦙🚀 and accents: café, naïve",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<s>[INST] Hello [/INST] Hi</s>",
    "<|start_header_id|>user<|end_header_id|>\n\nHey<|eot_id|>",
    "3.14159 and 1,000,000 and 2026-12-01",
];

/// llama.cpp tokenizes [`TEXTS`] from `file` as the model directory's tokenizer does.
fn assert_same_tokens(s: &Scratch, model: &Path, file: &Path, what: &str) {
    let tok = vicuna::data::tokenizer::Tokenizer::load(model, &Default::default()).unwrap();
    let texts_path = s.write("texts.json", &serde_json::to_string(TEXTS).unwrap());
    let out = s.path("tokens.json");
    let theirs = check(&["tokenize", file.to_str().unwrap(), texts_path.to_str().unwrap(), out.to_str().unwrap()]);
    for (text, theirs) in TEXTS.iter().zip(theirs["ids"].as_array().unwrap()) {
        let theirs: Vec<u32> = serde_json::from_value(theirs.clone()).unwrap();
        assert_eq!(theirs, tok.encode(text).unwrap().ids, "{what}: llama.cpp tokenizes {text:?} differently");
    }
}

/// `template` renders the prompt (`chatml`, or the template the tokenizer has special tokens for).
fn assert_llama_cpp_agrees(s: &Scratch, model: &Path, template: &str, what: &str) {
    assert_llama_cpp_continues(s, model, template, "What is the capital of Japan?", what);
}

/// [`assert_llama_cpp_agrees`] with a prompt of its own (a real model answers the default one in
/// fewer than 16 tokens).
fn assert_llama_cpp_continues(s: &Scratch, model: &Path, template: &str, prompt: &str, what: &str) {
    let file = export(s, model, "f32");
    let (ours, theirs) = continuations(s, model, &file, template, prompt, 16);
    assert_eq!(ours.len(), 16, "{what}: vicuna generate stopped early ({ours:?}); pick another prompt");
    assert_eq!(theirs, ours, "{what}: llama.cpp's greedy continuation of the f32 export differs from vicuna generate");
    assert_same_tokens(s, model, &file, what);
}

#[test]
fn llama_cpp_continues_a_prompt_as_vicuna_generate_does() {
    let s = Scratch::new();
    assert_llama_cpp_agrees(&s, &tiny_model(&s), "chatml", "tiny byte-level BPE model");
}

#[test]
fn llama_cpp_agrees_with_the_real_llama_tokenizers() {
    let s = Scratch::new();
    let llama2 = tiny_with(&s, "llama2", &real_tokenizer("llama2"));
    let file = export(&s, &llama2, "f32");
    let f = &read(&s, &file, &llama2)["fields"];
    assert_eq!(f["tokenizer.ggml.model"], "llama");
    assert_eq!(f["tokenizer.ggml.token_type"][13], 6, "<0x0A> is a BYTE token");
    assert_llama_cpp_agrees(&s, &llama2, "vicuna_v1.1", "Llama-2 tokenizer");
    let llama3 = tiny_with(&s, "llama3", &real_tokenizer("llama3"));
    assert_llama_cpp_agrees(&s, &llama3, "llama-3", "Llama-3 tokenizer");
}

#[test]
fn the_real_smollm2_model_exports_and_llama_cpp_agrees() {
    let model = repo().join(".cache/models/smollm2-135m-instruct");
    if !model.join("config.json").exists() {
        println!("skipped: {} is not there (the GGUF import makes it)", model.display());
        return;
    }
    let s = Scratch::new();
    let prompt = "Write a long story about a llama who learns to fly.";
    assert_llama_cpp_continues(&s, &model, "tokenizer", prompt, "SmolLM2-135M-Instruct");
}

#[test]
fn rope_scaling_reaches_llama_cpp() {
    let s = Scratch::new();
    let linear = tiny_model_named(&s, "linear", 1);
    set_config(&linear, "rope_scaling", serde_json::json!({"rope_type": "linear", "factor": 4.0}));
    let f = &read(&s, &export(&s, &linear, "f32"), &linear)["fields"];
    assert_eq!(f["llama.rope.scaling.type"], "linear");
    assert_eq!(f["llama.rope.scaling.factor"], 4.0);
    assert_llama_cpp_agrees(&s, &linear, "chatml", "linear rope scaling");

    // Llama 3.1's scaling, with an original context short enough that most frequencies change.
    let llama3 = tiny_model_named(&s, "llama3", 1);
    let scaling = serde_json::json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 64});
    set_config(&llama3, "rope_scaling", scaling);
    let r = read(&s, &export(&s, &llama3, "f32"), &llama3);
    let freqs = r["tensors"].as_array().unwrap().iter().find(|t| t["name"] == "rope_freqs.weight").expect("rope_freqs");
    let values: Vec<f64> = serde_json::from_value(freqs["values"].clone()).unwrap();
    assert_eq!(values.len(), 8, "one factor per rotated pair (head_dim 16)");
    assert_eq!(values[0], 1.0, "the highest frequency is kept");
    assert_eq!(values[7], 8.0, "the lowest is divided by the factor");
    assert_llama_cpp_agrees(&s, &llama3, "chatml", "llama3 rope scaling");
}

/// `vicuna model import` of `file` into `s`, as fp32.
fn import(s: &Scratch, file: &Path, name: &str) -> PathBuf {
    let dir = s.path(name);
    ok(&["model", "import", file.to_str().unwrap(), "-o", dir.to_str().unwrap(), "--dtype", "fp32"]);
    dir
}

#[test]
fn export_then_import_gives_the_model_back() {
    let s = Scratch::new();
    for (model, what) in
        [(tiny_model(&s), "byte-level BPE"), (tiny_with(&s, "llama2", &real_tokenizer("llama2")), "Llama-2")]
    {
        let original = tensors(&model.join("model.safetensors"));
        let first = export(&s, &model, "f32");
        let back = import(&s, &first, &format!("{what}-back"));
        let again = tensors(&back.join("model.safetensors"));
        assert_eq!(original.keys().collect::<Vec<_>>(), again.keys().collect::<Vec<_>>(), "{what}: tensor names");
        for (name, t) in &original {
            assert!(t.equal(&again[name]), "{what}: {name} changed in the f32 round trip");
        }
        // The tokenizer survives: exporting the imported model writes the same tokenizer metadata
        // (scores aside: the export derives them from the merge order, which the import may
        // spell differently), and llama.cpp tokenizes with it as the original tokenizer does.
        let second = export(&s, &back, "f32");
        let (a, b) = (read(&s, &first, &model), read(&s, &second, &back));
        for (key, value) in a["fields"].as_object().unwrap() {
            if key.starts_with("tokenizer.") && key != "tokenizer.ggml.scores" {
                assert!(&b["fields"][key] == value, "{what}: {key} differs after export, import, export");
            }
        }
        assert_same_tokens(&s, &model, &second, &format!("{what} after export, import, export"));
        // Q8_0 comes back within its quantization error.
        let q8 = import(&s, &export(&s, &model, "q8_0"), &format!("{what}-q8"));
        let q8 = tensors(&q8.join("model.safetensors"));
        for (name, t) in &original {
            let bound = t.abs().max().double_value(&[]) * (0.5 / 127.0 + 1.0 / 2048.0);
            let diff = (t - &q8[name]).abs().max().double_value(&[]);
            assert!(diff <= bound, "{what}: {name} is off by {diff} after a q8_0 round trip (bound {bound})");
        }
    }
}

#[test]
fn tied_embeddings_stay_tied() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    set_config(&model, "tie_word_embeddings", true.into());
    let file = export(&s, &model, "f32");
    let r = read(&s, &file, &model);
    let names: Vec<&str> = r["tensors"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"token_embd.weight"));
    assert!(!names.contains(&"output.weight"), "a tied model has no output.weight: {names:?}");
    assert_llama_cpp_agrees(&s, &model, "chatml", "tied tiny model");
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let s = Scratch::new();
    let out = s.path("out.gguf");
    let out_str = out.to_str().unwrap();
    let missing = s.path("no-such-model");
    let err = fails(&["model", "export", missing.to_str().unwrap(), "-o", out_str]);
    assert!(err.contains("no-such-model") && err.contains("no such model directory"), "{err}");

    // A weight stored as integers: named, with its dtype.
    let model = tiny_model(&s);
    let weights = model.join("model.safetensors");
    let mut tensors = tch::Tensor::read_safetensors(&weights).unwrap();
    for (name, t) in tensors.iter_mut() {
        if name == "model.layers.1.mlp.up_proj.weight" {
            *t = t.to_kind(tch::Kind::Int);
        }
    }
    let bad = s.path("bad");
    std::fs::create_dir_all(&bad).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(model.join(f), bad.join(f)).unwrap();
    }
    tch::Tensor::write_safetensors(&tensors, bad.join("model.safetensors")).unwrap();
    let err = fails(&["model", "export", bad.to_str().unwrap(), "-o", out_str]);
    assert!(err.contains("model.layers.1.mlp.up_proj.weight") && err.contains("unsupported dtype"), "{err}");
    assert!(!out.exists(), "a failed export leaves no file");

    // No tokenizer.json.
    std::fs::copy(&weights, bad.join("model.safetensors")).unwrap();
    std::fs::remove_file(bad.join("tokenizer.json")).unwrap();
    let err = fails(&["model", "export", bad.to_str().unwrap(), "-o", out_str]);
    assert!(err.contains("no tokenizer.json"), "{err}");

    // Rope scaling llama.cpp cannot reproduce.
    std::fs::copy(model.join("tokenizer.json"), bad.join("tokenizer.json")).unwrap();
    set_config(&bad, "rope_scaling", serde_json::json!({"rope_type": "dynamic", "factor": 2.0}));
    let err = fails(&["model", "export", bad.to_str().unwrap(), "-o", out_str]);
    assert!(err.contains("dynamic"), "{err}");

    // The output is never one of the inputs.
    let err = fails(&["model", "export", model.to_str().unwrap(), "-o", weights.to_str().unwrap()]);
    assert!(err.contains("never overwrites its input"), "{err}");
    assert!(!out.exists());
}
