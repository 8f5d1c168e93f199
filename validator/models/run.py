"""The run format: `runs/<track>/<run>/speedrun_analysis.json` (or `.yaml`), one submission's claim.

`run.py` writes this file; nobody should type its numbers by hand.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import ConfigDict, Field

from .common import SCHEMA_VERSION, Citation, Slug, StrictModel

Scalar = str | int | float | bool | None
# A GitHub login: letters, digits and single hyphens, not at either end (at most 39 characters).
GITHUB_LOGIN = r"^[A-Za-z0-9](?:-?[A-Za-z0-9])*$"


class Author(StrictModel):
    name: str = Field(min_length=1, description="Full name.")
    affiliation: str | None = Field(default=None, description="University, company or 'independent'.")
    url: str | None = Field(default=None, pattern=r"^https?://", description="Personal page or profile.")
    github: str | None = Field(
        default=None, max_length=39, pattern=GITHUB_LOGIN,
        description="GitHub login (without '@'). The run's authors with a login may change the run after it is "
                    "merged; anyone else needs a maintainer.",
    )


class RunTask(StrictModel):
    description: str = Field(min_length=1, description="Task and dataset description in the submitter's words.")


class RunDataset(StrictModel):
    name: str = Field(description="Dataset name; must equal the track's.")
    version: str = Field(description="Dataset version; must equal the track's.")
    resolution: str | None = Field(default=None, description="Input resolution used for training, e.g. '8x8'.")
    train_samples: int | None = Field(
        default=None, ge=0,
        description="Number of training samples available to the run; required when the track has a fixed train split.",
    )
    checksum: str | None = Field(
        default=None, pattern=r"^sha256:[0-9a-f]{64}$", description="sha256 of the split the run used ('sha256:<hex>')."
    )


class ModelConfig(StrictModel):
    """A model the validator builds itself, from a known library and a config, so that no submitted code runs."""

    library: Literal["transformers", "marin"] = Field(
        description="'transformers': a Hugging Face transformers model class built from its config (the track's "
                    "environment must declare transformers); 'marin': a Marin/Levanter Llama-family config "
                    "(Llama, Qwen3-style qk-norm, hybrid norm: any variant whose matmuls are a Llama's)."
    )
    architecture: str = Field(
        min_length=1, max_length=100, pattern=r"^[A-Za-z][A-Za-z0-9_]*$",
        description="transformers: the model class, e.g. 'GPT2LMHeadModel', 'LlamaForCausalLM', "
                    "'ViTForImageClassification', 'CLIPModel'; marin: 'llama'.",
    )
    config: dict[str, Any] = Field(
        description="The config's keys, as in the library's config.json (transformers: include 'model_type'); "
                    "no remote code (`auto_map`) is ever followed.",
    )
    inputs: dict[str, list[int]] = Field(
        min_length=1,
        description="One training sample's inputs by argument name, as shapes without the batch dimension: "
                    "{'input_ids': [1024]} for a language model, {'pixel_values': [3, 224, 224]} for an image model, "
                    "both for CLIP. Integer inputs are names ending in '_ids'.",
    )


class Model(StrictModel):
    architecture: str = Field(min_length=1, description="Architecture in words, e.g. 'MLP 64-128-10, ReLU'.")
    parameters: int = Field(ge=0, description="Trainable parameter count.")
    entrypoint: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_./-]+\.py:[A-Za-z_][A-Za-z0-9_]*$",
        description="'file.py:function' returning the model and one training example for FLOP counting.",
    )
    framework: Literal["torch", "jax"] = Field(
        default="torch",
        description="What the entrypoint builds: 'torch' (an nn.Module and its inputs, counted from its traced "
                    "operators) or 'jax' (a loss function, parameters and a batch, counted by XLA's cost analysis).",
    )
    config: ModelConfig | None = Field(
        default=None,
        description="Instead of an entrypoint: a known architecture and its config, built and counted by the "
                    "validator itself (no submitted code runs; the site marks the count 'from config').",
    )


class Optimizer(StrictModel):
    name: str = Field(description="Optimizer, e.g. 'AdamW'.")
    learning_rate: float = Field(gt=0, description="Peak learning rate.")
    weight_decay: float | None = Field(default=None, ge=0, description="Weight decay.")
    params: dict[str, Scalar | list[float]] = Field(default_factory=dict, description="Other hyperparameters (betas, momentum...).")


class Batch(StrictModel):
    micro_batch: int = Field(gt=0, description="Samples per device per forward pass.")
    accumulation: int = Field(default=1, gt=0, description="Gradient-accumulation steps per optimizer step.")
    world_size: int = Field(default=1, gt=0, description="Data-parallel processes.")


class Schedule(StrictModel):
    name: str = Field(description="Learning-rate schedule, e.g. 'cosine', 'constant', 'linear warmup + decay'.")
    warmup_steps: int = Field(default=0, ge=0, description="Warm-up steps.")
    params: dict[str, Scalar] = Field(default_factory=dict, description="Other schedule parameters.")


class Training(StrictModel):
    optimizer: Optimizer = Field(description="Optimizer and its hyperparameters.")
    batch: Batch = Field(description="Batch layout; global batch = micro_batch x accumulation x world_size.")
    steps: int = Field(ge=0, description="Optimizer steps taken.")
    schedule: Schedule = Field(description="Learning-rate schedule.")
    augmentations: list[str] = Field(default_factory=list, description="Augmentations applied, in order; empty for none.")
    precision: str = Field(default="fp32", description="Numeric precision, e.g. 'fp32', 'bf16 autocast'.")
    other: dict[str, Scalar] = Field(default_factory=dict, description="Anything else that shapes training.")


class Method(StrictModel):
    name: str = Field(description="Method name, e.g. 'Adaptive Sparse Training'.")
    data_selection: bool = Field(
        default=False, description="True if the method scores samples and trains only on a selected subset."
    )
    params: dict[str, Scalar] = Field(default_factory=dict, description="Method hyperparameters (target rate, PI gains...).")


class Evaluation(StrictModel):
    metrics: list[str] = Field(min_length=1, description="Metric ids reported; each must be one of the track's.")
    protocol: str = Field(description="How evaluation was run (split, batch, samples, averaging).")
    checkpoints: list[int] = Field(default_factory=list, description="Sample counts at which the run evaluated.")


class Flops(StrictModel):
    claimed: float = Field(ge=0, description="Total training FLOPs the run claims.")
    convention: Literal["speedrun-v1", "fvcore-macs", "forward-only", "6nd"] = Field(
        default="speedrun-v1",
        description="'speedrun-v1': 2 per multiply-accumulate, forward + backward as executed (the site's convention).",
    )
    per_sample_training: float | None = Field(default=None, ge=0, description="Training FLOPs per sample, if known.")


class Hardware(StrictModel):
    accelerator: str = Field(description="Device model, e.g. 'NVIDIA H100 80GB' or 'CPU (2 cores)'.")
    count: int = Field(default=1, ge=1, description="Number of devices.")


class Compute(StrictModel):
    samples_seen: int = Field(ge=0, description="Training samples that contributed a gradient, over all epochs (per seed).")
    forward_only_samples: int = Field(
        default=0, ge=0, description="Samples only scored by a forward pass (data-selection methods), per seed."
    )
    flops: Flops | None = Field(default=None, description="FLOPs claim; required on FLOPs-budget tracks.")
    hardware: Hardware = Field(description="What the run trained on.")
    wall_time_seconds: float | None = Field(default=None, ge=0, description="Training wall time per seed in seconds.")
    peak_memory_bytes: int | None = Field(default=None, ge=0, description="Peak accelerator (or host) memory in bytes.")


class CurvePoint(StrictModel):
    """One evaluation: `{"samples": 1024, "val_top1": 0.71}`; every other key is a metric id."""

    model_config = ConfigDict(extra="allow")
    samples: int = Field(ge=0, description="Training samples seen when this evaluation ran.")
    train_time_seconds: float | None = Field(
        default=None, ge=0,
        description="Training wall-clock seconds (evaluation excluded) when this evaluation ran; time tracks with "
                    "timing 'first_reached' read it.",
    )
    __pydantic_extra__: dict[str, float] = Field(init=False)


class SeedResult(StrictModel):
    seed: int = Field(description="Random seed of this training run.")
    setting: str | None = Field(default=None, description="Setting id (MaxCLIP small/medium/large); null on one-setting tracks.")
    samples_seen: int | None = Field(default=None, ge=0, description="Samples seen by this seed, if it differs from compute.samples_seen.")
    forward_only_samples: int | None = Field(default=None, ge=0, description="Forward-only samples of this seed, if it differs.")
    curve: list[CurvePoint] = Field(default_factory=list, description="Metric vs samples at the track's checkpoints.")
    final: dict[str, float] = Field(min_length=1, description="Final value of each metric, keyed by metric id.")
    train_time_seconds: float | None = Field(
        default=None, ge=0,
        description="Timed training of this seed in wall-clock seconds, synchronised, evaluation and any untimed "
                    "warm-up the track allows excluded; time tracks rank by it (only reproduced times count on a "
                    "standard board).",
    )
    trace: dict[str, list[float]] = Field(default_factory=dict, description="Extra per-step traces (e.g. activation rate).")


class Artifact(StrictModel):
    """What a run ships, for tracks with an artifact size limit (Parameter Golf: code plus compressed weights)."""

    compressed_weights_bytes: int = Field(
        ge=0,
        description="Bytes of the trained weights as compressed by the run (e.g. int8 + zlib); a reproduction "
                    "re-measures it. Code bytes are not declared: the validator counts the run folder's .py files.",
    )
    compression: str | None = Field(default=None, max_length=200, description="How the weights are compressed.")


class Baseline(StrictModel):
    run: str = Field(description="Name of the baseline run this run compares against.")
    track: str | None = Field(default=None, description="Track of the baseline if different from this run's.")


class Experiment(StrictModel):
    id: Slug = Field(description="Experiment id grouping runs of one sweep or ablation.")
    parameter: str | None = Field(default=None, description="Name of the swept parameter, e.g. 'target_activation'.")
    value: Scalar = Field(default=None, description="This run's value of the swept parameter.")


class Files(StrictModel):
    script: str | None = Field(
        default="run.py", description="The training script, relative to the run folder; null only for cited results."
    )
    readme: str | None = Field(default=None, description="Write-up of the approach.")
    logs: list[str] = Field(
        default_factory=list,
        description="Training logs, relative to the run folder. Once named, they must state every metric value "
                    "the analysis claims, as `seed N [setting S] ... samples N <metric> <value>` lines "
                    "(CONTRIBUTING.md, Logs).",
    )
    config: str | None = Field(default=None, description="Hyperparameter config file (constrained tracks).")
    artifacts: list[str] = Field(default_factory=list, description="Other files the run ships (plots, small checkpoints).")

    def all_paths(self) -> list[tuple[str, str]]:
        """(json path, relative file path) for every file named."""
        out = [("$.files.script", self.script)] if self.script else []
        if self.readme:
            out.append(("$.files.readme", self.readme))
        if self.config:
            out.append(("$.files.config", self.config))
        out += [(f"$.files.logs[{i}]", p) for i, p in enumerate(self.logs)]
        out += [(f"$.files.artifacts[{i}]", p) for i, p in enumerate(self.artifacts)]
        return out


class RunAnalysis(StrictModel):
    """A submission's claim, written by its `run.py`."""

    schema_version: Literal[1] = Field(description=f"Format version of this file; currently {SCHEMA_VERSION}.")
    track: Slug = Field(description="Id of the track the run competes on.")
    name: Slug = Field(description="Run name; must equal the run's folder name.")
    team: str = Field(min_length=1, description="Team name (rate limits count per team).")
    authors: list[Author] = Field(min_length=1, description="People behind the run.")
    date: dt.date = Field(description="Date the run finished (YYYY-MM-DD).")
    description: str = Field(min_length=1, description="The approach in a few sentences.")
    changes: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[^\r\n]*$",
        description="What this run changes against the run it builds on, in one line, e.g. 'Muon optimizer instead "
                    "of AdamW; 20% fewer steps' (a baseline says what it is: 'Baseline: ...'). Required of a run a "
                    "pull request adds (changes-missing); at most 200 characters.",
    )
    task: RunTask = Field(description="Task and dataset description.")
    dataset: RunDataset = Field(description="Dataset, version, resolution and number of training samples.")
    model: Model = Field(description="Architecture and parameter count.")
    training: Training | None = Field(
        default=None, description="Optimizer, batch, schedule, augmentations; required except for cited results."
    )
    method: Method | None = Field(default=None, description="Training method beyond plain SGD on all samples (e.g. AST).")
    evaluation: Evaluation = Field(description="Metrics and evaluation protocol.")
    compute: Compute = Field(description="Samples, FLOPs, hardware, time and memory.")
    seeds: list[int] = Field(min_length=1, description="Random seeds the run reports, one result per seed (and setting).")
    results: list[SeedResult] = Field(min_length=1, description="Per-seed (and per-setting) curves and final metrics.")
    baseline: Baseline | None = Field(default=None, description="Baseline run for delta comparisons (AST-style).")
    artifact: Artifact | None = Field(
        default=None, description="Compressed weight size; required on tracks with artifact_limit_bytes.",
    )
    experiment: Experiment | None = Field(default=None, description="Sweep or ablation this run belongs to.")
    files: Files = Field(default_factory=Files, description="Files of the run folder the analysis refers to.")
    source: Citation | None = Field(default=None, description="Citation for results reported elsewhere (unconstrained boards).")
    notes: str | None = Field(default=None, description="Instabilities, failure modes, anything a reader should know.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Free-form data kept for the record (e.g. an import's origin).")
