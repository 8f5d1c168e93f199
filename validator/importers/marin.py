"""Import Marin speedrun results (`*.speedrun_results.json`) as runs.

Each result becomes `runs/<track>/<name>/` with a `speedrun_analysis.json` citing the original run. A config whose
matmuls are a Llama's (plain Llama, Qwen3-style qk-norm, hybrid norm: `llama.marin_config`) is imported as
`model.config` (library "marin"): the validator builds that model itself and recounts its FLOPs, no code from the run
folder involved. Beside the published figure the run records Marin's own-convention figure for the same config
(`llama.marin_model_flops`) and whether it reproduces the published one. Any other architecture is imported as
self-reported with the reason; its FLOPs are never guessed.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..compute.llama import LlamaConfig, marin_config, marin_model_flops
from ..problems import InvalidInput, SpeedrunError

MARIN_URL = "https://github.com/marin-community/marin"
DATASET_NAME = "fineweb-edu-10B (Marin tokenization, Llama 3 tokenizer)"
DATASET_VERSION = "marin-speedrun"
BPB_KEY = "eval/paloma/c4_en/bpb"

# Marin's convention: Levanter's analytic forward FLOPs per token (matmuls plus 3 per attention score for the softmax)
# x 3 for forward + backward x tokens. This site's counts the matmuls only.
MARIN_CONVENTION = "Marin's model FLOPs: 3 x Levanter's lm_flops_per_token (matmuls plus 3 per attention score) x tokens"
REPRODUCES = 1e-9  # relative: Marin's formula, evaluated here, against the figure its file publishes

# bf16 peak FLOP/s per chip, as Marin uses for hardware FLOPs.
PEAK_FLOPS = {"H100": 989.5e12, "H200": 989.5e12, "A100": 312e12, "v4": 275e12, "v5p": 459e12, "v6e": 918e12}


@dataclass
class Imported:
    name: str
    track: str
    path: Path
    published_flops: float
    recomputed_flops: float | None
    rebuilt: bool
    note: str
    files: list[str] = field(default_factory=list)
    marin: dict | None = None  # Marin's own convention for the same config: marin_convention()

    @property
    def ratio(self) -> float | None:
        return self.recomputed_flops / self.published_flops if self.recomputed_flops else None


def read_results(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path}: not a readable JSON file ({exc}); pass Marin's *.speedrun_results.json") from exc
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, list) or not runs or not all(isinstance(r, dict) and "run_info" in r for r in runs):
        raise InvalidInput(f"{path}::$.runs: expected Marin's format {{\"runs\": [{{\"run_info\": {{...}}}}]}}")
    return [r["run_info"] for r in runs]


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return slug[:64] or "marin-run"


def _hardware(info: dict) -> tuple[str, int]:
    res = info.get("resources") or {}
    if res.get("accelerator_type"):
        return f"NVIDIA {res['accelerator_type']}", int(res.get("gpu_count") or 1)
    device = res.get("device") or {}
    # Older files: {"device": {"kind": "tpu", "variant": "v4-128"}} or "tpu_type"; newer ones name a GPU or a TPU
    # slice as {"device": {"kind": "gpu", "variant": "A40", "count": 6}} or {"device": {"type": "H100"}}.
    name = device.get("variant") or device.get("type") or res.get("tpu_type")
    if not isinstance(name, str) or not name:
        return "unknown", 1
    chips = info.get("num_chips") or info.get("num_devices")
    if device.get("kind") == "tpu" or res.get("tpu_type") or re.match(r"^v\d", name):
        if not chips and name.rsplit("-", 1)[-1].isdigit() and "-" in name:
            cores = int(name.rsplit("-", 1)[1])
            chips = cores // 2 if name.startswith("v4") else cores
        return f"TPU {name}", int(chips or 1)
    return f"NVIDIA {name}", int(device.get("count") or chips or 1)


def _url(value: str | None) -> str | None:
    """Marin's files sometimes give a bare host ('example.com'); the run format wants an absolute URL."""
    if not value:
        return None
    return value if re.match(r"^https?://", value) else f"https://{value.lstrip('/')}"


def seq_len_of(info: dict) -> int:
    """The training sequence length as Marin computes model FLOPs: train_seq_len, else the model's."""
    tc, mc = info.get("train_config") or {}, info.get("model_config") or {}
    for value in (tc.get("train_seq_len"), mc.get("max_seq_len"), mc.get("seq_len")):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    raise InvalidInput("no sequence length: train_config.train_seq_len, model_config.max_seq_len and "
                       "model_config.seq_len are all missing")


def _reproduces(config: LlamaConfig, info: dict) -> bool:
    published = float(info["model_flops"])
    return abs(marin_model_flops(config, int(info["total_tokens"])) - published) <= REPRODUCES * abs(published)


def marin_convention(config: LlamaConfig, info: dict, recomputed: float | None) -> dict:
    """Marin's own figure for this config, whether it reproduces the published one, and its ratio to our recount."""
    theirs = marin_model_flops(config, int(info["total_tokens"]))
    published = float(info["model_flops"])
    return {"model_flops": theirs, "convention": MARIN_CONVENTION,
            "reproduces_published": abs(theirs - published) <= REPRODUCES * abs(published),
            "ratio_to_ours": theirs / recomputed if recomputed else None}


