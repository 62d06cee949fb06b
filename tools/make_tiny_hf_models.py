#!/usr/bin/env python3
"""Tiny random-weight Hugging Face models of every architecture the engine
supports, with transformers' own logits, for
tests/common/engine/model/hf_tiny_test.cc.

  .venv/bin/python tools/make_tiny_hf_models.py [--out-dir DIR]

Each model is built by transformers' own model class from a small config
(hidden 64, 2 layers, 4 heads of 16, 2 KV heads, vocabulary 256, intermediate
128, sliding window 8, rope bases off the 10000 default so a loader that misses
them fails), its weights re-drawn from a seeded generator so every
path carries signal (biases and norm weights non-trivial, logits of unit-ish
scale, soft-caps that bite), and saved with save_pretrained (safetensors, f32)
to testdata/tiny/<name>/. Configs are written the transformers 5.x way
(`rope_parameters`, `layer_types`) because that is what save_pretrained
produces today.

  llama          llama3 rope scaling, tied head
  mistral        sliding window on every layer, untied head
  qwen2          q/k/v biases, tied head
  qwen3          q/k RMSNorm
  gemma2         attention and final soft-capping, sliding/full alternating,
                 query_pre_attn_scalar != head_dim
  gemma3         q/k norm, sliding/full pattern, separate local rope base,
                 linear rope scaling on full-attention layers
  qwen3_sharded  qwen3's weights in several shards + model.safetensors.index.json
  llama_bf16     llama's weights stored as bf16

reference.json in each directory: the prompt (8 random ids), then 16 greedy
decode steps with transformers (use_cache on, eager attention) feeding each
argmax back; `tokens` holds the 24 ids fed and `logits` the full [24, 256]
logits after each one. For llama_bf16 the reference is transformers in f32
over the bf16-rounded weights (bf16 -> f32 is exact), fed the f32 llama's
tokens; `f32_logits_source` names the f32 model whose logits the bf16 copy is
also compared against, loosely.
"""

import argparse
import os
import pathlib
import shutil
import sys

import refs_common

refs_common.offline()

import torch  # noqa: E402

SEED = 20240611
HIDDEN = 64
LAYERS = 2
HEADS = 4
KV_HEADS = 2
HEAD_DIM = 16
VOCAB = 256
INTERMEDIATE = 128
WINDOW = 8
PROMPT_LEN = 8
DECODE_STEPS = 16

COMMON = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
              num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM, vocab_size=VOCAB,
              intermediate_size=INTERMEDIATE, max_position_embeddings=256, rms_norm_eps=1e-6,
              bos_token_id=1, eos_token_id=2, pad_token_id=0)


