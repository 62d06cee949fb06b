#!/usr/bin/env python3
"""Trains a DSpark block drafter on self-distillation data from `dspark distill`.

    build/bin/dspark distill --model smollm2-135m-instruct --prompts P.jsonl \
        --out ~/.cache/dspark/distill/smollm2 --layers 1,15,27
    .venv/bin/python tools/train_drafter.py \
        --target ~/.cache/dspark/models/smollm2-135m-instruct.gguf \
        --data ~/.cache/dspark/distill/smollm2 --out models/drafters/smollm2-135m-instruct \
        --work-dir ~/.cache/dspark/train/smollm2 --max-minutes 45

--target is what `dspark distill --model` took: a GGUF file, a Hugging Face
model directory (config.json + safetensors; read without transformers,
tools/dspark_drafter/hf_target.py) or a pulled catalogue name.

Data: tools/dspark_drafter/DATA.md (tokens.bin, features.bin, index.jsonl,
meta.json). Model and checkpoint: tools/dspark_drafter/README.md.

What one step does. A step takes --seqs-per-step sequences; in each it samples
--anchors block anchors L in the generated part (L >= prompt length, so the
context is at least the prompt, as in serving). The block is [token L, MASK x
(B-1)] over the context tokens < L (their target features), and its B slots
are labelled with tokens L+1..L+B (the target's own greedy continuation). The
sequence's context K/V is computed once and every anchor's block attends to
it through a mask (key position < L), instead of a copy of the context per
anchor; the math is model.py's DSparkDrafter.forward (checked at start-up).

Losses.
- Block cross-entropy over the draft vocabulary, position k (1-based) weighted
  w_k = exp(-(k - 1) / gamma), normalised to sum to 1 over the block. This is
  the exponentially decaying position weighting of DFlash ("DFlash: Block
  Diffusion for Flash Speculative Decoding", Chen, Liang, Liu 2026,
  arXiv:2602.06036), the parallel block drafter DSpark's drafter follows: a
  later position only counts when every earlier one was accepted, so early
  positions deserve more of the gradient. Default gamma = 4 for B = 7, chosen
  here (DFlash scales gamma with the block size; its exact table was not
  re-checked for this value).
- Markov head: trained teacher-forced (prev id of slot i = the true token
  L + i), which is exactly the inference input whenever the earlier drafts
  were accepted, the only case in which slot i's draft is verified.
- Confidence head: BCE against acceptance labels. With greedy self-distilled
  data the target's verdict on slot i is "the drafter's greedy token equals
  the target's token", so label_i = [argmax logits_i == token L+1+i] (logits
  detached), trained only where every earlier slot matched (the head predicts
  P(accepted | earlier accepted)). The head reads z = hfinal + markov detached,
  so it is a probe that does not pull on the drafter itself.

Draft vocabulary (EAGLE-3 style d2t): the --draft-vocab most frequent target
tokens in the data's generated text. The LM head over SmolLM2's 49k rows would
otherwise dominate both training and CPU drafting; labels outside it are
ignored by the CE loss and are never accepted (confidence label 0).

Resumable (--resume, from --work-dir/train_state.pt, saved every
--save-every-minutes and at the end), seeded, and wall-clock bounded
(--max-minutes: saves and writes the drafter, then exits 0). The learning rate
follows a cosine over --steps, or over --max-minutes when --steps is 0.

Device (--device cpu|cuda). The drafter, the target's embedding and head, the
draft-vocabulary rows and every per-sequence tensor live on the device; the
memory-mapped data is read on the CPU and copied over per sequence. The
drafter is initialised on the CPU before it moves, so a seed gives the same
start on either device. train_state.pt holds CPU tensors and loads onto
whichever device the resuming run uses. The CUDA path is written for a GPU
machine but tested here only on CPU (README.md).
"""

import argparse
import json
import math
import os
import pathlib
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from dspark_drafter.model import DSparkConfig, DSparkDrafter, apply_rope, rope_cos_sin  # noqa: E402
from dspark_drafter.hf_target import HfCheckpoint  # noqa: E402
from dspark_drafter.target import load_target, pick_mask_token  # noqa: E402

import gguf  # noqa: E402


# ---- data -------------------------------------------------------------------

