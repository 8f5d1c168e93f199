"""The track format: `runs/<track>/track.yaml`, one competition track's rules as data."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from pydantic import AfterValidator, Field, field_validator, model_validator

from .common import SCHEMA_VERSION, Direction, Link, Slug, StrictModel
from .rankrules import (  # noqa: F401 - re-exported: the ranking rules were defined here before
    AUCRule,
    BaselineDeltaRule,
    BudgetRule,
    FinalMetricRule,
    MetricUnderTimeLimitRule,
    RankRule,
    TIME_RULES,
    SettingsMeanRule,
    ThresholdRule,
    TimeToTargetRule,
)


class Competition(StrictModel):
    id: Slug = Field(description="Competition id; tracks sharing it are grouped on the index page.")
    title: str = Field(description="Competition name shown on the site, e.g. 'Marin Speedrun'.")
    url: str | None = Field(default=None, description="Home page of the competition.", pattern=r"^https?://")
    description: str | None = Field(
        default=None, max_length=300,
        description="What the competition is, in one sentence, shown under its name on the index page. Tracks of one "
                    "competition should agree; the first track (by id) that gives one is used.",
    )


class Task(StrictModel):
    kind: Literal[
        "classification",
        "generation",
        "reconstruction",
        "self-supervised",
        "contrastive",
        "language-modeling",
        "other",
    ] = Field(description="Family of the task; any image task is allowed on image tracks.")
    description: str = Field(description="What the model must learn and how it is judged, in one or two sentences.")


class Splits(StrictModel):
    train: int | None = Field(
        ge=0, description="Number of training samples; null for a token stream without a fixed sample count."
    )
    val: int | None = Field(default=None, ge=0, description="Number of validation samples (null if the split does not exist).")
    test: int | None = Field(default=None, ge=0, description="Number of test samples (null if the split does not exist).")


class Dataset(StrictModel):
    name: str = Field(description="Dataset name, e.g. 'sklearn-digits'.")
    version: str = Field(description="Dataset version (package version, release tag or checksum date).")
    resolution: str | None = Field(
        default=None, description="Input resolution, e.g. '8x8' for images or '1024 tokens' for text; null if not applicable."
    )
    splits: Splits = Field(description="Fixed sizes of the train/val/test splits.")
    source: str = Field(description="Where the data comes from and how the splits are made (public, no download at run time).")
    checksum: str | None = Field(
        default=None,
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="sha256 of the canonical split (format 'sha256:<hex>'); runs must report the same value.",
    )


class BudgetCounts(StrictModel):
    training: bool = Field(default=True, description="Samples that received a gradient count (forward + backward).")
    forward_only: bool = Field(
        default=True, description="Samples only scored by a forward pass (data-selection methods such as AST) count."
    )
    evaluation: bool = Field(default=False, description="Evaluation passes count towards the budget.")


class Budget(StrictModel):
    kind: Literal["flops", "samples"] = Field(
        description="'flops': total training FLOPs (2 per multiply-accumulate, forward + backward as executed); "
        "'samples': training samples that contributed a gradient."
    )
    limit: float = Field(gt=0, description="Upper bound a run may not exceed, in FLOPs or samples.")
    counts: BudgetCounts = Field(default_factory=BudgetCounts, description="Which passes count towards the budget.")


class Metric(StrictModel):
    id: Slug = Field(description="Key used in curves and final results, e.g. 'val_top1'.")
    name: str = Field(description="Display name, e.g. 'Top-1 accuracy (val)'.")
    description: str = Field(description="How the metric is computed.")
    direction: Direction = Field(description="'higher' if larger values are better, 'lower' otherwise. Always explicit.")
    min: float | None = Field(default=None, description="Smallest valid value (inclusive); null for unbounded.")
    max: float | None = Field(default=None, description="Largest valid value (inclusive); null for unbounded.")
    unit: str | None = Field(default=None, description="Unit shown next to values, e.g. 'bits/byte'.")
    split: Literal["train", "val", "test"] = Field(description="Split the metric is evaluated on.")
    protocol: str = Field(description="Evaluation protocol: preprocessing, number of samples, averaging.")

    @model_validator(mode="after")
    def _range_ordered(self) -> "Metric":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"metric {self.id!r}: min ({self.min}) is larger than max ({self.max})")
        return self


# Every curve is checked against every milestone: a bound keeps a hostile track from costing minutes.
MAX_CHECKPOINTS = 1000


class Checkpoints(StrictModel):
    samples: list[Annotated[int, Field(gt=0)]] | None = Field(
        default=None, max_length=MAX_CHECKPOINTS,
        description="Sample-count milestones at which every curve must have a point."
    )
    dataset_multiples: list[Annotated[float, Field(gt=0, le=1e6)]] | None = Field(
        default=None, max_length=MAX_CHECKPOINTS, description="Milestones as multiples of the training-set size (resolved with dataset.splits.train)."
    )
    allow_extra: bool = Field(default=False, description="Whether curves may carry points between milestones.")

    @model_validator(mode="after")
    def _one_source(self) -> "Checkpoints":
        if (self.samples is None) == (self.dataset_multiples is None):
            raise ValueError("checkpoints: give exactly one of 'samples' or 'dataset_multiples'")
        return self


class GroupBy(StrictModel):
    field: str = Field(
        pattern=r"^[a-z_]+(\.[a-z_]+)*$",
        description="Dotted path of a text field of the run's speedrun_analysis.json whose value names the group, "
                    "e.g. 'model.architecture'.",
    )
    title: str = Field(min_length=1, description="What a group is, in words, e.g. 'architecture'.")

    @field_validator("field")
    @classmethod
    def _text_field_of_a_run(cls, value: str) -> str:
        from .run import RunAnalysis  # the run model does not need the track's, so no cycle at import time

        model, parts = RunAnalysis, value.split(".")
        for i, part in enumerate(parts):
            info = model.model_fields.get(part)
            if info is None:
                raise ValueError(f"{value!r}: {'.'.join(parts[:i + 1])!r} is not a field of speedrun_analysis.json")
            inner = [a for a in getattr(info.annotation, "__args__", (info.annotation,)) if a is not type(None)]
            kind = inner[0] if len(inner) == 1 else None
            if i < len(parts) - 1:
                if not (isinstance(kind, type) and issubclass(kind, StrictModel)):
                    raise ValueError(f"{value!r}: {part!r} has no fields below it")
                model = kind
            elif kind is not str:
                raise ValueError(f"{value!r} is not a text field; group by one such as 'model.architecture'")
        return value


class Ranking(StrictModel):
    primary: RankRule = Field(description="The rule that orders the leaderboard.")
    tie_breakers: list[RankRule] = Field(default_factory=list, description="Rules applied in order when the primary ties.")
    group_by: GroupBy | None = Field(
        default=None,
        description="Rank within groups instead of one list (MaxCLIP's unconstrained board: by model architecture): "
                    "each group gets its own ranks, record and chart colour; null for one list.",
    )


class Setting(StrictModel):
    id: Slug = Field(description="Setting id, e.g. 'small'.")
    title: str = Field(description="Display name.")
    train_samples: int = Field(ge=0, description="Training-set size in this setting.")
    description: str | None = Field(default=None, description="What else differs in this setting.")


class Significance(StrictModel):
    test: Literal["one-sided-t"] = Field(description="Statistical test a record claim must pass.")
    alpha: float = Field(gt=0, lt=1, description="Significance level, e.g. 0.05 (MLPerf) or 0.01 (modded-nanogpt).")
    against: Literal["threshold", "record"] = Field(description="Compare seeds against the threshold or the current record.")


class SeedsPolicy(StrictModel):
    minimum: int = Field(default=1, ge=1, description="Fewest distinct seeds a run must report.")
    significance: Significance | None = Field(default=None, description="Test for record claims; null for none.")


class Constrained(StrictModel):
    """MaxCLIP-style constrained track: a run folder is a copy of the frozen reference, changed only where allowed."""

    reference: str = Field(default="_reference", description="Folder inside the track holding the frozen reference code.")
    editable: list[str] = Field(
        min_length=1,
        description="Glob patterns, relative to the run folder, a submission may change or add ('**' spans folders).",
    )
    config: str = Field(description="The one hyperparameter config file a submission may change.")
    manifest: str = Field(
        default="frozen.json",
        description="sha256 manifest of the reference, inside the track folder; written by `speedrun freeze`.",
    )


class SubmissionPolicy(StrictModel):
    max_submissions: int = Field(ge=1, description="Submissions allowed per team within the window.")
    window_days: int = Field(ge=1, description="Length of the rate-limit window in days (MaxCLIP: 14).")
    fix_window_hours: int = Field(
        default=0, ge=0, description="Hours after a technical failure during which a fix to the same run does not count (MaxCLIP: 48)."
    )


class ReferenceHardware(StrictModel):
    """The machine a time track's times are measured on: a time only compares with times on the same hardware."""

    accelerator: str = Field(
        min_length=1,
        description="Device model exactly as runs declare it in compute.hardware.accelerator (as nvidia-smi names "
                    "it), e.g. 'NVIDIA H100 80GB HBM3'.",
    )
    count: int = Field(ge=1, description="Number of devices, e.g. 8.")


