"""The local fusion model (``model``) and its training loop and checkpoints (``train``)."""

from prism.fusion.model import Explanation, FusionConfig, FusionModel, ItemInputs, build_history, explain
from prism.fusion.train import (CheckpointError, FusionTrainConfig, load_checkpoint, resolve_device, save_checkpoint,
                                train_fusion)

__all__ = ["CheckpointError", "Explanation", "FusionConfig", "FusionModel", "FusionTrainConfig", "ItemInputs",
           "build_history", "explain", "load_checkpoint", "resolve_device", "save_checkpoint", "train_fusion"]
