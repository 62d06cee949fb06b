#!/usr/bin/env python3
"""Drafter training against a Hugging Face target directory, every stage for
a few steps: a tiny random-weight Qwen3 made by transformers' own classes
(tools/make_tiny_hf_models.py's config with head_dim 32 != hidden / heads, as
Qwen3-0.6B's; saved in shards) with a small tokenizer.json, self-distillation
through the engine (`dspark distill --model DIR`, 2 prompts x 8 tokens),
training (tools/train_drafter.py --target DIR, 3 steps), loading the
checkpoint, and speculating with it in the C++ engine, whose output must equal
the target alone (lossless). Also checks that the drafter took the target's
attention shape and started from its last layer, and that the frozen head and
embedding read without transformers give transformers' own logits.

--device cuda: without CUDA, train_drafter.py must refuse it (non-zero exit,
a message naming CUDA) rather than fall back to the CPU. With CUDA, the same
3 steps are trained on the GPU and must start from the target's layer and
stay close to the CPU run; that branch has not yet run on a GPU machine.

Skips (exit 0, "SKIP:") without torch, transformers or safetensors.

    .venv/bin/python tests/tools/train_drafter_hf_test.py --dspark build/bin/dspark
"""

import argparse
import json
import pathlib
import struct
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The tokenizer names ids 0..249; the embedding's last 6 rows are padding
# (as Qwen's are), so the mask token must be the first of them.
TOKENIZER_SIZE = 250
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # the config's pad, bos, eos ids 0, 1, 2
PROMPTS = [[5, 17, 99, 3, 42, 8], [200, 11, 7, 64]]
# 3 AdamW steps at lr <= 1e-3 move a weight by ~3e-3 at most; a drafter that
# missed the target's layer differs from it by ~0.5.
INIT_TOLERANCE = 0.02
# The target's head_dim: != hidden 64 / 4 heads, so a drafter config built as
# hidden / heads would not fit the target's layer.
HEAD_DIM = 32


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


def write_tokenizer(directory):
    """A character-BPE tokenizer.json the engine loads: SPECIALS as special
    added tokens, placeholder words for the other ids below TOKENIZER_SIZE."""
    added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, s in enumerate(SPECIALS)]
    vocab = {f"t{i}": i for i in range(len(SPECIALS), TOKENIZER_SIZE)}
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
           "normalizer": None, "pre_tokenizer": None, "post_processor": None, "decoder": None,
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "fuse_unk": False,
                     "byte_fallback": False, "vocab": vocab, "merges": []}}
    (directory / "tokenizer.json").write_text(json.dumps(tok))
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": SPECIALS[1], "eos_token": SPECIALS[2], "pad_token": SPECIALS[0]}))


def make_target(sharded_dir, single_dir):
    """The tiny Qwen3 (hidden 64, 2 layers, 4 heads x HEAD_DIM, q/k norms,
    tied head), saved in shards and as one file; returns the transformers
    model."""
    import torch
    from transformers import AutoModelForCausalLM

    sys.path.insert(0, str(ROOT / "tools"))
    import make_tiny_hf_models as tiny

    torch.manual_seed(0)
    config = tiny.configs()["qwen3"]
    config.head_dim = HEAD_DIM
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32,
                                             attn_implementation="eager").eval()
    tiny.randomize(model, "qwen3", torch.Generator().manual_seed(1))
    model.tie_weights()
    model.save_pretrained(sharded_dir, safe_serialization=True, max_shard_size="150KB")
    model.save_pretrained(single_dir, safe_serialization=True)
    assert (sharded_dir / "model.safetensors.index.json").exists(), "save_pretrained wrote no shards"
    write_tokenizer(sharded_dir)
    return model


def check_target(model, sharded_dir, single_dir):
    """The embedding and head read with safetensors give transformers' logits."""
    import torch
    from dspark_drafter.target import load_target

    ids = torch.tensor(PROMPTS[0])
    with torch.no_grad():
        out = model(ids[None], output_hidden_states=True)
    for d in (sharded_dir, single_dir):
        target = load_target(d)
        assert torch.equal(target.head, model.lm_head.weight), d
        assert torch.equal(target.embed(ids), out.hidden_states[0][0]), d
        err = (target.lm_head(out.hidden_states[-1][0]) - out.logits[0]).abs().max().item()
        assert err < 1e-4, (d, err)
    meta = load_target(sharded_dir).meta
    assert (meta.dim, meta.num_layers, meta.vocab_size, meta.rope_theta) == (64, 2, 256, 1e6), meta
    assert (meta.num_heads, meta.head_dim) == (4, HEAD_DIM), meta


def check_drafter_init(drafter, model):
    """Every drafter layer starts as the target's last layer, norm as its final norm."""
    t = model.model.layers[-1]
    pairs = [("norm", drafter.norm, model.model.norm)]
    for i, layer in enumerate(drafter.layers):
        pairs += [(f"layers.{i}.{name}", mine, theirs) for name, mine, theirs in (
            ("q_proj", layer.self_attn.q_proj, t.self_attn.q_proj),
            ("k_proj", layer.self_attn.k_proj, t.self_attn.k_proj),
            ("o_proj", layer.self_attn.o_proj, t.self_attn.o_proj),
            ("q_norm", layer.self_attn.q_norm, t.self_attn.q_norm),
            ("k_norm", layer.self_attn.k_norm, t.self_attn.k_norm),
            ("down_proj", layer.mlp.down_proj, t.mlp.down_proj),
            ("post_attention_layernorm", layer.post_attention_layernorm,
             t.post_attention_layernorm))]
    for name, mine, theirs in pairs:
        err = (mine.weight - theirs.weight).abs().max().item()
        assert err < INIT_TOLERANCE, f"{name}: differs from the target's by {err}"


