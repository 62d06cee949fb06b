#!/usr/bin/env python3
"""Reference token ids for dspark's tokenizer tests, from Hugging Face.

The SmolLM2 model ships only as a GGUF (no tokenizer.json in shared data), so
its reference ids come from `transformers` reading the GGUF's tokenizer
(AutoTokenizer.from_pretrained(dir, gguf_file=...), which converts
tokenizer.ggml.* into a `tokenizers` fast tokenizer). The ids hard-coded in
tests/common/tokenizer/smollm2_test.cc were printed by:

  .venv/bin/python tools/make_tokenizer_refs.py \
      --gguf ~/.cache/dspark/models/smollm2-135m-instruct.gguf --cpp

`--jsonl OUT` writes {"text","ids"} lines for a larger set of strings (the
shared reference strings and llama.cpp's vocab test inputs) so a C++ build
can be checked against all of them without committing the ids.

Encoding follows the tests' convention: add_special_tokens=False, and
special-token text in the input is matched (the transformers default).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

# The strings hard-coded in smollm2_test.cc (keep in sync).
CPP_STRINGS = [
    "Hello, world! How are you?",
    " Hello",
    "I've 12345 apples; they're 3.14 each.",
    "def f(x):\n    return x * 2\n",
    "  multiple   spaces\t\ttabs\n\n\nnewlines",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "Ünïcödé, 日本語, 🦙🦙 emoji",
]


def load(gguf_path):
    from transformers import AutoTokenizer  # noqa: imported late: slow

    # transformers wants a directory plus a file name; a symlink in a temp
    # dir avoids touching the model directory.
    tmp = tempfile.mkdtemp(prefix="dspark_refs_")
    name = os.path.basename(gguf_path)
    os.symlink(os.path.realpath(gguf_path), os.path.join(tmp, name))
    try:
        return AutoTokenizer.from_pretrained(tmp, gguf_file=name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def shared_strings(data_dir):
    out = []
    ref = os.path.join(data_dir, "tokenizers", "qwen3", "reference.jsonl")
    if os.path.exists(ref):
        with open(ref, encoding="utf-8") as f:
            out += [json.loads(line)["text"] for line in f if line.strip()]
    inp = os.path.join(data_dir, "tokenizers", "llamacpp-vectors", "ggml-vocab-gpt-2.gguf.inp")
    if os.path.exists(inp):
        with open(inp, encoding="utf-8", newline="") as f:
            out += f.read().split("\n__ggml_vocab_test__\n")[:-1]
    return out


def cpp_literal(s):
    return json.dumps(s, ensure_ascii=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--gguf", required=True, help="GGUF file whose tokenizer to use")
    ap.add_argument("--cpp", action="store_true", help="print a C++ initializer list")
    ap.add_argument("--jsonl", help="write reference lines for many strings here")
    ap.add_argument("--data-dir", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                       "shared", "data"))
    args = ap.parse_args()
    tok = load(args.gguf)
    if args.cpp:
        for s in CPP_STRINGS:
            ids = tok.encode(s, add_special_tokens=False)
            print("    {%s, {%s}}," % (cpp_literal(s), ", ".join(map(str, ids))))
    if args.jsonl:
        with open(args.jsonl, "w", encoding="utf-8") as f:
            for s in shared_strings(args.data_dir) + CPP_STRINGS:
                ids = tok.encode(s, add_special_tokens=False)
                f.write(json.dumps({"text": s, "ids": ids}, ensure_ascii=False) + "\n")
    if not args.cpp and not args.jsonl:
        print("nothing to do: pass --cpp and/or --jsonl", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
