#!/usr/bin/env python3
"""Reference ids from the Python `tokenizers` package for the Swift Tokenizer tests.

    tokenizer_reference.py sample OUT
        Encodes Samples/eval.txt, Samples/calib.txt and every string of Samples/eval_mc.jsonl
        (each context and each choice) with Samples/tokenizer.json.
    tokenizer_reference.py build CONFIG OUT
        Trains a small byte-level BPE on Samples/calib.txt plus the tricky strings below with the
        normalizer, pre-tokenizer, added/special tokens, post-processor and decoder of that
        family's released tokenizer.json (CONFIG llama3, qwen2, deepseek_v3: Meta-Llama-3-8B,
        Qwen2-7B, DeepSeek-V3), or the remaining options the Swift side implements (prefix_space:
        ByteLevel with add_prefix_space and GPT-2's regex, NFC; split_misc: a string pattern with
        behaviour Removed, a regex no scanner knows, ByteLevel's add_prefix_space without regex;
        both with two bytes missing from the vocabulary, split_misc with an unk_token and fuse_unk),
        writes it to OUT/tokenizer.json and encodes the tricky strings with the file as saved.

    tokenizer_reference.py classes STRIDE OUT
        Runs the known pre-tokenizer regexes (GPT-2's, Llama 3's — Qwen2's has the same classes —
        and DeepSeek-V3's three) as an Isolated Split over a probe text that puts each code point
        next to a letter, a digit, punctuation, a combining mark, a space and a newline (every
        assigned code point outside the big uniform blocks; those blocks and the unassigned code
        points sampled; with STRIDE > 1 only every STRIDE-th of the assigned ones); writes OUT/probe.txt, OUT/patterns.json ({name: regex}) and
        OUT/NAME.bin (uint32: the start of every piece, in code points).

    tokenizer_reference.py large OUT
        A Llama-3-sized byte-level BPE (128,000 entries, random merges of existing tokens, a seeded
        generator; Llama 3's pre-tokenizer and BOS template) written to OUT/tokenizer.json, and
        eval.txt's first 100,000 characters, calib.txt's and the tricky strings encoded with it.

`sample`, `build` and `large` write OUT/strings.json (the strings, in order), OUT/ids.bin (all ids, uint32 little-endian,
concatenated; post-processor applied), OUT/lens.bin (uint32: ids per string), OUT/plain_ids.bin
and OUT/plain_lens.bin (add_special_tokens=False); `build` also OUT/decoded.json (`decode(ids,
skip_special_tokens=False)` of each string's ids), OUT/decoded_skip.json (the same with
skip_special_tokens=True) and OUT/decoded_each.json (each id of the tricky strings alone).
"""
import json
import os
import sys

import numpy as np
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = os.path.join(ROOT, "Samples")

# The pre-tokenizer regexes, as the released tokenizer.json files have them.
LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
DS_DIGITS = r"\p{N}{1,3}"
DS_CJK = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
# DeepSeek-V3's file spells some \r \n as literal characters; keep that.
DS_MAIN = "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"

TRICKY = [
    "I'm sure they'LL say it's DON'T, we've 'd 'S 'ſ 'Re",
    "she said 'hello' and ''quoted'' ' s",
    "1234567890 12 3.14159 1,000,000 x²³ ١٢٣٤٥ Ⅻ ⅷ 2024-01-01",
    "中文分词测试，这是一个句子。日本語のテキスト、カタカナとひらがな。한국어 문장",
    "emoji 👍🏽 family 👨‍👩‍👧 flags 🇯🇵🇫🇷 ❤️ 🤖!",
    "a  b   c    d     e",
    "   leading and trailing   ",
    "\t\ttabs\tand\u00a0nbsp\u3000ideographic space\u2003em",
    "line1\nline2\r\nline3\r\n\r\nline4\n\n\n  \n \n",
    "end with newline\n",
    "café naïve e\u0301 Ünïcödé A\u030a ﬁ ß",
    "Hello!!! ... ?! foo_bar-baz (x+y)*z [1] {a: b} <tag> @user #hash $5 100%",
    "def f(x):\n    return x**2  # comment\n\n\tpass",
    "ÀÉÎÕÜ àéîõü ÿ Ÿ ǅ ǈ ᾈ",
    "\u200b zero\u200dwidth \u00ad soft \ufeff bom \x00\x01 ctrl \x0b\x0c\x1c\x85 seps",
    "Ελληνικά кириллица עברית العربية हिन्दी ไทย",
    "x",
    " ",
    "",
    "  \n",
    "'",
    "a'b's'",
    "123abc456def7890",
    "<|endoftext|>after and before<|endoftext|>",
]

# Long pre-tokens (BPE must stay O(n log n) in the length of a word) and long whitespace runs.
LONG = ["ab" * 4000, "中文" * 2000, " " * 3000 + "x", "-" * 6000, "\n" * 2000 + "y", "9" * 3001]

