//! The `prep` stages as commands: formats in and out, extra fields kept, filters, dedup, merge,
//! sample, split-train-test, convert, stats, and output that does not depend on the thread count.
mod common;
use common::*;
use serde_json::json;

fn conv(id: &str, turns: &[(&str, &str)]) -> serde_json::Value {
    json!({"id": id, "conversations": turns.iter().map(|(f, v)| json!({"from": f, "value": v})).collect::<Vec<_>>()})
}

fn write_json(s: &Scratch, name: &str, records: &[serde_json::Value]) -> String {
    s.write(name, &serde_json::to_string(records).unwrap()).to_str().unwrap().to_string()
}

fn report(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).expect("report JSON")
}

#[test]
fn jsonl_and_openai_messages_in_extra_fields_kept() {
    let s = Scratch::new();
    let input = s.write(
        "in.jsonl",
        concat!(
            r#"{"id": "m1", "model": "gpt-4", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}"#,
            "\n",
            r#"{"id": 7, "conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}], "lang": "en"}"#,
            "\n"
        ),
    );
    let out = s.path("out.json");
    ok(&["prep", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let records = read_records(&out);
    assert_eq!(
        records[0],
        json!({"id": "m1", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}], "system": "Be brief.", "model": "gpt-4"})
    );
    assert_eq!(
        records[1],
        json!({"id": "7", "conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}], "lang": "en"})
    );

    let openai = s.path("out.jsonl");
    ok(&["prep", "convert", out.to_str().unwrap(), "-o", openai.to_str().unwrap(), "--style", "openai"]);
    assert_eq!(
        read_records(&openai)[0],
        json!({"id": "m1", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}], "model": "gpt-4"})
    );
}

#[test]
fn alpaca_converts_like_fastchat() {
    let s = Scratch::new();
    let input = write_json(
        &s,
        "alpaca.json",
        &[
            json!({"instruction": "Translate to French.", "input": "cat", "output": "chat"}),
            json!({"instruction": "Name a fruit.", "input": " ", "output": "Apple"}),
        ],
    );
    let out = s.path("out.json");
    ok(&["prep", "convert", &input, "-o", out.to_str().unwrap()]);
    let records = read_records(&out);
    assert_eq!(records[0], conv("alpaca_0", &[("human", "Translate to French.\nInput:\ncat"), ("gpt", "chat")]));
    assert_eq!(records[1], conv("alpaca_1", &[("human", "Name a fruit."), ("gpt", "Apple")]));
}

#[test]
fn dedup_by_id_then_by_first_exchange() {
    let s = Scratch::new();
    let input = write_json(
        &s,
        "in.json",
        &[
            conv("a", &[("human", "q"), ("gpt", "x")]),
            conv("a", &[("human", "other"), ("gpt", "y")]),
            conv("b", &[("human", "q"), ("gpt", "x"), ("human", "more"), ("gpt", "z")]),
            conv("c", &[("human", "q"), ("gpt", "different")]),
        ],
    );
    let out = s.path("out.json");
    let r = report(&ok(&["prep", "dedup", &input, "-o", out.to_str().unwrap(), "--json"]));
    assert_eq!(r["dropped"], json!({"duplicate_id": 1, "duplicate_content": 1}));
    let ids: Vec<_> = read_records(&out).iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, ["a", "c"]);
}

#[test]
fn filters_drop_by_reason() {
    let s = Scratch::new();
    let input = write_json(
        &s,
        "in.json",
        &[
            conv(
                "en",
                &[
                    ("human", "Where is the nearest train station from here?"),
                    ("gpt", "It is two streets away, next to the old market square."),
                ],
            ),
            conv(
                "ko",
                &[
                    ("human", "가장 가까운 기차역은 어디에 있나요?"),
                    ("gpt", "여기서 두 블록 떨어진 시장 광장 옆에 있습니다."),
                ],
            ),
            conv(
                "rep",
                &[("human", "Write the number"), ("gpt", "It is 1111111111 in total, which is a long number.")],
            ),
            conv("list", &[("human", "Steps please"), ("gpt", "Here:\n1. first\n1. second")]),
            conv("long", &[("human", "a"), ("gpt", "b"), ("human", "c"), ("gpt", "d")]),
        ],
    );
    let out = s.path("out.json");
    let args = [
        "prep",
        "filter",
        &input,
        "-o",
        out.to_str().unwrap(),
        "--json",
        "--skip-lang",
        "ko",
        "--reduce-rep",
        "--drop-restarted-lists",
        "--max-turns",
        "2",
    ];
    let r = report(&ok(&args));
    assert_eq!(r["dropped"], json!({"language": 1, "repetition": 1, "wrong_list_format": 1, "too_many_turns": 1}));
    let r = report(&ok(&[
        "prep",
        "filter",
        &input,
        "-o",
        out.to_str().unwrap(),
        "--json",
        "--keep-lang",
        "ko",
        "--min-turns",
        "2",
    ]));
    assert_eq!(r["records_out"], 1);
    assert_eq!(read_records(&out)[0]["id"], "ko");
}

