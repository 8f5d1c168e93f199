"""Every rule id the validator can emit, with its meaning: the docs' rule table and the tests' coverage check read
this one list."""

from __future__ import annotations

CATALOG: dict[str, str] = {
    # loading and schema
    "unreadable": "the file cannot be read",
    "file-too-large": "the file is larger than the limit (checked before reading)",
    "not-regular-file": "the file is a folder, FIFO, socket or device, not a regular file (it is not read)",
    "broken-link": "the file is a symbolic link to nothing",
    "too-deep": "the document nests deeper than 32 levels",
    "number-too-large": "an integer has more than 40 digits",
    "yaml-aliases": "YAML aliases are too many, recursive, or expand the document too far (an alias bomb)",
    "yaml-tag": "a YAML tag outside the core schema (!!binary, !!set, !!python/..., custom tags)",
    "internal-error": "judging or showing this file raised an unexpected error (a bug in speedrun; the rest of the "
                      "build goes on)",
    "not-text": "the file is binary or not UTF-8",
    "parse-error": "the file is not valid JSON or YAML",
    "duplicate-key": "a key appears twice in one object",
    "empty-document": "the file is empty",
    "non-finite": "a number is NaN or infinite",
    "missing-field": "a required field is missing",
    "unknown-field": "a field is not part of the format",
    "wrong-type": "a value has the wrong type",
    "out-of-range": "a number is outside the range the format allows",
    "too-few-items": "a list or map has too few entries",
    "too-many-items": "a list has more entries than the format allows",
    "empty-value": "a text field is empty",
    "invalid-value": "a value is not one of the allowed values",
    "invalid-format": "a value does not match the required format",
    "invalid-model": "the document breaks a rule of the model",
    # folder layout
    "missing-analysis": "the run folder has no speedrun_analysis.json or .yaml",
    "ambiguous-analysis": "the run folder has more than one analysis file",
    "missing-track-file": "a folder under runs/ holds runs but no track.yaml",
    "track-id-mismatch": "track.yaml's id differs from its folder name",
    "unknown-track": "the run names a track that does not exist",
    "track-invalid": "the run's track.yaml is itself invalid",
    "track-mismatch": "the run's track field differs from the track folder it sits in",
    "name-mismatch": "the run's name differs from its folder name",
    # content
    "dataset-mismatch": "dataset name, version or split checksum differ from the track's",
    "duplicate-seed": "a seed is listed twice",
    "too-few-seeds": "fewer distinct seeds than the track's minimum",
    "missing-result": "a seed (or seed x setting) has no result",
    "unknown-seed": "a result names a seed not in the seeds list",
    "duplicate-result": "two results for the same seed and setting",
    "unknown-setting": "a result names a setting the track does not have",
    "missing-setting": "a seed lacks a result for one of the track's settings (run is not ranked)",
    "unknown-metric": "a metric id is not one of the track's metrics",
    "missing-metric": "a result lacks the track's primary metric",
    "metric-out-of-range": "a metric value is outside the metric's valid range",
    "missing-curve": "a result has no curve (required on standard boards)",
    "curve-not-increasing": "curve sample counts do not strictly increase",
    "missing-checkpoint": "the curve lacks a point at one of the track's checkpoints",
    "off-checkpoint": "the curve has a point between the track's checkpoints",
    "curve-final-samples": "the curve's last point is not at the run's samples seen",
    "final-mismatch": "a final metric differs from the curve's last point",
    "samples-inconsistent": "samples seen disagree with steps x global batch",
    "forward-only-without-method": "forward-only samples are claimed without a data-selection method",
    "over-budget": "the run exceeds the track's budget",
    "missing-flops-claim": "a FLOPs-budget track needs compute.flops",
    "missing-training": "the training configuration is missing (required on standard boards)",
    "missing-script": "the run names no training script (required on standard boards)",
    "missing-logs": "the run names no training log (required on standard boards: metrics are checked against them)",
    "source-not-allowed": "a cited result on a standard board",
    "missing-source": "an unconstrained board needs a citation for each result",
    "hardware-mismatch": "the run's compute.hardware differs from the time track's reference hardware",
    "time-missing": "a seed (or, for timing 'first_reached', a curve point) states no train_time_seconds on a track "
                    "ranked by time",
    "artifact-missing": "the track limits artifact size but the run does not declare its compressed weight bytes",
    "artifact-too-large": "code (.py files in the run folder) plus declared compressed weights exceed the track's "
                          "artifact_limit_bytes",
    "unknown-baseline": "the baseline run does not exist on the track",
    "file-missing": "a file the analysis names does not exist",
    "path-escape": "a path is absolute, uses '..', or a symlink leaves the run folder",
    "date-in-future": "the run's date is after today",
    "samples-log-mismatch": "the samples count in the logs disagrees with samples seen",
    "metric-log-mismatch": "a metric value (curve point or final) differs from the value the run's logs recorded",
    "metric-not-in-log": "the run names logs, but no line of its seed's logs states a metric value it claims",
    "undeclared-import": "the run's code imports a module that is not the standard library, torch, numpy, the run's "
                         "own, or a package the track declares (environment.packages); found without running it",
    # the track's environment (docs/environments.md)
    "env-undeclared-import": "the run's code imported, while it ran, an installed module the track does not declare "
                             "(`importlib.import_module`, `__import__`)",
    "env-module-missing": "the run's code imported a module that the track's environment does not have",
    "env-install-failed": "the track's declared packages could not be installed (pip's error is quoted)",
    "env-lock-invalid": "the track's environment.lock was written for other declared packages, or holds a line that is "
                        "not an exact pin",
    # compute accounting
    "flops-no-entrypoint": "a FLOPs-budget track needs model.entrypoint to recount FLOPs",
    "flops-entrypoint-missing": "the entrypoint file or function does not exist",
    "model-config-invalid": "the validator will not build model.config (unknown library or class, remote code, bad "
                            "inputs, a config that is not what it names)",
    "model-config-conflict": "the run gives both model.entrypoint and model.config",
    "flops-bad-entrypoint": "the entrypoint does not return (model, inputs)",
    "flops-model-failed": "building or running the model for counting failed",
    "flops-bad-output": "the model's output cannot be reduced to a loss",
    "flops-no-gradient": "the model's output does not depend on trainable parameters",
    "flops-zero": "the model has no matmul-class operation",
    "flops-op-without-formula": "a matmul-class op has no FLOP formula (it would count as 0)",
    "flops-counters-disagree": "torch's and fvcore's forward counts differ by more than 1 %",
    "flops-claim-needs-review": "the FLOPs claim is 5-25 % off the recount",
    "flops-claim-mismatch": "the FLOPs claim is more than 25 % off the recount",
    "flops-claim-convention": "the FLOPs claim looks like another convention (MACs, forward-only)",
    "parameters-mismatch": "the claimed parameter count differs from the entrypoint's model",
    "sandbox-timeout": "counting in the sandbox ran past its time limit",
    "sandbox-memory": "counting in the sandbox ran out of memory",
    "sandbox-crashed": "the sandboxed process died",
    "sandbox-unavailable": "submitted code would have run without a sandbox (bubblewrap missing) and "
                           "`--unsafe-no-sandbox` was not given",
    "flops-bad-trace": "the sandbox's trace of the model is malformed, or something other than the tracer wrote to "
                       "its result channel",
    "jax-custom-call": "a JAX model's compiled step calls a custom_call target XLA's cost analysis cannot cost "
                       "(LAPACK, Pallas, cuDNN kernels would count 0 FLOPs)",
    "jax-loop": "a JAX model's compiled step has a while loop (lax.scan, fori_loop) that does floating-point work "
                "(a matmul or any other): XLA counts a loop body once, whatever its trip count",
    "jax-unavailable": "jax (or flatbuffers, which jax.export needs) cannot be imported in the track's environment",
    # constrained tracks
    "frozen-manifest-missing": "a constrained track has no frozen manifest",
    "frozen-manifest-stale": "the track's reference no longer matches its frozen manifest",
    "frozen-file-missing": "a frozen reference file is missing from the run",
    "frozen-file-modified": "a frozen reference file was changed",
    "frozen-extra-file": "a file outside the editable folder that the reference does not have",
    # pull-request policy (speedrun validate --changed)
    "pr-no-run": "the pull request changes no run folder",
    "pr-multiple-runs": "the pull request touches more than one run folder",
    "pr-outside-run": "the pull request changes files outside its run folder",
    "pr-file-too-large": "a changed file is larger than the limit",
    "pr-symlink": "a changed file is a symbolic link",
    "pr-binary-file": "a binary file outside logs/ and the declared artifacts",
    "pr-changes-merged-run": "the pull request changes a merged run it does not own (its authors' GitHub logins, "
                             "as the base revision names them, or a maintainer)",
    "pr-reproduction-record": "the pull request adds or changes a reproduction record (only the maintainers' "
                              "workflow writes them)",
    "rate-limit": "the team already used its submissions for the track's window",
    "changes-missing": "a run the pull request adds does not say in one line what it changes against the run it "
                       "builds on (`changes` missing), or still has the placeholder `speedrun new` wrote",
    "placeholder-text": "the description or notes are still the placeholder `speedrun new` wrote",
    # ZIP submissions (speedrun import-zip)
    "zip-unsafe-entry": "a ZIP entry is a link, absolute, encrypted, compressed other than stored or deflated, or "
                        "not a plain relative path ('..', '.', an empty folder name, a control character)",
    "zip-frozen-file": "a ZIP entry lies outside the editable folder and the config",
    "zip-claims-results": "a ZIP entry is part of the run's record (analysis file, README, logs/, reproductions/), "
                          "which only the organizers' training writes",
    "zip-entry-conflict": "two ZIP entries name one path (also up to case or Unicode normalisation), or a file and a "
                          "folder share a name, in the ZIP or with the reference",
    "zip-too-many-files": "the ZIP holds more files than the limit",
    "zip-too-large": "the ZIP unpacks to more bytes than the limit, or an entry to more than it declares",
    "zip-ratio-too-high": "the ZIP unpacks to more than 200 times its compressed size (a zip bomb)",
    "zip-unreadable": "the file is not a ZIP, or an entry cannot be decompressed (corrupt, bad CRC)",
    "zip-pending": "a run unpacked from a ZIP waits for the organizers to train it (listed, not ranked)",
}