class DistillData:
    """One or more `dspark distill` output directories (same target layers),
    memory-mapped, as one list of sequences."""

    def __init__(self, directories):
        if isinstance(directories, (str, pathlib.Path)):
            directories = [directories]
        self.index, self.tokens, self.features = [], [], []
        self.layers = None
        for part, directory in enumerate(directories):
            d = pathlib.Path(directory).expanduser()
            meta = json.loads((d / "meta.json").read_text())
            layers, dim = list(meta["target_layer_ids"]), int(meta["target_hidden_size"])
            if self.layers is None:
                self.meta, self.layers, self.dim = meta, layers, dim
                self.row = len(layers) * dim
            elif (layers, dim) != (self.layers, self.dim):
                raise ValueError(f"{d}: layers {layers} / dim {dim} differ from "
                                 f"{self.layers} / {self.dim} of {directories[0]}")
            index = [dict(json.loads(l), part=part)
                     for l in (d / "index.jsonl").read_text().splitlines() if l]
            tokens = np.memmap(d / "tokens.bin", dtype=np.int32, mode="r")
            n_rows = os.path.getsize(d / "features.bin") // (2 * self.row)
            features = np.memmap(d / "features.bin", dtype=np.float16, mode="r",
                                 shape=(n_rows, self.row))
            last = index[-1]
            assert last["token_offset"] + last["n_tokens"] <= tokens.shape[0], f"{d}: tokens.bin short"
            assert last["feature_offset"] + last["n_features"] <= n_rows, f"{d}: features.bin short"
            self.index += index
            self.tokens.append(tokens)
            self.features.append(features)
        self.feature_rows = sum(f.shape[0] for f in self.features)

    def seq_tokens(self, i):
        e = self.index[i]
        return np.asarray(self.tokens[e["part"]][e["token_offset"]:e["token_offset"] + e["n_tokens"]])

    def seq_features(self, i, n):
        """The first n feature rows of sequence i, f32 [n, row]."""
        e = self.index[i]
        a = e["feature_offset"]
        return torch.from_numpy(np.asarray(self.features[e["part"]][a:a + n], dtype=np.float32))

    def generated_counts(self, vocab):
        counts = np.zeros(vocab, dtype=np.int64)
        prompt_counts = np.zeros(vocab, dtype=np.int64)
        for i, e in enumerate(self.index):
            t = self.seq_tokens(i)
            np.add.at(counts, t[e["prompt_tokens"]:], 1)
            np.add.at(prompt_counts, t[:e["prompt_tokens"]], 1)
        return counts, prompt_counts


def build_draft_vocab(data, vocab, size):
    """Target ids of the draft vocabulary, ascending: the most frequent
    generated tokens, then prompt tokens, then the lowest unused ids."""
    counts, prompt_counts = data.generated_counts(vocab)
    order = np.lexsort((-prompt_counts, -counts))  # by generated count, then prompt count
    ids = np.sort(order[:size])
    covered = counts[ids].sum() / max(1, counts.sum())
    return torch.from_numpy(ids.astype(np.int64)), float(covered)


# ---- target layer init -----------------------------------------------------

def _dequant(t):
    rows = int(np.prod(t.shape[1:])) if len(t.shape) > 1 else 1
    v = gguf.quants.dequantize(t.data, t.tensor_type)
    return torch.from_numpy(np.array(v, dtype=np.float32, copy=True).reshape(rows, int(t.shape[0])))


