"""attn_research: a JAX/Flax lab for self-attention and its rivals."""
__version__ = "0.1.0"