def configs():
    import transformers as tf
    return {
        "llama": tf.LlamaConfig(
            **COMMON, tie_word_embeddings=True,
            rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                             "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             # 64 puts this head_dim's 8 frequencies in all three
                             # llama3 bands (kept, interpolated, divided).
                             "original_max_position_embeddings": 64}),
        "mistral": tf.MistralConfig(
            **COMMON, tie_word_embeddings=False, sliding_window=WINDOW,
            rope_parameters={"rope_type": "default", "rope_theta": 100000.0}),
        "qwen2": tf.Qwen2Config(
            **COMMON, tie_word_embeddings=True, use_sliding_window=False,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
        "qwen3": tf.Qwen3Config(
            **COMMON, tie_word_embeddings=True, use_sliding_window=False, attention_bias=False,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
        "gemma2": tf.Gemma2Config(
            **COMMON, tie_word_embeddings=True, sliding_window=WINDOW,
            layer_types=["sliding_attention", "full_attention"],
            query_pre_attn_scalar=32, attn_logit_softcapping=3.0, final_logit_softcapping=5.0,
            rope_parameters={"rope_type": "default", "rope_theta": 20000.0}),
        "gemma3": tf.Gemma3TextConfig(
            **COMMON, tie_word_embeddings=True, sliding_window=WINDOW,
            layer_types=["sliding_attention", "full_attention"], query_pre_attn_scalar=32,
            rope_parameters={
                "sliding_attention": {"rope_type": "default", "rope_theta": 1000.0},
                "full_attention": {"rope_type": "linear", "rope_theta": 100000.0,
                                   "factor": 4.0},
            }),
    }


def randomize(model, arch, gen):
    """Re-draws every parameter so each one matters: linear weights keep unit
    variance through the layer, biases and norm weights are far from their
    neutral values."""
    gemma = arch.startswith("gemma")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("embed_tokens.weight"):
                p.copy_(torch.randn(p.shape, generator=gen) * (0.5 if not gemma else 0.15))
            elif "norm" in name:
                # Gemma stores w - 1 (applied as 1 + w); the others store w.
                offset = 1.0 if gemma else 0.0
                if name == "model.norm.weight":
                    # Signs mixed: with a tied head a positive final norm makes
                    # every token predict itself, and greedy decoding would
                    # just repeat one id.
                    p.copy_(torch.randn(p.shape, generator=gen) - offset)
                else:
                    p.copy_(1.0 - offset + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            elif p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)
            else:
                raise SystemExit(f"{arch}: no rule for parameter {name} {tuple(p.shape)}")


def greedy_reference(model, prompt):
    """Prompt in one pass, then DECODE_STEPS single-token steps on the KV
    cache; returns (tokens fed [24], logits [24, vocab])."""
    from transformers import DynamicCache
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        out = model(torch.tensor([prompt]), past_key_values=cache, use_cache=True)
        rows = [out.logits[0]]
        tokens = list(prompt)
        for _ in range(DECODE_STEPS):
            nxt = int(rows[-1][-1].argmax())
            tokens.append(nxt)
            out = model(torch.tensor([[nxt]]), past_key_values=out.past_key_values,
                        use_cache=True)
            rows.append(out.logits[0])
    return tokens, torch.cat(rows).float()


def forced_logits(model, tokens):
    with torch.no_grad():
        return model(torch.tensor([tokens]), use_cache=False).logits[0].float()


def write_reference(path, arch, tokens, logits, extra=None):
    doc = {
        "architecture": arch,
        "prompt_len": PROMPT_LEN,
        "tokens": tokens,
        "vocab_size": int(logits.shape[1]),
        # 7 significant digits: f32 precision, far below the test's 1e-4.
        "logits": [[float(f"{v:.7g}") for v in row.tolist()] for row in logits],
    }
    doc.update(extra or {})
    refs_common.write_json(path, doc)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default=str(refs_common.TESTDATA_DIR / "tiny"))
    args = ap.parse_args()
    from transformers import AutoModelForCausalLM

    out_dir = pathlib.Path(args.out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    torch.set_num_threads(1)
    prompt_gen = torch.Generator().manual_seed(SEED)
    prompt = [int(i) for i in torch.randint(3, VOCAB, (PROMPT_LEN,), generator=prompt_gen)]

    for i, (arch, config) in enumerate(configs().items()):
        torch.manual_seed(SEED + i)
        config._attn_implementation = "eager"
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32,
                                                 attn_implementation="eager")
        model.eval()
        randomize(model, arch, torch.Generator().manual_seed(SEED + 100 + i))
        if getattr(model.config, "tie_word_embeddings", False):
            model.tie_weights()
        tokens, logits = greedy_reference(model, prompt)
        # The cached decode must agree with one uncached pass; if not, the
        # reference itself is suspect.
        check = (forced_logits(model, tokens) - logits).abs().max().item()
        scale = logits.abs().max().item()
        if check > 1e-5 * max(scale, 1.0):
            raise SystemExit(f"{arch}: cached vs uncached logits differ by {check}")
        d = out_dir / arch
        model.save_pretrained(d, safe_serialization=True)
        write_reference(d / "reference.json", arch, tokens, logits)
        print(f"{arch:14s} logits max |x| {scale:7.3f} std {logits.std().item():6.3f} "
              f"greedy {tokens[PROMPT_LEN:]}", file=sys.stderr)

        if arch == "qwen3":
            ds = out_dir / "qwen3_sharded"
            model.save_pretrained(ds, safe_serialization=True, max_shard_size="150KB")
            if not (ds / "model.safetensors.index.json").exists():
                raise SystemExit("qwen3_sharded: save_pretrained wrote no index")
            write_reference(ds / "reference.json", arch, tokens, logits)
        if arch == "llama":
            db = out_dir / "llama_bf16"
            model.to(torch.bfloat16).save_pretrained(db, safe_serialization=True)
            bf16 = AutoModelForCausalLM.from_pretrained(db, dtype=torch.float32,
                                                        attn_implementation="eager")
            bf16.eval()
            write_reference(db / "reference.json", arch, tokens, forced_logits(bf16, tokens),
                            {"f32_logits_source": "llama"})

    total = 0
    for root, _, files in os.walk(out_dir):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    print(f"wrote {out_dir} ({total / 1024:.0f} KB)", file=sys.stderr)


if __name__ == "__main__":
    main()