CONFIGS = {
    "llama3": dict(
        specials=["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|eot_id|>"],
        bos="<|begin_of_text|>",
        tricky=["<|begin_of_text|>Hi there<|eot_id|>", "<|eot_id|><|eot_id|>x<|end_of_text|>", "a<|eot_id|> b"],
    ),
    "qwen2": dict(
        specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        bos=None,
        tricky=["<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n", "x<|im_end|><|endoftext|>"],
    ),
    "prefix_space": dict(specials=["<|endoftext|>"], bos=None, tricky=[" already spaced", "<|endoftext|>x <|endoftext|> y", "u\x00\x00\x01v\x00w"]),
    "split_misc": dict(specials=["<|endoftext|>"], bos=None, tricky=["a--b----c--", "x1y22z333 --", "<|endoftext|>--<|endoftext|>", "u\x00\x00\x01v\x00w"]),
    "deepseek_v3": dict(
        specials=["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"],
        bos="<｜begin▁of▁sentence｜>",
        tricky=["<｜begin▁of▁sentence｜>Hi<｜end▁of▁sentence｜>", "<think>\nreason</think> answer", "a<｜User｜>b<｜Assistant｜>"],
    ),
}

# Added tokens with the flags beyond what the three families use, in every configuration.
FLAGGED = [
    AddedToken("<mask>", lstrip=True, rstrip=False, special=True, normalized=False),
    AddedToken("<sep>", lstrip=False, rstrip=True, special=True, normalized=False),
    AddedToken("[W]", single_word=True, special=False, normalized=False),
    AddedToken("cafe\u0301bar", special=False, normalized=True),
]
FLAGGED_STRINGS = [
    "word  <mask> and\t<mask>", "a<sep>   b <sep>\n c", "[W] x[W] [W]y ([W]) [W]", "cafébar café\u0301bar cafe\u0301bar",
    "<mask><mask>  <mask>",
]


def write(out, tok, strings, decoded=True):
    os.makedirs(out, exist_ok=True)
    enc = tok.encode_batch(strings)
    plain = tok.encode_batch(strings, add_special_tokens=False)
    ids = [e.ids for e in enc]
    np.array([i for x in ids for i in x], dtype="<u4").tofile(os.path.join(out, "ids.bin"))
    np.array([len(x) for x in ids], dtype="<u4").tofile(os.path.join(out, "lens.bin"))
    np.array([i for e in plain for i in e.ids], dtype="<u4").tofile(os.path.join(out, "plain_ids.bin"))
    np.array([len(e.ids) for e in plain], dtype="<u4").tofile(os.path.join(out, "plain_lens.bin"))
    with open(os.path.join(out, "strings.json"), "w", encoding="utf-8") as f:
        json.dump(strings, f, ensure_ascii=True)
    if decoded:
        with open(os.path.join(out, "decoded.json"), "w", encoding="utf-8") as f:
            json.dump([tok.decode(x, skip_special_tokens=False) for x in ids], f, ensure_ascii=True)
        with open(os.path.join(out, "decoded_skip.json"), "w", encoding="utf-8") as f:
            json.dump([tok.decode(x, skip_special_tokens=True) for x in ids], f, ensure_ascii=True)
        # Every id alone: byte-level tokens that end inside a UTF-8 character decode to U+FFFD.
        with open(os.path.join(out, "decoded_each.json"), "w", encoding="utf-8") as f:
            json.dump([[tok.decode([i], skip_special_tokens=False) for i in x] for x in ids[:len(TRICKY)]], f, ensure_ascii=True)
    print(len(strings), "strings", sum(len(x) for x in ids), "ids")


def sample(out):
    tok = Tokenizer.from_file(os.path.join(SAMPLES, "tokenizer.json"))
    strings = [open(os.path.join(SAMPLES, n), encoding="utf-8").read() for n in ("eval.txt", "calib.txt")]
    for line in open(os.path.join(SAMPLES, "eval_mc.jsonl"), encoding="utf-8"):
        item = json.loads(line)
        strings.append(item["context"])
        strings.extend(item["choices"])
    # The sample's decode must give back each string itself; no need for Python's.
    write(out, tok, strings + TRICKY + LONG, decoded=False)


