"""The `depth` preprocessor of a ControlNet entry: a depth estimator's map of the control image, made as diffusers'
ControlNet depth example makes it with transformers' depth-estimation pipeline (the prediction resized bicubic to the
picture's size by the processor's post_process_depth_estimation, stretched to [0, 1] per image, times 255 cut to
8 bits, one gray channel repeated to three). The estimator is the entry's `depth_estimator`, else the model's own
depth_estimator/feature_extractor (a depth2img model folder carries them)."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from PIL import Image
from transformers.modeling_outputs import DepthEstimatorOutput

from pipeline.common.errors import UserError
from pipeline.models.depth_estimator import PARTS, Source, predict_depth, source_of
from pipeline.models.inspect import ModelInfo


def estimator_source(entry: Any, key: str, info: ModelInfo, allow_pickle: bool = False) -> Optional[Source]:
    """Where the entry's depth estimator is read from (None for another preprocessor), or one sentence why none."""
    if entry.preprocessor != "depth":
        if entry.depth_estimator:
            raise UserError(f"{key}.depth_estimator applies to preprocessor depth; {key}.preprocessor is "
                            f"{entry.preprocessor}.")
        return None
    if entry.depth_estimator:
        return source_of(entry.depth_estimator, f"{key}.depth_estimator", allow_pickle)
    if set(PARTS) <= info.extras:
        return Source(info.path, *PARTS)
    raise UserError(f"{key}.preprocessor depth needs a depth estimator: set {key}.depth_estimator to a DPT folder or "
                    f"hub id (e.g. Intel/dpt-hybrid-midas); model.path {info.path} has no depth_estimator and "
                    "feature_extractor of its own.")


def depth_map(image: Image.Image, estimator: Any, processor: Any) -> Image.Image:
    """The picture's depth as a 3-channel 8-bit map of its size, nearer = brighter, stretched to the full range (a
    flat prediction, where the example divides by zero, is black)."""
    predicted = predict_depth(estimator, processor, image)
    resized = processor.post_process_depth_estimation(DepthEstimatorOutput(predicted_depth=predicted),
                                                      [image.size[::-1]])[0]["predicted_depth"]
    depth = resized.float().cpu().numpy()
    span = depth.max() - depth.min()
    depth = (depth - depth.min()) / span if span > 0 else np.zeros_like(depth)
    gray = (depth * 255).astype(np.uint8)
    return Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2))
