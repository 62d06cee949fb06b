#!/usr/bin/env python3
"""Reference logits for the real GGUF models, for
tests/common/engine/model/reference_test.cc.

For each model, Hugging Face transformers loads the GGUF itself (de-quantizing
every tensor to f32) and computes teacher-forced logits over a dozen prompts;
that is the reference. llama.cpp (llama-cpp-python) evaluates the same ids, and
how far it lands from the reference is stored next to it, so the test can
print dspark's fast-mode error beside llama.cpp's.

  .venv/bin/python tools/make_references.py                # models from $DSPARK_HOME/models
  .venv/bin/python tools/make_references.py --model gemma-3-270m=/tmp/models/gemma.gguf \
      --only gemma-3-270m

Writes tests/common/engine/model/testdata/refs_<model>.json:
  model, file {size, sha256} (the test checks the size), versions, vocab_size, top_k,
  summary.llama_cpp: positions, top1_agree, top1_in_ref_top3,
      max_err_over_std, mean_err_over_std       (over the full vocabulary),
      top20_max_err_over_std, top20_mean_err_over_std (over the reference's top-20 ids),
  prompts[]: text, ids, positions[] (one per token; teacher-forced logits after it):
      top_ids, top_logits  reference top-20,
      std                  reference logits' standard deviation over the vocabulary,
      llama_top1           llama.cpp's argmax,
      ref_at_llama_top1    the reference's logit at that id.
"""

import argparse
import hashlib
import os
import sys
import time

import refs_common

refs_common.offline()

import numpy as np  # noqa: E402
import torch  # noqa: E402

TOP_K = 20
MAX_TOKENS = 48

