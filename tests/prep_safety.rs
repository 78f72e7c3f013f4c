//! `vicuna prep` never destroys data: an output that is an input (by any spelling of its path, a
//! symlink included) or another output is refused before anything is written; a full disk or a
//! read-only folder gives a clean error and no partial output. Records are read as Python's
//! `json.load` reads them (the last of duplicate keys wins), and deeply nested records are carried
//! or counted, never a crash or an unnamed parser error.
mod common;
use common::*;

fn raw(s: &Scratch) -> std::path::PathBuf {
    s.write(
        "raw.json",
        r#"[{"id": "a", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello there"}]},
{"id": "b", "conversations": [{"from": "human", "value": "Bye"}, {"from": "gpt", "value": "Goodbye"}]}]"#,
    )
}

#[test]
fn an_output_that_is_the_input_is_refused_and_the_input_is_untouched() {
    let s = Scratch::new();
    let input = raw(&s);
    let before = std::fs::read(&input).unwrap();
    let dotted = s.dir.path().join(".").join("raw.json");
    let link = s.path("link.json");
    std::os::unix::fs::symlink(&input, &link).unwrap();
    let input_s = input.to_str().unwrap();
    for args in [
        vec!["prep", input_s, "-o", input_s],
        vec!["prep", input_s, "-o", dotted.to_str().unwrap()],
        vec!["prep", input_s, "-o", link.to_str().unwrap()],
        vec!["prep", "clean", input_s, "-o", input_s],
        vec!["prep", "dedup", input_s, "-o", input_s],
        vec!["prep", "merge", input_s, input_s, "-o", input_s],
        vec!["prep", "sample", input_s, "-o", input_s, "--count", "1"],
    ] {
        let err = fails(&args);
        assert!(err.contains("--output ") && err.contains("is the input"), "{args:?}: {err}");
        assert_eq!(std::fs::read(&input).unwrap(), before, "{args:?} changed the input");
    }
    let out = s.path("out.json");
    let err = fails(&["prep", input_s, "-o", out.to_str().unwrap(), "--report", input_s]);
    assert!(err.contains("--report ") && err.contains("is the input"), "{err}");
    assert_eq!(std::fs::read(&input).unwrap(), before);
    assert!(!out.exists(), "nothing may be written");
}

#[test]
fn split_train_test_refuses_one_file_for_both_outputs_before_writing() {
    let s = Scratch::new();
    let input = raw(&s);
    let x = s.path("x.json");
    let err = fails(&[
        "prep",
        "split-train-test",
        input.to_str().unwrap(),
        "--train",
        x.to_str().unwrap(),
        "--test",
        s.dir.path().join("./x.json").to_str().unwrap(),
    ]);
    assert!(err.contains("--test ") && err.contains("is the same file as --train"), "{err}");
    assert!(!x.exists(), "nothing may be written");
    let err = fails(&[
        "prep",
        "split-train-test",
        input.to_str().unwrap(),
        "--train",
        input.to_str().unwrap(),
        "--test",
        x.to_str().unwrap(),
    ]);
    assert!(err.contains("--train ") && err.contains("is the input"), "{err}");
}

#[test]
fn duplicate_keys_keep_the_last_value_as_python_does() {
    let s = Scratch::new();
    // Python: json.loads('{"id": "x", "id": "y"}')["id"] == "y", at the first key's position.
    let input = s.write(
        "dup.jsonl",
        concat!(
            r#"{"id": "first", "conversations": [], "id": "last", "conversations": [{"from": "human", "value": "old", "value": "Q"}, {"from": "gpt", "from": "gpt", "value": "A"}]}"#,
            "\n"
        ),
    );
    let out = s.path("out.jsonl");
    ok(&["prep", "convert", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let records = read_records(&out);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["id"], "last");
    assert_eq!(turns(&records[0]), vec![("human".into(), "Q".into()), ("gpt".into(), "A".into())]);
}

#[test]
fn deeply_nested_records_are_carried_or_counted_never_fatal_or_unnamed() {
    let s = Scratch::new();
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    let ok_turns = r#"[{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]"#;
    let records = [
        // A deep field the tool does not read is carried through as it is.
        format!(r#"{{"id": "carried", "conversations": {ok_turns}, "extra": {deep}}}"#),
        // A turn whose text is a deep structure instead of a string is a bad turn.
        format!(r#"{{"id": "bad", "conversations": [{{"from": "human", "value": {deep}}}]}}"#),
    ];
    for name in ["deep.jsonl", "deep.json"] {
        let text = if name.ends_with(".json") { format!("[{}]", records.join(",")) } else { records.join("\n") };
        let input = s.write(name, &text);
        let out = s.path("out.jsonl");
        let report = ok(&["prep", "clean", input.to_str().unwrap(), "-o", out.to_str().unwrap(), "--json"]);
        let report: serde_json::Value = serde_json::from_str(&report).unwrap();
        assert_eq!(report["records_out"], 1, "{report}");
        assert_eq!(report["dropped"]["bad_turn"], 1, "{report}");
        let written = std::fs::read_to_string(&out).unwrap();
        assert!(written.contains(&deep), "the deep field is carried unchanged");
    }
    // Training data whose first record holds the deep field trains (it is read field by field).
    let model = tiny_model(&s);
    let input = s.write("train.jsonl", &records[0]);
    let out = s.path("run");
    let args =
        train_args(&model, &out, &["--max-steps", "1", "--micro-batch-size", "1", "--gradient-accumulation", "1"]);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    let at = args.iter().position(|a| *a == "--data").unwrap();
    args[at + 1] = input.to_str().unwrap();
    ok(&args);
}

#[test]
fn a_full_disk_or_a_read_only_folder_gives_a_clean_error_and_no_partial_output() {
    let s = Scratch::new();
    // A few thousand records, so the output is larger than the small disk.
    let record = r#"{"id": "ID", "conversations": [{"from": "human", "value": "Tell me about rivers."}, {"from": "gpt", "value": "Rivers carry water from high ground to the sea, shaping valleys as they go."}]}"#;
    let lines: Vec<String> = (0..4000).map(|i| record.replace("ID", &i.to_string())).collect();
    let input = s.write("many.jsonl", &lines.join("\n"));
    if let Some(disk) = SmallDisk::mount("size=64k") {
        let out = disk.dir.path().join("out.jsonl");
        let err = fails(&["prep", "clean", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert!(err.contains("out.jsonl") && err.to_lowercase().contains("no space"), "{err}");
        let left: Vec<_> = std::fs::read_dir(disk.dir.path()).unwrap().collect();
        assert!(left.is_empty(), "a partial output or temporary file was left: {left:?}");
    }
    if let Some(disk) = SmallDisk::mount("ro,size=64k") {
        let out = disk.dir.path().join("out.jsonl");
        let err = fails(&["prep", "clean", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        assert!(err.contains("cannot create") && err.contains("out.jsonl"), "{err}");
    }
}

#[test]
fn a_model_config_with_a_non_positive_rms_norm_eps_is_refused() {
    let s = Scratch::new();
    let model = tiny_model(&s);
    let path = model.join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["rms_norm_eps"] = serde_json::json!(-1.0);
    std::fs::write(&path, config.to_string()).unwrap();
    let err = fails(&["generate", "--model", model.to_str().unwrap(), "--prompt", "Hi", "--max-new-tokens", "4"]);
    assert!(err.contains("rms_norm_eps -1 must be a positive number"), "{err}");
}
