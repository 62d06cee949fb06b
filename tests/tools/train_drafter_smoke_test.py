#!/usr/bin/env python3
"""Smoke test of the drafter-training pipeline, every stage for a few steps
on a tiny config: prompts from the corpus (tools/make_distill_prompts.py),
self-distillation through the engine (`dspark distill`, 2 prompts x 8 tokens),
training (tools/train_drafter.py, 3 steps, small draft vocabulary), loading
the checkpoint in PyTorch, and speculating with it in the C++ engine, whose
output must equal the target alone (lossless); then the same for the small
autoregressive draft model (tools/train_draft_model.py, 1 layer, 2 steps). Skips (exit 0, "SKIP:") without
the SmolLM2 GGUF or torch.

    .venv/bin/python tests/tools/train_drafter_smoke_test.py --dspark build/bin/dspark
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = "smollm2-135m-instruct"


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(0)


def run(cmd, **kw):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if r.returncode != 0:
        print(r.stdout[-4000:], r.stderr[-4000:], sep="\n")
        raise SystemExit(f"FAILED ({r.returncode}): {cmd[0]} {cmd[1] if len(cmd) > 1 else ''}")
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dspark", required=True)
    args = ap.parse_args()
    home = os.environ.get("DSPARK_HOME")
    models = pathlib.Path(home) / "models" if home else pathlib.Path.home() / ".cache/dspark/models"
    gguf = models / f"{MODEL}.gguf"
    if not gguf.exists():
        skip(f"{gguf} not found (dspark pull {MODEL})")
    try:
        import torch  # noqa: F401
        import safetensors  # noqa: F401
    except ImportError:
        skip("no torch/safetensors in this Python (run tools/setup.sh)")
    py = sys.executable

    with tempfile.TemporaryDirectory(prefix="dspark-train-smoke-") as tmp:
        tmp = pathlib.Path(tmp)
        prompts, data, out = tmp / "prompts.jsonl", tmp / "data", tmp / "drafter"
        run([py, ROOT / "tools/make_distill_prompts.py", "-n", 2, "--seed", 0, "--out", prompts])
        assert len(prompts.read_text().splitlines()) == 2
        run([args.dspark, "distill", "--model", gguf, "--prompts", prompts, "--out", data,
             "--layers", "1,15,28", "--max-tokens", 8, "--concurrency", 2, "--threads", 1])
        index = [json.loads(l) for l in (data / "index.jsonl").read_text().splitlines()]
        assert len(index) == 2, index
        row = 3 * 576
        n_tokens = sum(e["n_tokens"] for e in index)
        n_features = sum(e["n_features"] for e in index)
        assert all(e["n_features"] == e["n_tokens"] - 1 for e in index), index
        assert all(0 < e["n_tokens"] - e["prompt_tokens"] <= 8 for e in index), index
        assert (data / "tokens.bin").stat().st_size == 4 * n_tokens
        assert (data / "features.bin").stat().st_size == 2 * row * n_features

        # A narrower FFN than the target's starts from its strongest channels.
        trained = run([py, ROOT / "tools/train_drafter.py", "--target", gguf, "--data", data,
                       "--out", out, "--work-dir", tmp / "work", "--steps", 3,
                       "--seqs-per-step", 2, "--anchors", 2, "--draft-vocab", 512,
                       "--intermediate", 256, "--threads", 1, "--log-every", 1])
        assert "FFN 1536 -> 256 channels" in trained.stderr, trained.stderr[-2000:]
        assert "random init" not in trained.stderr, trained.stderr[-2000:]
        summary = json.loads((tmp / "work/summary.json").read_text())
        assert summary["steps"] == 3, summary
        # Resuming a finished run adds nothing and still writes the drafter.
        run([py, ROOT / "tools/train_drafter.py", "--target", gguf, "--data", data, "--out", out,
             "--work-dir", tmp / "work", "--steps", 3, "--threads", 1, "--resume"])

        sys.path.insert(0, str(ROOT / "tools"))
        from dspark_drafter.model import DSparkDrafter
        cfg = json.loads((out / "config.json").read_text())
        assert cfg["target_layer_ids"] == [1, 15, 28] and cfg["draft_vocab_size"] == 512, cfg
        assert cfg["intermediate_size"] == 256, cfg
        DSparkDrafter.from_pretrained(out)

        # Lossless in the engine: the same ids with and without the drafter,
        # every drafted position verified (fixed verify length 7).
        toks = (data / "tokens.bin").read_bytes()
        import struct
        e = index[0]
        ids = struct.unpack_from(f"<{e['prompt_tokens']}i", toks, 4 * e["token_offset"])
        common = [args.dspark, "generate", "--model", gguf, "--prompt-ids", ",".join(map(str, ids)),
                  "--max-tokens", 16, "--print-ids", "--threads", 1]
        plain = run(common + ["--drafter", "none"]).stdout.split()
        spec = run(common + ["--drafter", "dspark", "--drafter-path", out, "--scheduler", "fixed",
                             "--verify-len", 7])
        assert spec.stdout.split() == plain, (spec.stdout, plain)
        assert "drafter dspark" in spec.stderr, spec.stderr

        draft_model = tmp / "draft-model"
        run([py, ROOT / "tools/train_draft_model.py", "--target", gguf, "--data", data,
             "--out", draft_model, "--work-dir", tmp / "work-dm", "--layers", 1, "--steps", 2,
             "--seqs-per-step", 1, "--threads", 1, "--log-every", 1])
        cfg = json.loads((draft_model / "config.json").read_text())
        assert cfg["num_hidden_layers"] == 1 and cfg["dspark_draft_model"]["steps"] == 2, cfg
        spec = run(common + ["--drafter", "draft-model", "--drafter-path", draft_model,
                             "--scheduler", "fixed", "--verify-len", 3])
        assert spec.stdout.split() == plain, (spec.stdout, plain)
        assert "drafter draft-model" in spec.stderr, spec.stderr
    print("OK")


if __name__ == "__main__":
    main()
