"""Import Marin speedrun results (`*.speedrun_results.json`) as runs.

Each result becomes `runs/<track>/<name>/` with a `speedrun_analysis.json` citing the original run. Llama-architecture
runs get a generated `model.py` entrypoint that rebuilds the model from its config, so `speedrun validate` recounts
their FLOPs like any submission's. Any other architecture is imported as self-reported with a note saying so;
its FLOPs are never guessed.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..compute.llama import LlamaConfig
from ..problems import InvalidInput, SpeedrunError

MARIN_URL = "https://github.com/marin-community/marin"
DATASET_NAME = "fineweb-edu-10B (Marin tokenization, Llama 3 tokenizer)"
DATASET_VERSION = "marin-speedrun"
BPB_KEY = "eval/paloma/c4_en/bpb"

# Keys of a plain Llama config in Marin's files; a config with any other key is another architecture (Qwen3
# norms, gated DeltaNet, sliding windows, muP...), and its FLOPs cannot be recomputed by rebuilding a Llama.
LLAMA_KEYS = {
    "activation_function", "attn_backend", "cross_entropy_block_size", "flash_attention_block_size",
    "gradient_checkpointing", "head_dim", "hidden_dim", "hybrid_norm", "initializer_range", "input_embedding_norm",
    "intermediate_dim", "layer_norm_epsilon", "num_heads", "num_kv_heads", "num_layers", "reference_checkpoint",
    "rope", "scan_layers", "seq_len", "tie_word_embeddings", "tokenizer", "upcast_attn", "use_bias",
    "use_flash_attention", "use_layer_norm_weight",
}

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


def llama_config(model_config: dict) -> tuple[LlamaConfig | None, str]:
    """The equivalent Llama config, or None and the reason it cannot be rebuilt."""
    extra = sorted(set(model_config) - LLAMA_KEYS)
    if extra:
        return None, f"not a plain Llama config (has {', '.join(extra[:6])}{'...' if len(extra) > 6 else ''})"
    if model_config.get("use_bias"):
        return None, "biases are not modelled by the rebuild"
    act = model_config.get("activation_function")
    if act not in ("silu", "swiglu"):
        return None, f"activation {act!r} is not Llama's SwiGLU"
    try:
        return LlamaConfig(
            hidden=int(model_config["hidden_dim"]), intermediate=int(model_config["intermediate_dim"]),
            layers=int(model_config["num_layers"]), heads=int(model_config["num_heads"]),
            kv_heads=int(model_config.get("num_kv_heads") or model_config["num_heads"]),
            seq_len=int(model_config["seq_len"]), head_dim=model_config.get("head_dim"),
            tie_embeddings=bool(model_config.get("tie_word_embeddings")),
        ), ""
    except (KeyError, TypeError, ValueError) as exc:
        return None, f"config incomplete ({exc})"


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return slug[:64] or "marin-run"


def _hardware(info: dict) -> tuple[str, int]:
    res = info.get("resources") or {}
    if res.get("accelerator_type"):
        return f"NVIDIA {res['accelerator_type']}", int(res.get("gpu_count") or 1)
    device = res.get("device") or {}
    if device.get("kind") == "tpu" or res.get("tpu_type"):
        variant = device.get("variant") or res.get("tpu_type")
        chips = info.get("num_chips") or info.get("num_devices")
        if not chips and variant and "-" in variant:
            cores = int(variant.rsplit("-", 1)[1])
            chips = cores // 2 if variant.startswith("v4") else cores
        return f"TPU {variant}", int(chips or 1)
    return "unknown", 1


def _url(value: str | None) -> str | None:
    """Marin's files sometimes give a bare host ('example.com'); the run format wants an absolute URL."""
    if not value:
        return None
    return value if re.match(r"^https?://", value) else f"https://{value.lstrip('/')}"


def _model_py(config: LlamaConfig) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in config.to_dict().items())
    return (
        '"""Generated by `speedrun import marin`: this run\'s Llama architecture, rebuilt for FLOP counting."""\n\n'
        "from validator.compute.llama import LlamaConfig, build_for_flops as _build\n\n"
        f"CONFIG = LlamaConfig({args})\n\n\n"
        "def build_for_flops(batch_size, device=\"meta\"):\n"
        "    return _build(CONFIG, batch_size, device)\n"
    )