class Tolerance(StrictModel):
    metric_abs: float = Field(default=0.01, ge=0, description="Largest absolute difference of a final metric in a reproduction.")
    samples_rel: float = Field(default=0.0, ge=0, description="Largest relative difference in samples seen.")


# The tool's own runtime: every run may import them, and a track may not declare (or replace) them.
TOOL_RUNTIME = ("torch", "numpy")
_MODULE_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_INDEX_URL = r"^https://[^\s]+$"


def _requirement(text: str) -> str:
    """A declared requirement as written, or ValueError saying what is wrong with it and how to write it."""
    if text.lstrip().startswith("-"):
        raise ValueError(f"{text!r}: pip options ('-e', '-r', '--...') are not allowed; write 'name==version'")
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        raise ValueError(f"{text!r} is not a PEP 508 requirement ({str(exc).splitlines()[0]}); write 'name==version', "
                         "e.g. 'transformers==5.24.0' (URLs and paths are not allowed)") from None
    if req.url:
        raise ValueError(f"{text!r}: URLs and paths are not allowed; name a release on the index, 'name==version'")
    if canonicalize_name(req.name) in TOOL_RUNTIME:
        raise ValueError(f"{text!r}: {req.name} is part of the tool's own runtime and always allowed; remove it")
    if not req.specifier:
        raise ValueError(f"{text!r} has no version; pin one, e.g. '{req.name}==1.2.3'")
    return text


