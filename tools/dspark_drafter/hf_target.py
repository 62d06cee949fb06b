"""A Hugging Face target directory (config.json + model.safetensors, or shards
listed in model.safetensors.index.json) read the way the C++ engine reads it
(common/engine/model_file/hf_directory.cc): config.json translated to the
TargetMeta a GGUF would give, tensors read with `safetensors` as f32. No
transformers needed.

    target = HfTarget.load("~/models/Qwen3-0.6B")  # or target.load_target(path)
    logits = target.lm_head(target.embed(torch.tensor([1, 2])))

What differs from a GGUF, and how it is bridged:
- Tied embeddings: no lm_head.weight means the head is the embedding.
- Gemma stores RMSNorm weights as w - 1 (applied as 1 + w); llama.cpp's
  converter adds the 1, so layer_weights adds it too.
- q/k projections are already in the RoPE halves layout the drafter uses
  (llama.cpp permutes Llama's to interleaved pairs; HF does not).
- Token types for the mask-token choice come from tokenizer.json
  (read_hf_vocab), as the engine's HF tokenizer loader assigns them.
"""

import json
import pathlib

import numpy as np
import torch
from safetensors import safe_open

from .target import (TOKEN_TYPE_CONTROL, TOKEN_TYPE_NORMAL, TOKEN_TYPE_UNUSED,
                     TOKEN_TYPE_USER_DEFINED, Target, TargetMeta)

CONFIG_FILE = "config.json"
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"

# GGUF module name -> Hugging Face module inside model.layers.{i} (the
# engine's hf_names.cc, read backwards). ffn_norm is chosen per architecture.
_LAYER_MODULES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "attn_norm": "input_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def _value(config, key, default):
    """config[key], with null read as absent (as the engine does)."""
    v = config.get(key)
    return default if v is None else v


def _normalize_name(name):
    """Strips the wrappers multimodal checkpoints put around the language model."""
    for prefix in ("language_model.model.", "model.language_model."):
        if name.startswith(prefix):
            return "model." + name[len(prefix):]
    if name == "language_model.lm_head.weight":
        return "lm_head.weight"
    return name


class HfCheckpoint:
    """config.json (text_config merged in) and the tensors of a Hugging Face
    directory, by their names without multimodal wrappers."""

    def __init__(self, directory):
        self.dir = pathlib.Path(directory).expanduser()
        config = json.loads((self.dir / CONFIG_FILE).read_text())
        text = config.pop("text_config", None)
        if isinstance(text, dict):
            config.update(text)
        if not config.get("model_type"):
            raise ValueError(f"{self.dir / CONFIG_FILE}: no model_type")
        self.config = config
        model_type = config["model_type"]
        self.architecture = "gemma3" if model_type == "gemma3_text" else model_type
        self.gemma = self.architecture.startswith("gemma")
        if (self.dir / INDEX_FILE).is_file():
            weight_map = json.loads((self.dir / INDEX_FILE).read_text())["weight_map"]
        elif (self.dir / SINGLE_FILE).is_file():
            with safe_open(str(self.dir / SINGLE_FILE), framework="pt") as f:
                weight_map = {name: SINGLE_FILE for name in f.keys()}
        else:
            raise FileNotFoundError(f"{self.dir}: neither {SINGLE_FILE} nor {INDEX_FILE}")
        self._where = {_normalize_name(n): (file, n) for n, file in weight_map.items()}

    def has(self, name):
        return name in self._where

    def shape(self, name):
        file, stored = self._where[name]
        with safe_open(str(self.dir / file), framework="pt") as f:
            return list(f.get_slice(stored).get_shape())

    def tensor(self, name):
        """The tensor as a writable f32 torch tensor (bf16/f16 up-cast exactly)."""
        file, stored = self._where[name]
        with safe_open(str(self.dir / file), framework="pt") as f:
            return f.get_tensor(stored).float().contiguous()

    def _norm(self, name):
        w = self.tensor(name)
        return w + 1.0 if self.gemma else w

    def layer_weights(self, layer):
        """Decoder layer `layer` and the final norm as {GGUF module name:
        tensor} (attn_q ... ffn_down, attn_q_norm/attn_k_norm when the model
        has them, output_norm), as llama.cpp's converter would have written
        them: norms with Gemma's +1 folded in, q/k rows in the halves layout."""
        modules = dict(_LAYER_MODULES)
        # Gemma's sandwich norms: its pre-FFN norm is pre_feedforward_layernorm.
        modules["ffn_norm"] = "pre_feedforward_layernorm" if self.gemma else "post_attention_layernorm"
        out = {}
        for gguf_name, hf_module in modules.items():
            name = f"model.layers.{layer}.{hf_module}.weight"
            if self.has(name):
                out[gguf_name] = self._norm(name) if gguf_name.endswith("norm") else self.tensor(name)
        if self.has("model.norm.weight"):
            out["output_norm"] = self._norm("model.norm.weight")
        return out


