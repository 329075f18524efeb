"""Whole models by family, found by name: get_model(config.model, task_info)."""
from attn_research.models import cnn, gnn, mlp, rnn, transformer  # noqa: F401  (registers families)
from attn_research.models import cnn2d, sagan, vit  # noqa: F401  (image families)
from attn_research.models import encoder_decoder  # noqa: F401  (source -> target)
from attn_research.models.registry import (MODELS, count_params, get_model, model_defaults,
                                           register_model)

__all__ = ["MODELS", "count_params", "get_model", "model_defaults", "register_model"]
