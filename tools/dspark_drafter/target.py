"""The parts of a target model a DSpark drafter shares: its token embedding
(with the architecture's embedding scale) and its LM head (with the final
soft-cap), as f32 torch tensors, plus the shape metadata a drafter config is
built from. A GGUF file is de-quantized with the `gguf` package (here); a
Hugging Face directory is read with `safetensors` (hf_target.py).

The numbers match the C++ engine's Model::Embed / Model::LmHead in exact mode
(f32 activations over the de-quantized weights) up to summation order.

    target = load_target("smollm2-135m-instruct")  # catalogue name, GGUF file or HF directory
    x = target.embed(torch.tensor([1, 2]))         # [2, dim]
    logits = target.lm_head(x)                     # [2, vocab]
"""

import os
import pathlib
from dataclasses import dataclass, field

import numpy as np
import torch

import gguf

# tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
TOKEN_TYPE_NORMAL = 1
TOKEN_TYPE_UNKNOWN = 2
TOKEN_TYPE_CONTROL = 3
TOKEN_TYPE_USER_DEFINED = 4
TOKEN_TYPE_UNUSED = 5
TOKEN_TYPE_BYTE = 6


def _field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


@dataclass
class TargetMeta:
    """Shape metadata of a target (the keys the engine's ReadModelConfig reads;
    a Hugging Face directory's config.json translated as the engine does)."""

    path: str
    architecture: str
    num_layers: int
    dim: int
    ffn_dim: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    rms_eps: float
    rope_theta: float
    embed_scale: float
    final_softcap: float
    name: str = ""
    token_types: list = field(default_factory=list)  # [vocab] or empty
    tokens: list = field(default_factory=list)       # [vocab] strings or empty
    bos_id: int = -1
    eos_id: int = -1
    pad_id: int = -1
    context_length: int = 0  # trained context; 0 when the file does not say


