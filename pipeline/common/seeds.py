"""What a negative seed means: a random one, as in AUTOMATIC1111, chosen once when the config is loaded."""

from __future__ import annotations

import logging
import random

from omegaconf import DictConfig

log = logging.getLogger("pipeline")

RANDOM_SEEDS = 2**32  # A1111 draws a random seed below 2^32


def settle_seed(cfg: DictConfig) -> DictConfig:
    """Replace a negative `seed` by a random one, said in a note and saved with every output like any seed."""
    if "seed" not in cfg or cfg.seed is None or cfg.seed >= 0:
        return cfg
    chosen = random.SystemRandom().randrange(RANDOM_SEEDS)
    log.info("seed %d means a random seed; this run uses seed %d.", cfg.seed, chosen)
    cfg.seed = chosen
    return cfg