def _token_id(value, ids):
    """A tokenizer_config.json token ("text" or {"content": "text"}) -> id, or -1."""
    if isinstance(value, dict):
        value = value.get("content")
    return ids.get(value, -1) if isinstance(value, str) else -1


def read_hf_vocab(directory, vocab_size):
    """(tokens, token_types, ids by text) from tokenizer.json as the engine's
    HF tokenizer loader types them: model.vocab entries NORMAL, special added
    tokens CONTROL, other added tokens USER_DEFINED, and every id below
    vocab_size that neither names UNUSED (the embedding's padding rows past
    the tokenizer, as in Qwen; llama.cpp's converter marks them the same).
    Empty without tokenizer.json (a tokenizer.model-only or tokenizer-less
    directory)."""
    path = pathlib.Path(directory) / "tokenizer.json"
    if not path.is_file():
        return [], [], {}
    tok = json.loads(path.read_text())
    tokens = [""] * vocab_size
    types = [TOKEN_TYPE_UNUSED] * vocab_size
    ids = {}
    for text, i in (tok.get("model") or {}).get("vocab", {}).items():
        ids[text] = i
        if 0 <= i < vocab_size:
            tokens[i], types[i] = text, TOKEN_TYPE_NORMAL
    for a in tok.get("added_tokens") or []:
        i = int(a["id"])
        ids[a["content"]] = i
        if 0 <= i < vocab_size:
            tokens[i] = a["content"]
            types[i] = TOKEN_TYPE_CONTROL if a.get("special") else TOKEN_TYPE_USER_DEFINED
    return tokens, types, ids


def read_hf_meta(ckpt):
    """TargetMeta of an HfCheckpoint: config.json's keys as the engine's
    hf_config_keys.cc translates them; the vocabulary size is the embedding's
    row count (Qwen pads it past the tokenizer's)."""
    c = ckpt.config
    dim = int(c["hidden_size"])
    heads = int(c["num_attention_heads"])
    vocab = int(ckpt.shape("model.embed_tokens.weight")[0])
    # transformers >= 5: rope_parameters, per layer type for Gemma 3 (its
    # global layers' base is the one the engine calls rope.freq_base).
    rope = c.get("rope_parameters") or {}
    rope = rope.get("full_attention", rope)
    rope_theta = _value(rope, "rope_theta", _value(c, "rope_theta", 10000.0))
    tokens, types, ids = read_hf_vocab(ckpt.dir, vocab)
    tok_config_path = ckpt.dir / "tokenizer_config.json"
    tok_config = json.loads(tok_config_path.read_text()) if tok_config_path.is_file() else {}

    def special(key):
        """config.json's <key>_token_id (the first of a list), else
        tokenizer_config.json's <key>_token looked up in the vocabulary."""
        v = c.get(f"{key}_token_id")
        if isinstance(v, list):
            v = v[0] if v else None
        return int(v) if v is not None else _token_id(tok_config.get(f"{key}_token"), ids)

    return TargetMeta(
        path=str(ckpt.dir),
        architecture=ckpt.architecture,
        num_layers=int(c["num_hidden_layers"]),
        dim=dim,
        ffn_dim=int(c["intermediate_size"]),
        num_heads=heads,
        num_kv_heads=int(_value(c, "num_key_value_heads", heads)),
        head_dim=int(_value(c, "head_dim", dim // heads)),
        vocab_size=vocab,
        rms_eps=float(_value(c, "rms_norm_eps", 1e-6)),
        rope_theta=float(rope_theta),
        # As the engine: f32 sqrt(dim) for Gemma.
        embed_scale=float(np.sqrt(np.float32(dim))) if ckpt.gemma else 1.0,
        final_softcap=float(_value(c, "final_logit_softcapping", 0.0)) if ckpt.gemma else 0.0,
        # The directory name: a model id's last part ("Qwen3-0.6B").
        name=ckpt.dir.resolve().name,
        token_types=types,
        tokens=tokens,
        bos_id=special("bos"),
        eos_id=special("eos"),
        pad_id=special("pad"),
        context_length=int(_value(c, "max_position_embeddings", 0)),
    )


def load_hf_meta(directory):
    """Metadata only (tensor headers read, no weights)."""
    return read_hf_meta(HfCheckpoint(directory))


class HfTarget(Target):
    """A Hugging Face target's embedding and head."""

    @classmethod
    def load(cls, directory):
        ckpt = HfCheckpoint(directory)
        meta = read_hf_meta(ckpt)
        embedding = ckpt.tensor("model.embed_tokens.weight")
        head = ckpt.tensor("lm_head.weight") if ckpt.has("lm_head.weight") else embedding
        assert embedding.shape == (meta.vocab_size, meta.dim), embedding.shape
        assert head.shape == (meta.vocab_size, meta.dim), head.shape
        return cls(meta, embedding, head)


__all__ = [
    "HfCheckpoint",
    "HfTarget",
    "load_hf_meta",
    "read_hf_meta",
    "read_hf_vocab",
]
