#!/usr/bin/env python3
"""The reference side of `dspark bench tokenizer`: encodes a text file line by
line (each line with its trailing "\\n", no special tokens added), exactly as
the C++ side does, and prints {"mb_s": ..., "tokens": ...} as one JSON line.

  RAYON_NUM_THREADS=1 .venv/bin/python tools/bench/hf_tokenizers_encode.py \\
      --tokenizer qwen3/tokenizer.json --text corpus.txt --reps 3
  .venv/bin/python tools/bench/hf_tokenizers_encode.py --gguf model.gguf --text corpus.txt

--tokenizer uses HF `tokenizers` (Tokenizer.encode_batch over all lines, so
Python's per-call overhead stays out; single-threaded: run it with
RAYON_NUM_THREADS=1 and TOKENIZERS_PARALLELISM=false). --gguf uses
llama.cpp's tokenizer through llama-cpp-python (llama_tokenize, one ctypes
call per line, add_bos false, special true).
MB/s is UTF-8 bytes / 1e6 per second, best of --reps passes.
"""
import argparse
import json
import os
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def split_lines(text):
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer")
    ap.add_argument("--gguf")
    ap.add_argument("--text", required=True)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    with open(a.text, "rb") as f:
        raw = f.read()
    lines = split_lines(raw.decode("utf-8"))
    if a.tokenizer:
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(a.tokenizer)

        def encode():
            return sum(len(e.ids) for e in tok.encode_batch(lines, add_special_tokens=False))
    else:
        import llama_cpp
        llm = llama_cpp.Llama(model_path=a.gguf, vocab_only=True, verbose=False)
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        blines = [l.encode("utf-8") for l in lines]
        cap = max(len(b) for b in blines) + 16  # never more tokens than bytes (+ BOS/EOS)
        buf = (llama_cpp.llama_token * cap)()

        def encode():
            # llama_tokenize directly with one reused buffer: Llama.tokenize
            # allocates an n_ctx array per call, which would dominate here.
            n = 0
            for b in blines:
                k = llama_cpp.llama_tokenize(vocab, b, len(b), buf, cap, False, True)
                if k < 0:
                    raise RuntimeError("llama_tokenize buffer too small")
                n += k
            return n
    best = float("inf")
    tokens = 0
    for _ in range(a.reps):
        t = time.perf_counter()
        tokens = encode()
        best = min(best, time.perf_counter() - t)
    print(json.dumps({"mb_s": len(raw) / 1e6 / best, "tokens": tokens}))


if __name__ == "__main__":
    main()