def analysis_of(info: dict, name: str, track_id: str, config: LlamaConfig | None, note: str) -> dict:
    mc, tc = info.get("model_config") or {}, info.get("train_config") or {}
    seq_len = int(mc.get("seq_len") or mc.get("max_seq_len"))
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
            **({"entrypoint": "model.py:build_for_flops"} if config else {}),
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
                  + ("FLOPs recomputed from the rebuilt Llama architecture (model.py)." if config else
                     f"Architecture not rebuilt ({note}): FLOPs are Marin's own figure, self-reported.")),
        "extra": {"marin": {"total_tokens": tokens, "model_flops": info.get("model_flops"),
                            "model_flops_per_token": info.get("model_flops_per_token"),
                            "training_hardware_flops": info.get("training_hardware_flops"),
                            "tokenized_dataset": info.get("tokenized_dataset"),
                            "model_config": mc}},
    }


IMPORTED_FILES = frozenset({"speedrun_analysis.json", "README.md", "model.py"})


def counted_from_config(run_dir: Path, extra: dict, entrypoint: str | None) -> bool:
    """Whether a count of this run's entrypoint is trusted code's, made from the run's model config: the folder holds
    only what this importer writes (so nothing in it can shadow `validator`), and its model.py is byte for byte the one
    `_model_py` generates from `extra.marin.model_config`, which only calls validator/compute/llama.py."""
    config_data = (extra.get("marin") or {}).get("model_config") if isinstance(extra, dict) else None
    if entrypoint != "model.py:build_for_flops" or not isinstance(config_data, dict):
        return False
    try:
        entries = list(run_dir.iterdir())
        if {p.name for p in entries} - IMPORTED_FILES or any(p.is_symlink() or not p.is_file() for p in entries):
            return False
        config, _note = llama_config(config_data)
        return config is not None and (run_dir / "model.py").read_text(encoding="utf-8") == _model_py(config)
    except (OSError, UnicodeDecodeError):
        return False


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


def import_file(path: Path, runs_dir: Path, track: str, tracks: dict[str, float | None], force: bool = False) -> list[Imported]:
    out = []
    infos = read_results(path)
    for i, info in enumerate(infos):
        base = path.name.removesuffix(".json").removesuffix(".speedrun_results")
        name = _slug(base if len(infos) == 1 else f"{base}-{i}")
        for key in ("model_config", "train_config", "total_tokens", "model_flops", BPB_KEY):
            if key not in info:
                raise InvalidInput(f"{path}::$.runs[{i}].run_info: {key!r} is missing; Marin's results carry it")
        config, note = llama_config(info["model_config"])
        recomputed = recount(config, int(info["total_tokens"])) if config else None
        track_id = choose_track(recomputed or float(info["model_flops"]), tracks) if track == "auto" else track
        if track_id not in tracks:
            raise SpeedrunError(f"track {track_id!r} is not a Marin track here (have: {', '.join(sorted(tracks))})")
        run_dir = runs_dir / track_id / name
        if run_dir.exists() and not force:
            raise SpeedrunError(f"{run_dir} exists; pass --force to replace it")
        analysis = analysis_of(info, name, track_id, config, note)
        run_dir.mkdir(parents=True, exist_ok=True)
        files = {"speedrun_analysis.json": json.dumps(analysis, indent=2) + "\n",
                 "README.md": _readme(name, info, config, note, recomputed)}
        if config:
            files["model.py"] = _model_py(config)
        for rel, content in files.items():
            (run_dir / rel).write_text(content, encoding="utf-8")
        out.append(Imported(name, track_id, run_dir, float(info["model_flops"]), recomputed, config is not None,
                            note or "rebuilt as Llama", sorted(files)))
    return out


def _readme(name: str, info: dict, config: LlamaConfig | None, note: str, recomputed: float | None) -> str:
    lines = [f"# {name}", "", "Imported from Marin's speedrun results by `speedrun import marin`.", "",
             f"- Original run: {info.get('wandb_run_link') or MARIN_URL}",
             f"- C4-EN bits per byte: {info[BPB_KEY]:.4f}",
             f"- Published model FLOPs: {float(info['model_flops']):.4e}"]
    if config and recomputed:
        lines.append(f"- Recomputed (rebuilt Llama, meta device): {recomputed:.4e} "
                     f"({recomputed / float(info['model_flops']):.4f} x published)")
    else:
        lines.append(f"- Not rebuilt: {note}. The FLOPs figure is Marin's own (self-reported).")
    return "\n".join(lines) + "\n"
