"""Other conventions' figures shown beside this site's recount, so an organizer sees both.

For a run whose `model.config` is a Marin config (library "marin", every Marin result imported with a Llama's
matmuls), the site shows Marin's own model-FLOPs figure for that config: Levanter's analytic formula, which adds a
softmax term (3 FLOPs per attention score) to the matmuls this site counts. It is computed here, by trusted code,
from the run's config and samples, never read from the run's `extra` (which the run's author writes), and compared
with the claimed figure: for an imported run that is the figure Marin published.
"""

from __future__ import annotations

from validator.models import RunAnalysis

REPRODUCES = 1e-9  # relative; Marin's formula evaluated here against the claim, as the importer checks it


def marin_convention(run: RunAnalysis, recomputed: float | None) -> dict | None:
    """{"flops", "reproduces", "claimed", "ratio"} for a Marin-config run (ratio: Marin's figure / our recount, None
    when not recounted in this build); None for any other run or a config that is not a Llama's matmuls."""
    spec = run.model.config
    if spec is None or spec.library != "marin":
        return None
    seq = (spec.inputs.get("input_ids") or [None])[0]
    from validator.compute.llama import marin_config, marin_model_flops  # torch: only for Marin-config runs

    config, _why = marin_config(spec.config, seq_len=seq)
    if config is None:
        return None  # the recount reports why; there is no Marin figure to show for it
    flops = marin_model_flops(config, run.compute.samples_seen * config.seq_len)
    claimed = run.compute.flops.claimed if run.compute.flops else None
    return {
        "flops": flops,
        "claimed": claimed,
        "reproduces": claimed is not None and abs(flops - claimed) <= REPRODUCES * abs(claimed),
        "ratio": flops / recomputed if recomputed else None,
    }