def check_device_cuda(train_cmd, cpu_out, cuda_out, model):
    """--device cuda: a clear refusal without CUDA; with it, a GPU run of the
    same steps that starts from the target's layer and ends near the CPU run."""
    import torch
    from dspark_drafter.model import DSparkDrafter

    cmd = [str(c) for c in train_cmd(cuda_out, "cuda")]
    if not torch.cuda.is_available():
        print("+", " ".join(cmd), "(must fail: no CUDA)", flush=True)
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode != 0, ("--device cuda without CUDA exited 0", r.stderr[-2000:])
        assert "--device cuda" in r.stderr and "torch.cuda.is_available() is False" in r.stderr, \
            r.stderr[-2000:]
        assert not cuda_out.exists(), "--device cuda without CUDA wrote a drafter"
        return
    run(cmd)
    gpu = DSparkDrafter.from_pretrained(cuda_out)
    check_drafter_init(gpu, model)
    cpu = DSparkDrafter.from_pretrained(cpu_out).state_dict()
    for name, w in gpu.state_dict().items():
        # Both runs moved a weight by < ~3e-3 from the same CPU-made start.
        err = (w.double() - cpu[name].double()).abs().max().item()
        assert err < INIT_TOLERANCE / 2, f"{name}: GPU and CPU runs differ by {err}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dspark", required=True)
    args = ap.parse_args()
    try:
        import torch
        import safetensors  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        skip("no torch/transformers/safetensors in this Python (run tools/setup.sh)")
    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT / "tools"))
    py = sys.executable

    with tempfile.TemporaryDirectory(prefix="dspark-train-hf-") as tmp:
        tmp = pathlib.Path(tmp)
        target, single = tmp / "tiny-qwen3", tmp / "tiny-qwen3-single"
        prompts, data, out = tmp / "prompts.jsonl", tmp / "data", tmp / "drafter"
        model = make_target(target, single)
        check_target(model, target, single)

        prompts.write_text("".join(json.dumps({"prompt_ids": p}) + "\n" for p in PROMPTS))
        run([args.dspark, "distill", "--model", target, "--prompts", prompts, "--out", data,
             "--layers", "0,1", "--max-tokens", 8, "--concurrency", 2, "--threads", 1])
        index = [json.loads(l) for l in (data / "index.jsonl").read_text().splitlines()]
        assert len(index) == 2, index
        assert all(e["n_features"] == e["n_tokens"] - 1 for e in index), index
        assert any(e["n_tokens"] - e["prompt_tokens"] >= 3 for e in index), index

        def train_cmd(drafter_dir, device):
            return [py, ROOT / "tools/train_drafter.py", "--target", target, "--data", data,
                    "--out", drafter_dir, "--work-dir", tmp / f"work-{device}", "--steps", 3,
                    "--seqs-per-step", 2, "--anchors", 2, "--draft-vocab", 64, "--threads", 1,
                    "--log-every", 1, "--device", device, "--dtype", "f32"]

        run(train_cmd(out, "cpu"))
        summary = json.loads((tmp / "work-cpu/summary.json").read_text())
        assert summary["steps"] == 3, summary

        from dspark_drafter.model import DSparkDrafter
        cfg = json.loads((out / "config.json").read_text())
        want = {"target_layer_ids": [0, 1], "hidden_size": 64, "target_hidden_size": 64,
                "vocab_size": 256, "num_attention_heads": 4, "num_key_value_heads": 2,
                "head_dim": HEAD_DIM, "draft_vocab_size": 64,
                "mask_token_id": TOKENIZER_SIZE, "target_model": target.name}
        got = {k: cfg.get(k) for k in want}
        assert got == want, (got, want)
        check_drafter_init(DSparkDrafter.from_pretrained(out), model)
        check_device_cuda(train_cmd, out, tmp / "drafter-cuda", model)

        # Lossless in the engine: the same ids with and without the drafter,
        # every drafted position verified (fixed verify length 7).
        e = index[0]
        ids = struct.unpack_from(f"<{e['prompt_tokens']}i", (data / "tokens.bin").read_bytes(),
                                 4 * e["token_offset"])
        common = [args.dspark, "generate", "--model", target, "--prompt-ids",
                  ",".join(map(str, ids)), "--max-tokens", 16, "--print-ids", "--threads", 1]
        plain = run(common + ["--drafter", "none"]).stdout.split()
        spec = run(common + ["--drafter", "dspark", "--drafter-path", out, "--scheduler", "fixed",
                             "--verify-len", 7])
        assert plain and spec.stdout.split() == plain, (spec.stdout, plain)
        assert "drafter dspark" in spec.stderr, spec.stderr
    print("OK")


if __name__ == "__main__":
    main()
