"""Digits MLP baseline for the samples-seen track.

A two-layer MLP trained with SGD + momentum on the track's fixed 1,024-image training split; evaluates val top-1 at
every checkpoint (1, 2, 4, ... 32 passes over the training set) and test top-1 once at the end. Writes one log per
seed (script, versions, hardware, every evaluation) and `speedrun_analysis.json`.

    python run.py                      # three seeds, CPU, writes into this folder
    python run.py --seeds 0 --out /tmp/x --device cuda
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

HERE = Path(__file__).resolve().parent
TRACK = "digits-classification"
TRAIN, VAL = 1024, 386
CHECKPOINTS = [TRAIN * m for m in (1, 2, 4, 8, 16, 32)]
CONFIG = {"hidden": 128, "batch": 64, "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}
TEAM = "speedrun-maintainers"
AUTHORS = [{"name": "Speedrun maintainers", "affiliation": "speedrun"}]


def load_split():
    """The track's canonical split and its checksum (see track.yaml dataset.source)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.array(sorted(range(len(digits.target)), key=lambda i: hashlib.sha256(str(i).encode()).hexdigest()))
    x, y = digits.data[order].astype(np.float32), digits.target[order].astype(np.int64)
    h = hashlib.sha256()
    for part in (order.astype(np.int64), x, y):
        h.update(part.tobytes())
    splits = {"train": (x[:TRAIN], y[:TRAIN]), "val": (x[TRAIN:TRAIN + VAL], y[TRAIN:TRAIN + VAL]),
              "test": (x[TRAIN + VAL:], y[TRAIN + VAL:])}
    return {k: (torch.from_numpy(a / 16.0), torch.from_numpy(b)) for k, (a, b) in splits.items()}, "sha256:" + h.hexdigest()


def build_model() -> nn.Module:
    return nn.Sequential(nn.Linear(64, CONFIG["hidden"]), nn.ReLU(), nn.Linear(CONFIG["hidden"], 10))


def build_for_flops(batch_size: int, device: str = "meta"):
    """FLOP-counting entrypoint: the model and one training batch at the real shapes."""
    with torch.device(device):
        model = build_model()
        x = torch.randn(batch_size, 64)
        y = torch.randint(0, 10, (batch_size,))
    return model, (x,), y


def training_flops_per_sample() -> int:
    """Forward + backward FLOPs of one sample, counted on the meta device (2 FLOPs per multiply-accumulate)."""
    from torch.utils.flop_counter import FlopCounterMode

    model, (x,), y = build_for_flops(1, "meta")
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(model(x), y).backward()
    return counter.get_total_flops()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    acc = (model(x).argmax(1) == y).float().mean().item()
    model.train()
    return round(acc, 6)


