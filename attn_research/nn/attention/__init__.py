"""Multi-head self-attention and its kernels, found by name (`--config.model.attention`).

Every module of this package is imported here, so a new kernel is one file that
registers itself (`@register_attention`), without an edit anywhere else.
"""
import importlib
import pkgutil

from attn_research.nn.attention.base import (ATTENTION_KERNELS, AttentionKernel, CachedKernel,
                                             decodable_kernels, register_attention)
from attn_research.nn.attention.multi_head import MultiHeadSelfAttention

for _module in pkgutil.iter_modules(__path__):
  importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["ATTENTION_KERNELS", "AttentionKernel", "CachedKernel", "MultiHeadSelfAttention",
           "decodable_kernels", "register_attention"]
