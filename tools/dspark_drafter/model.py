"""The DSpark block drafter in PyTorch: the reference for the C++ engine's
DsparkDrafter (draft_worker/dspark/dspark_drafter.h, same math) and the module
drafters are trained as. Architecture and checkpoint format: README.md next to
this file.

    target = GgufTarget.load(gguf_path)                      # target.py
    drafter = DSparkDrafter.from_pretrained(drafter_dir)
    out = drafter.draft_block(features, last_token, target)  # greedy
    out.logits  # [B, head vocab]; out.confidences [B]; out.tokens [B] (target ids)

Everything runs in f32 (bf16 checkpoints are up-cast on load, exactly as the
engine's matmuls up-cast bf16 weights). The module runs on any torch device:
the tensors it creates follow the device of its inputs, which must be the
drafter's and the target's (Target.to).
"""

import json
import pathlib
from dataclasses import asdict, dataclass, field
from typing import List, NamedTuple, Optional

import torch
from torch import nn

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
MAX_BLOCK_SIZE = 16


@dataclass
class DSparkConfig:
    """config.json, with DSpark release field names."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    mask_token_id: int
    target_layer_ids: List[int]
    target_hidden_size: int
    markov_rank: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    block_size: int = 7
    draft_vocab_size: Optional[int] = None
    target_model: str = ""
    confidence_head: dict = field(
        default_factory=lambda: {"type": "linear", "input": "hidden+markov"})
    architectures: List[str] = field(default_factory=lambda: ["DSparkDrafter"])
    model_type: str = "dspark"

    def validate(self):
        assert self.model_type == "dspark", self.model_type
        assert 1 <= self.block_size <= MAX_BLOCK_SIZE, self.block_size
        assert self.num_attention_heads % self.num_key_value_heads == 0
        assert self.head_dim % 2 == 0
        assert 0 <= self.mask_token_id < self.vocab_size
        assert self.target_layer_ids and all(i >= 0 for i in self.target_layer_ids)
        assert self.markov_rank >= 0
        assert self.confidence_head == {"type": "linear", "input": "hidden+markov"}
        if self.draft_vocab_size is not None:
            assert 1 <= self.draft_vocab_size <= self.vocab_size

    def to_dict(self):
        d = asdict(self)
        if d["draft_vocab_size"] is None:
            del d["draft_vocab_size"]
        return d

    @classmethod
    def from_dict(cls, d):
        known = {f for f in cls.__dataclass_fields__}
        cfg = cls(**{k: v for k, v in d.items() if k in known})
        if "head_dim" not in d:
            cfg.head_dim = cfg.hidden_size // cfg.num_attention_heads
        cfg.validate()
        return cfg


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        x = x.float()
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_cos_sin(positions, head_dim, theta):
    """cos, sin [..., head_dim / 2] for integer positions [...]; angles in f64
    then rounded to f32, as the engine's ApplyRope."""
    half = head_dim // 2
    dev = positions.device
    inv_freq = torch.pow(torch.tensor(float(theta), dtype=torch.float64, device=dev),
                         -2.0 * torch.arange(half, dtype=torch.float64, device=dev) / head_dim)
    angles = positions.to(torch.float64).unsqueeze(-1) * inv_freq
    return torch.cos(angles).float(), torch.sin(angles).float()