class Environment(StrictModel):
    """The packages runs of this track may import (docs/environments.md): installed into a cached virtual environment
    on top of the tool's own interpreter, which keeps providing the standard library, torch and numpy."""

    packages: list[Annotated[str, AfterValidator(_requirement)]] = Field(
        default_factory=list, max_length=100,
        description="PEP 508 requirements with a version, e.g. 'transformers==5.24.0' or 'scikit-learn==1.9.1'; "
                    "validation and reproduction install them (pinned by the track's environment.lock, written by "
                    "`speedrun env lock`). No URLs, paths or '-e'. torch and numpy are the tool's own and always "
                    "allowed: do not declare them.",
    )
    imports: list[Annotated[str, Field(pattern=_MODULE_NAME)]] = Field(
        default_factory=list, max_length=100,
        description="Extra top-level module names runs may import, for a declared package whose import name the "
                    "validator cannot derive from its installed files or its alias table (scikit-learn's 'sklearn' "
                    "and PyYAML's 'yaml' are derived).",
    )
    index_url: str | None = Field(
        default=None, pattern=_INDEX_URL,
        description="Package index to install from instead of the default (pip --index-url), e.g. "
                    "'https://download.pytorch.org/whl/cpu' for CPU builds of torchvision.",
    )
    extra_index_urls: list[Annotated[str, Field(pattern=_INDEX_URL)]] = Field(
        default_factory=list, max_length=5,
        description="More package indexes to search (pip --extra-index-url), e.g. 'https://pypi.org/simple' beside "
                    "a PyTorch index_url.",
    )

    @field_validator("packages")
    @classmethod
    def _once_each(cls, packages: list[str]) -> list[str]:
        seen: set[str] = set()
        for text in packages:
            name = canonicalize_name(Requirement(text).name)
            if name in seen:
                raise ValueError(f"{name!r} is declared twice; keep one requirement per package")
            seen.add(name)
        return packages


