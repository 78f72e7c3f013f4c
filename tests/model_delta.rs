//! `vicuna model delta apply` and `make` (src/model/delta.rs): make then apply gives the target
//! back bit for bit (fp32, bf16, fp16, one file or many shards), a grown vocabulary takes its extra
//! rows from the delta, mismatched inputs are refused naming the tensor or config key and leave no
//! output, and deltas made by FastChat's own make_delta (fschat 0.2.36, and 0.1.10's v0 scripts
//! that grew the vocabulary) apply to exactly FastChat's apply_delta result
//! (scripts/fixtures/make_delta_fixtures.sh, which `make test` runs first).
mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};
use vicuna::model::weights::{read_safetensors, weight_files, write_safetensors};

/// Every tensor of a model directory (one file or shards), by name.
fn weights(dir: &Path) -> BTreeMap<String, Tensor> {
    let mut all = BTreeMap::new();
    for file in weight_files(dir).unwrap() {
        all.extend(read_safetensors(&file).unwrap());
    }
    all
}

/// The bits of a tensor, so that -0.0 and 0.0 (and NaN payloads) count as different.
fn bits(t: &Tensor) -> Tensor {
    match t.kind() {
        Kind::Float => t.view_dtype(Kind::Int),
        Kind::Half | Kind::BFloat16 => t.view_dtype(Kind::Int16),
        other => panic!("unexpected kind {other:?}"),
    }
}

/// Asserts that two models hold the same tensors, names, shapes, kinds and bits.
fn assert_same_bits(a: &Path, b: &Path) {
    let (a_w, b_w) = (weights(a), weights(b));
    assert_eq!(a_w.keys().collect::<Vec<_>>(), b_w.keys().collect::<Vec<_>>(), "{} vs {}", a.display(), b.display());
    for (name, t) in &a_w {
        let u = &b_w[name];
        assert_eq!(t.kind(), u.kind(), "{name}");
        assert_eq!(t.size(), u.size(), "{name}");
        let differ = bits(t).ne_tensor(&bits(u)).sum(Kind::Int64).int64_value(&[]);
        assert_eq!(differ, 0, "{name}: {differ} elements differ between {} and {}", a.display(), b.display());
    }
}

/// A tiny model (tiny tokenizer, preset tiny) in `dtype`.
fn tiny(s: &Scratch, name: &str, seed: u64, dtype: &str) -> PathBuf {
    let dir = s.path(name);
    let seed = seed.to_string();
    let tok = tiny_tokenizer().to_str().unwrap().to_string();
    ok(&[
        "model",
        "init",
        "--preset",
        "tiny",
        "--tokenizer",
        &tok,
        "-o",
        dir.to_str().unwrap(),
        "--seed",
        &seed,
        "--dtype",
        dtype,
    ]);
    dir
}

/// Copies a model directory's non-weight files (config, tokenizer) to a new directory.
fn copy_meta(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if !name.ends_with(".safetensors") && name != "model.safetensors.index.json" {
            std::fs::copy(&p, to.join(&name)).unwrap();
        }
    }
}

/// A fine-tuned-like target: every element of `base` scaled by 1 + N(0, 0.05) (clamped to
/// [0.6, 1.4]), in the base's dtype, as one file. Each element stays within a factor of two of the
/// base's, with its sign, as fine-tuning leaves weights away from zero; `edit` may change the
/// tensors first (grow the vocabulary, break a shape).
fn target_of(base: &Path, to: &Path, edit: impl FnOnce(&mut BTreeMap<String, Tensor>)) -> PathBuf {
    copy_meta(base, to);
    tch::manual_seed(7);
    let mut w: BTreeMap<String, Tensor> = weights(base)
        .into_iter()
        .map(|(n, t)| {
            let scale = (Tensor::randn(t.size(), (Kind::Float, tch::Device::Cpu)) * 0.05 + 1.0).clamp(0.6, 1.4);
            let moved = (t.to_kind(Kind::Float) * scale).to_kind(t.kind());
            (n, moved)
        })
        .collect();
    edit(&mut w);
    let list: Vec<(String, Tensor)> = w.into_iter().collect();
    write_safetensors(&to.join("model.safetensors"), &list).unwrap();
    to.to_path_buf()
}

fn delta(args: &[&str]) -> String {
    let mut all = vec!["model", "delta"];
    all.extend_from_slice(args);
    ok(&all)
}

