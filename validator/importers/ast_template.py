"""Import an Adaptive Sparse Training experiment record written with the AST ImageNet plan's template.

The plan ("ImageNet Validation Plan for Adaptive Sparse Training", section "Experiment Tracking Template") asks
that every experiment be tracked as::

    Experiment: ImageNet_AST_ResNet50_10pct
    Date: 2025-01-XX
    Architecture: ResNet50
    Dataset: ImageNet (full)
    Target activation: 10%
    Batch size: 256
    Epochs: 90
    Hardware: A100 (40GB)
    PI Controller: {Kp, Ki, EMA alpha}
    Results: {Baseline accuracy, AST accuracy, Training time (baseline), Training time (AST), Speedup,
              Energy savings, Avg activation rate}
    Notes: [Threshold range, Convergence, Issues]

`convert` turns one such record (a YAML file, or a Markdown file holding it in a ```yaml block) into a run
analysis for an unconstrained board: a self-reported result with a citation, no script, the template kept verbatim
in `extra.ast_template`. Every key of the template is required and no other key is accepted; placeholders left
unfilled ("XX.X%", "2025-01-XX", "[stable/unstable]") and percentages outside 0-100 are refused with an
`InvalidInput` naming the file and the key.

Nothing is guessed. The template states no parameter count (recorded as 0), no seed (0 stands for the one run) and
no optimizer (no `training` section). Where the track folder is found, its dataset fills in what the template's
one-word `Dataset` cannot say (version, split, checksum) only if the names agree, the accuracy becomes the track's
primary metric, and samples are derived from the track's training-split size: candidates = epochs x train split,
samples seen = candidates x average activation rate.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from .. import yamlsafe
from ..problems import InvalidInput, SpeedrunError, json_path

PLAN_URL = "https://github.com/oluwafemidiakhoa/adaptive-sparse-training/blob/main/IMAGENET_VALIDATION_PLAN.md"

TOP_KEYS = ("Experiment", "Date", "Architecture", "Dataset", "Target activation", "Batch size", "Epochs", "Hardware",
            "PI Controller", "Results", "Notes")
PI_KEYS = ("Kp", "Ki", "EMA alpha")
RESULT_KEYS = ("Baseline accuracy", "AST accuracy", "Training time (baseline)", "Training time (AST)", "Speedup",
               "Energy savings", "Avg activation rate")

# "XX", "X.XX", "XX.X%", "2025-01-XX": runs of capital X standing alone (not inside a word like "ResNeXt" or "RTX").
_PLACEHOLDER = re.compile(r"(?<![A-Za-z0-9_])X+(?:\.X+)?(?![A-Za-z0-9_])")
_PERCENT = re.compile(r"^([-+]?\d+(?:\.\d+)?)\s*%$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(h|hrs?|hours?|min|mins|minutes?|s|secs?|seconds?)$", re.IGNORECASE)
# "×" as written, as 'x', or as the mojibake the plan's own copies carry ("√ó" in Mac Roman, "Ã—" in cp1252).
_SPEEDUP = re.compile(r"^(\d+(?:\.\d+)?)\s*(?:×|x|X|√ó|Ã—)?$")
_FENCE = re.compile(r"```ya?ml[^\n]*\n(.*?)```", re.DOTALL)


def _where(path: Path, *keys: str | int) -> str:
    return f"{path}::{json_path(list(keys))}"


def read_template(path: Path) -> dict:
    """The record as parsed YAML, with exactly the template's keys (not yet checked for placeholders)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read the file as UTF-8 text ({exc})") from exc
    blocks = [b for b in _FENCE.findall(text) if re.search(r"^Experiment\s*:", b, re.MULTILINE)]
    source = blocks[0] if blocks else text
    try:
        data = yamlsafe.load(source)  # the same bounded reader as every other submitted YAML
    except yamlsafe.YamlRefused as exc:
        raise InvalidInput(f"{path}::$: {exc.message} [{exc.rule}]; {exc.hint}") from exc
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        raise InvalidInput(f"{path}: not valid YAML ({' '.join(str(exc).split())[:300]})") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}::$: expected the AST experiment-tracking template (Experiment:, Date:, ...), "
                           f"got {type(data).__name__}")
    _exact_keys(path, data, TOP_KEYS, ())
    for key, expected in (("PI Controller", PI_KEYS), ("Results", RESULT_KEYS)):
        if not isinstance(data[key], dict):
            raise InvalidInput(f"{_where(path, key)}: expected a mapping with {', '.join(expected)}")
        _exact_keys(path, data[key], expected, (key,))
    return data


