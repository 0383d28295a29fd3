"""Models: components with named parts, single-file checkpoints, weight checks, precision, add-ons (LoRA, embeddings)."""