def apply_rope(x, cos, sin):
    """x [..., heads, head_dim] rotated in the NeoX halves layout; cos/sin
    [..., head_dim / 2] (broadcast over heads)."""
    half = x.shape[-1] // 2
    cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, c: DSparkConfig):
        super().__init__()
        self.c = c
        self.q_proj = nn.Linear(c.hidden_size, c.num_attention_heads * c.head_dim, bias=False)
        self.k_proj = nn.Linear(c.hidden_size, c.num_key_value_heads * c.head_dim, bias=False)
        self.v_proj = nn.Linear(c.hidden_size, c.num_key_value_heads * c.head_dim, bias=False)
        self.o_proj = nn.Linear(c.num_attention_heads * c.head_dim, c.hidden_size, bias=False)
        self.q_norm = RMSNorm(c.head_dim, c.rms_norm_eps)
        self.k_norm = RMSNorm(c.head_dim, c.rms_norm_eps)

    def key_value(self, x, positions):
        """x [N, T, hidden] at positions [N, T] -> K, V [N, T, kv_heads, head_dim]."""
        c = self.c
        N, T = x.shape[:2]
        k = self.k_norm(self.k_proj(x).view(N, T, c.num_key_value_heads, c.head_dim))
        k = apply_rope(k, *rope_cos_sin(positions, c.head_dim, c.rope_theta))
        v = self.v_proj(x).view(N, T, c.num_key_value_heads, c.head_dim)
        return k, v

    def forward(self, h, positions, ctx_k, ctx_v, ctx_mask):
        """h [N, B, hidden] block rows at positions [N, B]; ctx_k/ctx_v
        [N, Lc, kv_heads, head_dim] context keys/values, ctx_mask [N, Lc]
        (True = a real context token). Every block row attends to all real
        context keys and all B block keys."""
        c = self.c
        N, B = h.shape[:2]
        q = self.q_norm(self.q_proj(h).view(N, B, c.num_attention_heads, c.head_dim))
        q = apply_rope(q, *rope_cos_sin(positions, c.head_dim, c.rope_theta))
        bk, bv = self.key_value(h, positions)
        k = torch.cat([ctx_k, bk], dim=1)  # [N, Lc + B, kv_heads, head_dim]
        v = torch.cat([ctx_v, bv], dim=1)
        group = c.num_attention_heads // c.num_key_value_heads
        k = k.repeat_interleave(group, dim=2)  # [N, Lc + B, heads, head_dim]
        v = v.repeat_interleave(group, dim=2)
        scores = torch.einsum("nbhd,nkhd->nhbk", q, k) * (1.0 / float(c.head_dim) ** 0.5)
        mask = torch.cat([ctx_mask, torch.ones(N, B, dtype=torch.bool, device=h.device)], dim=1)
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        p = torch.softmax(scores.float(), dim=-1)
        out = torch.einsum("nhbk,nkhd->nbhd", p, v).reshape(N, B, -1)
        return self.o_proj(out)