def _unpermute_rope(w, n_head):
    """llama.cpp's convert permutes Llama q/k rows from Hugging Face's halves
    layout to interleaved pairs; undo it (the drafter uses halves)."""
    out, inp = w.shape
    return w.reshape(n_head, out // n_head // 2, 2, inp).transpose(1, 2).reshape(out, inp)


def gguf_layer_weights(gguf_path, layer, meta):
    """Layer `layer` of a GGUF target and its final norm as {GGUF module name
    (attn_q, ..., ffn_norm, output_norm): f32 tensor}, q/k rows in the halves
    layout."""
    reader = gguf.GGUFReader(str(gguf_path))
    t = {x.name: x for x in reader.tensors}
    p = f"blk.{layer}."
    out = {n[len(p):-len(".weight")]: _dequant(x) for n, x in t.items()
           if n.startswith(p) and n.endswith(".weight")}
    if "output_norm.weight" in t:
        out["output_norm"] = _dequant(t["output_norm.weight"])
    if meta.architecture == "llama":
        for name, heads in (("attn_q", meta.num_heads), ("attn_k", meta.num_kv_heads)):
            if name in out:
                out[name] = _unpermute_rope(out[name], heads)
    return out


def init_from_target(model, target_path, layer, meta):
    """Copies target layer `layer` into every drafter layer and the target's
    final norm into `norm`; fc starts as the identity on the last feature
    slice. The target is a GGUF file or a Hugging Face directory (its layer
    read in GGUF naming, HfCheckpoint.layer_weights). q_norm/k_norm are
    copied when the target has them (Qwen3, Gemma 3) and otherwise stay 1.
    A narrower drafter FFN keeps the target's strongest channels. A target
    whose layer lacks a Llama-family tensor or does not fit the drafter's
    shapes leaves the whole random init in place."""
    path = pathlib.Path(target_path)
    w = (HfCheckpoint(path).layer_weights(layer) if path.is_dir()
         else gguf_layer_weights(path, layer, meta))
    need = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down",
            "attn_norm", "ffn_norm", "output_norm"]
    if any(n not in w for n in need):
        print(f"[train] target layer {layer} not found; random init", file=sys.stderr)
        return
    # A narrower FFN (--intermediate) keeps the target's strongest channels:
    # those with the largest |gate_i| * |up_i| * |down_:,i| (structured pruning).
    inter = model.config.intermediate_size
    if inter < w["ffn_gate"].shape[0]:
        score = (w["ffn_gate"].norm(dim=1) * w["ffn_up"].norm(dim=1) *
                 w["ffn_down"].norm(dim=0))
        keep = torch.sort(torch.topk(score, inter).indices).values
        w["ffn_gate"], w["ffn_up"] = w["ffn_gate"][keep], w["ffn_up"][keep]
        w["ffn_down"] = w["ffn_down"][:, keep]
        print(f"[train] FFN {score.numel()} -> {inter} channels (the target's strongest)",
              file=sys.stderr)
    pairs = []  # (drafter parameter, target tensor)
    for L in model.layers:
        a = L.self_attn
        pairs += [(a.q_proj.weight, w["attn_q"]), (a.k_proj.weight, w["attn_k"]),
                  (a.v_proj.weight, w["attn_v"]), (a.o_proj.weight, w["attn_output"]),
                  (L.mlp.gate_proj.weight, w["ffn_gate"]), (L.mlp.up_proj.weight, w["ffn_up"]),
                  (L.mlp.down_proj.weight, w["ffn_down"]),
                  (L.input_layernorm.weight, w["attn_norm"].view(-1)),
                  (L.post_attention_layernorm.weight, w["ffn_norm"].view(-1))]
        for name, norm in (("attn_q_norm", a.q_norm), ("attn_k_norm", a.k_norm)):
            if name in w:
                pairs.append((norm.weight, w[name].view(-1)))
    pairs.append((model.norm.weight, w["output_norm"].view(-1)))
    if any(p.shape != t.shape for p, t in pairs):
        print("[train] target layer shape differs from the drafter's; random init",
              file=sys.stderr)
        return
    with torch.no_grad():
        for p, t in pairs:
            p.copy_(t)
        D = model.config.target_hidden_size
        fc = torch.randn_like(model.fc.weight) * 0.02
        fc[:, -D:] += torch.eye(D, device=fc.device)
        model.fc.weight.copy_(fc)


# ---- the batched training forward ------------------------------------------

def block_attention(attn, h, positions, ctx_k, ctx_v, ctx_lens):
    """Attention of A blocks over one shared context. h [A, B, H] at positions
    [A, B]; ctx_k/ctx_v [Lc, kv_heads, head_dim]; block a sees context keys
    < ctx_lens[a] and its own B keys. Same math as model.py's Attention."""
    c = attn.c
    A, B = h.shape[:2]
    kvh, g, hd = c.num_key_value_heads, c.num_attention_heads // c.num_key_value_heads, c.head_dim
    q = attn.q_norm(attn.q_proj(h).view(A, B, c.num_attention_heads, hd))
    q = apply_rope(q, *rope_cos_sin(positions, hd, c.rope_theta)).view(A, B, kvh, g, hd)
    bk, bv = attn.key_value(h, positions)  # [A, B, kvh, hd]
    scale = 1.0 / float(hd) ** 0.5
    s_ctx = torch.einsum("abkgd,ckd->akgbc", q, ctx_k) * scale  # [A, kvh, g, B, Lc]
    s_blk = torch.einsum("abkgd,aekd->akgbe", q, bk) * scale    # [A, kvh, g, B, B]
    Lc = ctx_k.shape[0]
    visible = torch.arange(Lc, device=ctx_k.device)[None, :] < ctx_lens[:, None]  # [A, Lc]
    s_ctx = s_ctx.masked_fill(~visible[:, None, None, None, :], float("-inf"))
    p = torch.softmax(torch.cat([s_ctx, s_blk], dim=-1).float(), dim=-1)
    out = (torch.einsum("akgbc,ckd->abkgd", p[..., :Lc], ctx_v)
           + torch.einsum("akgbe,aekd->abkgd", p[..., Lc:], bv))
    return attn.o_proj(out.reshape(A, B, -1))