def _exact_keys(path: Path, data: dict, expected: tuple[str, ...], parents: tuple[str, ...]) -> None:
    for key in expected:
        if key not in data:
            raise InvalidInput(f"{_where(path, *parents, key)}: key {key!r} of the AST experiment-tracking template "
                               f"is missing; the template has {', '.join(expected)}")
    for key in data:
        if key not in expected:
            raise InvalidInput(f"{_where(path, *parents, str(key))}: {str(key)!r} is not a key of the AST "
                               f"experiment-tracking template (expected {', '.join(expected)})")


def _filled(path: Path, value: Any, *keys: str) -> Any:
    """The value, unless it is one of the template's unfilled placeholders."""
    if isinstance(value, list):  # YAML reads "[stable/unstable]" as a list: the template's choice brackets
        shown = "[" + ", ".join(map(str, value)) + "]"
        raise InvalidInput(f"{_where(path, *keys)}: {shown!r} is an unfilled placeholder of the template; "
                           "replace it by the value (without brackets)")
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidInput(f"{_where(path, *keys)}: no value; fill in the template")
    if isinstance(value, str):
        found = _PLACEHOLDER.search(value)
        if found:
            raise InvalidInput(f"{_where(path, *keys)}: {value!r} still holds the template's placeholder "
                               f"{found.group(0)!r}; fill in the value")
        if value.strip().startswith("[") and value.strip().endswith("]"):
            raise InvalidInput(f"{_where(path, *keys)}: {value!r} is an unfilled placeholder of the template; "
                               "replace it by the value (without brackets)")
    return value


def _text(path: Path, value: Any, *keys: str) -> str:
    value = _filled(path, value, *keys)
    if isinstance(value, (dict, bool)):
        raise InvalidInput(f"{_where(path, *keys)}: expected text, got {value!r}")
    return str(value).strip()


def _percent(path: Path, value: Any, *keys: str, positive: bool = False) -> float:
    """A percentage written with '%' (as the template does), as a fraction."""
    value = _filled(path, value, *keys)
    match = _PERCENT.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise InvalidInput(f"{_where(path, *keys)}: {value!r} is not a percentage; write it like the template, "
                           "e.g. '10%' or '76.1%'")
    pct = float(match.group(1))
    if not 0.0 <= pct <= 100.0 or (positive and pct == 0.0):
        raise InvalidInput(f"{_where(path, *keys)}: {value!r} is out of range; a percentage must lie in "
                           f"{'(0, 100]' if positive else '[0, 100]'}")
    return round(pct / 100.0, 12)


def _number(path: Path, value: Any, *keys: str, integer: bool = False, low: float = 0.0,
            high: float | None = None, open_low: bool = False) -> float:
    value = _filled(path, value, *keys)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise InvalidInput(f"{_where(path, *keys)}: {value!r} is not {'a whole number' if integer else 'a number'}")
    if value < low or (open_low and value == low) or (high is not None and value > high):
        bounds = f"{'(' if open_low else '['}{low:g}, {'inf)' if high is None else f'{high:g}]'}"
        raise InvalidInput(f"{_where(path, *keys)}: {value!r} is out of range {bounds}")
    return value


