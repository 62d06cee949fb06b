#!/usr/bin/env python3
"""Writes a random-weight DSpark drafter checkpoint (config.json +
model.safetensors) shaped for a target (GGUF file or Hugging Face directory):
the "random-weight DSpark drafter" the lossless tests speculate with. Its
drafts are poor but well formed (finite logits, confidences spread around
0.5, a Markov head that visibly changes the logits), which is all a
losslessness test needs.

  .venv/bin/python tools/make_random_drafter.py \
      --target ~/.cache/dspark/models/smollm2-135m-instruct.gguf --out /tmp/dspark-random

Shapes follow the target: hidden_size = the target dim, heads / kv heads /
head_dim / intermediate size / rms eps / rope theta as the target's layers.
mask_token_id: a real token the target never emits in text (target.py's
pick_mask_token: the first UNUSED token, else the padding token, else the last
control token that is not BOS/EOS, else the last id).

Init (seeded): transformer linears N(0, 0.02) (as Hugging Face initialises),
norms 1, fc N(0, 0.02); markov.a N(0, 1/hidden) and markov.b N(0, 1/r), so the
correction m is about as large as the target's embeddings; confidence.weight
N(0, 0.02), bias 0.
"""

import argparse
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from dspark_drafter import (DSparkConfig, DSparkDrafter, default_target_layers,  # noqa: E402
                           load_meta, pick_mask_token)


def build_config(meta, layers, markov_rank, block_size, target_layers, draft_vocab):
    return DSparkConfig(
        hidden_size=meta.dim,
        intermediate_size=meta.ffn_dim,
        num_hidden_layers=layers,
        num_attention_heads=meta.num_heads,
        num_key_value_heads=meta.num_kv_heads,
        head_dim=meta.head_dim,
        vocab_size=meta.vocab_size,
        mask_token_id=pick_mask_token(meta),
        target_layer_ids=target_layers or default_target_layers(meta.num_layers),
        target_hidden_size=meta.dim,
        markov_rank=markov_rank,
        rms_norm_eps=meta.rms_eps,
        rope_theta=meta.rope_theta,
        block_size=block_size,
        draft_vocab_size=draft_vocab or None,
        target_model=meta.name or pathlib.Path(meta.path).stem,
    )


def random_drafter(config, seed):
    torch.manual_seed(seed)
    model = DSparkDrafter(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif name == "markov.a.weight":
                p.normal_(0.0, config.hidden_size ** -0.5)
            elif name == "markov.b.weight":
                p.normal_(0.0, config.markov_rank ** -0.5)
            elif name == "confidence.bias":
                p.zero_()
            else:
                p.normal_(0.0, 0.02)
        if config.draft_vocab_size:
            # A seeded subset of the target vocabulary, ascending, always
            # holding the mask token; stored as EAGLE-3 offsets.
            g = torch.Generator().manual_seed(seed + 1)
            others = torch.randperm(config.vocab_size, generator=g)
            others = others[others != config.mask_token_id][: config.draft_vocab_size - 1]
            ids = torch.sort(torch.cat([others, torch.tensor([config.mask_token_id])])).values
            model.d2t.copy_(ids - torch.arange(config.draft_vocab_size))
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", required=True,
                    help="target: GGUF file, Hugging Face model directory or pulled catalogue name")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--layers", type=int, default=1, help="drafter layers (default 1)")
    ap.add_argument("--markov-rank", type=int, default=32, help="r (default 32)")
    ap.add_argument("--block-size", type=int, default=7, help="B (default 7)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target-layers", default="",
                    help="comma-separated target layer ids (default: early, middle, late)")
    ap.add_argument("--draft-vocab", type=int, default=0,
                    help="draft vocabulary size with a random d2t (default 0: none)")
    ap.add_argument("--dtype", choices=("f32", "bf16"), default="f32")
    args = ap.parse_args(argv)

    meta = load_meta(args.target)
    target_layers = [int(x) for x in args.target_layers.split(",") if x.strip()]
    if any(not 0 <= x < meta.num_layers for x in target_layers):
        raise SystemExit(f"--target-layers must lie in [0, {meta.num_layers})")
    config = build_config(meta, args.layers, args.markov_rank, args.block_size, target_layers,
                          args.draft_vocab)
    model = random_drafter(config, args.seed)
    model.save_pretrained(args.out, torch.bfloat16 if args.dtype == "bf16" else torch.float32)
    print(f"wrote {args.out}: {config.num_hidden_layers} layer(s), hidden {config.hidden_size}, "
          f"target layers {config.target_layer_ids}, mask token {config.mask_token_id}")


if __name__ == "__main__":
    main()
