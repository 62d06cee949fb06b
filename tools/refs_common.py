"""Shared helpers for the reference generators (make_references.py,
make_tiny_hf_models.py): where the pulled models live and how fixtures are
written.

Nothing here touches the network: the models are the GGUF files `dspark pull`
puts under $DSPARK_HOME/models (default ~/.cache/dspark/models), or paths given
on the command line.
"""

import json
import os
import pathlib

# The catalogue names (models/catalogue.json) of the real models.
MODEL_NAMES = ("smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "gemma-3-270m")

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
TESTDATA_DIR = REPO_ROOT / "tests" / "common" / "engine" / "model" / "testdata"


def offline():
    """Makes sure nothing in transformers / huggingface_hub reaches a hub."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def dspark_home():
    home = os.environ.get("DSPARK_HOME")
    if home:
        return pathlib.Path(home)
    return pathlib.Path.home() / ".cache" / "dspark"


def cached_model_path(name):
    """Where `dspark pull NAME` leaves the GGUF file."""
    return dspark_home() / "models" / f"{name}.gguf"


def parse_model_args(pairs):
    """['name=path', ...] -> {name: path}; every other catalogue model defaults
    to its cached path. Unknown names are an error."""
    paths = {name: cached_model_path(name) for name in MODEL_NAMES}
    for pair in pairs or []:
        name, sep, path = pair.partition("=")
        if not sep or name not in paths:
            raise SystemExit(f"--model wants NAME=PATH with NAME one of {', '.join(MODEL_NAMES)}; got {pair!r}")
        paths[name] = pathlib.Path(path)
    return paths


def write_json(path, obj):
    """Compact JSON with one top-level key per line (diffs stay readable)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write("{\n")
        items = list(obj.items())
        for i, (k, v) in enumerate(items):
            f.write(json.dumps(k) + ": " + json.dumps(v, separators=(",", ":")))
            f.write(",\n" if i + 1 < len(items) else "\n")
        f.write("}\n")
    return path.stat().st_size


def rounded(values, digits=5):
    """Floats rounded for storage: 5 decimals keeps logits (|x| < 100) to
    better than 1e-6 relative of the largest, far inside the tests' 1e-3/1e-4."""
    return [round(float(v), digits) for v in values]