class MLP(nn.Module):
    def __init__(self, c: DSparkConfig):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c: DSparkConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = MLP(c)

    def forward(self, x, positions, ctx_k, ctx_v, ctx_mask):
        x = x + self.self_attn(self.input_layernorm(x), positions, ctx_k, ctx_v, ctx_mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class MarkovHead(nn.Module):
    """m = b(a(embed(prev))): a rank-r correction added before the frozen head."""

    def __init__(self, c: DSparkConfig):
        super().__init__()
        self.a = nn.Linear(c.hidden_size, c.markov_rank, bias=False)
        self.b = nn.Linear(c.markov_rank, c.hidden_size, bias=False)

    def forward(self, prev_embedding):
        return self.b(self.a(prev_embedding))


class DraftOutput(NamedTuple):
    logits: torch.Tensor       # [B, head vocab]
    confidences: torch.Tensor  # [B]
    tokens: torch.Tensor       # [B] target ids


class DSparkDrafter(nn.Module):
    def __init__(self, config: DSparkConfig):
        super().__init__()
        config.validate()
        self.config = c = config
        n_in = len(c.target_layer_ids) * c.target_hidden_size
        self.fc = nn.Linear(n_in, c.hidden_size, bias=False)
        self.hidden_norm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.layers = nn.ModuleList(Layer(c) for _ in range(c.num_hidden_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.markov = MarkovHead(c) if c.markov_rank > 0 else None
        self.confidence = nn.Linear(c.hidden_size, 1, bias=True)
        if c.draft_vocab_size is not None:
            # EAGLE-3's convention: target id = draft id + d2t[draft id].
            self.register_buffer("d2t", torch.zeros(c.draft_vocab_size, dtype=torch.int64))
        else:
            self.d2t = None

    # ---- pieces -----------------------------------------------------------

    def draft_to_target(self):
        """[draft vocab] target id of each draft id, or None."""
        if self.d2t is None:
            return None
        return torch.arange(self.d2t.shape[0], dtype=torch.int64, device=self.d2t.device) + self.d2t

    def context(self, features):
        """features [..., len(target_layer_ids) * target_hidden] -> ctx [..., hidden]."""
        return self.hidden_norm(self.fc(features.float()))

    def context_kv(self, ctx, positions):
        """Per layer (K, V) [N, Lc, kv_heads, head_dim] of ctx [N, Lc, hidden]."""
        return [layer.self_attn.key_value(ctx, positions) for layer in self.layers]

    def block_hidden(self, x, block_start, ctx_kv, ctx_mask):
        """The block forward. x [N, B, hidden] embedded block ids; block_start
        [N] (= each context length L); ctx_kv from context_kv; ctx_mask
        [N, Lc]. Returns hfinal [N, B, hidden]."""
        B = x.shape[1]
        positions = block_start[:, None] + torch.arange(B, device=x.device)[None, :]
        for layer, (k, v) in zip(self.layers, ctx_kv):
            x = layer(x, positions, k, v, ctx_mask)
        return self.norm(x)

    def head(self, hfinal, prev_ids, target):
        """hfinal [..., hidden] and the previous tokens prev_ids [...] (target
        ids) -> logits [..., head vocab], confidences [...]. Teacher-forced
        when prev_ids are the true tokens (training)."""
        z = hfinal
        if self.markov is not None:
            z = z + self.markov(target.embed(prev_ids.reshape(-1)).view(*prev_ids.shape, -1))
        logits = target.lm_head(z.reshape(-1, z.shape[-1]), rows=self.draft_to_target())
        logits = logits.view(*z.shape[:-1], -1)
        conf = torch.sigmoid(self.confidence(z)).squeeze(-1)
        return logits, conf

    def block_input(self, last_tokens, target):
        """[N] last tokens -> embedded block ids [N, B, hidden]."""
        B = self.config.block_size
        ids = torch.full((last_tokens.shape[0], B), self.config.mask_token_id, dtype=torch.int64,
                         device=last_tokens.device)
        ids[:, 0] = last_tokens
        return target.embed(ids.reshape(-1)).view(ids.shape[0], B, -1)

    # ---- training-friendly batched forward ---------------------------------

    def forward(self, features, ctx_lens, last_tokens, prev_ids, target):
        """N blocks at once, teacher-forced head. features [N, Lc, n * D]
        (rows >= ctx_lens[i] are padding), ctx_lens [N], last_tokens [N],
        prev_ids [N, B] (prev_ids[:, 0] == last_tokens). Returns logits
        [N, B, head vocab] and confidences [N, B]."""
        N, Lc = features.shape[:2]
        ctx_pos = torch.arange(Lc, device=features.device)[None, :].expand(N, Lc)
        ctx_mask = ctx_pos < ctx_lens[:, None]
        ctx_kv = self.context_kv(self.context(features), ctx_pos)
        hfinal = self.block_hidden(self.block_input(last_tokens, target), ctx_lens, ctx_kv, ctx_mask)
        return self.head(hfinal, prev_ids, target)

    # ---- inference reference -------------------------------------------------

    @torch.no_grad()
    def draft_block(self, context_features, last_token, target):
        """Greedy draft of one block. context_features [L, n * D] of the L
        context tokens, last_token (the token at position L). Returns logits
        [B, head vocab], confidences [B] and the drafted tokens [B] (target ids),
        position i predicting the token at L + 1 + i."""
        L = context_features.shape[0]
        dev = context_features.device
        ctx_pos = torch.arange(L, device=dev)[None, :]
        ctx_kv = self.context_kv(self.context(context_features[None]), ctx_pos)
        ctx_mask = torch.ones(1, L, dtype=torch.bool, device=dev)
        x = self.block_input(torch.tensor([int(last_token)], device=dev), target)
        start = torch.tensor([L], device=dev)
        hfinal = self.block_hidden(x, start, ctx_kv, ctx_mask)[0]  # [B, hidden]
        d2t = self.draft_to_target()
        prev = int(last_token)
        logits, confs, tokens = [], [], []
        for i in range(self.config.block_size):
            lg, cf = self.head(hfinal[i:i + 1], torch.tensor([prev], device=dev), target)
            draft_id = int(torch.argmax(lg[0]))  # lowest index among equals, as the engine
            prev = int(d2t[draft_id]) if d2t is not None else draft_id
            logits.append(lg[0])
            confs.append(cf[0])
            tokens.append(prev)
        return DraftOutput(torch.stack(logits), torch.stack(confs),
                           torch.tensor(tokens, device=dev))

    # ---- checkpoint files -----------------------------------------------------

    def save_pretrained(self, directory, dtype=torch.float32):
        from safetensors.torch import save_file

        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_FILE).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")
        tensors = {}
        for name, t in self.state_dict().items():
            t = t.detach().cpu()
            tensors[name] = t.contiguous() if name == "d2t" else t.to(dtype).contiguous()
        save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})

    @classmethod
    def from_pretrained(cls, directory):
        from safetensors.torch import load_file

        directory = pathlib.Path(directory)
        config = DSparkConfig.from_dict(json.loads((directory / CONFIG_FILE).read_text()))
        model = cls(config)
        state = load_file(str(directory / WEIGHTS_FILE))
        state = {k: (v if k == "d2t" else v.float()) for k, v in state.items()}
        model.load_state_dict(state, strict=True)
        return model.eval()