def read_meta(reader, path):
    arch = _field(reader, "general.architecture")
    a = arch + "."
    dim = int(_field(reader, a + "embedding_length"))
    heads = int(_field(reader, a + "attention.head_count"))
    kv_heads = _field(reader, a + "attention.head_count_kv", heads)
    if isinstance(kv_heads, list):  # per-layer lists exist in some files
        kv_heads = kv_heads[0]
    embd = next(t for t in reader.tensors if t.name == "token_embd.weight")
    gemma = arch in ("gemma2", "gemma3")
    return TargetMeta(
        path=str(path),
        architecture=arch,
        num_layers=int(_field(reader, a + "block_count")),
        dim=dim,
        ffn_dim=int(_field(reader, a + "feed_forward_length")),
        num_heads=heads,
        num_kv_heads=int(kv_heads),
        head_dim=int(_field(reader, a + "attention.key_length", dim // heads)),
        # GGUF shapes are innermost first: token_embd is (dim, vocab).
        vocab_size=int(embd.shape[1]),
        rms_eps=float(_field(reader, a + "attention.layer_norm_rms_epsilon", 1e-5)),
        rope_theta=float(_field(reader, a + "rope.freq_base", 10000.0)),
        # As the engine: f32 sqrt(dim) for Gemma.
        embed_scale=float(np.sqrt(np.float32(dim))) if gemma else 1.0,
        final_softcap=float(_field(reader, a + "final_logit_softcapping", 0.0)) if gemma else 0.0,
        name=str(_field(reader, "general.name", "") or ""),
        token_types=list(_field(reader, "tokenizer.ggml.token_type", []) or []),
        tokens=list(_field(reader, "tokenizer.ggml.tokens", []) or []),
        bos_id=int(_field(reader, "tokenizer.ggml.bos_token_id", -1)),
        eos_id=int(_field(reader, "tokenizer.ggml.eos_token_id", -1)),
        pad_id=int(_field(reader, "tokenizer.ggml.padding_token_id", -1)),
        context_length=int(_field(reader, a + "context_length", 0)),
    )


def model_cache_dir():
    """The engine's model cache: $DSPARK_HOME/models, else ~/.cache/dspark/models."""
    home = os.environ.get("DSPARK_HOME")
    return pathlib.Path(home) / "models" if home else pathlib.Path.home() / ".cache/dspark/models"


def resolve_target_path(arg):
    """A target argument as the engine's --model reads it: an existing GGUF
    file or Hugging Face directory, else a catalogue name (no '/') already
    pulled to <model cache>/<name>.gguf. Unlike the engine, an existing path
    wins over a catalogue name, and the catalogue itself is not consulted."""
    path = pathlib.Path(arg).expanduser()
    if path.exists():
        return path
    if "/" not in str(arg):
        cached = model_cache_dir() / f"{arg}.gguf"
        if cached.is_file():
            return cached
        raise FileNotFoundError(f"target {arg}: no such file or directory, and no pulled "
                                f"catalogue model {cached} (run `dspark pull {arg}`)")
    raise FileNotFoundError(f"target {arg}: no such file or directory")


def load_meta(path):
    """Metadata only (no tensors read) of a GGUF file, a Hugging Face
    directory or a pulled catalogue model."""
    path = resolve_target_path(path)
    if path.is_dir():
        from .hf_target import load_hf_meta  # hf_target imports this module
        return load_hf_meta(path)
    return read_meta(gguf.GGUFReader(str(path)), path)


def load_target(path):
    """The embedding and head of a GGUF file (GgufTarget), a Hugging Face
    directory (HfTarget) or a pulled catalogue model."""
    path = resolve_target_path(path)
    if path.is_dir():
        from .hf_target import HfTarget
        return HfTarget.load(path)
    return GgufTarget.load(path)


def _dequantize(tensor):
    """A GGUF tensor as a float32 numpy array, outermost dimension first."""
    rows = int(np.prod(tensor.shape[1:])) if len(tensor.shape) > 1 else 1
    values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
    # A writable copy: F32 data is a view of the read-only memory map.
    return np.array(values, dtype=np.float32, copy=True).reshape(rows, int(tensor.shape[0]))


class Target:
    """A target's embedding and LM head as f32 torch tensors (read-only use).
    Built by GgufTarget.load / HfTarget.load, or load_target for either."""

    def __init__(self, meta, embedding, head):
        self.meta = meta
        self.embedding = embedding  # [vocab, dim] without the embed scale
        self.head = head            # [vocab, dim]; the same tensor when tied

    def to(self, device):
        """Moves the embedding and head to `device` (in place; a tied head
        stays one tensor) and returns self. ids passed to embed and rows to
        lm_head must then be on `device` too."""
        tied = self.head is self.embedding
        self.embedding = self.embedding.to(device)
        self.head = self.embedding if tied else self.head.to(device)
        return self

    def embed(self, ids):
        """ids [n] -> [n, dim], times the embedding scale (Model::Embed)."""
        x = self.embedding[ids.long()]
        if self.meta.embed_scale != 1.0:
            x = x * torch.tensor(self.meta.embed_scale, dtype=torch.float32, device=x.device)
        return x

    def lm_head(self, hidden, rows=None):
        """hidden [n, dim] (already normed) -> logits [n, vocab] (Model::LmHead),
        or [n, len(rows)] over the head rows `rows` (a draft vocabulary)."""
        w = self.head if rows is None else self.head[rows.long()]
        logits = hidden.float() @ w.T
        cap = self.meta.final_softcap
        if cap > 0:
            logits = torch.tanh(logits / cap) * cap
        return logits


class GgufTarget(Target):
    """A GGUF target's embedding and head, de-quantized."""

    @classmethod
    def load(cls, path):
        path = pathlib.Path(path).expanduser()
        reader = gguf.GGUFReader(str(path))
        meta = read_meta(reader, path)
        tensors = {t.name: t for t in reader.tensors}
        embedding = torch.from_numpy(_dequantize(tensors["token_embd.weight"]))
        if "output.weight" in tensors:
            head = torch.from_numpy(_dequantize(tensors["output.weight"]))
        else:
            head = embedding
        assert embedding.shape == (meta.vocab_size, meta.dim), embedding.shape
        assert head.shape == (meta.vocab_size, meta.dim), head.shape
        return cls(meta, embedding, head)


def pick_mask_token(meta):
    """A real token id the target never emits in text, for the block's MASK
    slots: the first UNUSED token (Qwen's padding rows, Gemma's <unusedN>),
    else the padding token when it differs from BOS/EOS, else the last CONTROL
    token that is neither BOS nor EOS, else the last id of the vocabulary.
    A Hugging Face directory's types come from its tokenizer.json
    (hf_target.read_hf_vocab); without one only the last two rules apply."""
    types = meta.token_types
    for i, t in enumerate(types[: meta.vocab_size]):
        if t == TOKEN_TYPE_UNUSED:
            return i
    if 0 <= meta.pad_id < meta.vocab_size and meta.pad_id not in (meta.bos_id, meta.eos_id):
        return meta.pad_id
    for i in range(min(len(types), meta.vocab_size) - 1, -1, -1):
        if types[i] == TOKEN_TYPE_CONTROL and i not in (meta.bos_id, meta.eos_id):
            return i
    return meta.vocab_size - 1


def default_target_layers(num_layers):
    """EAGLE-3 / DSpark's choice: one early, one middle, one late layer."""
    picks = [1, num_layers // 2 - 1, num_layers - 4]
    out = []
    for p in picks:
        p = min(max(p, 0), num_layers - 1)
        if p not in out:
            out.append(p)
    return out


__all__ = [
    "GgufTarget",
    "Target",
    "TargetMeta",
    "default_target_layers",
    "load_meta",
    "load_target",
    "model_cache_dir",
    "pick_mask_token",
    "read_meta",
    "resolve_target_path",
]