def sequence_forward(model, target, head_w, features, anchors, last, prev):
    """One sequence, A anchors. features [Lc, n * D] (Lc >= max anchor);
    anchors [A] context lengths L; last [A] tokens at L; prev [A, B] teacher
    ids. Returns logits [A, B, draft vocab] and z [A, B, H]."""
    c = model.config
    Lc, dev = features.shape[0], features.device
    ctx = model.context(features[None])  # [1, Lc, H]
    pos = torch.arange(Lc, device=dev)[None, :]
    x = model.block_input(last, target)  # [A, B, H]
    positions = anchors[:, None] + torch.arange(c.block_size, device=dev)[None, :]
    for layer in model.layers:
        k, v = layer.self_attn.key_value(ctx, pos)
        x = x + block_attention(layer.self_attn, layer.input_layernorm(x), positions, k[0], v[0],
                                anchors)
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    z = model.norm(x)
    if model.markov is not None:
        z = z + model.markov(target.embed(prev.reshape(-1)).view(*prev.shape, -1))
    return z @ head_w.T, z


def check_against_reference(model, target, head_w, data):
    """The batched forward must equal model.py's DSparkDrafter.forward (on
    the run's device: head_w's)."""
    dev = head_w.device
    i = next(j for j, e in enumerate(data.index) if e["n_tokens"] - e["prompt_tokens"] >= 3)
    e = data.index[i]
    toks = torch.from_numpy(data.seq_tokens(i).astype(np.int64)).to(dev)
    P, T = e["prompt_tokens"], e["n_tokens"]
    anchor_list = sorted({P, min(T - 2, P + 1), T - 2})
    anchors = torch.tensor(anchor_list, device=dev)
    B = model.config.block_size
    feats = data.seq_features(i, anchor_list[-1]).to(dev)
    last = toks[anchors]
    idx = (anchors[:, None] + torch.arange(B, device=dev)[None, :]).clamp(max=T - 1)
    prev = toks[idx]
    with torch.no_grad():
        logits, _ = sequence_forward(model, target, head_w, feats, anchors, last, prev)
        ref_feats = feats[None].expand(len(anchors), -1, -1)
        ref, _ = model(ref_feats, anchors, last, prev, target)
    err = (logits - ref).abs().max().item() / max(1e-6, ref.abs().max().item())
    assert err < 1e-4, f"batched forward differs from model.py by {err:.2e} (relative)"
    return err


# ---- training -----------------------------------------------------------------

def position_weights(B, gamma):
    w = torch.exp(-torch.arange(B, dtype=torch.float32) / gamma)
    return w / w.sum()


def sample_anchors(e, n, rng):
    """Up to n anchors L in [prompt_tokens, n_tokens - 2] (at least one label)."""
    lo, hi = e["prompt_tokens"], e["n_tokens"] - 2
    if hi < lo:
        return []
    span = hi - lo + 1
    return sorted(rng.sample(range(lo, hi + 1), min(n, span)))