#[test]
fn merge_sample_and_split_keep_input_order() {
    let s = Scratch::new();
    let a: Vec<_> = (0..60).map(|i| conv(&format!("a{i}"), &[("human", &format!("q{i}")), ("gpt", "x")])).collect();
    let b: Vec<_> = (0..40).map(|i| conv(&format!("b{i}"), &[("human", &format!("r{i}")), ("gpt", "y")])).collect();
    let (a, b) = (write_json(&s, "a.json", &a), write_json(&s, "b.json", &b));
    let all = s.path("all.jsonl");
    ok(&["prep", "merge", &a, &b, "-o", all.to_str().unwrap()]);
    let ids: Vec<String> = read_records(&all).iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 100);
    assert_eq!((ids[0].as_str(), ids[60].as_str()), ("a0", "b0"));

    let small = s.path("small.json");
    let r = report(&ok(&[
        "prep",
        "sample",
        all.to_str().unwrap(),
        "-o",
        small.to_str().unwrap(),
        "--count",
        "10",
        "--seed",
        "3",
        "--json",
    ]));
    assert_eq!((r["records_out"].clone(), r["dropped"]["not_selected"].clone()), (json!(10), json!(90)));
    let picked: Vec<String> = read_records(&small).iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    let positions: Vec<usize> = picked.iter().map(|id| ids.iter().position(|x| x == id).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "sample must keep input order: {positions:?}");
    let again = s.path("again.json");
    ok(&["prep", "sample", all.to_str().unwrap(), "-o", again.to_str().unwrap(), "--count", "10", "--seed", "3"]);
    assert_eq!(std::fs::read(&small).unwrap(), std::fs::read(&again).unwrap(), "same seed, same sample");

    let (train, test) = (s.path("train.json"), s.path("test.json"));
    ok(&[
        "prep",
        "split-train-test",
        all.to_str().unwrap(),
        "--train",
        train.to_str().unwrap(),
        "--test",
        test.to_str().unwrap(),
        "--test-ratio",
        "0.2",
    ]);
    let (train, test) = (read_records(&train), read_records(&test));
    assert_eq!((train.len(), test.len()), (80, 20));
    let mut together: Vec<String> = train.iter().chain(&test).map(|r| r["id"].as_str().unwrap().to_string()).collect();
    together.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(together, expected, "train and test partition the input");
}

#[test]
fn stats_counts_turns_characters_and_languages() {
    let s = Scratch::new();
    let input = write_json(
        &s,
        "in.json",
        &[
            conv(
                "1",
                &[
                    ("human", "Where is the nearest train station from here?"),
                    ("gpt", "It is two streets away, next to the old market square."),
                ],
            ),
            json!({"id": "2", "system": "Be brief.", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}, {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "Bye!"}]}),
            json!("not a record"),
        ],
    );
    let stats: serde_json::Value = serde_json::from_str(&ok(&["prep", "stats", &input, "--json"])).unwrap();
    assert_eq!(stats["conversations"], 2);
    assert_eq!(stats["turns"], 6);
    assert_eq!(stats["user_turns"], 3);
    assert_eq!(stats["with_system_prompt"], 1);
    assert_eq!(stats["characters"], 45 + 54 + 2 + 5 + 3 + 4);
    assert_eq!(stats["unreadable"], json!({"not_an_object": 1}));
    assert_eq!(stats["languages"]["English"], 1);
    assert_eq!(stats["length_histogram"][0], json!(["0-255", 2]));
}

#[test]
fn output_does_not_depend_on_thread_count() {
    let s = Scratch::new();
    let example = repo().join("examples/sharegpt_raw_example.json");
    let records: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
    // Enough records for several parallel batches, with duplicates across batch boundaries.
    let many: Vec<_> = (0..400)
        .flat_map(|k| {
            records.iter().map(move |r| {
                let mut r = r.clone();
                if let Some(id) = r.get("id").and_then(|v| v.as_str()).map(|id| format!("{id}_{}", k % 300)) {
                    r["id"] = json!(id);
                }
                r
            })
        })
        .collect();
    let input = write_json(&s, "many.json", &many);
    let (one, two) = (s.path("one.json"), s.path("two.json"));
    let run = |out: &std::path::Path, threads: &str| {
        let o = vicuna_env(&["prep", &input, "-o", out.to_str().unwrap(), "--json"], &[("RAYON_NUM_THREADS", threads)]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(run(&one, "1"), run(&two, "2"));
    assert_eq!(std::fs::read(&one).unwrap(), std::fs::read(&two).unwrap());
}
