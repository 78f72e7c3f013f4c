//! `prep dedup --near`: near-duplicate user queries (MinHash LSH over word shingles) on a
//! deterministic synthetic set with planted near-duplicates (1 to 3 words substituted, inserted
//! or deleted), kept-first clusters, the report's counts, determinism, and flag checks.
mod common;
use common::*;
use serde_json::json;
use std::collections::{BTreeSet, HashMap};
use vicuna::util::rng::SplitMix64;

/// Words common to all queries (so that different queries share words, as real ones do).
const FUNCTION_WORDS: &[&str] = &[
    "the", "a", "of", "to", "and", "in", "is", "how", "what", "can", "you", "i", "my", "for", "with", "please",
    "explain", "write", "it", "that", "this", "on", "be", "are", "do", "me", "about", "an", "why", "should",
];

/// A content word made of syllables: 4,096 distinct words.
fn content_word(rng: &mut SplitMix64) -> String {
    const SYLLABLES: &[&str] =
        &["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ber", "dan", "fel", "gor", "hin", "jut", "pes", "wex"];
    (0..3).map(|_| SYLLABLES[rng.below(SYLLABLES.len())]).collect()
}

fn word(rng: &mut SplitMix64) -> String {
    if rng.below(10) < 3 {
        FUNCTION_WORDS[rng.below(FUNCTION_WORDS.len())].to_string()
    } else {
        content_word(rng)
    }
}

fn query(rng: &mut SplitMix64, len: usize) -> Vec<String> {
    (0..len).map(|_| word(rng)).collect()
}

/// `edits` random substitutions, insertions or deletions of one word each.
fn edit(rng: &mut SplitMix64, query: &[String], edits: usize) -> Vec<String> {
    let mut q = query.to_vec();
    for _ in 0..edits {
        let i = rng.below(q.len());
        match rng.below(3) {
            0 => q[i] = content_word(rng),
            1 => q.insert(i, content_word(rng)),
            _ => {
                q.remove(i);
            }
        }
    }
    q
}