def sequence_loss(model, target, head_w, t2d, data, i, anchors, pos_w, args, train=True):
    """Losses and stats of one sequence's anchors (sorted ints). The model,
    target, head_w, t2d and pos_w are on the run's device (head_w's); the
    sequence's tokens and features are copied there."""
    dev = head_w.device
    B = model.config.block_size
    e = data.index[i]
    T = e["n_tokens"]
    toks = torch.from_numpy(data.seq_tokens(i).astype(np.int64)).to(dev)
    a = torch.tensor(anchors, dtype=torch.int64, device=dev)
    feats = data.seq_features(i, anchors[-1]).to(dev)        # [max anchor, n * D]
    idx = a[:, None] + torch.arange(B, device=dev)[None, :]  # slot i sits at L + i
    label_pos = idx + 1                                      # and predicts L + 1 + i
    valid = label_pos < T                                    # [A, B]
    prev = toks[idx.clamp(max=T - 1)]
    labels_t = toks[label_pos.clamp(max=T - 1)]
    labels_d = t2d[labels_t]                                 # -1: outside the draft vocab
    ce_mask = valid & (labels_d >= 0)
    with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=args.bf16):
        logits, z = sequence_forward(model, target, head_w, feats, a, toks[a], prev)
    logits = logits.float()
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels_d.clamp(min=0).reshape(-1),
                         reduction="none").view(logits.shape[:2])
    w = pos_w[None, :] * ce_mask
    ce_loss = (ce * w).sum() / len(anchors)
    with torch.no_grad():
        match = (logits.argmax(-1) == labels_d) & ce_mask     # greedy draft == target token
        before = torch.cumprod(torch.cat([torch.ones_like(match[:, :1]), match[:, :-1]], 1).int(), 1)
        reached = (before > 0) & valid                        # every earlier slot accepted
        accepted = torch.cumprod(match.int(), 1).sum(1)       # accepted drafts per block
    conf_logit = model.confidence(z.detach().float()).squeeze(-1)
    bce = F.binary_cross_entropy_with_logits(conf_logit, match.float(), reduction="none")
    conf_loss = (bce * reached).sum() / reached.sum().clamp(min=1)
    loss = ce_loss + args.conf_weight * conf_loss
    stats = {
        "ce": ce_loss.item(), "conf": conf_loss.item(), "blocks": len(anchors),
        "label_tokens": int(valid.sum()), "acc1": match[:, 0].float().sum().item(),
        "accepted": accepted.float().sum().item(),
    }
    return loss, stats


def to_cpu(obj):
    """obj with every tensor in it (through dicts, lists and tuples) on the CPU;
    CPU tensors are returned as they are."""
    if torch.is_tensor(obj):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def lr_at(progress, args):
    warm = args.warmup_fraction
    if progress < warm:
        return args.lr * (0.1 + 0.9 * progress / warm)
    p = min(1.0, (progress - warm) / max(1e-9, 1 - warm))
    return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


def evaluate(model, target, head_w, t2d, data, val_ids, pos_w, args):
    rng = random.Random(1234)
    tot = {"ce": 0.0, "conf": 0.0, "blocks": 0, "acc1": 0.0, "accepted": 0.0}
    n = 0
    model.eval()
    with torch.no_grad():
        for i in val_ids:
            anchors = sample_anchors(data.index[i], args.val_anchors, rng)
            if not anchors:
                continue
            _, s = sequence_loss(model, target, head_w, t2d, data, i, anchors, pos_w, args)
            for k in tot:
                tot[k] += s[k] if k in ("blocks", "acc1", "accepted") else s[k] * s["blocks"]
            n += 1
    model.train()
    b = max(1, tot["blocks"])
    return {"ce": tot["ce"] / b, "conf": tot["conf"] / b, "acc1": tot["acc1"] / b,
            "tau_est": 1 + tot["accepted"] / b}


