#!/usr/bin/env python3
"""Golden token ids from llama.cpp's own tokenizer for the tokenizers `medassist import` rebuilds.

llama.cpp comes from the PyPI sdist of llama-cpp-python (vendor/llama.cpp); build its library (the
`llama` target only: about 25 minutes on 2 busy cores) and the small batch driver beside this script:

    pip download llama-cpp-python==0.3.36 --no-deps --no-binary :all: && tar xzf llama_cpp_python-0.3.36.tar.gz
    cd llama_cpp_python-0.3.36/vendor/llama.cpp
    cmake -B build -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF && cmake --build build --target llama -j 2
    g++ -O2 -std=c++17 -Iinclude -Iggml/include REPO/tools/oracle/llama_tokenize_batch.cpp \
        -Lbuild/bin -lllama -lggml -lggml-base -Wl,-rpath,$PWD/build/bin -o llama_tokenize_batch

Writes testdata/gguf/tokenizer.jsonl.gz (gzip): one line per string (the strings of tokenizer_golden.py, ≥ 1,000,
plus ChatML, digits, code and whitespace cases), {"text", "<variant>": [ids], ...}, where ids is
llama_tokenize(text, add_special=true, parse_special=true) (llama-tokenize's defaults) on:

smollm      SmolLM2-135M-Instruct.Q4_1.gguf itself (gpt2 tokenizer, pre "smollm").
gpt-2, llama-bpe, qwen2, default
            the same vocabulary and merges with tokenizer.ggml.pre set to that value (vocab-only files
            written here with gguf-py), so each pre-tokenizer is checked against llama.cpp.
llama-spm   testdata/gguf/tinyllama-vocab.gguf.gz (TinyLlama's tokenizer, a llama/SentencePiece one,
            written by llama.cpp's own converter with `pip install sentencepiece` and
              python vendor/llama.cpp/convert_hf_to_gguf.py ../shared/models/tinyllama-1.1b-chat-v1.0 \
                  --vocab-only --outfile tinyllama-vocab.gguf && gzip -9 tinyllama-vocab.gguf).

Usage: python3 tools/oracle/gguf_tokenizer_golden.py --batch PATH/llama_tokenize_batch [--shared ../shared]
"""
import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile

import gguf

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import tokenizer_golden  # noqa: E402  (the shared string generator)

SMOLLM2 = os.path.join("models", "smollm2-135m-instruct-gguf", "SmolLM2-135M-Instruct.Q4_1.gguf")
PRE_VARIANTS = ["gpt-2", "llama-bpe", "qwen2", "default"]

CHATML = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<repo_name>", "<file_sep>", "<jupyter_code>", "<empty_output>"]
EXTRA = [
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is the loop of Henle?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nI typed <|im_end|> on purpose<|im_end|>\n", "<|im_end|><|im_end|>", "<|im_start", "im_end|>",
    "< |im_start| >", "<|endoftext|>text<|endoftext|>", "<repo_name>medassist<file_sep>main.go",
    "1", "12", "123", "1234", "12345", "123456789012345678901234567890", "3.14159265358979", "1,234,567.89",
    "0.000001", "1e-9", "v1.2.3", "2024-12-07T05:12:27Z", "٣٤٥ arabic-indic digits", "१२३ devanagari digits",
    "①②③ circled", "½ ¾ ⅓ fractions", "²³ superscripts", "Ⅷ roman", "五十 CJK numerals", "x1y2z3",
    "a1b22c333d4444", "0x7FFFFFFF", "ICD-10 I21.4", "128/80 mmHg",
    "    ", "        code", "\t\t\t", "\n\n\n\n", " \n \n ", "a    b", "a\t \tb", "trailing \n", "\r\r\n\n",
    "   \u00a0\u00a0  ", "\u2003em space", "x\u200by",
    "for i in range(10):\n    print(i ** 2)\n", "def f(a, b=2, *args, **kw):\n\treturn {'a': a}\n",
    "const x = () => { return [1, 2, 3].map(n => n * 2); };", "#include <stdio.h>\nint main(){printf(\"%d\\n\", 42);}",
    "SELECT id, name FROM t WHERE x >= 10 AND y <> 'z';", "<div class=\"a\">&amp;&lt;&gt;</div>", "$ ls -la | grep '.go$'",
    "I'm you're he's we've they'll she'd IT'S WE'VE THEY'LL", "don't DON'T Don'T", "'s 't 're 've 'm 'll 'd",
    "'ſ long s", "ǅ titlecase", "K kelvin", "ﬀ ﬁ ﬂ ligatures",
    "👩‍⚕️ health worker", "🫀🫁🧠", "🏳️‍🌈", "😀😃😄😁😆", "⚕️", "🇯🇵", "👍🏻👍🏼👍🏽👍🏾👍🏿",
    "日本語とEnglishの混在テキスト", "中文123测试", "한국어와 숫자 42", "汉字漢字", "ｆｕｌｌｗｉｄｔｈ　ＡＢＣ１２３",
    "Tiếng Việt có dấu", "Ελληνικά και 123", "עברית 456", "العربية ٧٨٩",
]


def strings(shared):
    out, seen = [], set()
    for s in tokenizer_golden.strings(shared) + EXTRA + CHATML + [c + " x " + c for c in CHATML]:
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def copy_with_pre(src, dst, pre):
    """A vocab-only copy of src's metadata with tokenizer.ggml.pre replaced."""
    r = gguf.GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(dst, arch=arch)
    for key, field in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        val = pre if key == "tokenizer.ggml.pre" else field.contents()
        vtype = field.types[0]
        sub = field.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(key, val, vtype, sub_type=sub)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def tokenize_all(batch, model, texts):
    data = b"".join(str(len(b)).encode() + b"\n" + b for b in (t.encode("utf-8") for t in texts))
    res = subprocess.run([batch, model], input=data, capture_output=True, check=True)
    lines = res.stdout.decode().split("\n")[:-1]
    if len(lines) != len(texts):
        raise SystemExit(f"{model}: {len(lines)} results for {len(texts)} strings")
    return [[int(x) for x in line.split()] for line in lines]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", required=True, help="the llama_tokenize_batch binary")
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--out", default=os.path.join(ROOT, "testdata", "gguf", "tokenizer.jsonl.gz"))
    args = ap.parse_args()
    texts = strings(args.shared)
    tmp = tempfile.mkdtemp()
    try:
        models = {"smollm": os.path.join(args.shared, SMOLLM2)}
        for pre in PRE_VARIANTS:
            models[pre] = os.path.join(tmp, f"smollm2-{pre}.gguf")
            copy_with_pre(models["smollm"], models[pre], pre)
        models["llama-spm"] = os.path.join(tmp, "tinyllama-vocab.gguf")
        with gzip.open(os.path.join(ROOT, "testdata", "gguf", "tinyllama-vocab.gguf.gz")) as zin, \
                open(models["llama-spm"], "wb") as zout:
            shutil.copyfileobj(zin, zout)
        ids = {name: tokenize_all(args.batch, path, texts) for name, path in models.items()}
    finally:
        shutil.rmtree(tmp)
    with gzip.open(args.out, "wt", encoding="utf-8", compresslevel=9) as f:
        for i, text in enumerate(texts):
            rec = {"text": text}
            rec.update({name: v[i] for name, v in ids.items()})
            f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
    print("wrote", args.out, len(texts), "strings,", os.path.getsize(args.out), "bytes")


if __name__ == "__main__":
    main()
