"""Where and how work runs: `gpus` -> devices, DDP ranks, and grouped numeric kernels."""
