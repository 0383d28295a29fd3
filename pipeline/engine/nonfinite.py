"""NaN and inf in a run: the error that stops it before anything non-finite is saved, and the sentence naming
where the values stopped being finite and the likely cause (worked out only once a check has failed)."""

from __future__ import annotations

import torch


class NonFiniteError(Exception):
    """A tensor of the run became NaN or inf: one sentence, exit code 3, and nothing of that batch is saved."""


def is_finite(tensor: torch.Tensor) -> bool:
    """Whether every value is finite: one reduction, one device sync."""
    return bool(torch.isfinite(tensor).all())


def what(tensor: torch.Tensor) -> str:
    """'NaN' when any value is NaN, else 'inf'."""
    return "NaN" if bool(torch.isnan(tensor).any()) else "inf"


def dtype_name(tensor: torch.Tensor) -> str:
    """float32, float16 or bfloat16."""
    return str(tensor.dtype).removeprefix("torch.")


def step_failure(
    step: int, total: int, scheduler, start: torch.Tensor, model_in: torch.Tensor, context: dict[str, torch.Tensor],
    prediction: torch.Tensor, guided: torch.Tensor, latents: torch.Tensor, guidance_scale: float,
) -> str:
    """The sentence for latents that are not finite after `step` (0-based): the first stage whose output was not."""
    where = f"the latents became {what(latents)} at step {step + 1} of {total} (scheduler {type(scheduler).__name__})"
    if not is_finite(start):
        sigma = float(getattr(scheduler, "init_noise_sigma", 1.0))
        cause = (f"the starting latents were not finite: the scheduler's noise scale (init_noise_sigma {sigma:g}, "
                 "from its options) or the encoded input image holds NaN or inf")
    elif not is_finite(model_in):
        cause = ("the UNet's input was not finite: the task's extra channels (mask, masked image or depth) "
                 "hold NaN or inf")
    elif not is_finite(context.get("hidden_states", torch.zeros(()))):
        cause = (f"the text embeddings the UNet was given hold {what(context['hidden_states'])}: the prompt encoding "
                 "made them (the text encoder's weights, a LoRA or embedding applied to it, or emphasis)")
    elif bad := [name for name, tensor in context.items() if not is_finite(tensor)]:
        cause = f"the conditioning the UNet was given holds {what(context[bad[0]])} in {bad[0]}"
    elif not is_finite(prediction):
        cause = (f"the UNet returned {what(prediction)} on finite input: its weights hold NaN or inf, "
                 f"or it overflowed in {dtype_name(prediction)}")
    elif not is_finite(guided):
        cause = (f"classifier-free guidance overflowed: guidance_scale {guidance_scale:g} is too large "
                 f"for {dtype_name(guided)}")
    else:
        cause = ("the scheduler's step (or the task's blending) made it from a finite prediction: "
                 "its options or the step count do not suit this model")
    return f"{where}: {cause}."


def decode_failure(latents: torch.Tensor, images: torch.Tensor) -> str:
    """The sentence for a VAE decode whose images are not finite."""
    if not is_finite(latents):
        return f"the latents given to the VAE decode hold {what(latents)}, so no image can be made from them."
    return (f"the VAE decode gave {what(images)} from finite latents: the VAE's weights hold NaN or inf, "
            f"or it overflowed in {dtype_name(images)}.")


def _bad_parameters(module: torch.nn.Module) -> list[str]:
    """Names of a module's parameters that hold NaN or inf."""
    return [name for name, param in module.named_parameters() if not is_finite(param)]


def text_failure(key: str, embeddings: torch.Tensor, tokenizer, text_encoder, plain_is_finite: bool) -> str:
    """The sentence for text embeddings that are not finite: the prompt encoding is named as the cause, with the
    part that made it (the encoder's weights, a LoRA on them, an embedding's vectors, or emphasis)."""
    where = f"the {key}'s text embeddings hold {what(embeddings)}, so the run stops before the UNet"
    bad = _bad_parameters(text_encoder)
    table = text_encoder.get_input_embeddings().weight
    added = table[tokenizer.vocab_size:]  # the rows textual-inversion embeddings were given
    if any("lora" in name for name in bad):
        cause = "a LoRA applied to the text encoder holds NaN or inf"
    elif added.numel() and not is_finite(added):
        cause = "a textual-inversion embedding's vectors hold NaN or inf"
    elif bad:
        cause = f"the text encoder's weights hold NaN or inf (first: {bad[0]})"
    elif plain_is_finite:
        cause = (f"the prompt's emphasis weights made them overflow in {dtype_name(embeddings)}: "
                 "lower the (text:weight) values")
    else:
        cause = f"the text encoder overflowed in {dtype_name(embeddings)}"
    return f"{where}: {cause}."