def analysis_of(info: dict, name: str, track_id: str, config: LlamaConfig | None, note: str,
                recomputed: float | None = None) -> dict:
    mc, tc = info.get("model_config") or {}, info.get("train_config") or {}
    seq_len = seq_len_of(info)
    tokens = int(info["total_tokens"])
    steps, batch = int(tc["num_train_steps"]), int(tc["train_batch_size"])
    accelerator, count = _hardware(info)
    author = info.get("author") or {}
    stamp = str(info.get("run_completion_timestamp", ""))[:10]
    url = info.get("wandb_run_link") or MARIN_URL
    optimizer = tc.get("optimizer_config") or {}
    return {
        "schema_version": 1,
        "track": track_id,
        "name": name,
        "team": author.get("affiliation") or author.get("name") or "marin",
        "authors": [{k: v for k, v in {"name": author.get("name") or "unknown", "affiliation": author.get("affiliation"),
                                        "url": _url(author.get("url"))}.items() if v}],
        "date": dt.date.fromisoformat(stamp).isoformat() if stamp else dt.date.today().isoformat(),
        "description": info.get("description") or f"Marin speedrun run {name}",
        "task": {"description": "Causal language modelling on fineweb-edu; judged by bits per byte on Paloma C4-EN."},
        "dataset": {"name": DATASET_NAME, "version": DATASET_VERSION, "resolution": f"{seq_len} tokens"},
        "model": {
            "architecture": ("Llama" if config else "other") + f" ({mc.get('num_layers')} layers, hidden {mc.get('hidden_dim')}, "
                            f"{mc.get('num_heads')} heads, seq {seq_len})",
            "parameters": int(info.get("model_size") or 0),
            **({"config": {"library": "marin", "architecture": "llama", "config": mc,
                           "inputs": {"input_ids": [seq_len]}}} if config else {}),
        },
        "training": {
            "optimizer": {"name": str(optimizer.get("type") or optimizer.get("name") or "see extra.marin"),
                          "learning_rate": float(tc.get("learning_rate") or optimizer.get("learning_rate") or 1e-3),
                          **({"weight_decay": float(tc["weight_decay"])} if tc.get("weight_decay") is not None else {})},
            "batch": {"micro_batch": batch, "accumulation": 1, "world_size": 1},
            "steps": steps,
            "schedule": {"name": str(tc.get("lr_schedule") or "see extra.marin")},
            "precision": "bf16 (Marin default)",
        },
        "evaluation": {"metrics": ["c4_en_bpb"], "protocol": "Paloma C4-EN bits per byte, Marin's evaluation harness."},
        "compute": {
            "samples_seen": tokens // seq_len,
            "flops": {"claimed": float(info["model_flops"]), "convention": "speedrun-v1"},
            "hardware": {"accelerator": accelerator, "count": count},
            **({"wall_time_seconds": float(info["training_time"])} if info.get("training_time") else {}),
        },
        "seeds": [0],
        "results": [{"seed": 0, "final": {"c4_en_bpb": float(info[BPB_KEY])}}],
        "files": {"script": None, "readme": "README.md"},
        "source": {"title": f"Marin speedrun: {name}", "url": url},
        "notes": ("Imported from Marin's published results; the seed is not reported (0 stands for the one run). "
                  + ("Its config has a Llama's matmuls: the validator builds it from model.config and recounts the "
                     "FLOPs; extra.marin.marin_convention holds Marin's own figure for the same config."
                     if config else f"Architecture not rebuilt ({note}): FLOPs are Marin's own figure, self-reported.")),
        "extra": {"marin": {"total_tokens": tokens, "model_flops": info.get("model_flops"),
                            "marin_convention": marin_convention(config, info, recomputed) if config else None,
                            "model_flops_per_token": info.get("model_flops_per_token"),
                            "training_hardware_flops": info.get("training_hardware_flops"),
                            "tokenized_dataset": info.get("tokenized_dataset"),
                            "model_config": mc}},
    }


def recount(config: LlamaConfig, total_tokens: int) -> float:
    """Training FLOPs of the rebuilt model over the run's tokens (in-process: this is our own code, not a PR's)."""
    from ..compute.counting import count
    from ..compute.llama import build_for_flops

    counted = count(lambda b, d: build_for_flops(config, b, d), fvcore=False)
    return counted["per_sample_training_flops"] / config.seq_len * total_tokens


def choose_track(flops: float, tracks: dict[str, float | None]) -> str:
    """The smallest budget that holds `flops`, else the board without a budget."""
    fitting = sorted((limit, tid) for tid, limit in tracks.items() if limit is not None and flops <= limit)
    if fitting:
        return fitting[0][1]
    open_boards = sorted(tid for tid, limit in tracks.items() if limit is None)
    if not open_boards:
        raise SpeedrunError(f"{flops:.3g} FLOPs exceeds every Marin track's budget and no track without a budget exists")
    return open_boards[0]