def build(config, out):
    c = CONFIGS[config]
    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    if config == "llama3":
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated", invert=False), byte_level])
    elif config == "qwen2":
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2), behavior="isolated", invert=False), byte_level])
    elif config == "prefix_space":
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    elif config == "split_misc":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split("--", behavior="removed", invert=False),
            pre_tokenizers.Split(Regex(r"\d+|[^\d\s]+|\s+"), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=False),
        ])
    else:
        tok.normalizer = normalizers.Sequence([])
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(DS_DIGITS), behavior="isolated", invert=False),
            pre_tokenizers.Split(Regex(DS_CJK), behavior="isolated", invert=False),
            pre_tokenizers.Split(Regex(DS_MAIN), behavior="isolated", invert=False),
            byte_level,
        ])
    tok.decoder = decoders.ByteLevel()
    calib = open(os.path.join(SAMPLES, "calib.txt"), encoding="utf-8").read()
    corpus = [calib] + (TRICKY + c["tricky"]) * 20
    trainer = trainers.BpeTrainer(vocab_size=1500, min_frequency=2, special_tokens=c["specials"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    if config == "deepseek_v3":
        tok.add_tokens([AddedToken("<think>", special=False, normalized=True), AddedToken("</think>", special=False, normalized=True),
                        AddedToken("<｜User｜>", special=False, normalized=True), AddedToken("<｜Assistant｜>", special=False, normalized=True)])
    tok.add_tokens(FLAGGED)
    if c["bos"]:
        bos = (c["bos"], tok.token_to_id(c["bos"]))
        template = processors.TemplateProcessing(single=f"{c['bos']} $A", pair=f"{c['bos']} $A {c['bos']} $B", special_tokens=[bos])
        if config == "llama3":
            tok.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False), template])
        else:
            tok.post_processor = template
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "tokenizer.json")
    tok.save(path)
    # The released files' spellings: Llama 3 sets ignore_merges; DeepSeek-V3 writes merges as
    # "a b" strings (older tokenizers); re-read so the ids come from the file as written.
    j = json.load(open(path, encoding="utf-8"))
    if config == "llama3":
        j["model"]["ignore_merges"] = True
    if config == "deepseek_v3":
        j["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]]
    if config in ("prefix_space", "split_misc"):
        # Bytes 0x00 and 0x01 (written Ā, ā) missing from the vocabulary: dropped without an
        # unk_token (prefix_space); with one, each becomes it, runs fused (split_misc).
        gone = ("\u0100", "\u0101")
        j["model"]["vocab"] = {t: i for t, i in j["model"]["vocab"].items() if not any(g in t for g in gone)}
        j["model"]["merges"] = [m for m in j["model"]["merges"] if not any(g in "".join(m) for g in gone)]
        if config == "split_misc":
            j["model"]["unk_token"] = "<|endoftext|>"
            j["model"]["fuse_unk"] = True
    json.dump(j, open(path, "w", encoding="utf-8"), ensure_ascii=False, indent=1)
    tok = Tokenizer.from_file(path)
    write(out, tok, TRICKY + c["tricky"] + FLAGGED_STRINGS + LONG)


def large(out):
    import random
    rng = random.Random(1234)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {"<|begin_of_text|>": 0, "<|end_of_text|>": 1}
    tokens = []
    for ch in alphabet:
        vocab[ch] = len(vocab)
        tokens.append(ch)
    merges = []
    # Favour recent and short tokens so that merges chain into long words, as trained ones do.
    while len(vocab) < 128_000:
        a = tokens[rng.randrange(len(tokens))] if rng.random() < 0.5 else tokens[-1 - rng.randrange(min(len(tokens), 2000))]
        b = alphabet[rng.randrange(len(alphabet))] if rng.random() < 0.6 else tokens[rng.randrange(len(tokens))]
        m = a + b
        if len(m) > 16 or m in vocab:
            continue
        vocab[m] = len(vocab)
        tokens.append(m)
        merges.append([a, b])
    j = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [
            {"id": 0, "content": "<|begin_of_text|>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True},
            {"id": 1, "content": "<|end_of_text|>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True},
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [0], "tokens": ["<|begin_of_text|>"]}}},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": True, "vocab": vocab, "merges": merges},
    }
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "tokenizer.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False)
    tok = Tokenizer.from_file(path)
    text = [open(os.path.join(SAMPLES, n), encoding="utf-8").read() for n in ("eval.txt", "calib.txt")]
    write(out, tok, [text[0][:100_000], text[1]] + TRICKY + LONG)


def probe_code_points(stride):
    """Every assigned code point (by Python's unicodedata) outside the big uniform blocks, a
    sample of those blocks and of the unassigned ones."""
    import unicodedata
    uniform = [(0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xE000, 0xF8FF), (0x17000, 0x18AFF), (0x20000, 0x3FFFF), (0xF0000, 0x10FFFF)]
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        if any(a <= cp <= b for a, b in uniform) or unicodedata.category(chr(cp)) == "Cn":
            if cp % 211 != 0:
                continue
        elif cp >= 0x80 and cp % stride != 0:
            continue
        yield cp


def classes(stride, out):
    os.makedirs(out, exist_ok=True)
    patterns = {"gpt2": GPT2, "llama3": LLAMA3, "ds_digits": DS_DIGITS, "ds_cjk": DS_CJK, "ds_main": DS_MAIN}
    neighbours = "a1!\u0301 \n"
    probe = "".join(chr(cp) + "".join(n + chr(cp) for n in neighbours) for cp in probe_code_points(stride))
    with open(os.path.join(out, "probe.txt"), "w", encoding="utf-8", newline="") as f:
        f.write(probe)
    with open(os.path.join(out, "patterns.json"), "w", encoding="utf-8") as f:
        json.dump(patterns, f, ensure_ascii=True)
    for name, regex in patterns.items():
        pieces = pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False).pre_tokenize_str(probe)
        np.array([start for _, (start, _) in pieces], dtype="<u4").tofile(os.path.join(out, name + ".bin"))
    print(len(probe), "probe characters")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "classes":
        classes(int(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "large":
        large(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "sample":
        sample(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "build" and sys.argv[2] in CONFIGS:
        build(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
