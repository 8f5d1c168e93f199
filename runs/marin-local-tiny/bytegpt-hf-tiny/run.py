"""transformers' GPT-2 over bytes for the marin-local TINY track (Marin's 3e18 FLOPs divided by 3e6 = 1e12 training FLOPs).

bytegpt-tiny's recipe with its model taken from a library: transformers.GPT2LMHeadModel built from a config
(MODEL_CONFIG), which the analysis gives as `model.config` so that the validator builds and counts the model itself.
A small causal transformer over bytes (vocabulary 256) trained with AdamW on random 128-byte windows of the
deterministic marin-local corpus (`corpus.py`, generated on the fly, no download). The number of optimizer steps is
derived from the budget: per-sequence training FLOPs are counted on the meta device exactly as the validator recounts
them, and training stops before steps x global batch x that count would pass the budget. Bits per byte on the
held-out split is measured at a few points; the last one, at the end of training, is the result.

    python run.py                                           # three seeds, CPU, writes into this folder
    python run.py --seeds 0 --out /tmp/x --device cuda
    torchrun --nproc_per_node 2 run.py --device cuda        # DDP; the global batch (and every sample) stays the same

Under torchrun each process takes its slice of every global batch, so the samples seen, their order and the
optimizer steps do not depend on the number of processes; only rank 0 writes files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
import transformers

HERE = Path(__file__).resolve().parent
TRACK = "marin-local-tiny"
BUDGET = 1e12            # the track's budget.limit: Marin TINY 3e18 / scale factor 3e6
SCALE_FACTOR = 3e6
CONFIG = {
    "layers": 2, "width": 64, "heads": 4, "seq_len": 128,
    "global_batch": 8, "lr": 1e-2, "min_lr_ratio": 0.1, "warmup_frac": 0.1, "betas": [0.9, 0.95],
    "weight_decay": 0.1, "grad_clip": 1.0,
    "eval_fracs": [0.125, 0.25, 0.5, 1.0],  # evaluate after these fractions of the steps
}
# The model as transformers' config.json keys: written to the analysis as model.config, so the validator builds and
# counts exactly this (no code of this folder runs to count it).
MODEL_CONFIG = {"model_type": "gpt2", "vocab_size": 256, "n_positions": CONFIG["seq_len"], "n_embd": CONFIG["width"],
                "n_layer": CONFIG["layers"], "n_head": CONFIG["heads"], "resid_pdrop": 0.0, "embd_pdrop": 0.0,
                "attn_pdrop": 0.0, "bos_token_id": None, "eos_token_id": None}  # GPT-2's 50256 is no byte


def build_model() -> transformers.GPT2LMHeadModel:
    """transformers' GPT-2, built from MODEL_CONFIG (the analysis's model.config, which the validator counts)."""
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(**{k: v for k, v in MODEL_CONFIG.items()
                                                                    if k != "model_type"}))


def logits_of(model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
    return model(input_ids=idx).logits


def training_flops_per_sequence() -> int:
    """Forward + backward FLOPs of one sequence, counted on the meta device (2 FLOPs per multiply-accumulate), as
    the validator counts MODEL_CONFIG."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = build_model()
        idx = torch.zeros(1, CONFIG["seq_len"], dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        logits_of(model, idx).float().sum().backward()
    return counter.get_total_flops()


def lr_at(step: int, steps: int) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio x the peak."""
    c = CONFIG
    warmup = max(1, int(c["warmup_frac"] * steps))
    if step < warmup:
        return c["lr"] * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return c["lr"] * (c["min_lr_ratio"] + (1 - c["min_lr_ratio"]) * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def evaluate(model: nn.Module, val: torch.Tensor, rank: int, world: int) -> tuple[float, float]:
    """(mean cross-entropy in nats per byte, bits per byte) over the held-out split: windows of seq_len inputs,
    each predicting the next seq_len bytes, so every byte after the first is predicted once. The windows are
    shared out over the processes and the sums reduced."""
    t = CONFIG["seq_len"]
    n = (len(val) - 1) // t
    starts = torch.arange(rank, n, world) * t
    total = torch.zeros(2, dtype=torch.float64, device=val.device)
    model.eval()
    for chunk in starts.split(64):
        idx = torch.stack([val[s:s + t] for s in chunk.tolist()])
        tgt = torch.stack([val[s + 1:s + t + 1] for s in chunk.tolist()])
        logits = logits_of(model, idx)
        total[0] += F.cross_entropy(logits.flatten(0, 1).float(), tgt.flatten(), reduction="sum").double()
        total[1] += tgt.numel()
    model.train()
    if world > 1:
        dist.all_reduce(total)
    nats = (total[0] / total[1]).item()
    return nats, nats / math.log(2)


def train(seed: int, device: str, data, rank: int, world: int, log) -> dict:
    c = CONFIG
    per_seq = training_flops_per_sequence()
    steps = int(BUDGET // (per_seq * c["global_batch"]))  # the largest step count that stays within the budget
    assert c["global_batch"] % world == 0, "the global batch must divide evenly over the processes"
    micro = c["global_batch"] // world
    eval_steps = sorted({max(1, round(f * steps)) for f in c["eval_fracs"]})
    torch.manual_seed(seed)
    model = build_model().to(device)
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=[torch.cuda.current_device()]
                                              if device.startswith("cuda") else None) if world > 1 else model
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "wpe" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or "wpe" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": c["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}], lr=c["lr"], betas=tuple(c["betas"]))
    train_bytes, val_bytes = (torch.from_numpy(np.frombuffer(b, dtype=np.uint8).astype(np.int64)).to(device)
                              for b in data)
    gen = torch.Generator().manual_seed(seed)  # the same on every process: each takes its slice of the batch
    offsets = torch.arange(c["seq_len"] + 1, device=device)
    curve, seen = [], 0
    log(f"seed {seed} per-sequence training FLOPs {per_seq} steps {steps} global batch {c['global_batch']} "
        f"micro batch {micro} world size {world}")
    t0, eval_time = time.perf_counter(), 0.0
    for step in range(steps):
        starts = torch.randint(0, len(train_bytes) - c["seq_len"] - 1, (c["global_batch"],), generator=gen)
        mine = starts[rank * micro:(rank + 1) * micro].to(device)
        window = train_bytes[mine[:, None] + offsets]
        x, y = window[:, :-1], window[:, 1:]
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps)
        loss = F.cross_entropy(logits_of(ddp, x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), c["grad_clip"])
        opt.step()
        seen += c["global_batch"]
        if step + 1 in eval_steps:
            te = time.perf_counter()
            nats, bpb = evaluate(model, val_bytes, rank, world)
            eval_time += time.perf_counter() - te
            curve.append({"samples": seen, "bpb": round(bpb, 6)})
            log(f"seed {seed} step {step + 1} samples {seen} train_loss {loss.item():.4f} "
                f"val_loss_nats {nats:.6f} bpb {bpb:.6f} lr {lr_at(step, steps):.2e}")
    wall = time.perf_counter() - t0 - eval_time
    log(f"seed {seed} done: {steps} steps in {wall:.1f}s of training (+{eval_time:.1f}s evaluation), "
        f"{per_seq * seen:.4e} training FLOPs of the {BUDGET:.1e} budget")
    return {"seed": seed, "curve": curve, "final": {"bpb": curve[-1]["bpb"]}, "wall": wall, "steps": steps,
            "samples": seen, "micro": micro, "per_seq": per_seq}


def hardware(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, device = 0, args.device
    if world > 1:
        rank = int(os.environ["RANK"])
        if device.startswith("cuda"):
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
            device = f"cuda:{torch.cuda.current_device()}"
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if not device.startswith("cuda"):
        # One thread per process: on the shared 2-core machine this was set up on, a second thread made each step
        # 20x slower whenever another process held the other core (every op waits for it); one thread: 28 ms a step.
        torch.set_num_threads(1)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS (before CUDA's first use)
    torch.use_deterministic_algorithms(True, warn_only=True)

    sys.path.insert(0, str(HERE))  # `python -I` (as the reproducer runs it) leaves the script's folder off sys.path
    import corpus

    t0 = time.perf_counter()
    train_bytes, val_bytes, checksum = corpus.corpus()
    corpus_seconds = time.perf_counter() - t0
    if rank == 0:
        (args.out / "logs").mkdir(parents=True, exist_ok=True)
    results, logs = [], []
    for seed in args.seeds:
        log_path = args.out / "logs" / f"seed{seed}.log"
        fh = open(log_path, "w", encoding="utf-8") if rank == 0 else None

        def log(msg: str, fh=fh) -> None:
            if fh is not None:
                print(msg, flush=True)
                fh.write(msg + "\n")

        log(f"python {sys.version.split()[0]} torch {torch.__version__} transformers {transformers.__version__} "
            f"numpy {np.__version__} "
            f"device {hardware(device)} x{world} platform {platform.platform()}")
        log(f"config {json.dumps(CONFIG, sort_keys=True)}")
        log(f"corpus {len(train_bytes)} train bytes, {len(val_bytes)} val bytes, {checksum} "
            f"(generated in {corpus_seconds:.1f}s)")
        results.append(train(seed, device, (train_bytes, val_bytes), rank, world, log))
        if fh is not None:
            for name in ("run.py", "corpus.py"):
                fh.write(f"\n==== {name} ====\n" + (HERE / name).read_text(encoding="utf-8"))
            fh.close()
        logs.append(f"logs/seed{seed}.log")
    if world > 1:
        dist.destroy_process_group()
    if rank != 0:
        return

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated()
    c, r0 = CONFIG, results[0]
    model = build_model()
    claimed = r0["per_seq"] * r0["samples"]
    analysis = {
        "schema_version": 1,
        "track": TRACK,
        "name": HERE.name,
        "team": "speedrun-maintainers",
        "authors": [{"name": "Speedrun maintainers", "affiliation": "speedrun"}],
        "date": dt.date.today().isoformat(),
        "description": f"transformers' GPT-2 over bytes ({c['layers']} layers, width {c['width']}, {c['heads']} heads, context "
                       f"{c['seq_len']}), AdamW with warm-up and cosine decay, trained on random windows of the "
                       f"marin-local corpus for as many steps as the {BUDGET:.0e} FLOPs budget allows.",
        "changes": "bytegpt-tiny's recipe with transformers' GPT-2 (learned positions) instead of its own rotary GPT, given as model.config.",
        "task": {"description": "Next-byte prediction on the deterministic marin-local corpus; bits per byte on its "
                                "held-out split."},
        "dataset": {"name": "marin-local-corpus", "version": "1", "resolution": f"{c['seq_len']} bytes",
                    "checksum": checksum},
        "model": {"architecture": f"transformers GPT2LMHeadModel, {c['layers']} layers x width {c['width']}, "
                                  f"{c['heads']} heads, learned positions, tied byte embedding (256)",
                  "parameters": sum(p.numel() for p in model.parameters()),
                  "config": {"library": "transformers", "architecture": "GPT2LMHeadModel", "config": MODEL_CONFIG,
                             "inputs": {"input_ids": [c["seq_len"]]}}},
        "training": {
            "optimizer": {"name": "AdamW", "learning_rate": c["lr"], "weight_decay": c["weight_decay"],
                          "params": {"betas": c["betas"], "grad_clip": c["grad_clip"]}},
            "batch": {"micro_batch": r0["micro"], "accumulation": 1, "world_size": world},
            "steps": r0["steps"],
            "schedule": {"name": "linear warm-up + cosine decay",
                         "warmup_steps": max(1, int(c["warmup_frac"] * r0["steps"])),
                         "params": {"min_lr_ratio": c["min_lr_ratio"]}},
            "augmentations": [],
            "precision": "fp32",
            "other": {"sequence_length": c["seq_len"], "sampling": "uniform random windows of the train split"},
        },
        "evaluation": {"metrics": ["bpb"], "checkpoints": [p["samples"] for p in r0["curve"]],
                       "protocol": f"bits per byte = mean next-byte cross-entropy (nats) / ln 2 over the "
                                   f"{len(val_bytes):,}-byte val split, cut into windows of {c['seq_len']} inputs so "
                                   f"that every byte after the first is predicted once; after "
                                   f"{', '.join(str(f) for f in c['eval_fracs'])} of the steps."},
        "compute": {"samples_seen": r0["samples"], "forward_only_samples": 0,
                    "flops": {"claimed": claimed, "convention": "speedrun-v1", "per_sample_training": r0["per_seq"]},
                    "hardware": {"accelerator": hardware(device), "count": world},
                    "wall_time_seconds": round(sum(r["wall"] for r in results) / len(results), 3),
                    "peak_memory_bytes": int(peak)},
        "seeds": args.seeds,
        "results": [{"seed": r["seed"], "curve": r["curve"], "final": r["final"]} for r in results],
        "files": {"script": "run.py", "readme": "README.md", "logs": logs},
        "notes": "One sample is one sequence of 128 bytes (extra.bytes_seen counts the bytes). The bytegpt-tiny "
                 "recipe with the model taken from transformers (GPT-2 as its config builds it: biases, learned "
                 "positions, tanh GELU) and given as model.config, so the validator counts it from the config. "
                 "train_loss in the logs is process 0's micro-batch under DDP.",
        "extra": {"bytes_seen": r0["samples"] * c["seq_len"], "scale_factor": SCALE_FACTOR,
                  "marin_equivalent_flops": claimed * SCALE_FACTOR, "budget_fraction": claimed / BUDGET},
    }
    out = args.out / "speedrun_analysis.json"
    out.write_text(json.dumps(analysis, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
