//! `prep mix`: sources mixed by weight (repeated above 1, sampled below), shuffled with a seed;
//! the same seed gives the same bytes on any thread count, and each source's share in
//! conversations (and tokens, with a tokenizer) matches its weight within rounding.
mod common;
use common::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Writes `n` conversations with ids `{name}{i}` (answers of growing length) as `{name}.jsonl`.
fn source(s: &Scratch, name: &str, n: usize) -> PathBuf {
    let text: String = (0..n)
        .map(|i| {
            let record = json!({"id": format!("{name}{i}"), "conversations": [
                {"from": "human", "value": format!("question {i} of {name}")},
                {"from": "gpt", "value": "word ".repeat(i % 7 + 1)}]});
            format!("{record}\n")
        })
        .collect();
    s.write(&format!("{name}.jsonl"), &text)
}

/// Shares as JSON numbers (serde_json's parser may differ from the exact quotient in the last bit).
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

fn arg(path: &std::path::Path, weight: &str) -> String {
    format!("{}={weight}", path.display())
}

/// Runs `prep mix` with `args` (and `--json`) under `threads` rayon threads; returns the output
/// bytes and the report.
fn mix(s: &Scratch, args: &[String], threads: &str) -> (Vec<u8>, serde_json::Value) {
    let out = s.path(&format!("mix_{threads}.jsonl"));
    let mut all: Vec<&str> = vec!["prep", "mix"];
    all.extend(args.iter().map(String::as_str));
    all.extend(["-o", out.to_str().unwrap(), "--json"]);
    let run = vicuna_env(&all, &[("RAYON_NUM_THREADS", threads)]);
    assert!(run.status.success(), "prep mix failed:\n{}", String::from_utf8_lossy(&run.stderr));
    let report = serde_json::from_slice(&run.stdout).expect("report JSON");
    (std::fs::read(&out).expect("mix written"), report)
}

/// Conversations per source (by id prefix) and the ids seen.
fn by_source(bytes: &[u8]) -> (BTreeMap<String, usize>, Vec<String>) {
    let mut counts = BTreeMap::new();
    let mut ids = Vec::new();
    for line in String::from_utf8(bytes.to_vec()).unwrap().lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = record["id"].as_str().unwrap().to_string();
        *counts.entry(id[..1].to_string()).or_default() += 1;
        ids.push(id);
    }
    (counts, ids)
}

#[test]
fn same_seed_same_bytes_on_any_thread_count() {
    let s = Scratch::new();
    // More records than one parallel batch (2048), so batches really run on several threads.
    let (a, b, c) = (source(&s, "a", 3000), source(&s, "b", 40), source(&s, "c", 700));
    let args = vec![arg(&a, "0.3"), arg(&b, "2.5"), arg(&c, "1"), "--seed".to_string(), "7".to_string()];
    let (one, report_one) = mix(&s, &args, "1");
    let (two, report_two) = mix(&s, &args, "2");
    assert!(one == two, "1 and 2 threads give the same bytes");
    assert_eq!(report_one, report_two);
    let (again, _) = mix(&s, &args, "2");
    assert!(one == again, "a rerun gives the same bytes");
    let mut other = args.clone();
    other[4] = "8".to_string();
    let (reseeded, _) = mix(&s, &other, "2");
    assert!(one != reseeded, "another seed gives another mix");
    // The sources are interleaved, not written one after the other.
    let (_, ids) = by_source(&one);
    let first_b = ids.iter().position(|id| id.starts_with('b')).unwrap();
    assert!(first_b < 200, "the mix is shuffled (first b at {first_b})");
}