# Chat-ish, code, prose, numbers. Written for these tests (not the serving
# prompt set). Prompts 0 and 1 go through the model's own chat template when
# its GGUF has one.
CHAT_PROMPTS = [
    "Can you recommend a good book about the history of mathematics?",
    "Write a haiku about a cat watching the rain.",
]
TEXT_PROMPTS = [
    "def merge_sorted(a, b):\n    \"\"\"Merge two sorted lists.\"\"\"\n    result = []\n    i = j = 0\n    while",
    "#include <stdio.h>\n\nint main(void) {\n    for (int i = 0; i < 10; ++i) {\n        printf(\"%d\\n\", i * i);",
    "SELECT customer_id, SUM(amount) AS total\nFROM orders\nWHERE created_at >= '2024-01-01'\nGROUP BY",
    "The lighthouse keeper climbed the narrow stairs every evening, carrying a lantern and a "
    "thermos of tea, until one stormy night",
    "Photosynthesis is the process by which green plants convert sunlight, water and carbon "
    "dioxide into",
    "1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144,",
    "Q: What is 347 multiplied by 12?\nA: 347 * 12 = 4164.\nQ: What is 58 + 267?\nA:",
    "| Country | Capital | Population |\n|---|---|---|\n| France | Paris | 68 million |\n| Japan |",
    "Le petit chat dort sur le canapé pendant que la pluie tombe doucement sur les toits de Paris.",
    '{"name": "widget", "price": 19.99, "tags": ["blue", "small"], "in_stock":',
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tokenize_prompts(tok):
    prompts = []
    for text in CHAT_PROMPTS:
        if getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template([{"role": "user", "content": text}],
                                          add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
            rendered = tok.decode(ids)
        else:
            rendered = f"User: {text}\nAssistant:"
            ids = tok(rendered).input_ids
        prompts.append((rendered, list(ids)))
    for text in TEXT_PROMPTS:
        prompts.append((text, list(tok(text).input_ids)))
    # Stored text is what the (possibly truncated) ids decode to.
    return [(tok.decode(ids[:MAX_TOKENS]), [int(i) for i in ids[:MAX_TOKENS]])
            for _, ids in prompts]


def reference_logits(model, ids):
    with torch.no_grad():
        out = model(torch.tensor([ids]), use_cache=False).logits[0]
    return out.float().numpy()  # [n, vocab]


def llama_logits(llm, ids):
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float32)  # [n, vocab]


def make_one(name, path, out_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import llama_cpp
    import transformers

    directory, filename = os.path.split(os.path.abspath(path))
    t0 = time.time()
    tok = AutoTokenizer.from_pretrained(directory, gguf_file=filename)
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=filename,
                                                 dtype=torch.float32)
    model.eval()
    llm = llama_cpp.Llama(model_path=str(path), logits_all=True, n_threads=2, n_ctx=512,
                          verbose=False)
    print(f"{name}: loaded in {time.time() - t0:.0f}s ({type(model).__name__})", file=sys.stderr)

    prompts = tokenize_prompts(tok)
    out_prompts = []
    top1_agree = in_top3 = positions = 0
    max_err = top20_max_err = 0.0
    sum_err = top20_sum_err = 0.0
    vocab = None
    for text, ids in prompts:
        ref = reference_logits(model, ids)
        lcp = llama_logits(llm, ids)
        vocab = ref.shape[1]
        if lcp.shape != ref.shape:
            # llama.cpp pads nothing; a mismatch means different vocabularies.
            raise SystemExit(f"{name}: llama.cpp logits {lcp.shape} vs transformers {ref.shape}")
        rows = []
        for p in range(len(ids)):
            r = ref[p].astype(np.float64)
            l = lcp[p].astype(np.float64)
            std = float(r.std())
            top = np.argsort(-r, kind="stable")[:TOP_K]
            l_top1 = int(np.argmax(l))
            err = np.abs(l - r) / std
            positions += 1
            top1_agree += int(l_top1 == int(top[0]))
            in_top3 += int(l_top1 in top[:3])
            max_err = max(max_err, float(err.max()))
            sum_err += float(err.mean())
            top20_max_err = max(top20_max_err, float(err[top].max()))
            top20_sum_err += float(err[top].mean())
            rows.append({
                "top_ids": [int(i) for i in top],
                "top_logits": refs_common.rounded(r[top]),
                "std": round(std, 6),
                "llama_top1": l_top1,
                "ref_at_llama_top1": round(float(r[l_top1]), 5),
            })
        out_prompts.append({"text": text, "ids": ids, "positions": rows})

    summary = {
        "positions": positions,
        "top1_agree": round(top1_agree / positions, 4),
        "top1_in_ref_top3": round(in_top3 / positions, 4),
        "max_err_over_std": round(max_err, 5),
        "mean_err_over_std": round(sum_err / positions, 5),
        "top20_max_err_over_std": round(top20_max_err, 5),
        "top20_mean_err_over_std": round(top20_sum_err / positions, 5),
    }
    doc = {
        "model": name,
        "file": {"size": os.path.getsize(path), "sha256": sha256(path)},
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__,
                     "llama_cpp_python": llama_cpp.__version__},
        "reference": "transformers, GGUF de-quantized to f32, teacher-forced, use_cache=False",
        "vocab_size": int(vocab),
        "top_k": TOP_K,
        "summary": {"llama_cpp": summary},
        "prompts": out_prompts,
    }
    out = os.path.join(out_dir, f"refs_{name}.json")
    size = refs_common.write_json(out, doc)
    print(f"{name}: wrote {out} ({size / 1024:.0f} KB, {positions} positions, "
          f"{time.time() - t0:.0f}s)", file=sys.stderr)
    if size >= 400 * 1024:
        raise SystemExit(f"{out} is {size} bytes; keep it under 400 KB")
    del model, llm
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", metavar="NAME=PATH",
                    help="GGUF path for a catalogue model (default $DSPARK_HOME/models/NAME.gguf)")
    ap.add_argument("--only", action="append", metavar="NAME", help="only these models")
    ap.add_argument("--out-dir", default=str(refs_common.TESTDATA_DIR))
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    paths = refs_common.parse_model_args(args.model)
    names = args.only or list(refs_common.MODEL_NAMES)
    summaries = {}
    for name in names:
        if name not in paths:
            raise SystemExit(f"unknown model {name}")
        if not paths[name].exists():
            print(f"{name}: {paths[name]} missing (run `dspark pull {name}` or pass "
                  f"--model {name}=PATH); skipped", file=sys.stderr)
            continue
        summaries[name] = make_one(name, paths[name], args.out_dir)

    print("llama.cpp vs transformers (f32 de-quantized GGUF), teacher-forced:")
    print(f"{'model':30s} {'pos':>5s} {'top1 agree':>10s} {'in ref top3':>11s} "
          f"{'max|e|/std':>10s} {'mean|e|/std':>11s} {'top20 max':>9s} {'top20 mean':>10s}")
    for name, s in summaries.items():
        print(f"{name:30s} {s['positions']:5d} {100 * s['top1_agree']:9.1f}% "
              f"{100 * s['top1_in_ref_top3']:10.1f}% {s['max_err_over_std']:10.4f} "
              f"{s['mean_err_over_std']:11.4f} {s['top20_max_err_over_std']:9.4f} "
              f"{s['top20_mean_err_over_std']:10.4f}")


if __name__ == "__main__":
    main()