def train(seed: int, device: str, data, log) -> dict:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_model().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=CONFIG["lr"], momentum=CONFIG["momentum"],
                          weight_decay=CONFIG["weight_decay"], nesterov=True)
    steps = CHECKPOINTS[-1] // CONFIG["batch"]
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=CONFIG["lr"], total_steps=steps, pct_start=0.1)
    xtr, ytr = (t.to(device) for t in data["train"])
    xva, yva = (t.to(device) for t in data["val"])
    loss_fn = nn.CrossEntropyLoss()
    curve, seen, order = [], 0, torch.empty(0, dtype=torch.long)
    t0 = time.perf_counter()
    for step in range(steps):
        if len(order) < CONFIG["batch"]:  # a new epoch: reshuffle (1,024 is a multiple of the batch)
            order = torch.randperm(TRAIN, generator=gen)
        idx, order = order[: CONFIG["batch"]].to(device), order[CONFIG["batch"]:]
        loss = loss_fn(model(xtr[idx]), ytr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        seen += len(idx)
        if seen in CHECKPOINTS:
            curve.append({"samples": seen, "val_top1": accuracy(model, xva, yva)})
            log(f"seed {seed} step {step + 1} samples {seen} loss {loss.item():.4f} val_top1 {curve[-1]['val_top1']:.4f}")
    wall = time.perf_counter() - t0
    test = accuracy(model, *(t.to(device) for t in data["test"]))
    log(f"seed {seed} done in {wall:.2f}s test_top1 {test:.4f}")
    return {"seed": seed, "curve": curve, "final": {"val_top1": curve[-1]["val_top1"], "test_top1": test},
            "wall": wall, "steps": steps, "samples": seen}


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
    torch.use_deterministic_algorithms(True, warn_only=True)
    data, checksum = load_split()
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    results, logs = [], []
    for seed in args.seeds:
        log_path = args.out / "logs" / f"seed{seed}.log"
        with open(log_path, "w", encoding="utf-8") as fh:
            def log(msg: str, fh=fh) -> None:
                print(msg, flush=True)
                fh.write(msg + "\n")
            log(f"python {sys.version.split()[0]} torch {torch.__version__} numpy {np.__version__} "
                f"device {hardware(args.device)} platform {platform.platform()}")
            log(f"config {json.dumps(CONFIG, sort_keys=True)}")
            results.append(train(seed, args.device, data, log))
            fh.write("\n==== run.py ====\n" + Path(__file__).read_text(encoding="utf-8"))
        logs.append(f"logs/seed{seed}.log")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if args.device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated()
    analysis = {
        "schema_version": 1,
        "track": TRACK,
        "name": HERE.name,
        "team": TEAM,
        "authors": AUTHORS,
        "date": dt.date.today().isoformat(),
        "description": "Two-layer MLP (64-128-10), SGD with Nesterov momentum and a one-cycle schedule, 32 epochs.",
        "task": {"description": "10-way classification of sklearn's 8x8 digits on the track's fixed split."},
        "dataset": {"name": "sklearn-digits",
                    "version": "UCI optdigits test set as shipped in scikit-learn (1,797 images)",
                    "resolution": "8x8", "train_samples": TRAIN, "checksum": checksum},
        "model": {"architecture": f"MLP 64-{CONFIG['hidden']}-10, ReLU",
                  "parameters": sum(p.numel() for p in build_model().parameters()),
                  "entrypoint": "run.py:build_for_flops"},
        "training": {
            "optimizer": {"name": "SGD", "learning_rate": CONFIG["lr"], "weight_decay": CONFIG["weight_decay"],
                          "params": {"momentum": CONFIG["momentum"], "nesterov": True}},
            "batch": {"micro_batch": CONFIG["batch"], "accumulation": 1, "world_size": 1},
            "steps": results[0]["steps"],
            "schedule": {"name": "one-cycle", "warmup_steps": int(0.1 * results[0]["steps"]),
                         "params": {"pct_start": 0.1, "anneal": "cos"}},
            "augmentations": [],
            "precision": "fp32",
        },
        "evaluation": {"metrics": ["val_top1", "test_top1"], "checkpoints": CHECKPOINTS,
                       "protocol": "val top-1 on all 386 val images at each checkpoint; test top-1 once at the end."},
        "compute": {"samples_seen": results[0]["samples"], "forward_only_samples": 0,
                    "flops": {"claimed": training_flops_per_sample() * results[0]["samples"],
                              "convention": "speedrun-v1", "per_sample_training": training_flops_per_sample()},
                    "hardware": {"accelerator": hardware(args.device), "count": 1},
                    "wall_time_seconds": round(sum(r["wall"] for r in results) / len(results), 3),
                    "peak_memory_bytes": int(peak)},
        "seeds": args.seeds,
        "results": [{"seed": r["seed"], "curve": r["curve"], "final": r["final"]} for r in results],
        "files": {"script": "run.py", "readme": "README.md", "logs": logs},
        "notes": "Stable across seeds; no divergence observed.",
    }
    out = args.out / "speedrun_analysis.json"
    out.write_text(json.dumps(analysis, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