#[test]
fn shares_match_the_weights() {
    let s = Scratch::new();
    let (a, b, c, d) = (source(&s, "a", 10), source(&s, "b", 4), source(&s, "c", 7), source(&s, "d", 5));
    let e = source(&s, "e", 6);
    let args =
        vec![arg(&a, "0.5"), arg(&b, "2.5"), arg(&c, "1"), arg(&d, "0"), arg(&e, "0.75"), "--seed".into(), "3".into()];
    let (bytes, report) = mix(&s, &args, "2");
    let (counts, ids) = by_source(&bytes);
    // round(w * n): 5 of a's 10, 10 of b's 4 (each twice, two of them three times), c whole, no d,
    // and 4.5 of e's 6 rounds to 5.
    assert_eq!(counts, BTreeMap::from([("a".into(), 5), ("b".into(), 10), ("c".into(), 7), ("e".into(), 5)]));
    let sources = report["sources"].as_array().unwrap();
    for (source, (n, share)) in
        sources.iter().zip([(5, 5.0 / 27.0), (10, 10.0 / 27.0), (7, 7.0 / 27.0), (0, 0.0), (5, 5.0 / 27.0)])
    {
        assert_eq!(source["conversations"], n, "{source}");
        assert!(close(source["share"].as_f64().unwrap(), share), "{source}");
    }
    assert_eq!(report["written"], 27);
    assert_eq!(report["records_out"], 5 + 4 + 7 + 5, "distinct records kept");
    assert_eq!(report["dropped"], json!({"not_selected": 5 + 5 + 1}));
    // Ids stay unique: copies after the first are named `{id}_copy{k}`.
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
    let b_ids: Vec<&String> = ids.iter().filter(|id| id.starts_with('b')).collect();
    assert_eq!(b_ids.iter().filter(|id| id.ends_with("_copy1")).count(), 4, "{b_ids:?}");
    assert_eq!(b_ids.iter().filter(|id| id.ends_with("_copy2")).count(), 2, "{b_ids:?}");
    // Every c record exactly once.
    let mut c_ids: Vec<&String> = ids.iter().filter(|id| id.starts_with('c')).collect();
    c_ids.sort();
    assert_eq!(c_ids, ["c0", "c1", "c2", "c3", "c4", "c5", "c6"]);
}

#[test]
fn total_scales_the_weighted_proportions() {
    let s = Scratch::new();
    let (a, b, c) = (source(&s, "a", 10), source(&s, "b", 4), source(&s, "c", 7));
    // Wanted: a 10, b 4, c 14 (of 28); scaled to 9: 3.21, 1.29, 4.5 -> 3, 1, 5 (largest remainder).
    let args =
        vec![arg(&a, "1"), arg(&b, "1"), arg(&c, "2"), "--total".into(), "9".into(), "--seed".into(), "1".into()];
    let (bytes, report) = mix(&s, &args, "2");
    assert_eq!(by_source(&bytes).0, BTreeMap::from([("a".into(), 3), ("b".into(), 1), ("c".into(), 5)]));
    assert_eq!(report["written"], 9);
    // Scaled up past the sources' size, records repeat.
    let args = vec![arg(&a, "1"), arg(&b, "1"), "--total".into(), "28".into()];
    let (bytes, _) = mix(&s, &args, "2");
    assert_eq!(by_source(&bytes).0, BTreeMap::from([("a".into(), 20), ("b".into(), 8)]));
}

#[test]
fn token_shares_count_what_the_trainer_sees() {
    let s = Scratch::new();
    let (a, b) = (source(&s, "a", 6), source(&s, "b", 3));
    let tokenizer = tiny_tokenizer().to_str().unwrap().to_string();
    let args = vec![arg(&a, "1"), arg(&b, "2"), "--tokenizer".into(), tokenizer.clone()];
    let (_, report) = mix(&s, &args, "2");
    let stats = |path: &PathBuf| -> u64 {
        let out = ok(&["prep", "stats", path.to_str().unwrap(), "--tokenizer", &tokenizer, "--json"]);
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["tokens"]["tokens"].as_u64().unwrap()
    };
    let (ta, tb) = (stats(&a), 2 * stats(&b));
    assert!(ta > 0 && tb > 0);
    let sources = report["sources"].as_array().unwrap();
    assert_eq!(sources[0]["tokens"], ta);
    assert_eq!(sources[1]["tokens"], tb, "b counted twice: it is in the mix twice");
    assert!(close(sources[0]["token_share"].as_f64().unwrap(), ta as f64 / (ta + tb) as f64), "{report}");
    assert!(close(sources[1]["token_share"].as_f64().unwrap(), tb as f64 / (ta + tb) as f64), "{report}");
}