fn delta_fails(args: &[&str]) -> String {
    let mut all = vec!["model", "delta"];
    all.extend_from_slice(args);
    fails(&all)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn make_then_apply_gives_back_the_target_bit_for_bit_in_fp32_bf16_and_fp16() {
    for dtype in ["fp32", "bf16", "fp16"] {
        let sc = Scratch::new();
        let base = tiny(&sc, "base", 1, dtype);
        let target = target_of(&base, &sc.path("target"), |_| {});
        let (d, back) = (sc.path("delta"), sc.path("back"));
        let made = delta(&["make", "--base", s(&base), "--target", s(&target), "-o", s(&d)]);
        assert!(made.contains("made the delta") && made.contains("peak memory (RSS)"), "{made}");
        // The delta is a real difference, not a copy of either side.
        let (dw, tw) = (weights(&d), weights(&target));
        let q = "model.layers.0.self_attn.q_proj.weight";
        assert!(dw[q].abs().max().to_kind(Kind::Float).double_value(&[]) > 0.0, "{dtype}");
        assert!(!dw[q].to_kind(Kind::Float).equal(&tw[q].to_kind(Kind::Float)), "{dtype}");
        let applied = delta(&["apply", "--base", s(&base), "--delta", s(&d), "-o", s(&back)]);
        assert!(applied.contains("applied the delta"), "{applied}");
        assert_same_bits(&target, &back);
        // The target's config and tokenizer go into the delta, the delta's into the result.
        for f in ["config.json", "tokenizer.json"] {
            assert!(back.join(f).exists() && d.join(f).exists(), "{dtype}: {f}");
        }
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(back.join("config.json")).unwrap()).unwrap();
        let name = match dtype {
            "fp32" => "float32",
            "bf16" => "bfloat16",
            _ => "float16",
        };
        assert_eq!(config["torch_dtype"], name, "{dtype}");
    }
}

#[test]
fn sharded_inputs_and_outputs_stream_to_the_same_bits() {
    let sc = Scratch::new();
    let tok = tiny_tokenizer().to_str().unwrap().to_string();
    let base = sc.path("base");
    ok(&["model", "init", "--preset", "tiny", "--tokenizer", &tok, "-o", s(&base), "--max-shard-size", "200KB"]);
    assert!(base.join("model.safetensors.index.json").exists());
    let target = target_of(&base, &sc.path("target"), |_| {});
    let (d, back) = (sc.path("delta"), sc.path("back"));
    delta(&["make", "--base", s(&base), "--target", s(&target), "-o", s(&d), "--max-shard-size", "150KB"]);
    let shards = weight_files(&d).unwrap();
    assert!(shards.len() > 3, "{shards:?}");
    for f in &shards {
        assert!(std::fs::metadata(f).unwrap().len() < 150_000 + 100_000, "{}", f.display());
    }
    let out =
        delta(&["apply", "--base", s(&base), "--delta", s(&d), "-o", s(&back), "--max-shard-size", "100KB", "--json"]);
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["tensors"], 21, "{out}");
    assert!(summary["peak_rss_bytes"].as_u64().unwrap() > 0, "{out}");
    assert!(weight_files(&back).unwrap().len() > 3);
    assert_same_bits(&target, &back);
}

/// Grows the vocabulary tensors of `w` by one random row (as Vicuna v0's pad token).
fn grow(w: &mut BTreeMap<String, Tensor>) {
    for name in ["model.embed_tokens.weight", "lm_head.weight"] {
        let t = &w[name];
        let row = Tensor::randn([1, t.size()[1]], (Kind::Float, tch::Device::Cpu)).to_kind(t.kind()) * 0.02;
        let grown = Tensor::cat(&[t.shallow_clone(), row], 0);
        w.insert(name.to_string(), grown);
    }
}

fn set_vocab(dir: &Path, vocab: i64) {
    let path = dir.join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["vocab_size"] = vocab.into();
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
}

