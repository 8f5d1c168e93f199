"""The editable part of a MaxCLIP submission: `loss.py` (loss computation) and `update.py` (model update)."""
