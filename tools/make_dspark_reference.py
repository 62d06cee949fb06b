#!/usr/bin/env python3
"""Writes a reference fixture for the C++ DsparkDrafter: the PyTorch drafter's
greedy block drafts (logits, confidences, tokens) for random context features.

  .venv/bin/python tools/make_dspark_reference.py --target T.gguf --drafter DIR --out OUT

Features are random (seeded, N(0, 2^2)): the drafter only consumes them through
fc, so their origin does not matter for checking the arithmetic. Output, in OUT:
  reference.json   {"block_size", "head_vocab", "feature_dim", "cases": [
                     {"context_len", "last_token", "tokens" [B], "confidences" [B],
                      "top2_gap" [B] (top-1 minus top-2 logit: how safe the argmax is),
                      "features": FILE, "logits": FILE}]}
  case<i>_features.f32  [context_len, feature_dim] little-endian f32
  case<i>_logits.f32    [B, head_vocab] little-endian f32
"""

import argparse
import json
import pathlib
import sys

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from dspark_drafter import DSparkDrafter, GgufTarget  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", required=True, help="target GGUF file")
    ap.add_argument("--drafter", required=True, help="drafter checkpoint directory")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--context-lens", default="13,5,1",
                    help="comma-separated context lengths, one case each (default 13,5,1)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    torch.set_num_threads(max(1, torch.get_num_threads()))
    target = GgufTarget.load(args.target)
    drafter = DSparkDrafter.from_pretrained(args.drafter)
    c = drafter.config
    feature_dim = len(c.target_layer_ids) * c.target_hidden_size
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(args.seed)
    cases = []
    for i, L in enumerate(int(x) for x in args.context_lens.split(",")):
        features = torch.randn(L, feature_dim, generator=g) * 2.0
        last_token = int(torch.randint(0, c.vocab_size, (1,), generator=g))
        r = drafter.draft_block(features, last_token, target)
        top2 = torch.topk(r.logits, 2, dim=-1).values
        features_file, logits_file = f"case{i}_features.f32", f"case{i}_logits.f32"
        features.numpy().astype("<f4").tofile(out / features_file)
        r.logits.numpy().astype("<f4").tofile(out / logits_file)
        cases.append({
            "context_len": L,
            "last_token": last_token,
            "tokens": [int(t) for t in r.tokens],
            "confidences": [float(x) for x in r.confidences.numpy().astype(np.float32)],
            "top2_gap": [float(x) for x in (top2[:, 0] - top2[:, 1])],
            "features": features_file,
            "logits": logits_file,
        })
    ref = {
        "block_size": c.block_size,
        "head_vocab": int(r.logits.shape[1]),
        "feature_dim": feature_dim,
        "cases": cases,
    }
    (out / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    print(f"wrote {out}/reference.json: {len(cases)} cases, tokens {[k['tokens'] for k in cases]}")


if __name__ == "__main__":
    main()
