#!/usr/bin/env python3
"""Writes tests/common/engine/backend/cpu/testdata/dequant_fixtures.bin.

Random GGUF blocks of every type dspark computes with, and their values as
the `gguf` package's reference de-quantizer (gguf.quants.dequantize) gives
them; dequantize_test.cc checks the C++ de-quantizers against it bit for bit.

    python3 -m venv /tmp/g && /tmp/g/bin/pip install gguf numpy
    /tmp/g/bin/python tools/make_quant_fixtures.py

File format (little endian), records until EOF:
    u32 ggml type id, u32 element count, u32 byte count,
    raw block bytes, f32 values[element count]
"""

import argparse
import pathlib
import struct

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

OUT = pathlib.Path(__file__).resolve().parent.parent / (
    "tests/common/engine/backend/cpu/testdata/dequant_fixtures.bin")

# type -> (block elements, block bytes, byte offsets of f16 scale fields)
BLOCKS = {
    T.Q4_0: (32, 18, [0]),
    T.Q4_1: (32, 20, [0, 2]),
    T.Q5_0: (32, 22, [0]),
    T.Q8_0: (32, 34, [0]),
    T.Q4_K: (256, 144, [0, 2]),
    T.Q6_K: (256, 210, [208]),
}


def raw_blocks(rng, qtype, n_blocks):
    """Uniformly random bytes with finite, varied f16 scales."""
    size, nbytes, f16_fields = BLOCKS[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, nbytes), dtype=np.uint8)
    for off in f16_fields:
        scale = (rng.uniform(1e-4, 2.0, n_blocks) * rng.choice([-1, 1], n_blocks))
        # Include some subnormal and zero scales.
        scale[0] = 0.0
        scale[1] = 3e-6
        raw[:, off:off + 2] = scale.astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(-1)


def record(qtype, raw):
    values = quants.dequantize(raw, qtype).astype(np.float32).reshape(-1)
    head = struct.pack("<III", int(qtype), values.size, raw.size)
    return head + raw.tobytes() + values.tobytes()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    parser.add_argument("--seed", type=int, default=20240611)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    out = bytearray()
    for qtype, (size, _, _) in BLOCKS.items():
        n_blocks = 24 if size == 32 else 6
        out += record(qtype, raw_blocks(rng, qtype, n_blocks))
        if qtype in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q8_0):
            x = (rng.standard_normal(n_blocks * size) *
                 rng.uniform(0.01, 3.0)).astype(np.float32)
            out += record(qtype, quants.quantize(x, qtype).reshape(-1))
    x = (rng.standard_normal(512) * 10).astype(np.float32)
    x[:4] = [0.0, -0.0, 6e-8, 65504.0]
    out += record(T.F16, x.astype(np.float16).view(np.uint8).reshape(-1))
    out += record(T.BF16, quants.quantize(x, T.BF16).reshape(-1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(bytes(out))
    print(f"wrote {args.out} ({len(out)} bytes)")


if __name__ == "__main__":
    main()
