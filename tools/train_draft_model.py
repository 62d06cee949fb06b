#!/usr/bin/env python3
"""Trains a small autoregressive draft model (the classic two-model pairing)
for a Llama-architecture target, on the same self-distillation data as the
DSpark drafter (`dspark distill`, tools/dspark_drafter/DATA.md).

    .venv/bin/python tools/train_draft_model.py \
        --target ~/.cache/dspark/models/smollm2-135m-instruct.gguf \
        --data ~/.cache/dspark/distill/smollm2-r2 \
        --out ~/.cache/dspark/draft-models/smollm2-135m-instruct-2l \
        --work-dir ~/.cache/dspark/train/draft-model-2l --layers 2 --max-minutes 20

The draft model is a Llama decoder with the target's width, heads and
vocabulary but only --layers layers. It shares the target's embedding and
(tied) LM head, frozen; its layers start as copies of target layers (by
default the first --layers, i.e. the engine's self-draft; copying the last
layer on top of early ones starts far worse: validation cross-entropy 67
against 18 for layers [0, 1] on SmolLM2) and its final norm as the
target's.
Loss: next-token cross-entropy against the target's own greedy answers (the
generated part of each distilled sequence; the prompt is context only), over
the full vocabulary, which is what a draft model's greedy token must match to
be accepted.

Output: a Hugging Face directory (config.json + model.safetensors in bf16,
embedding included, since the engine loads the draft model on its own), for
`--drafter draft-model --draft-model-path DIR` (dspark generate, bench spec,
eval-drafter). Resumable (--resume), seeded and wall-clock bounded like
train_drafter.py, whose data reader and target loading it shares.
"""

import argparse
import json
import math
import pathlib
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from dspark_drafter.model import RMSNorm, apply_rope, rope_cos_sin  # noqa: E402
from dspark_drafter.target import load_target, resolve_target_path  # noqa: E402
from train_drafter import DistillData, gguf_layer_weights, lr_at  # noqa: E402


class Layer(torch.nn.Module):
    """A Llama decoder layer in Hugging Face's parameter names and halves
    RoPE layout."""

    def __init__(self, meta):
        super().__init__()
        d, hd = meta.dim, meta.head_dim
        self.meta = meta
        lin = lambda i, o: torch.nn.Linear(i, o, bias=False)  # noqa: E731
        self.self_attn = torch.nn.Module()
        self.self_attn.q_proj = lin(d, meta.num_heads * hd)
        self.self_attn.k_proj = lin(d, meta.num_kv_heads * hd)
        self.self_attn.v_proj = lin(d, meta.num_kv_heads * hd)
        self.self_attn.o_proj = lin(meta.num_heads * hd, d)
        self.mlp = torch.nn.Module()
        self.mlp.gate_proj = lin(d, meta.ffn_dim)
        self.mlp.up_proj = lin(d, meta.ffn_dim)
        self.mlp.down_proj = lin(meta.ffn_dim, d)
        self.input_layernorm = RMSNorm(d, meta.rms_eps)
        self.post_attention_layernorm = RMSNorm(d, meta.rms_eps)

    def forward(self, x, cos, sin):
        m, a = self.meta, self.self_attn
        T = x.shape[0]
        h = self.input_layernorm(x)
        q = apply_rope(a.q_proj(h).view(T, m.num_heads, m.head_dim), cos, sin)
        k = apply_rope(a.k_proj(h).view(T, m.num_kv_heads, m.head_dim), cos, sin)
        v = a.v_proj(h).view(T, m.num_kv_heads, m.head_dim)
        g = m.num_heads // m.num_kv_heads
        k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
        o = F.scaled_dot_product_attention(q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1),
                                           is_causal=True)
        x = x + a.o_proj(o.transpose(0, 1).reshape(T, -1))
        h = self.post_attention_layernorm(x)
        return x + self.mlp.down_proj(F.silu(self.mlp.gate_proj(h)) * self.mlp.up_proj(h))


class DraftModel(torch.nn.Module):
    def __init__(self, meta, n_layers):
        super().__init__()
        self.meta = meta
        self.layers = torch.nn.ModuleList(Layer(meta) for _ in range(n_layers))
        self.norm = RMSNorm(meta.dim, meta.rms_eps)

    def forward(self, x, positions):
        """x [T, dim] (embedded tokens) -> normed hidden [T, dim]."""
        cos, sin = rope_cos_sin(positions, self.meta.head_dim, self.meta.rope_theta)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.norm(x)


def init_from_target(model, target_path, source_layers):
    meta = model.meta
    names = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
             "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
             "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
             "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}
    with torch.no_grad():
        for layer, src in zip(model.layers, source_layers):
            w = gguf_layer_weights(target_path, src, meta)
            params = dict(layer.named_parameters())
            for gguf_name, hf_name in names.items():
                params[hf_name + ".weight"].copy_(w[gguf_name].view_as(params[hf_name + ".weight"]))
        model.norm.weight.copy_(w["output_norm"].view(-1))


