#!/usr/bin/env python3
"""Compares `dspark tokenize` with the reference tokenizers, id for id.

  .venv/bin/python tests/common/tokenizer/compare_with_references_test.py --dspark build/bin/dspark

- qwen3, llama3, mistral, gemma3 (shared data tokenizer.json) against HF
  `tokenizers` (Tokenizer.from_file, add_special_tokens=False): every text of
  reference.jsonl and the first 2,000 lines of each corpus file.
- The catalogue GGUFs that are pulled against llama.cpp's tokenizer
  (llama-cpp-python, vocab_only, add_bos=False, special=True): the reference
  texts and the first 500 lines of each corpus file.
- Round trips: decode(encode(x)) == x wherever the reference's own decode
  round-trips x.

dspark runs once per tokenizer and mode, all lines through stdin. Any
mismatch fails (exit 1) and is printed with its first differing position.
Prints SKIP and exits 0 when the venv lacks `tokenizers` or the data is absent.
"""
import argparse
import glob
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DATA = os.environ.get("DSPARK_DATA_DIR", os.path.join(ROOT, "..", "shared", "data"))
HF_TOKENIZERS = ["qwen3", "llama3", "mistral", "gemma3"]
GGUF_MODELS = ["smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "gemma-3-270m"]
# A GGUF's HF twin: the shared tokenizer.json with the same BPE, normalizer
# and pre-tokenizer. Where llama.cpp departs from HF (it skips Qwen's NFC
# normalizer, and forces "</s>" to a control token), dspark follows HF; such
# lines count as known llama.cpp divergences, not failures, but only when
# dspark then agrees with the twin exactly.
HF_TWIN = {"qwen2.5-coder-0.5b-instruct": "qwen3"}
MAX_REPORTED = 10  # mismatches printed per tokenizer and kind


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(0)


def model_cache_dir():
    home = os.environ.get("DSPARK_HOME")
    return os.path.join(home, "models") if home else os.path.expanduser("~/.cache/dspark/models")


def corpus_lines(limit):
    out = []
    for path in sorted(glob.glob(os.path.join(DATA, "corpus", "*.txt"))):
        with open(path, encoding="utf-8", newline="") as f:
            for i, line in enumerate(f):
                if i >= limit:
                    break
                out.append(line.rstrip("\n"))
    return out


def reference_texts(name):
    with open(os.path.join(DATA, "tokenizers", name, "reference.jsonl"), encoding="utf-8") as f:
        return [json.loads(l)["text"] for l in f if l.strip()]


def run_dspark(dspark, model, inputs, extra=()):
    """One dspark process; one JSON value per input line -> one per output line."""
    stdin = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in inputs)
    p = subprocess.run([dspark, "tokenize", "--model", model, *extra], input=stdin.encode("utf-8"),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"dspark tokenize {model} {' '.join(extra)} failed ({p.returncode}): "
                           f"{p.stderr.decode(errors='replace')}")
    # Only "\n" ends a line: the output may hold raw U+2028, U+0085, ...
    out = [json.loads(l) for l in p.stdout.decode("utf-8").split("\n")[:-1]]
    assert len(out) == len(inputs), f"{model}: {len(out)} output lines for {len(inputs)} inputs"
    return out


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


class Check:
    def __init__(self, name):
        self.name = name
        self.compared = 0
        self.mismatches = 0
        self.roundtrips = 0
        self.roundtrip_failures = 0
        self.divergences = 0  # llama.cpp differs, dspark matches the HF twin

    def ids(self, text, ours, theirs, reference, twin=None):
        self.compared += 1
        if ours == theirs:
            return
        if twin is not None and ours == twin:
            self.divergences += 1
            print(f"KNOWN {self.name}: {reference} differs from HF on {text[:80]!r}; dspark matches HF")
            return
        self.mismatches += 1
        if self.mismatches <= MAX_REPORTED:
            i = first_diff(ours, theirs)
            print(f"MISMATCH {self.name}: text {text[:120]!r}: first difference at position {i}: "
                  f"dspark {ours[i:i + 6]} vs {reference} {theirs[i:i + 6]} "
                  f"(lengths {len(ours)} vs {len(theirs)})")

    def roundtrip(self, text, decoded):
        self.roundtrips += 1
        if decoded == text:
            return
        self.roundtrip_failures += 1
        if self.roundtrip_failures <= MAX_REPORTED:
            i = first_diff(decoded, text)
            print(f"ROUNDTRIP {self.name}: text {text[:120]!r}: decode(encode(x)) differs at char "
                  f"{i}: {decoded[i:i + 20]!r} vs {text[i:i + 20]!r}")

    def ok(self):
        return self.mismatches == 0 and self.roundtrip_failures == 0

    def summary(self):
        known = f" ({self.divergences} known llama.cpp divergences)" if self.divergences else ""
        return (f"{self.name}: {self.compared} lines compared, {self.mismatches} id mismatches{known}; "
                f"{self.roundtrips} round trips, {self.roundtrip_failures} failures")