def make_config(args, meta, data, draft_vocab):
    heads = args.heads or meta.num_heads
    kv = args.kv_heads or meta.num_kv_heads
    # With the target's head count, the target's head_dim, which need not be
    # dim / heads (Qwen3-0.6B: 16 x 128 for dim 1024; Gemma 3 270m: 4 x 256
    # for 640), so that init_from_target's shapes fit.
    head_dim = meta.head_dim if heads == meta.num_heads else meta.dim // heads
    return DSparkConfig(
        hidden_size=meta.dim,
        intermediate_size=args.intermediate or meta.ffn_dim,
        num_hidden_layers=args.layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=head_dim,
        vocab_size=meta.vocab_size,
        mask_token_id=pick_mask_token(meta),
        target_layer_ids=data.layers,
        target_hidden_size=meta.dim,
        markov_rank=args.markov_rank,
        rms_norm_eps=1e-6,
        rope_theta=meta.rope_theta,
        block_size=args.block_size,
        draft_vocab_size=draft_vocab,
        target_model=args.target_name or meta.name or pathlib.Path(meta.path).stem,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", required=True,
                    help="target: GGUF file, Hugging Face model directory or pulled catalogue name")
    ap.add_argument("--target-name", default="",
                    help="config.json target_model (default: the GGUF's name or the directory's)")
    ap.add_argument("--data", required=True, nargs="+",
                    help="`dspark distill` output directories (same --layers), used as one data set")
    ap.add_argument("--out", required=True, help="drafter checkpoint directory to write")
    ap.add_argument("--work-dir", required=True, help="resume state and logs (keep out of git)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                    help="where the drafter trains (cuda: tested only on CPU so far)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layers", type=int, default=1, help="drafter layers")
    ap.add_argument("--block-size", type=int, default=7)
    ap.add_argument("--markov-rank", type=int, default=64)
    ap.add_argument("--draft-vocab", type=int, default=8192, help="0 = the full target vocabulary")
    ap.add_argument("--intermediate", type=int, default=0, help="default: the target's FFN size")
    ap.add_argument("--heads", type=int, default=0,
                    help="default: the target's; head_dim is the target's with the target's head "
                         "count, else dim / heads")
    ap.add_argument("--kv-heads", type=int, default=0, help="default: the target's")
    ap.add_argument("--init", choices=["target", "random"], default="target",
                    help="target: start the layer from the target's last layer")
    ap.add_argument("--gamma", type=float, default=4.0, help="position weight decay w_k = exp(-(k-1)/gamma)")
    ap.add_argument("--conf-weight", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr-ratio", type=float, default=0.1)
    ap.add_argument("--warmup-fraction", type=float, default=0.03)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--steps", type=int, default=0, help="0: run until --max-minutes")
    ap.add_argument("--max-minutes", type=float, default=0, help="wall-clock limit (0: none; needs --steps)")
    ap.add_argument("--seqs-per-step", type=int, default=4)
    ap.add_argument("--anchors", type=int, default=16, help="anchors per sequence")
    ap.add_argument("--val-fraction", type=float, default=0.02)
    ap.add_argument("--val-anchors", type=int, default=64, help="anchors per held-out sequence")
    ap.add_argument("--eval-every-minutes", type=float, default=10)
    ap.add_argument("--snapshots", action="store_true",
                    help="also save the drafter at every eval to WORK_DIR/snapshots/<label tokens> "
                         "(for a tau-vs-training-tokens curve with `dspark eval-drafter`)")
    ap.add_argument("--save-every-minutes", type=float, default=5)
    ap.add_argument("--bf16", action="store_true", help="torch.autocast(bfloat16) for the forward")
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16", help="checkpoint weights")
    ap.add_argument("--log-every", type=int, default=10)
    args = ap.parse_args()
    if args.steps <= 0 and args.max_minutes <= 0:
        ap.error("give --steps or --max-minutes")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch.cuda.is_available() is False (a CPU-only torch build, "
                 "or no GPU visible to it); use --device cpu")
    device = torch.device(args.device)
    t_start = time.time()
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(args.seed)

    work = pathlib.Path(args.work_dir).expanduser()
    work.mkdir(parents=True, exist_ok=True)
    data = DistillData(args.data)
    target = load_target(args.target)
    meta = target.meta
    assert data.dim == meta.dim, (data.dim, meta.dim)
    state_path = work / "train_state.pt"
    # Loaded on the CPU whatever device saved it: load_state_dict then moves
    # the weights and AdamW's moments to the parameters' device, and keeps
    # AdamW's step counters on the CPU, where a fresh run holds them.
    resume = (torch.load(state_path, map_location="cpu", weights_only=False)
              if args.resume and state_path.exists() else None)

    if resume is not None:
        config = DSparkConfig.from_dict(resume["config"])
        model = DSparkDrafter(config)
        model.load_state_dict(resume["model"])
        d2t_ids = model.draft_to_target()
        if d2t_ids is None:  # --draft-vocab 0: the full vocabulary
            d2t_ids = torch.arange(config.vocab_size)
        covered = resume.get("covered", float("nan"))
    else:
        dv = args.draft_vocab if 0 < args.draft_vocab < meta.vocab_size else None
        if dv:
            d2t_ids, covered = build_draft_vocab(data, meta.vocab_size, dv)
        else:
            d2t_ids, covered = torch.arange(meta.vocab_size), 1.0
        config = make_config(args, meta, data, dv)
        model = DSparkDrafter(config)
        with torch.no_grad():  # make_random_drafter's init
            for name, p in model.named_parameters():
                if name.endswith("norm.weight"):
                    p.fill_(1.0)
                elif name == "confidence.bias":
                    p.zero_()
                else:
                    p.normal_(0, 0.02)
            if model.markov is not None:
                model.markov.b.weight.zero_()  # starts as a no-op, learns its correction
            if dv:
                model.d2t.copy_(d2t_ids - torch.arange(dv))
        if args.init == "target":
            init_from_target(model, meta.path, meta.num_layers - 1, meta)
    # Initialised (or loaded) on the CPU; from here on everything is on `device`.
    model.to(device)
    target.to(device)
    d2t_ids = d2t_ids.to(device)
    head_w = target.head[d2t_ids]  # [draft vocab, D]
    t2d = torch.full((meta.vocab_size,), -1, dtype=torch.int64, device=device)  # [vocab]
    t2d[d2t_ids] = torch.arange(len(d2t_ids), device=device)

    n = len(data.index)
    order = list(range(n))
    random.Random(args.seed).shuffle(order)
    n_val = max(1, int(n * args.val_fraction)) if n > 20 else 0
    val_ids, train_ids = order[:n_val], order[n_val:] or order
    gen_tokens = sum(e["n_tokens"] - e["prompt_tokens"] for e in data.index)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"[train] {n} sequences ({len(train_ids)} train, {len(val_ids)} val), {gen_tokens} generated "
          f"tokens, {data.feature_rows} feature rows; drafter {n_params / 1e6:.2f}M params, "
          f"draft vocab {len(d2t_ids)} (covers {100 * covered:.1f}% of generated tokens), "
          f"layers {data.layers}, mask {config.mask_token_id}, heads {config.num_attention_heads} x "
          f"{config.head_dim}, on {device}", file=sys.stderr)
    err = check_against_reference(model, target, head_w, data)
    print(f"[train] batched forward == model.py forward (max rel err {err:.1e})", file=sys.stderr)

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr,
                            weight_decay=args.weight_decay, betas=(0.9, 0.95))
    step, elapsed_before, label_tokens_seen, epoch, cursor = 0, 0.0, 0, 0, 0
    rng = random.Random(args.seed + 1)
    history = []
    if resume is not None:
        opt.load_state_dict(resume["opt"])
        step, elapsed_before = resume["step"], resume["elapsed"]
        label_tokens_seen, epoch, cursor = resume["label_tokens"], resume["epoch"], resume["cursor"]
        rng.setstate(resume["rng"])
        torch.set_rng_state(resume["torch_rng"])
        history = resume.get("history", [])
        print(f"[train] resumed at step {step} ({elapsed_before / 60:.1f} min done)", file=sys.stderr)
    epoch_order = list(train_ids)
    random.Random(args.seed + 100 + epoch).shuffle(epoch_order)
    pos_w = position_weights(config.block_size, args.gamma).to(device)  # [B]

    def save_state():
        torch.save({"config": config.to_dict(), "model": to_cpu(model.state_dict()),
                    "opt": to_cpu(opt.state_dict()),
                    "step": step, "elapsed": elapsed_before + time.time() - t0,
                    "label_tokens": label_tokens_seen, "epoch": epoch, "cursor": cursor,
                    "rng": rng.getstate(), "torch_rng": torch.get_rng_state(), "covered": covered,
                    "history": history}, str(state_path) + ".tmp")
        os.replace(str(state_path) + ".tmp", state_path)

    t0 = time.time()
    last_log = last_save = last_eval = time.time()
    win = {"loss": 0.0, "ce": 0.0, "conf": 0.0, "blocks": 0, "acc1": 0.0, "accepted": 0.0,
           "label_tokens": 0, "n": 0}
    win_t = time.time()
    limit_s = args.max_minutes * 60 if args.max_minutes > 0 else float("inf")
    model.train()
    while True:
        elapsed = elapsed_before + time.time() - t0
        if args.steps > 0 and step >= args.steps:
            break
        # This process's wall clock (start-up included) plus earlier runs';
        # leave time for the final eval and save.
        if elapsed_before + time.time() - t_start >= limit_s - 30:
            break
        progress = step / args.steps if args.steps > 0 else elapsed / limit_s
        for group in opt.param_groups:
            group["lr"] = lr_at(progress, args)
        opt.zero_grad(set_to_none=True)
        for _ in range(args.seqs_per_step):
            if cursor >= len(epoch_order):
                epoch, cursor = epoch + 1, 0
                epoch_order = list(train_ids)
                random.Random(args.seed + 100 + epoch).shuffle(epoch_order)
            i = epoch_order[cursor]
            cursor += 1
            anchors = sample_anchors(data.index[i], args.anchors, rng)
            if not anchors:
                continue
            loss, s = sequence_loss(model, target, head_w, t2d, data, i, anchors, pos_w, args)
            (loss * len(anchors) / (args.seqs_per_step * args.anchors)).backward()
            win["loss"] += loss.item() * s["blocks"]
            for k in ("ce", "conf"):
                win[k] += s[k] * s["blocks"]
            for k in ("blocks", "acc1", "accepted", "label_tokens"):
                win[k] += s[k]
            label_tokens_seen += s["label_tokens"]
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        now = time.time()
        if step % args.log_every == 0 or now - last_log > 30:
            b = max(1, win["blocks"])
            rate = win["label_tokens"] / max(1e-9, now - win_t)
            elapsed = elapsed_before + now - t0
            if args.steps > 0:
                eta = (args.steps - step) * (now - t0) / max(1, step - (resume["step"] if resume else 0))
                eta = min(eta, limit_s - elapsed)
            else:
                eta = limit_s - elapsed
            print(f"[train] step {step} epoch {epoch} loss {win['loss'] / b:.3f} (ce {win['ce'] / b:.3f} "
                  f"conf {win['conf'] / b:.3f}) acc@1 {win['acc1'] / b:.3f} tau~{1 + win['accepted'] / b:.2f} "
                  f"lr {opt.param_groups[0]['lr']:.2e} | {rate:.0f} label tokens/s, "
                  f"{label_tokens_seen} seen | {elapsed / 60:.1f} min, ETA {eta / 60:.1f} min",
                  file=sys.stderr, flush=True)
            history.append({"step": step, "minutes": round(elapsed / 60, 2), "label_tokens": label_tokens_seen,
                            "loss": round(win["loss"] / b, 4), "tau_train": round(1 + win["accepted"] / b, 3)})
            win = {k: 0 if isinstance(v, int) else 0.0 for k, v in win.items()}
            win_t = last_log = now
        if val_ids and now - last_eval > args.eval_every_minutes * 60:
            ev = evaluate(model, target, head_w, t2d, data, val_ids, pos_w, args)
            history.append({"step": step, "label_tokens": label_tokens_seen, "val": ev})
            print(f"[train] val: ce {ev['ce']:.3f} conf {ev['conf']:.3f} acc@1 {ev['acc1']:.3f} "
                  f"tau_est {ev['tau_est']:.2f}", file=sys.stderr, flush=True)
            if args.snapshots:
                model.eval()
                model.save_pretrained(work / "snapshots" / f"{label_tokens_seen:09d}",
                                      dtype=torch.bfloat16 if args.dtype == "bf16" else torch.float32)
                model.train()
            last_eval = time.time()
        if now - last_save > args.save_every_minutes * 60:
            save_state()
            last_save = time.time()

    final = {}
    if val_ids:
        final = evaluate(model, target, head_w, t2d, data, val_ids, pos_w, args)
        history.append({"step": step, "label_tokens": label_tokens_seen, "val": final})
        print(f"[train] final val: ce {final['ce']:.3f} conf {final['conf']:.3f} acc@1 {final['acc1']:.3f} "
              f"tau_est {final['tau_est']:.2f}", file=sys.stderr)
    save_state()
    model.eval()
    model.save_pretrained(args.out, dtype=torch.bfloat16 if args.dtype == "bf16" else torch.float32)
    summary = {"steps": step, "minutes": round((elapsed_before + time.time() - t0) / 60, 2),
               "label_tokens": label_tokens_seen, "epochs": epoch + cursor / max(1, len(epoch_order)),
               "sequences": n, "generated_tokens": gen_tokens, "draft_vocab_coverage": covered,
               "final_val": final, "args": vars(args)}
    (work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (work / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    print(f"[train] wrote {args.out} after {step} steps, {label_tokens_seen} label tokens, "
          f"{summary['minutes']:.1f} min", file=sys.stderr)


if __name__ == "__main__":
    main()