def hf_config(meta, n_layers):
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": meta.dim, "intermediate_size": meta.ffn_dim,
        "num_hidden_layers": n_layers, "num_attention_heads": meta.num_heads,
        "num_key_value_heads": meta.num_kv_heads, "head_dim": meta.head_dim,
        "vocab_size": meta.vocab_size, "rms_norm_eps": meta.rms_eps,
        "rope_parameters": {"rope_type": "default", "rope_theta": meta.rope_theta},
        # The target's context (the draft model runs beside it); 8192 when unknown.
        "max_position_embeddings": meta.context_length or 8192,
        "hidden_act": "silu", "tie_word_embeddings": True,
        "bos_token_id": meta.bos_id, "eos_token_id": meta.eos_id, "torch_dtype": "bfloat16",
    }


def save_hf(model, target, out, extra):
    out.mkdir(parents=True, exist_ok=True)
    tensors = {"model.embed_tokens.weight": target.embedding}
    for name, p in model.named_parameters():
        tensors["model." + name] = p.detach()
    tensors = {k: v.to(torch.bfloat16).contiguous() for k, v in tensors.items()}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    cfg = hf_config(model.meta, len(model.layers))
    cfg["dspark_draft_model"] = extra
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")


def sequence_loss(model, target, data, i, seq_len, rng):
    """Cross-entropy and greedy matches over the generated labels of one
    sequence (a window of at most seq_len tokens; positions stay absolute)."""
    e = data.index[i]
    toks = torch.from_numpy(data.seq_tokens(i).astype(np.int64))
    T, P = e["n_tokens"], e["prompt_tokens"]
    start = 0 if T <= seq_len else rng.randint(max(0, min(P, T - seq_len) - seq_len // 2),
                                               T - seq_len)
    ids = toks[start:start + seq_len]
    pos = torch.arange(start, start + len(ids))
    rows = torch.nonzero(pos[:-1] + 1 >= P).squeeze(-1)  # predict generated tokens only
    if len(rows) == 0:
        return None
    h = model(target.embed(ids), pos)[rows]
    logits = target.lm_head(h)
    labels = ids[rows + 1]
    ce = F.cross_entropy(logits, labels, reduction="sum")
    return ce, int((logits.argmax(-1) == labels).sum()), len(rows)


def evaluate(model, target, data, val_ids, seq_len):
    rng = random.Random(1234)
    ce = match = n = 0
    model.eval()
    with torch.no_grad():
        for i in val_ids:
            r = sequence_loss(model, target, data, i, seq_len, rng)
            if r is not None:
                ce, match, n = ce + r[0].item(), match + r[1], n + r[2]
    model.train()
    return {"ce": ce / max(1, n), "acc1": match / max(1, n)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", required=True, help="GGUF file or pulled catalogue name (Llama architecture)")
    ap.add_argument("--data", required=True, nargs="+", help="`dspark distill` output directories")
    ap.add_argument("--out", required=True, help="Hugging Face directory to write")
    ap.add_argument("--work-dir", required=True, help="resume state (keep out of git)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--init-layers", default="", help="target layers to copy (default: the first --layers)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--min-lr-ratio", type=float, default=0.1)
    ap.add_argument("--warmup-fraction", type=float, default=0.03)
    ap.add_argument("--steps", type=int, default=0, help="0: run until --max-minutes")
    ap.add_argument("--max-minutes", type=float, default=0)
    ap.add_argument("--seqs-per-step", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--val-fraction", type=float, default=0.02)
    ap.add_argument("--eval-every-minutes", type=float, default=10)
    ap.add_argument("--save-every-minutes", type=float, default=5)
    ap.add_argument("--log-every", type=int, default=10)
    args = ap.parse_args()
    if args.steps <= 0 and args.max_minutes <= 0:
        ap.error("give --steps or --max-minutes")
    if args.layers < 1:
        ap.error("--layers must be >= 1")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)

    target_path = resolve_target_path(args.target)
    if target_path.is_dir():
        sys.exit("train_draft_model.py: --target must be a GGUF file (Hugging Face targets: not yet)")
    target = load_target(target_path)
    meta = target.meta
    if meta.architecture != "llama":
        sys.exit(f"train_draft_model.py: target architecture '{meta.architecture}' is not llama")
    source = ([int(x) for x in args.init_layers.split(",")] if args.init_layers
              else list(range(args.layers)))
    if len(source) != args.layers or not all(0 <= s < meta.num_layers for s in source):
        sys.exit(f"--init-layers: need {args.layers} layers in 0..{meta.num_layers - 1}")

    data = DistillData(args.data)
    ids = list(range(len(data.index)))
    random.Random(args.seed).shuffle(ids)
    n_val = max(1, int(len(ids) * args.val_fraction))
    val_ids, train_ids = ids[:n_val], ids[n_val:]
    if not any(data.index[i]["n_tokens"] > data.index[i]["prompt_tokens"] for i in train_ids):
        sys.exit("train_draft_model.py: no training sequence has generated tokens")
    model = DraftModel(meta, args.layers)
    init_from_target(model, target_path, source)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)

    work = pathlib.Path(args.work_dir).expanduser()
    work.mkdir(parents=True, exist_ok=True)
    state_path = work / "train_state.pt"
    step, seen, elapsed, order, cursor = 0, 0, 0.0, [], 0
    rng = random.Random(args.seed + 1)
    if args.resume and state_path.exists():
        s = torch.load(state_path, weights_only=False)
        model.load_state_dict(s["model"])
        opt.load_state_dict(s["opt"])
        step, seen, elapsed, order, cursor = s["step"], s["seen"], s["elapsed"], s["order"], s["cursor"]
        rng.setstate(s["rng"])
        torch.set_rng_state(s["torch_rng"])
        print(f"[draft-model] resumed at step {step}, {seen} label tokens", file=sys.stderr)

    def save_state():
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "seen": seen, "elapsed": elapsed, "order": order, "cursor": cursor,
                    "rng": rng.getstate(), "torch_rng": torch.get_rng_state()}, state_path)

    v = evaluate(model, target, data, val_ids, args.seq_len)
    print(f"[draft-model] {args.layers} layers from target layers {source}; "
          f"{len(train_ids)} train / {len(val_ids)} val sequences; "
          f"start val ce {v['ce']:.3f} acc@1 {v['acc1']:.3f}", file=sys.stderr)
    t0 = time.time() - elapsed
    last_save = last_eval = time.time()
    window = [0.0, 0, 0]
    while True:
        elapsed = time.time() - t0
        progress = step / args.steps if args.steps > 0 else elapsed / (args.max_minutes * 60)
        if progress >= 1.0 or (args.max_minutes > 0 and elapsed >= args.max_minutes * 60):
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(progress, args)
        opt.zero_grad()
        total_ce, parts = 0.0, []
        for _ in range(args.seqs_per_step):
            if cursor >= len(order):
                order, cursor = list(train_ids), 0
                rng.shuffle(order)
            r = sequence_loss(model, target, data, order[cursor], args.seq_len, rng)
            cursor += 1
            if r is not None:
                parts.append(r)
        n = sum(p[2] for p in parts)
        if n == 0:
            continue
        loss = sum(p[0] for p in parts) / n
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        seen += n
        window = [window[0] + loss.item() * n, window[1] + sum(p[1] for p in parts), window[2] + n]
        if step % args.log_every == 0:
            el = time.time() - t0
            eta = ((args.max_minutes * 60 - el) if args.steps <= 0
                   else el / step * (args.steps - step))
            print(f"[draft-model] step {step} ce {window[0] / window[2]:.3f} "
                  f"acc@1 {window[1] / window[2]:.3f} lr {lr_at(progress, args):.2e} | "
                  f"{seen / max(1e-9, el):.0f} label tokens/s, {seen} seen | "
                  f"{el / 60:.1f} min, ETA {max(0, eta) / 60:.1f} min", file=sys.stderr)
            window = [0.0, 0, 0]
        if time.time() - last_eval >= args.eval_every_minutes * 60:
            v = evaluate(model, target, data, val_ids, args.seq_len)
            print(f"[draft-model] val at {seen} label tokens: ce {v['ce']:.3f} acc@1 {v['acc1']:.3f}",
                  file=sys.stderr)
            last_eval = time.time()
        if time.time() - last_save >= args.save_every_minutes * 60:
            elapsed = time.time() - t0
            save_state()
            last_save = time.time()

    elapsed = time.time() - t0
    save_state()
    v = evaluate(model, target, data, val_ids, args.seq_len)
    print(f"[draft-model] final val: ce {v['ce']:.3f} acc@1 {v['acc1']:.3f}", file=sys.stderr)
    save_hf(model, target, pathlib.Path(args.out).expanduser(),
            {"target_model": meta.name or target_path.stem, "init_layers": source, "steps": step,
             "label_tokens": seen, "minutes": round(elapsed / 60, 1), "val_ce": round(v["ce"], 4),
             "val_acc1": round(v["acc1"], 4)})
    print(f"[draft-model] wrote {args.out} after {step} steps, {seen} label tokens, "
          f"{elapsed / 60:.1f} min", file=sys.stderr)


if __name__ == "__main__":
    main()
