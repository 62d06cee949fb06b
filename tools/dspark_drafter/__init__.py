"""DSpark block drafter tooling: the PyTorch reference module (model.py), the
target's shared embedding and head read from a GGUF (target.py). See README.md.

Import as `tools.dspark_drafter` from the repository root, or as
`dspark_drafter` with tools/ on sys.path (what the tools/*.py scripts do)."""

from .model import (CONFIG_FILE, WEIGHTS_FILE, DSparkConfig, DSparkDrafter, DraftOutput)
from .target import (GgufTarget, TargetMeta, default_target_layers, load_meta, pick_mask_token)