class Track(StrictModel):
    """One track of a competition: everything its leaderboard must state."""

    schema_version: Literal[1] = Field(description=f"Format version of this file; currently {SCHEMA_VERSION}.")
    id: Slug = Field(description="Track id; must equal the track's folder name under runs/.")
    title: str = Field(description="Display name of the track.")
    competition: Competition = Field(description="The competition this track belongs to.")
    description: str = Field(description="What the track measures, in a paragraph.")
    rules_version: str = Field(description="Version of these rules, shown on every page; bump it when rules change.")
    board: Literal["standard", "unconstrained"] = Field(
        default="standard",
        description="'standard': runs trained with this repo's scripts; 'unconstrained': results reported elsewhere, each cited.",
    )
    task: Task = Field(description="The task.")
    dataset: Dataset = Field(description="The dataset and its fixed splits.")
    budget: Budget | None = Field(default=None, description="Compute budget; null for boards without one.")
    metrics: list[Metric] = Field(min_length=1, description="Every metric runs may report.")
    primary_metric: str = Field(description="Id of the metric the leaderboard is about.")
    checkpoints: Checkpoints | None = Field(default=None, description="Milestones every curve must hit; null for none.")
    ranking: Ranking = Field(description="How runs are ordered.")
    settings: list[Setting] = Field(
        default_factory=list, description="Settings each run is trained in (MaxCLIP small/medium/large); empty for one."
    )
    seeds: SeedsPolicy = Field(default_factory=SeedsPolicy, description="Seeds policy.")
    constrained: Constrained | None = Field(default=None, description="Frozen code and editable globs; null if unconstrained.")
    submission_policy: SubmissionPolicy | None = Field(default=None, description="Rate limit per team; null for none.")
    tolerance: Tolerance = Field(default_factory=Tolerance, description="How close a reproduction must come.")
    hardware: ReferenceHardware | None = Field(
        default=None,
        description="Reference hardware; every run must declare exactly this in compute.hardware "
                    "(hardware-mismatch). Required when a ranking rule is a time rule: times only compare on one "
                    "machine (docs/time-tracks.md).",
    )
    artifact_limit_bytes: int | None = Field(
        default=None, gt=0,
        description="Largest artifact a run may have, in bytes: its code (every .py file in the run folder, as on "
                    "disk) plus its compressed weights (declared in the run's artifact.compressed_weights_bytes, "
                    "checked by reproduction). Parameter Golf: 16,000,000. Null for no limit.",
    )
    environment: Environment = Field(
        default_factory=Environment,
        description="Packages runs may import beyond the standard library, torch and numpy, installed for validation "
                    "and reproduction (docs/environments.md); a run importing anything else fails.",
    )
    rules: list[str] = Field(default_factory=list, description="Rules in words (anti-gaming, data), listed on every page.")
    starter: str | None = Field(
        default=None,
        description="Run folder `speedrun new` copies as a starting point (constrained tracks copy the reference).",
    )
    links: list[Link] = Field(default_factory=list, description="Further reading.")

    @model_validator(mode="after")
    def _references_resolve(self) -> "Track":
        ids = [m.id for m in self.metrics]
        if len(set(ids)) != len(ids):
            raise ValueError("metrics: metric ids must be unique")
        if self.primary_metric not in ids:
            raise ValueError(f"primary_metric {self.primary_metric!r} is not one of the metrics {ids}")
        for rule in [self.ranking.primary, *self.ranking.tie_breakers]:
            if rule.metric is not None and rule.metric not in ids:
                raise ValueError(f"ranking rule {rule.kind!r} names unknown metric {rule.metric!r}")
            if rule.kind == "settings_mean" and not self.settings:
                raise ValueError("ranking rule 'settings_mean' needs at least one entry in 'settings'")
            if rule.kind in TIME_RULES and self.hardware is None:
                raise ValueError(f"ranking rule {rule.kind!r} needs the track's reference 'hardware' "
                                 "(e.g. hardware: {accelerator: 'NVIDIA H100 80GB HBM3', count: 8})")
        if self.checkpoints and self.checkpoints.dataset_multiples and not self.dataset.splits.train:
            raise ValueError("checkpoints.dataset_multiples needs dataset.splits.train")
        return self

    def metric(self, metric_id: str) -> Metric | None:
        return next((m for m in self.metrics if m.id == metric_id), None)

    def checkpoint_samples(self) -> list[int]:
        """Milestones in samples, sorted, with dataset multiples resolved."""
        if self.checkpoints is None:
            return []
        if self.checkpoints.samples is not None:
            return sorted(set(self.checkpoints.samples))
        return sorted({round(m * self.dataset.splits.train) for m in self.checkpoints.dataset_multiples or []})
