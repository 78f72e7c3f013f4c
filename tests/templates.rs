//! Chat templates and masking by construction: exact renderings of FastChat's formats, and the
//! round-trip property for every template: decoding the trained tokens of a sample gives back
//! exactly its assistant turns and their end-of-turn markers, on the bundled example and on random
//! conversations, with a trained BPE tokenizer and the real Llama-2 and Llama-3 tokenizers.
mod common;
use common::*;
use vicuna::data::conversation::{Conversation, Role, Turn};
use vicuna::data::encode::{encode, IGNORE};
use vicuna::data::template::{Template, TemplateName};
use vicuna::data::tokenizer::{SpecialOverrides, Tokenizer};
use vicuna::util::rng::SplitMix64;

const ALL: [TemplateName; 6] = [
    TemplateName::VicunaV11,
    TemplateName::VicunaV0,
    TemplateName::Llama2,
    TemplateName::Llama3,
    TemplateName::Chatml,
    TemplateName::Tokenizer,
];

fn conv(id: &str, system: Option<&str>, texts: &[&str]) -> Conversation {
    let turns = texts
        .iter()
        .enumerate()
        .map(|(i, t)| Turn { role: if i % 2 == 0 { Role::User } else { Role::Assistant }, text: t.to_string() })
        .collect();
    Conversation { id: id.into(), system: system.map(str::to_string), turns, extra: Vec::new() }
}

fn load(dir: &std::path::Path) -> Tokenizer {
    Tokenizer::load(dir, &SpecialOverrides::default()).expect("load tokenizer")
}

/// What each template must train for one assistant turn.
fn expected_trained(name: TemplateName, text: &str, eos: &str) -> String {
    match name {
        TemplateName::VicunaV11 => format!("{text}{eos}"),
        TemplateName::VicunaV0 => format!("{text}\n###"),
        TemplateName::Llama2 => format!("{text} {eos}"),
        TemplateName::Llama3 => format!("{}<|eot_id|>", text.trim()),
        TemplateName::Chatml => format!("{text}<|im_end|>"),
        // The trained tokenizer's own template is ChatML; Llama-3's is its Instruct template.
        TemplateName::Tokenizer if eos == "<|eot_id|>" => format!("{}<|eot_id|>", text.trim()),
        TemplateName::Tokenizer => format!("{text}<|im_end|>"),
    }
}

/// Asserts the round-trip property for one conversation and returns the number of trained runs.
fn assert_round_trip(tokenizer: &Tokenizer, name: TemplateName, c: &Conversation) {
    let template = Template::new(name, tokenizer).unwrap();
    let sample = encode(c, &template, tokenizer, usize::MAX).unwrap().expect("has trainable tokens");
    let mut runs: Vec<Vec<u32>> = Vec::new();
    let mut previous_trained = false;
    for (&id, &label) in sample.input_ids.iter().zip(&sample.labels) {
        let trained = label != IGNORE;
        assert!(!trained || label == i64::from(id), "a label differs from its input id");
        if trained && !previous_trained {
            runs.push(Vec::new());
        }
        if trained {
            runs.last_mut().unwrap().push(id);
        }
        previous_trained = trained;
    }
    let eos = tokenizer.eos.as_ref().unwrap().text.clone();
    let answers: Vec<&Turn> = c.turns.iter().filter(|t| t.role == Role::Assistant).collect();
    assert_eq!(runs.len(), answers.len(), "{name:?} on {}: one trained run per assistant turn", c.id);
    for (run, answer) in runs.iter().zip(answers) {
        let decoded = tokenizer.decode(run, false).unwrap();
        let want = expected_trained(name, &answer.text, &eos);
        assert_eq!(
            decoded.trim_start(),
            want.trim_start(),
            "{name:?} on {}: trained tokens decode to the answer",
            c.id
        );
    }
}

fn bundled() -> Vec<Conversation> {
    let file =
        vicuna::data::records::RecordFile::open(&repo().join("tests/golden/sharegpt_raw_example.clean.json")).unwrap();
    (0..file.len()).map(|i| Conversation::parse(file.record(i), i).unwrap()).collect()
}

