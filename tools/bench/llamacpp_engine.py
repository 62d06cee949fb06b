#!/usr/bin/env python3
"""llama.cpp's side of `dspark bench engine`: the same measurements on the same
GGUF through llama-cpp-python (which builds llama.cpp from source), printed as
one JSON object so the C++ bench can put both side by side in one table.

  .venv/bin/python tools/bench/llamacpp_engine.py --model M.gguf --threads 2 \
      --prompt-tokens 128 --decode-tokens 64 --ks 1,2,4,8,16 --reps 5
"""
import argparse
import json
import time

import llama_cpp


def make_ids(n, vocab, salt):
    # Same deterministic ids as the C++ side: (i * 7919 + salt * 104729) % (vocab - 1000) + 500.
    return [(i * 7919 + salt * 104729) % (vocab - 1000) + 500 for i in range(n)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--ks", default="1,2,4,8,16")
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    ks = [int(k) for k in a.ks.split(",")]
    common = dict(model_path=a.model, n_threads=a.threads, n_threads_batch=a.threads,
                  n_ctx=1024, n_batch=512, verbose=False)
    llm = llama_cpp.Llama(logits_all=False, **common)
    vocab = llm.n_vocab()
    prompt = make_ids(a.prompt_tokens, vocab, 1)

    # Prefill: best of reps.
    best = float("inf")
    for _ in range(max(1, a.reps // 2)):
        llm.reset()
        llm._ctx.kv_cache_clear()
        t = time.perf_counter()
        llm.eval(prompt)
        best = min(best, time.perf_counter() - t)
    prefill_tps = a.prompt_tokens / best

    # Decode: greedy-free fixed ids one at a time after the prompt.
    dec = make_ids(a.decode_tokens, vocab, 2)
    t = time.perf_counter()
    for tok in dec:
        llm.eval([tok])
    decode_tps = a.decode_tokens / (time.perf_counter() - t)
    del llm

    # k-token forwards with logits for every token (as a verify block needs).
    llm = llama_cpp.Llama(logits_all=True, **common)
    llm.eval(prompt)
    base = llm.n_tokens
    # The block sizes take turns within each rep (as dspark's side does), so
    # that a slow spell of the machine falls on all of them.
    times = {k: [] for k in ks}
    for _ in range(a.reps):
        for k in ks:
            ids = make_ids(k, vocab, 3)
            t = time.perf_counter()
            llm.eval(ids)
            times[k].append(time.perf_counter() - t)
            llm._ctx.kv_cache_seq_rm(-1, base, -1)
            llm.n_tokens = base
    k_ms = {k: sorted(v)[len(v) // 2] * 1e3 for k, v in times.items()}
    print(json.dumps({"prefill_tps": prefill_tps, "decode_tps": decode_tps,
                      "k_ms": {str(k): v for k, v in k_ms.items()}}))


if __name__ == "__main__":
    main()