def check_hf(dspark, name, texts):
    from tokenizers import Tokenizer
    d = os.path.join(DATA, "tokenizers", name)
    hf = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    c = Check(name)
    ours = run_dspark(dspark, d, texts)
    theirs = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    for t, a, b in zip(texts, ours, theirs):
        c.ids(t, a, b, "HF")
    # Round trips where HF's own decode gives the text back.
    hf_decoded = hf.decode_batch(theirs, skip_special_tokens=False)
    rt = [(t, a) for t, a, h in zip(texts, ours, hf_decoded) if h == t]
    decoded = run_dspark(dspark, d, [a for _, a in rt], ["--decode"])
    for (t, _), s in zip(rt, decoded):
        c.roundtrip(t, s)
    return c


def check_gguf(dspark, name, path, texts):
    import llama_cpp
    llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    c = Check(name + " (GGUF)")
    ours = run_dspark(dspark, path, texts)
    theirs = [llm.tokenize(t.encode("utf-8"), add_bos=False, special=True) for t in texts]
    twin = [None] * len(texts)
    twin_ok = [True] * len(texts)
    if name in HF_TWIN:
        from tokenizers import Tokenizer
        hf = Tokenizer.from_file(os.path.join(DATA, "tokenizers", HF_TWIN[name], "tokenizer.json"))
        twin = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
        twin_ok = [d == t for d, t in zip(hf.decode_batch(twin, skip_special_tokens=False), texts)]
    for t, a, b, h in zip(texts, ours, theirs, twin):
        c.ids(t, a, b, "llama.cpp", h)
    rt = []
    for t, a, b, ok in zip(texts, ours, theirs, twin_ok):
        if ok and llm.detokenize(b, special=True).decode("utf-8", errors="replace") == t:
            rt.append((t, a))
    decoded = run_dspark(dspark, path, [a for _, a in rt], ["--decode"])
    for (t, _), s in zip(rt, decoded):
        c.roundtrip(t, s)
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dspark", required=True)
    a = ap.parse_args()
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        skip("the Python running this has no `tokenizers` (run tools/setup.sh test)")
    if not glob.glob(os.path.join(DATA, "corpus", "*.txt")):
        skip(f"no corpus in {DATA}/corpus")
    present = [n for n in HF_TOKENIZERS
               if os.path.exists(os.path.join(DATA, "tokenizers", n, "tokenizer.json"))]
    if not present:
        skip(f"no tokenizers in {DATA}/tokenizers")

    checks = []
    corpus_hf = corpus_lines(2000)
    for name in present:
        checks.append(check_hf(a.dspark, name, reference_texts(name) + corpus_hf))
        print(checks[-1].summary(), flush=True)

    try:
        import llama_cpp  # noqa: F401
        have_llama = True
    except ImportError:
        have_llama = False
        print("SKIP GGUF models: no llama_cpp in this Python")
    if have_llama:
        texts = reference_texts(present[0]) + corpus_lines(500)
        for model in GGUF_MODELS:
            path = os.path.join(model_cache_dir(), model + ".gguf")
            if not os.path.exists(path):
                print(f"SKIP {model}: not pulled ({path})")
                continue
            checks.append(check_gguf(a.dspark, model, path, texts))
            print(checks[-1].summary(), flush=True)

    failed = [c.name for c in checks if not c.ok()]
    total = sum(c.compared for c in checks)
    bad = sum(c.mismatches + c.roundtrip_failures for c in checks)
    print(f"SUMMARY: {len(checks)} tokenizers, {total} lines compared, {bad} failures"
          + (f" ({', '.join(failed)})" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