/// Random conversations: markdown-ish text with code, unicode, emoji, leading and trailing
/// whitespace, and newlines, 1 to 4 exchanges, sometimes a system prompt.
fn random_conversations(n: usize, seed: u64) -> Vec<Conversation> {
    let words = [
        "Hello",
        "world",
        "```python\nprint(1)\n```",
        "x = y * 2",
        "naïve",
        "日本語",
        "🙂",
        "#",
        "1.",
        "-",
        "`code`",
        "**bold**",
        "\n\n",
        "\t",
        "  ",
        "user_id",
        "USER:",
        "ASSISTANT",
        "[INST]",
    ];
    let mut rng = SplitMix64::new(seed);
    let text = |rng: &mut SplitMix64| -> String {
        let n = 1 + rng.below(12);
        let mut s: String = (0..n).map(|_| words[rng.below(words.len())]).collect::<Vec<_>>().join(" ");
        if rng.below(4) == 0 {
            s = format!(" {s}\n");
        }
        if s.trim().is_empty() {
            s.push_str("ok");
        }
        s
    };
    (0..n)
        .map(|k| {
            let pairs = 1 + rng.below(4);
            let texts: Vec<String> = (0..2 * pairs).map(|_| text(&mut rng)).collect();
            let system = (rng.below(3) == 0).then(|| text(&mut rng));
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            conv(&format!("random_{k}"), system.as_deref(), &refs)
        })
        .collect()
}

#[test]
fn round_trip_every_template_with_trained_tokenizer() {
    let tokenizer = load(tiny_tokenizer());
    let conversations: Vec<Conversation> = bundled().into_iter().chain(random_conversations(200, 1)).collect();
    for name in ALL {
        for c in &conversations {
            assert_round_trip(&tokenizer, name, c);
        }
    }
}

#[test]
fn round_trip_every_fitting_template_with_real_llama_tokenizers() {
    use TemplateName::*;
    for (name, templates) in [
        ("llama2", &[VicunaV11, VicunaV0, Llama2][..]),
        ("llama3", &[VicunaV11, VicunaV0, Llama2, Llama3, Tokenizer][..]),
    ] {
        let tokenizer = load(&real_tokenizer(name));
        let conversations: Vec<Conversation> = bundled().into_iter().chain(random_conversations(100, 2)).collect();
        for template in templates {
            for c in &conversations {
                assert_round_trip(&tokenizer, *template, c);
            }
        }
    }
}

#[test]
fn template_whose_markers_are_not_special_tokens_is_refused() {
    let dir = real_tokenizer("llama2");
    let err =
        Template::new(TemplateName::Llama3, &load(&dir)).err().expect("llama-3 on the Llama-2 tokenizer is refused");
    assert_eq!(
        err.to_string(),
        format!(
            "--template llama-3 needs the special tokens <|start_header_id|> <|end_header_id|> <|eot_id|> in the tokenizer, and {} lacks <|start_header_id|> <|end_header_id|> <|eot_id|>: its markers would be plain text that tokens can straddle; choose a template made for this tokenizer (vicuna_v1.1 fits any)",
            dir.join("tokenizer.json").display()
        )
    );
}

#[test]
fn vicuna_v1_1_renders_exactly_as_fastchat() {
    let tokenizer = load(tiny_tokenizer());
    let template = Template::new(TemplateName::VicunaV11, &tokenizer).unwrap();
    let c = conv("x", None, &["Hi", "Hello!", "How are you?", "Fine."]);
    let rendered = template.render(None, &c.turns).unwrap();
    assert_eq!(
        rendered.text,
        "<s>A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions. USER: Hi ASSISTANT: Hello!</s>USER: How are you? ASSISTANT: Fine.</s>"
    );
    let trained: Vec<&str> = rendered.trained.iter().map(|r| &rendered.text[r.clone()]).collect();
    assert_eq!(
        trained,
        [" Hello!</s>", " Fine.</s>"],
        "the model generates everything after the prompt's `ASSISTANT:`"
    );
    assert_eq!(template.prompt(Some("Be brief."), &c.turns[..1]).unwrap(), "<s>Be brief. USER: Hi ASSISTANT:");
}

