"""The ranking rules a track may use (`ranking.primary`, `ranking.tie_breakers`): one per way of turning a seed's
result into a figure. Time rules read the per-seed training time (`results[].train_time_seconds`)."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from .common import StrictModel


class _Rule(StrictModel):
    metric: str | None = Field(default=None, description="Metric id the rule reads; defaults to the track's primary metric.")


class FinalMetricRule(_Rule):
    kind: Literal["final_metric"] = Field(description="Rank by the final value of the metric (mean over seeds).")


class ThresholdRule(_Rule):
    kind: Literal["samples_to_threshold"] = Field(
        description="Rank by samples needed to reach the threshold, interpolated between checkpoints; 'not reached' ranks last."
    )
    threshold: float = Field(description="Metric value to reach.")


class BudgetRule(_Rule):
    kind: Literal["metric_at_budget"] = Field(description="Rank by the metric interpolated at a fixed sample budget.")
    samples: int = Field(gt=0, description="Sample budget at which the metric is read.")


class AUCRule(_Rule):
    kind: Literal["auc"] = Field(description="Rank by the area under the metric-vs-samples curve, normalised to [0, 1].")
    sample_limit: int = Field(gt=0, description="Upper end of the integration range in samples.")
    axis: Literal["linear", "log"] = Field(default="linear", description="Integrate over samples or log(samples).")


class SettingsMeanRule(_Rule):
    kind: Literal["settings_mean"] = Field(
        description="Rank by the mean of the final metric over all settings; a run missing a setting is not ranked."
    )


class BaselineDeltaRule(_Rule):
    kind: Literal["baseline_delta"] = Field(description="Rank by the metric difference against each run's named baseline.")


class TimeToTargetRule(_Rule):
    kind: Literal["time_to_target"] = Field(
        description="Rank by training wall-clock seconds to reach the target (modded-nanogpt: 3.28 val loss on "
                    "8xH100); lower is better. A run that does not reach it is not ranked."
    )
    target: float = Field(description="Metric value to reach, e.g. 3.28 (val loss).")
    timing: Literal["full_run", "first_reached"] = Field(
        default="full_run",
        description="'full_run' (modded-nanogpt's convention): each seed's figure is its whole timed training "
                    "(results[].train_time_seconds), and the run reaches the target when the mean over seeds of its "
                    "final metric does; 'first_reached': each seed's figure is the training time at which its curve "
                    "first reaches the target (curve points carry train_time_seconds), interpolated linearly.",
    )


class MetricUnderTimeLimitRule(_Rule):
    kind: Literal["metric_under_time_limit"] = Field(
        description="Rank by the final metric of a training that stays within a time limit (Parameter Golf: 10 "
                    "minutes on 8xH100); a seed over the limit, or without a training time, leaves the run unranked."
    )
    seconds: float = Field(gt=0, description="Training time limit per seed, in seconds.")


TIME_RULES = ("time_to_target", "metric_under_time_limit")

RankRule = Annotated[
    Union[FinalMetricRule, ThresholdRule, BudgetRule, AUCRule, SettingsMeanRule, BaselineDeltaRule,
          TimeToTargetRule, MetricUnderTimeLimitRule],
    Field(discriminator="kind"),
]