#[test]
fn a_grown_vocabulary_takes_its_extra_rows_from_the_delta() {
    let sc = Scratch::new();
    let base = tiny(&sc, "base", 1, "fp32");
    let vocab = weights(&base)["model.embed_tokens.weight"].size()[0];
    let target = target_of(&base, &sc.path("target"), grow);
    set_vocab(&target, vocab + 1);
    let (d, back) = (sc.path("delta"), sc.path("back"));
    let made = delta(&["make", "--base", s(&base), "--target", s(&target), "-o", s(&d)]);
    assert!(
        made.contains(&format!("model.embed_tokens.weight: vocabulary grown from {vocab} to {}", vocab + 1)),
        "{made}"
    );
    // The new rows of the delta are the target's rows (target - 0), bit for bit.
    let (dw, tw) = (weights(&d), weights(&target));
    for name in ["model.embed_tokens.weight", "lm_head.weight"] {
        assert_eq!(dw[name].size()[0], vocab + 1);
        assert!(bits(&dw[name].get(vocab)).equal(&bits(&tw[name].get(vocab))), "{name}");
    }
    delta(&["apply", "--base", s(&base), "--delta", s(&d), "-o", s(&back)]);
    assert_same_bits(&target, &back);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(back.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["vocab_size"], vocab + 1);
    // A delta's grown rows that hold -0.0 come out as +0.0, as FastChat v0 computed 0 + delta.
    let zd = sc.path("zero-delta");
    copy_meta(&d, &zd);
    let mut w = weights(&d);
    let e = w["model.embed_tokens.weight"].copy();
    let _ = e.get(vocab).fill_(-0.0);
    w.insert("model.embed_tokens.weight".into(), e);
    write_safetensors(&zd.join("model.safetensors"), &w.into_iter().collect::<Vec<_>>()).unwrap();
    let zo = sc.path("zero-out");
    delta(&["apply", "--base", s(&base), "--delta", s(&zd), "-o", s(&zo)]);
    let row = weights(&zo)["model.embed_tokens.weight"].get(vocab);
    let nonzero = bits(&row).ne(0).sum(Kind::Int64).int64_value(&[]);
    assert_eq!(nonzero, 0, "the grown row should be +0.0 everywhere (0 + -0.0)");
}

#[test]
fn mismatched_inputs_are_refused_naming_the_tensor_and_leave_no_output() {
    let sc = Scratch::new();
    let base = tiny(&sc, "base", 1, "fp32");
    let out = sc.path("out");
    let check = |err: &str, needles: &[&str]| {
        assert_no_panic(err);
        for n in needles {
            assert!(err.contains(n), "expected {n:?} in: {err}");
        }
        assert!(!out.exists(), "a refused run left {}", out.display());
    };

    // A tensor of another shape than its config says.
    let bad = target_of(&base, &sc.path("bad-shape"), |w| {
        w.insert("model.layers.1.mlp.up_proj.weight".into(), Tensor::zeros([3, 3], (Kind::Float, tch::Device::Cpu)));
    });
    let err = delta_fails(&["apply", "--base", s(&base), "--delta", s(&bad), "-o", s(&out)]);
    check(&err, &["model.layers.1.mlp.up_proj.weight", "bad-shape"]);

    // A tensor missing from the delta.
    let missing = target_of(&base, &sc.path("missing"), |w| {
        w.remove("model.layers.0.post_attention_layernorm.weight");
    });
    let err = delta_fails(&["apply", "--base", s(&base), "--delta", s(&missing), "-o", s(&out)]);
    check(&err, &["model.layers.0.post_attention_layernorm.weight", "missing"]);

    // A delta of another architecture.
    let other = sc.path("small");
    let tok = tiny_tokenizer().to_str().unwrap().to_string();
    ok(&["model", "init", "--preset", "small", "--tokenizer", &tok, "-o", s(&other)]);
    let err = delta_fails(&["make", "--base", s(&base), "--target", s(&other), "-o", s(&out)]);
    check(&err, &["hidden_size", "512", "64"]);

    // A grown vocabulary whose config was not grown with it.
    let grown = target_of(&base, &sc.path("grown-unsaid"), grow);
    let err = delta_fails(&["apply", "--base", s(&base), "--delta", s(&grown), "-o", s(&out)]);
    check(&err, &["model.embed_tokens.weight"]);

    // A shrunk vocabulary: the base has more rows than the delta.
    set_vocab(&grown, weights(&base)["model.embed_tokens.weight"].size()[0] + 1);
    let err = delta_fails(&["apply", "--base", s(&grown), "--delta", s(&base), "-o", s(&out)]);
    check(&err, &["vocab_size", "never shrink"]);

    // Other rows than the vocabulary's may not grow, even with a matching config.
    let wide = target_of(&base, &sc.path("wide"), |w| {
        let t = w["model.norm.weight"].shallow_clone();
        w.insert("model.norm.weight".into(), Tensor::cat(&[t.shallow_clone(), t], 0));
    });
    let err = delta_fails(&["apply", "--base", s(&base), "--delta", s(&wide), "-o", s(&out)]);
    check(&err, &["model.norm.weight"]);

    // Different dtypes: refused unless --dtype says which to compute in.
    let half = tiny(&sc, "half", 2, "fp16");
    let err = delta_fails(&["make", "--base", s(&base), "--target", s(&half), "-o", s(&out)]);
    check(&err, &["--dtype", "float16", "float32"]);
    delta(&["make", "--base", s(&base), "--target", s(&half), "-o", s(&out), "--dtype", "fp16"]);
    assert!(weights(&out).values().all(|t| t.kind() == Kind::Half));

    // The output may not be an input, nor a directory with files in it.
    let err = delta_fails(&["apply", "--base", s(&base), "--delta", s(&half), "-o", s(&base), "--dtype", "fp16"]);
    assert!(err.contains("is the input"), "{err}");
    let err = delta_fails(&["apply", "--base", s(&base), "--delta", s(&half), "-o", s(&out), "--dtype", "fp16"]);
    assert!(err.contains("not empty"), "{err}");
    assert_no_panic(&err);
    // A zero shard size is refused when the command line is parsed, naming the flag.
    let err = delta_fails(&[
        "make",
        "--base",
        s(&base),
        "--target",
        s(&half),
        "-o",
        s(&sc.path("o3")),
        "--max-shard-size",
        "0",
    ]);
    assert!(err.contains("--max-shard-size") && !sc.path("o3").exists(), "{err}");
    // Not a model directory.
    let err = delta_fails(&["apply", "--base", s(&sc.path("nowhere")), "--delta", s(&half), "-o", s(&sc.path("o2"))]);
    assert!(err.contains("--base") && err.contains("nowhere"), "{err}");
    assert_no_panic(&err);
}