#[test]
fn bad_arguments_and_records_are_refused_by_name() {
    let s = Scratch::new();
    let a = source(&s, "a", 3);
    let bad = s.write("bad.jsonl", "{\"id\": \"x\", \"conversations\": [{\"from\": \"human\", \"value\": \"q\"}, {\"from\": \"gpt\", \"value\": \"a\"}]}\n\"not a record\"\n");
    let out = s.path("out.jsonl");
    let o = out.to_str().unwrap();
    let stderr = fails(&["prep", "mix", &arg(&a, "x"), "-o", o]);
    assert!(
        stderr
            .contains(&format!("`{}`: the weight must be a finite number at least 0 after a file name", arg(&a, "x"))),
        "{stderr}"
    );
    let stderr = fails(&["prep", "mix", &arg(&a, "-1"), "-o", o]);
    assert!(stderr.contains("the weight must be a finite number at least 0"), "{stderr}");
    let stderr = fails(&["prep", "mix", a.to_str().unwrap(), "-o", o]);
    assert!(stderr.contains(&format!("`{}` is not SOURCE=WEIGHT", a.display())), "{stderr}");
    let stderr = fails(&["prep", "mix", &arg(&a, "1"), "-o", o, "--total", "0"]);
    assert!(stderr.contains("invalid value '0' for '--total <TOTAL>'"), "{stderr}");
    let stderr = fails(&["prep", "mix", &arg(&a, "0"), "-o", o, "--total", "5"]);
    assert_eq!(stderr.trim_end(), "error: --total 5: nothing to mix (every source is empty or has weight 0)");
    // more conversations than a mix can hold is refused by name, not allocated (or wrapped)
    let stderr = fails(&["prep", "mix", &arg(&a, "1e18"), "-o", o]);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: {}: weight 1e18 asks for 3e18 conversations, more than a mix can hold (4294967295); lower the weight",
            a.display()
        )
    );
    let stderr = fails(&["prep", "mix", &arg(&a, "1"), "-o", o, "--total", "18446744073709551615"]);
    assert!(stderr.contains("--total 18446744073709551615: more conversations than a mix can hold"), "{stderr}");
    let b = source(&s, "b", 1);
    let stderr = fails(&["prep", "mix", &arg(&a, "1e308"), &arg(&b, "1"), "-o", o, "--total", "10"]);
    assert!(stderr.contains("more than a mix can hold"), "{stderr}");
    let stderr = fails(&["prep", "mix", &arg(&bad, "1"), "-o", o, "--strict"]);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: {}: record 1 at byte offset 95 is malformed (not_an_object); fix the record or run without --strict to skip it",
            bad.display()
        )
    );
    assert!(!out.exists(), "no output after an error");
    let (_, report) = mix(&s, &[arg(&bad, "1")], "1");
    assert_eq!(report["dropped"], json!({"not_an_object": 1}));
    let twice = format!("{}/./a.jsonl=1", s.dir.path().display());
    let stderr = fails(&["prep", "mix", &arg(&a, "1"), &twice, "-o", o]);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: {}/./a.jsonl is listed twice (also as {}); give each source one weight (2 repeats it)",
            s.dir.path().display(),
            a.display()
        )
    );
    let stderr = fails(&["prep", "mix", &arg(&a, "1"), "-o", a.to_str().unwrap()]);
    assert!(stderr.contains("vicuna never overwrites its input"), "{stderr}");
}