fn conv(id: &str, question: &str, answer: &str) -> serde_json::Value {
    json!({"id": id, "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]})
}

/// 600 distinct queries of 15 to 60 words and 300 planted near-duplicates of earlier ones, each
/// placed after its original; returns the records and, for each planted id, its original's id.
fn synthetic() -> (Vec<serde_json::Value>, HashMap<String, String>) {
    let mut rng = SplitMix64::new(2024);
    let mut records: Vec<(String, Vec<String>)> = Vec::new();
    let mut planted = HashMap::new();
    for i in 0..600 {
        let len = 15 + rng.below(46);
        records.push((format!("orig_{i}"), query(&mut rng, len)));
    }
    for j in 0..300 {
        let source = rng.below(600);
        let (source_id, words) = records.iter().find(|(id, _)| *id == format!("orig_{source}")).unwrap().clone();
        let position = records.iter().position(|(id, _)| *id == source_id).unwrap();
        let edits = 1 + rng.below(3);
        let copy = edit(&mut rng, &words, edits);
        let at = position + 1 + rng.below(records.len() - position);
        records.insert(at, (format!("near_{j}"), copy));
        planted.insert(format!("near_{j}"), source_id);
    }
    let records = records
        .iter()
        .enumerate()
        .map(|(k, (id, words))| {
            let mut text = words.join(" ");
            text[..1].make_ascii_uppercase();
            conv(id, &format!("{text}?"), &format!("Answer number {k}."))
        })
        .collect();
    (records, planted)
}

fn ids(path: &std::path::Path) -> BTreeSet<String> {
    read_records(path).iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn planted_near_duplicates_are_found_and_different_queries_kept() {
    let s = Scratch::new();
    let (records, planted) = synthetic();
    let input = s.write("in.json", &serde_json::to_string(&records).unwrap());
    let out = s.path("out.json");
    let stdout = ok(&["prep", "dedup", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--near", "--json"]);
    let kept = ids(&out);
    let false_positives: Vec<_> = (0..600).map(|i| format!("orig_{i}")).filter(|id| !kept.contains(id)).collect();
    assert!(false_positives.is_empty(), "distinct queries removed: {false_positives:?}");
    let missed: Vec<_> = planted.keys().filter(|id| kept.contains(*id)).collect();
    let recall = 1.0 - missed.len() as f64 / planted.len() as f64;
    assert!(
        recall >= 0.95,
        "recall {recall:.3}; missed {} of {}: {:?}",
        missed.len(),
        planted.len(),
        &missed[..missed.len().min(10)]
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let removed = planted.len() - missed.len();
    assert_eq!(report["records_in"], 900);
    assert_eq!(report["records_out"], 900 - removed);
    assert_eq!(report["dropped"], json!({"near_duplicate": removed}));
    let clusters: BTreeSet<&String> = planted.iter().filter(|(id, _)| !kept.contains(*id)).map(|(_, o)| o).collect();
    assert_eq!(report["counters"]["near_duplicate_clusters"], clusters.len());

    // Without --near, the same file loses nothing: every planted copy differs from its original.
    let plain = s.path("plain.json");
    ok(&["prep", "dedup", input.to_str().unwrap(), "-o", plain.to_str().unwrap()]);
    assert_eq!(ids(&plain).len(), 900);
}

#[test]
fn first_of_each_cluster_is_kept_and_the_result_is_deterministic() {
    let s = Scratch::new();
    let records = [
        conv("x1", "Unrelated: list three prime numbers bigger than one hundred.", "101, 103, 107."),
        conv("a1", "Write a short poem about the sea at night, with the moon and the tide.", "..."),
        conv("a2", "Write a short poem about the sea at night, with the moon and the tides!", "!!!"),
        conv("a3", "write a SHORT poem about the sea at night with the moon and the tide", "???"),
        conv("x2", "Translate this sentence into French: the cat sleeps on the warm roof.", "Le chat."),
        conv("a4", "Write a short poem about the sea at night, with the moon and the tide.", "..."),
    ];
    let input = s.write("in.json", &serde_json::to_string(&records).unwrap());
    let out = s.path("out.json");
    let clusters = s.path("clusters.jsonl");
    let stdout = ok(&[
        "prep",
        "dedup",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--near",
        "--clusters",
        clusters.to_str().unwrap(),
    ]);
    assert_eq!(ids(&out), ["x1", "a1", "x2"].iter().map(|s| s.to_string()).collect());
    // a4 repeats a1 exactly (first user and assistant turn): an exact duplicate, not in a cluster.
    assert_eq!(
        std::fs::read_to_string(&clusters).unwrap(),
        concat!(r#"{"kept":{"id":"a1","record":1},"removed":[{"id":"a2","record":2},{"id":"a3","record":3}]}"#, "\n")
    );
    assert_eq!(
        stdout,
        "dedup: 6 records in, 3 out, 3 dropped\n  duplicate_content              1\n  near_duplicate                 2\nalso counted:\n  near_duplicate_clusters         1\n"
    );

    // The same clusters whatever the thread count and on every run (fixed hash seeds).
    let (big, _) = synthetic();
    let input = s.write("big.json", &serde_json::to_string(&big).unwrap());
    let mut outputs = Vec::new();
    for threads in ["1", "2"] {
        let out = s.path(&format!("big_{threads}.json"));
        let run = vicuna_env(
            &["prep", "dedup", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--near"],
            &[("RAYON_NUM_THREADS", threads)],
        );
        assert!(run.status.success());
        outputs.push(std::fs::read(out).unwrap());
    }
    assert_eq!(outputs[0], outputs[1]);
}

#[test]
fn all_in_one_prep_takes_near_and_bad_settings_are_refused() {
    let s = Scratch::new();
    let records = [
        conv("a1", "Please explain how photosynthesis turns light into chemical energy in plants.", "It..."),
        conv("a2", "Please explain how photosynthesis turns light into chemical energy in green plants.", "So..."),
    ];
    let input = s.write("in.json", &serde_json::to_string(&records).unwrap());
    let out = s.path("out.json");
    let clusters = s.path("clusters.jsonl");
    let stdout = ok(&[
        "prep",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--near",
        "--shingle",
        "3",
        "--clusters",
        clusters.to_str().unwrap(),
    ]);
    assert!(stdout.contains("near_duplicate                 1"), "{stdout}");
    assert_eq!(ids(&out), ["a1".to_string()].into());
    assert_eq!(
        std::fs::read_to_string(&clusters).unwrap(),
        "{\"kept\":{\"id\":\"a1\",\"record\":0},\"removed\":[{\"id\":\"a2\",\"record\":1}]}\n"
    );

    let dedup_with = |flags: &[&str]| {
        let mut args = vec!["prep", "dedup", input.to_str().unwrap(), "-o", out.to_str().unwrap()];
        args.extend(flags);
        fails(&args)
    };
    let stderr = dedup_with(&["--near", "--bands", "30", "--rows", "5"]);
    assert!(stderr.contains("--bands 30 x --rows 5 must be at least 1 each and at most --num-perm 128"), "{stderr}");
    // a product past usize wraps to a small number: it must still be refused, not allocated
    let stderr = dedup_with(&["--near", "--bands", "9223372036854775808", "--rows", "2"]);
    assert!(stderr.contains("--bands 9223372036854775808 x --rows 2 must be at least 1 each"), "{stderr}");
    // the all-in-one prep cannot drop near-duplicates while keeping duplicates: said, not ignored
    let o = out.to_str().unwrap();
    let stderr = fails(&["prep", input.to_str().unwrap(), "-o", o, "--near", "--no-dedup"]);
    assert_eq!(stderr.trim_end(), "error: --near drops near-duplicates, --no-dedup keeps duplicates: choose one");
    let stderr = dedup_with(&["--shingle", "3"]);
    assert!(stderr.contains("--near"), "{stderr}");
    let stderr = dedup_with(&["--near", "--near-threshold", "1.5"]);
    assert!(stderr.contains("--near-threshold"), "{stderr}");
    let stderr = dedup_with(&["--near", "--clusters", out.to_str().unwrap()]);
    assert!(stderr.contains(&format!("--clusters {} is the same file as --output", out.display())), "{stderr}");
}
