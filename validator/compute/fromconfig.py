"""Build a model from a known library and a config: the trusted half of "counted from config".

A run's `model.config` names a library, an architecture and a config instead of an entrypoint. The tracer
(tracer.py --config SPEC.json) builds the model with this module and records it as it records any model; the
parent counts the trace. No file of the run folder is imported or even present where this runs (the sandbox's
working folder holds only the spec), so the count is trusted code's: the library the track declared, the
architecture the run named, the config it gave.

Like tracer.py, this imports nothing from `validator`: it runs as a tool file in the sandbox, beside llama.py.
"""

from __future__ import annotations

from typing import Any, Callable

MAX_DIMS, MAX_DIM = 8, 2**31
# Config keys that make transformers fetch or run code from elsewhere: never followed.
REMOTE_KEYS = ("auto_map", "trust_remote_code", "_name_or_path", "custom_pipelines")
INTEGER_INPUTS = ("attention_mask", "token_type_ids", "labels", "position_ids")


class ConfigError(Exception):
    """A config the validator will not build; the tracer reports it as rule `model-config-invalid`."""


def _inputs(spec: dict) -> dict[str, tuple[list[int], bool]]:
    inputs = spec.get("inputs")
    if not isinstance(inputs, dict) or not inputs:
        raise ConfigError("model.config.inputs must map argument names to shapes, e.g. {'input_ids': [1024]}")
    out = {}
    for name, shape in inputs.items():
        if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(
                isinstance(d, int) and not isinstance(d, bool) and 0 < d < MAX_DIM for d in shape):
            raise ConfigError(f"model.config.inputs.{name}: a shape is a list of at most {MAX_DIMS} positive sizes")
        out[str(name)] = (shape, str(name).endswith("_ids") or name in INTEGER_INPUTS)
    return out


def _batch(inputs: dict, batch: int, device: str) -> dict:
    import torch

    return {name: torch.zeros(batch, *shape, dtype=torch.long if integer else torch.float32, device=device)
            for name, (shape, integer) in inputs.items()}


def _transformers_factory(spec: dict) -> Callable[[int, str], tuple]:
    import torch
    import transformers

    config = dict(spec.get("config") or {})
    refused = sorted(k for k in config if k in REMOTE_KEYS)
    if refused:
        raise ConfigError(f"model.config.config: {', '.join(refused)} would load code from elsewhere; remove it")
    model_type = config.pop("model_type", None)
    if not isinstance(model_type, str):
        raise ConfigError("model.config.config.model_type is missing: give the config.json's model_type, e.g. 'gpt2'")
    cls = getattr(transformers, str(spec.get("architecture")), None)
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)):
        raise ConfigError(f"model.config.architecture {spec.get('architecture')!r} is not a transformers model class "
                          f"(transformers {transformers.__version__}), e.g. 'GPT2LMHeadModel'")
    try:
        hf_config = transformers.AutoConfig.for_model(model_type, **config)
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"model.config.config: transformers refused it: {exc}") from exc
    if not isinstance(hf_config, cls.config_class):
        raise ConfigError(f"model.config: model_type {model_type!r} builds a {type(hf_config).__name__}, "
                          f"but {cls.__name__} takes a {cls.config_class.__name__}")
    inputs = _inputs(spec)

    def factory(batch: int, device: str):
        with torch.device(device):
            model = cls(hf_config)
        return model, _batch(inputs, batch, device)

    return factory


def _marin_factory(spec: dict) -> Callable[[int, str], tuple]:
    import llama  # type: ignore[import-not-found]  # the tool file beside this one

    if str(spec.get("architecture")) != "llama":
        raise ConfigError("model.config.architecture must be 'llama' for library 'marin'")
    inputs = _inputs(spec)
    if list(inputs) != ["input_ids"] or len(inputs["input_ids"][0]) != 1:
        raise ConfigError("model.config.inputs must be {'input_ids': [SEQUENCE_LENGTH]} for library 'marin'")
    # The training sequence length is the inputs': Marin's train_seq_len may be shorter than the config's max_seq_len
    config, why = llama.marin_config(dict(spec.get("config") or {}), seq_len=inputs["input_ids"][0][0])
    if config is None:
        raise ConfigError(f"model.config.config: not a Llama-equivalent config ({why})")
    return lambda batch, device: llama.build_for_flops(config, batch, device)


def factory(spec: Any) -> Callable[[int, str], tuple]:
    """`factory(batch, device) -> (model, inputs)` for a run's model.config. Raises ConfigError."""
    if not isinstance(spec, dict):
        raise ConfigError("model.config must be an object")
    builders = {"transformers": _transformers_factory, "marin": _marin_factory}
    builder = builders.get(spec.get("library"))
    if builder is None:
        raise ConfigError(f"model.config.library must be one of {', '.join(builders)}")
    return builder(spec)