/// FastChat's delta fixtures (scripts/fixtures/make_delta_fixtures.sh).
fn fastchat_fixtures() -> PathBuf {
    let dir = std::env::var_os("VICUNA_DELTA_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".cache/fixtures/fastchat_delta"));
    assert!(
        dir.join("v0/applied/config.json").exists() && dir.join("current/applied/config.json").exists(),
        "{} is missing: run scripts/fixtures/make_delta_fixtures.sh (make test does it)",
        dir.display()
    );
    dir
}

#[test]
fn deltas_made_by_fastchat_apply_to_fastchats_own_result_bit_for_bit() {
    let fixtures = fastchat_fixtures();
    for flavour in ["current", "v0"] {
        let f = fixtures.join(flavour);
        let sc = Scratch::new();
        let (ours_applied, ours_delta) = (sc.path("applied"), sc.path("delta"));
        let out =
            delta(&["apply", "--base", s(&f.join("base")), "--delta", s(&f.join("delta")), "-o", s(&ours_applied)]);
        assert_eq!(out.contains("vocabulary grown"), flavour == "v0", "{flavour}: {out}");
        assert_same_bits(&f.join("applied"), &ours_applied);
        // And the delta we make from FastChat's base and target is FastChat's delta.
        delta(&["make", "--base", s(&f.join("base")), "--target", s(&f.join("target")), "-o", s(&ours_delta)]);
        assert_same_bits(&f.join("delta"), &ours_delta);
        // The result has the delta's vocabulary and tokenizer.
        let read =
            |p: PathBuf| -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
        assert_eq!(
            read(ours_applied.join("config.json"))["vocab_size"],
            read(f.join("applied/config.json"))["vocab_size"]
        );
        let same = std::fs::read(ours_applied.join("tokenizer.json")).unwrap()
            == std::fs::read(f.join("delta/tokenizer.json")).unwrap();
        assert!(same, "{flavour}: the result's tokenizer.json is not the delta's");
        // FastChat's round trip is not exact on these absolute perturbations (the fp16 subtraction
        // rounds), so the comparison above covers rounding, not only exact cases.
        let (t, a) = (weights(&f.join("target")), weights(&f.join("applied")));
        let differ: i64 =
            t.iter().map(|(n, x)| bits(x).ne_tensor(&bits(&a[n])).sum(Kind::Int64).int64_value(&[])).sum();
        assert!(differ > 0, "{flavour}: the fixture no longer exercises rounding");
    }
}