#[test]
fn other_templates_render_as_fastchat() {
    let tokenizer = load(tiny_tokenizer());
    let c = conv("x", None, &["Hi", "Hello!", "Bye", "Bye!"]);
    let render =
        |name, system: Option<&str>| Template::new(name, &tokenizer).unwrap().render(system, &c.turns).unwrap().text;
    assert_eq!(
        render(TemplateName::VicunaV0, None),
        "<s>A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the human's questions.\n### Human: Hi\n### Assistant: Hello!\n### Human: Bye\n### Assistant: Bye!\n### "
    );
    assert_eq!(
        render(TemplateName::Llama2, Some("Sys")),
        "<s>[INST] <<SYS>>\nSys\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST] Bye! </s><s>"
    );
    assert_eq!(
        render(TemplateName::Llama3, Some("Sys")),
        "<s><|start_header_id|>system<|end_header_id|>\n\nSys<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nBye!<|eot_id|>"
    );
    assert_eq!(
        render(TemplateName::Chatml, None),
        "<s><|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\nBye!<|im_end|>\n"
    );
}

#[test]
fn conversation_system_prompt_overrides_the_template_default() {
    let tokenizer = load(tiny_tokenizer());
    let template = Template::new(TemplateName::VicunaV11, &tokenizer).unwrap();
    let c = conv("x", Some("You are terse."), &["Hi", "Yo."]);
    assert_eq!(
        template.render(c.system.as_deref(), &c.turns).unwrap().text,
        "<s>You are terse. USER: Hi ASSISTANT: Yo.</s>"
    );
}

#[test]
fn real_llama2_tokenizer_encodes_hello_world() {
    let tokenizer = load(&real_tokenizer("llama2"));
    let mut ids = vec![tokenizer.bos.as_ref().unwrap().id];
    ids.extend(tokenizer.encode("Hello world").unwrap().ids);
    assert_eq!(ids, [1, 15043, 3186]);
    assert_eq!(tokenizer.eos.as_ref().unwrap().text, "</s>");
}

#[test]
fn truncation_that_leaves_no_trained_token_drops_the_sample() {
    let tokenizer = load(tiny_tokenizer());
    let template = Template::new(TemplateName::VicunaV11, &tokenizer).unwrap();
    let c = conv("x", None, &["Hi", "Hello!"]);
    let full = encode(&c, &template, &tokenizer, usize::MAX).unwrap().unwrap();
    let prompt_tokens = full.labels.iter().take_while(|&&l| l == IGNORE).count();
    let cut = encode(&c, &template, &tokenizer, prompt_tokens).unwrap();
    assert_eq!(cut, Err(vicuna::data::report::Reason::NoTrainableTokens));
    let one = encode(&c, &template, &tokenizer, prompt_tokens + 1).unwrap().unwrap();
    assert_eq!(one.trained_tokens(), 1);
}

#[test]
fn jinja_template_that_is_not_prefix_stable_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["tokenizer.json"] {
        std::fs::copy(tiny_tokenizer().join(f), dir.path().join(f)).unwrap();
    }
    // Renders the message count first: a prefix render is not a prefix of the whole.
    let config = serde_json::json!({"bos_token": "<s>", "eos_token": "</s>", "chat_template": "{{ messages|length }}{% for m in messages %}{{ m['content'] }}{% endfor %}"});
    std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
    let tokenizer = load(dir.path());
    let template = Template::new(TemplateName::Tokenizer, &tokenizer).unwrap();
    let err = template.render(None, &conv("x", None, &["Hi", "Yo"]).turns).unwrap_err();
    assert_eq!(
        err.to_string(),
        "chat_template is not prefix-stable (a rendered prefix is not a prefix of the whole), so turns cannot be located; choose a built-in template"
    );
}
