"""Pure JAX attention kernels: no Flax, no state. Layout [batch, length, heads, head_dim]."""
from attn_research.kernels.attention import (IMPLS, additive_attention, check_impl,
                                             choose_impl, dot_product_attention)
from attn_research.kernels.linear import (init_state, linear_attention,
                                          linear_attention_step)
from attn_research.kernels.local import local_attention
from attn_research.kernels.masks import combine, full_mask, padding_mask
from attn_research.kernels.scores import additive_scores, dot_scores

__all__ = ["IMPLS", "additive_attention", "additive_scores", "check_impl", "choose_impl",
           "combine", "dot_product_attention", "dot_scores", "full_mask", "init_state",
           "linear_attention", "linear_attention_step", "local_attention", "padding_mask"]