def run_base_name(path: Path) -> str:
    """The run's name from its file: `llama_75m.speedrun_results.json` gives llama_75m. Marin's repository names
    every file speedrun_results.json, so such a file is named by its folders instead (adamw_llama_scaling/130m/
    gives adamw_llama_scaling__130m, the bundled files' convention)."""
    base = path.name.removesuffix(".json").removesuffix(".speedrun_results")
    if base.startswith("speedrun_results"):
        folders = [p.name for p in path.resolve().parents[:2] if p.name]
        base = "__".join(reversed(folders)) + base.removeprefix("speedrun_results")
    return base


def import_file(path: Path, runs_dir: Path, track: str, tracks: dict[str, float | None], force: bool = False) -> list[Imported]:
    out = []
    infos = read_results(path)
    for i, info in enumerate(infos):
        base = run_base_name(path)
        name = _slug(base if len(infos) == 1 else f"{base}-{i}")
        _check_info(info, f"{path}::$.runs[{i}].run_info")
        config, note = marin_config(info["model_config"], seq_len=seq_len_of(info))
        if config is not None and not _reproduces(config, info):
            # Marin's own formula on the rebuilt config must give the published figure; if it does not, the rebuild
            # is not the model that ran (an MLP or attention this reading of the config gets wrong)
            config, note = None, (f"Marin's own formula on the rebuilt config gives "
                                  f"{marin_model_flops(config, int(info['total_tokens'])):.4e}, which does not reproduce "
                                  f"the published {float(info['model_flops']):.4e}: the rebuild is not the model that ran")
        recomputed = recount(config, int(info["total_tokens"])) if config else None
        track_id = choose_track(recomputed or float(info["model_flops"]), tracks) if track == "auto" else track
        if track_id not in tracks:
            raise SpeedrunError(f"track {track_id!r} is not a Marin track here (have: {', '.join(sorted(tracks))})")
        run_dir = runs_dir / track_id / name
        if run_dir.exists() and not force:
            raise SpeedrunError(f"{run_dir} exists; pass --force to replace it")
        analysis = analysis_of(info, name, track_id, config, note, recomputed)
        run_dir.mkdir(parents=True, exist_ok=True)
        files = {"speedrun_analysis.json": json.dumps(analysis, indent=2) + "\n",
                 "README.md": _readme(name, info, config, note, recomputed)}
        stale = run_dir / "model.py"  # what this importer generated before runs carried model.config
        if stale.is_file() and not stale.is_symlink():
            stale.unlink()
        for rel, content in files.items():
            (run_dir / rel).write_text(content, encoding="utf-8")
        out.append(Imported(name, track_id, run_dir, float(info["model_flops"]), recomputed, config is not None,
                            note or "rebuilt as Llama", sorted(files),
                            analysis["extra"]["marin"]["marin_convention"]))
    return out


def _check_info(info: dict, where: str) -> None:
    """The fields the import reads, with the types it needs: a clear message, never a traceback."""
    for key in ("model_config", "train_config", "total_tokens", "model_flops", BPB_KEY):
        if key not in info:
            raise InvalidInput(f"{where}: {key!r} is missing; Marin's results carry it")
    for key in ("model_config", "train_config"):
        if not isinstance(info[key], dict):
            raise InvalidInput(f"{where}.{key}: expected an object of Marin's config keys, got "
                               f"{type(info[key]).__name__}")
    numbers = {"total_tokens": info["total_tokens"], "model_flops": info["model_flops"], BPB_KEY: info[BPB_KEY],
               "train_config.num_train_steps": info["train_config"].get("num_train_steps"),
               "train_config.train_batch_size": info["train_config"].get("train_batch_size")}
    for key, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
            raise InvalidInput(f"{where}.{key}: expected a non-negative number, got {value!r}")
    try:
        seq_len_of(info)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc}") from None


def _readme(name: str, info: dict, config: LlamaConfig | None, note: str, recomputed: float | None) -> str:
    published = float(info["model_flops"])
    lines = [f"# {name}", "", "Imported from Marin's speedrun results by `speedrun import marin`.", "",
             f"- Original run: {info.get('wandb_run_link') or MARIN_URL}",
             f"- C4-EN bits per byte: {info[BPB_KEY]:.4f}",
             f"- Published model FLOPs: {published:.4e}"]
    if config and recomputed:
        theirs = marin_model_flops(config, int(info["total_tokens"]))
        same = abs(theirs - published) <= REPRODUCES * abs(published)
        lines += [f"- Recounted from `model.config` (a Llama's matmuls, meta device): {recomputed:.4e} "
                  f"({recomputed / published:.4f} x published)",
                  f"- Marin's convention (matmuls plus a softmax term): {theirs:.4e}, "
                  + ("reproduces the published figure" if same else "does NOT reproduce the published figure")
                  + f" ({theirs / recomputed:.4f} x our recount)"]
    else:
        lines.append(f"- Not rebuilt: {note}. The FLOPs figure is Marin's own (self-reported).")
    return "\n".join(lines) + "\n"