def _seconds(path: Path, value: Any, *keys: str) -> float:
    value = _filled(path, value, *keys)
    match = _DURATION.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise InvalidInput(f"{_where(path, *keys)}: {value!r} is not a duration; write e.g. '12.5 hours' or '40 min'")
    unit = match.group(2).lower()
    scale = 3600.0 if unit.startswith("h") else 60.0 if unit.startswith("m") else 1.0
    return float(match.group(1)) * scale


def _speedup(path: Path, value: Any, *keys: str) -> float:
    value = _filled(path, value, *keys)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        match = _SPEEDUP.match(str(value).strip())
        if match is None:
            raise InvalidInput(f"{_where(path, *keys)}: {value!r} is not a speedup; write e.g. '5.2×' or '5.2x'")
        number = float(match.group(1))
    if number <= 0:
        raise InvalidInput(f"{_where(path, *keys)}: {value!r} is out of range; a speedup is positive")
    return number


def _date(path: Path, value: Any) -> dt.date:
    value = _filled(path, value, "Date")
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise InvalidInput(f"{_where(path, 'Date')}: {value!r} is not a date (YYYY-MM-DD)") from exc


def _notes(path: Path, value: Any) -> list[str]:
    """The Notes list as lines; each '- Key: value' item must be filled in."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    lines = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            for key, text in item.items():
                lines.append(f"{key}: {_text(path, text, 'Notes', i, str(key))}")
        else:
            lines.append(_text(path, item, "Notes", i))
    return lines


def _plain(value: Any) -> Any:
    """The raw record as JSON data (dates as ISO strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def _load_track(runs_dir: Path | None, track: str):
    """The track's model if runs_dir/<track>/track.yaml exists and is valid, else None."""
    if runs_dir is None or not (runs_dir / track / "track.yaml").is_file():
        return None
    from ..checker import Checker

    result = Checker().check_track(runs_dir / track)
    if result.track is None or result.errors:
        raise SpeedrunError(f"{runs_dir / track}/track.yaml is invalid; run `speedrun validate {runs_dir / track}`")
    return result.track


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", name.casefold())


def convert(path: Path, track: str, name: str, *, runs_dir: Path | None = Path("runs"), url: str | None = None,
            team: str | None = None, author: str | None = None) -> dict:
    """The run analysis (a dict in the run format) for one filled-in template.

    `runs_dir` is where the track folder is looked up (default `runs/`; None to skip): its dataset, primary metric
    and training-split size are used as the module docstring says. `url` cites where the result was published; by
    default the citation points to the plan that defines the template, and the title says the record is
    self-reported.
    """
    path = Path(path)
    raw = read_template(path)
    experiment = _text(path, raw["Experiment"], "Experiment")
    date = _date(path, raw["Date"])
    architecture = _text(path, raw["Architecture"], "Architecture")
    dataset = _text(path, raw["Dataset"], "Dataset")
    target = _percent(path, raw["Target activation"], "Target activation", positive=True)
    batch = int(_number(path, raw["Batch size"], "Batch size", integer=True, low=1))
    epochs = _number(path, raw["Epochs"], "Epochs", low=0, open_low=True)
    hardware = _text(path, raw["Hardware"], "Hardware")
    pi = raw["PI Controller"]
    kp = _number(path, pi["Kp"], "PI Controller", "Kp")
    ki = _number(path, pi["Ki"], "PI Controller", "Ki")
    alpha = _number(path, pi["EMA alpha"], "PI Controller", "EMA alpha", high=1.0, open_low=True)
    res = raw["Results"]
    base_acc = _percent(path, res["Baseline accuracy"], "Results", "Baseline accuracy")
    ast_acc = _percent(path, res["AST accuracy"], "Results", "AST accuracy")
    base_time = _seconds(path, res["Training time (baseline)"], "Results", "Training time (baseline)")
    ast_time = _seconds(path, res["Training time (AST)"], "Results", "Training time (AST)")
    speedup = _speedup(path, res["Speedup"], "Results", "Speedup")
    energy = _percent(path, res["Energy savings"], "Results", "Energy savings")
    activation = _percent(path, res["Avg activation rate"], "Results", "Avg activation rate")
    notes = _notes(path, raw["Notes"])

    model = _load_track(runs_dir, track)
    remarks = ["Self-reported: converted from an AST experiment-tracking template "
               f"({path.name}) by `speedrun import ast-template`; nothing was rerun or recounted."]
    metric = "val_top1"
    ds: dict[str, Any] = {"name": dataset, "version": "as recorded in the AST experiment-tracking template"}
    samples_seen = forward_only = 0
    if model is not None:
        primary = model.metric(model.primary_metric)
        if primary.direction != "higher" or primary.max != 1 or (primary.min or 0) != 0:
            raise InvalidInput(f"{_where(path, 'Results', 'AST accuracy')}: the template reports an accuracy, but "
                               f"track {track!r} ranks by {primary.id!r} ({primary.name}), which is not one")
        metric = primary.id
        t = model.dataset
        if _norm(dataset) == _norm(t.name):
            ds = {"name": t.name, "version": t.version, "resolution": t.resolution, "train_samples": t.splits.train,
                  "checksum": t.checksum}
            ds = {k: v for k, v in ds.items() if v is not None}
            remarks.append("The template names only the dataset; its version, split and checksum are the track's.")
        if t.splits.train:
            forward_only = round(epochs * t.splits.train)
            samples_seen = round(forward_only * activation)
            remarks.append(f"Samples derived from the template: {epochs:g} epochs x {t.splits.train:,} training "
                           f"images = {forward_only:,} candidates scored; x {activation:.2%} average activation = "
                           f"{samples_seen:,} samples that got a gradient.")
    if not samples_seen:
        remarks.append("Samples seen are unknown (the track's training-split size was not available); recorded as 0.")
    remarks.append("The template gives no parameter count (recorded as 0) and no seed (0 stands for the one run).")
    if url is None:
        remarks.append("No publication was given; the citation points to the plan that defines the template.")
    expected_speedup = base_time / ast_time if ast_time else None
    if expected_speedup and abs(speedup / expected_speedup - 1) > 0.1:
        remarks.append(f"The stated speedup {speedup:g}x differs from the stated training times' ratio "
                       f"{expected_speedup:.2f}x.")
    remarks.append(f"Baseline accuracy {base_acc:.2%} vs AST {ast_acc:.2%} ({(ast_acc - base_acc) * 100:+.2f} points); "
                   f"energy savings {energy:.1%}; average activation {activation:.2%} (target {target:.0%}).")
    if notes:
        remarks.append("Template notes: " + "; ".join(notes) + ".")

    return {
        "schema_version": 1,
        "track": track,
        "name": name,
        "team": team or "self-reported",
        "authors": [{"name": author or "not given in the template"}],
        "date": date.isoformat(),
        "description": (f"Adaptive Sparse Training experiment {experiment}: {architecture} on {dataset}, target "
                        f"activation {target:.0%}, batch {batch}, {epochs:g} epochs on {hardware} (self-reported)."),
        "task": {"description": f"Classification on {dataset}, as recorded in an AST experiment-tracking template."},
        "dataset": ds,
        "model": {"architecture": architecture, "parameters": 0},
        "method": {"name": "Adaptive Sparse Training", "data_selection": True,
                   "params": {"target_activation": target, "kp": kp, "ki": ki, "ema_alpha": alpha,
                              "batch_size": batch, "epochs": epochs}},
        "evaluation": {"metrics": [metric],
                       "protocol": f"'AST accuracy' of the template, read as {metric} at the end of training; "
                                   "self-reported, protocol not stated."},
        "compute": {"samples_seen": samples_seen, "forward_only_samples": forward_only,
                    "hardware": {"accelerator": hardware, "count": 1}, "wall_time_seconds": ast_time},
        "seeds": [0],
        "results": [{"seed": 0, "final": {metric: ast_acc}}],
        "files": {"script": None, "readme": "README.md"},
        "source": {"title": f"Self-reported AST experiment record {experiment!r} ({path.name})",
                   "url": url or PLAN_URL, "year": date.year},
        "notes": " ".join(remarks),
        "extra": {"ast_template": {
            "file": path.name,
            "record": _plain(raw),
            "parsed": {"target_activation": target, "baseline_accuracy": base_acc, "ast_accuracy": ast_acc,
                       "accuracy_delta": round(ast_acc - base_acc, 12), "training_time_baseline_s": base_time,
                       "training_time_ast_s": ast_time, "speedup": speedup, "energy_savings": energy,
                       "avg_activation_rate": activation, "notes": notes},
        }},
    }


def _readme(analysis: dict) -> str:
    parsed = analysis["extra"]["ast_template"]["parsed"]
    return "\n".join([
        f"# {analysis['name']}", "",
        f"Imported from `{analysis['extra']['ast_template']['file']}`, an Adaptive Sparse Training experiment-tracking "
        "template, by `speedrun import ast-template`. The result is self-reported: nothing was rerun or recounted.", "",
        f"- {analysis['description']}",
        f"- AST accuracy {parsed['ast_accuracy']:.2%} vs baseline {parsed['baseline_accuracy']:.2%} "
        f"({parsed['accuracy_delta'] * 100:+.2f} points)",
        f"- Average activation {parsed['avg_activation_rate']:.2%}, energy savings {parsed['energy_savings']:.1%}, "
        f"speedup {parsed['speedup']:g}x",
        f"- Citation: {analysis['source']['url']}", "",
    ])


def write(path: Path, runs_dir: Path, track: str, name: str, *, url: str | None = None, team: str | None = None,
          author: str | None = None) -> Path:
    """Convert `path` and write runs_dir/<track>/<name>/ (speedrun_analysis.json and README.md); returns the
    run folder. Refuses to overwrite an existing folder."""
    runs_dir = Path(runs_dir)
    if not (runs_dir / track / "track.yaml").is_file():
        raise SpeedrunError(f"track {track!r} not found: {runs_dir / track}/track.yaml does not exist")
    run_dir = runs_dir / track / name
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", name):
        raise SpeedrunError(f"run name {name!r}: use lowercase letters, digits, '.', '_' or '-' (at most 64)")
    if run_dir.exists():
        raise SpeedrunError(f"{run_dir} exists; nothing was written (choose another --name or remove it first)")
    analysis = convert(path, track, name, runs_dir=runs_dir, url=url, team=team, author=author)
    run_dir.mkdir(parents=True)
    (run_dir / "speedrun_analysis.json").write_text(json.dumps(analysis, indent=2) + "\n", encoding="utf-8")
    (run_dir / "README.md").write_text(_readme(analysis), encoding="utf-8")
    return run_dir


@click.command("ast-template")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--track", required=True, help="Id of the track (a folder under --runs) to import into.")
@click.option("--name", required=True, help="Name of the new run folder.")
@click.option("--runs", "runs_dir", type=click.Path(path_type=Path, file_okay=False, exists=True), default="runs",
              show_default=True, help="Folder of tracks.")
@click.option("--url", help="Where the result was published (default: the plan that defines the template).")
@click.option("--team", help="Team name (default: 'self-reported').")
@click.option("--author", help="Author's name.")
def ast_template_command(file: Path, track: str, name: str, runs_dir: Path, url: str | None, team: str | None,
                         author: str | None) -> None:
    """Turn a filled-in AST experiment-tracking template (YAML, or Markdown holding it) into a self-reported run."""
    try:
        run_dir = write(file, runs_dir, track, name, url=url, team=team, author=author)
    except InvalidInput as exc:  # the file is wrong: exit 1, like `speedrun validate` on an invalid submission
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except SpeedrunError as exc:  # usage: exit 2
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"wrote {run_dir}/ (self-reported); check it with `speedrun validate {run_dir}`")
