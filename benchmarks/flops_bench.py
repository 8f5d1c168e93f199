"""FLOP-counting cost: our path (meta device, FlopCounterMode + fvcore cross-check) against the naive path
(fvcore on real CPU tensors), for a GPT of about 1.3B parameters at sequence length 2048, plus a 65B config
through our path.

    python benchmarks/flops_bench.py              # everything (the naive path needs ~15 GB and about a minute)
    python benchmarks/flops_bench.py --skip-naive
    python benchmarks/flops_bench.py --architectures-only   # the table of real architectures (architectures.py)

Each measurement runs in a fresh Python process, so peak RSS is that path's alone. Wall time excludes the
interpreter start and `import torch`, which both paths pay alike; the sandboxed end-to-end time
(`speedrun flops`-style child, imports included) is printed separately.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = {
    # name: vocab, width, layers, heads, seq; tied embeddings like GPT-2
    "gpt-1.3b": (50304, 2048, 24, 16, 2048),
    "gpt-65b": (32000, 8192, 80, 64, 2048),
}


def build(name: str, batch: int, device: str):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    vocab, d, layers, heads, seq = CONFIGS[name]

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = self.qkv(x).view(b, t, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.proj(y.transpose(1, 2).reshape(b, t, d))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.attn, self.ln2 = nn.LayerNorm(d), Attention(), nn.LayerNorm(d)
            self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(seq, d)
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)
            self.head.weight = self.wte.weight

        def forward(self, idx):
            pos = torch.arange(idx.shape[1], device=idx.device)
            x = self.wte(idx) + self.wpe(pos)
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln_f(x))

    with torch.device(device):
        return GPT(), (torch.zeros(batch, seq, dtype=torch.long),)


def palm_training_flops(name: str) -> float:
    """PaLM's 6N + 12·L·d·T per token with N the matmul weights (the tied output layer included); per sequence."""
    vocab, d, layers, _, seq = CONFIGS[name]
    n = layers * 12 * d * d + vocab * d
    return (6 * n + 12 * layers * d * seq) * seq


def worker(path: str, name: str) -> dict:
    import torch

    t0 = time.perf_counter()
    if path == "ours":
        from validator.compute.counting import count

        result = count(lambda b, dev: build(name, b, dev))
        out = {"per_sample_training_flops": result["per_sample_training_flops"],
               "per_sample_forward_flops": result["per_sample_forward_flops"],
               "fvcore_forward": result["counters"]["fvcore"].get("forward"),
               "parameters": result["parameters"]}
    else:
        import logging

        from fvcore.nn import FlopCountAnalysis

        logging.getLogger("fvcore").setLevel(logging.ERROR)
        torch.set_num_threads(os.cpu_count() or 1)
        model, inputs = build(name, 1, "cpu")
        model.eval()
        analysis = FlopCountAnalysis(model, inputs)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        out = {"fvcore_raw_macs": analysis.total(), "parameters": sum(p.numel() for p in model.parameters())}
    out["wall_s"] = time.perf_counter() - t0
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the forked cross-check
    out["peak_rss_mb"] = own / 1024
    out["peak_rss_children_mb"] = children / 1024
    return out


def run_worker(path: str, name: str, timeout: float = 900) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", path, "--config", name],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["killed"])[-1], "returncode": proc.returncode}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def sandboxed_end_to_end(name: str) -> float:
    """Our path as `speedrun validate` runs it: a sandboxed child, interpreter start and imports included."""
    import tempfile

    from validator.compute.recount import count_in_sandbox

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)
        # The sandbox sees the run folder only, so the model code travels inside it, as a submission's would.
        (run / "bench.py").write_text(Path(__file__).read_text(encoding="utf-8"), encoding="utf-8")
        (run / "model.py").write_text(
            f"import bench\n"
            f"def build_for_flops(batch_size, device='meta'):\n"
            f"    return bench.build({name!r}, batch_size, device)\n")
        t0 = time.perf_counter()
        count_in_sandbox(run, "model.py:build_for_flops")
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", choices=["ours", "naive"])
    ap.add_argument("--config", default="gpt-1.3b", choices=sorted(CONFIGS))
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--architectures-only", action="store_true")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.config)))
        return
    sys.path.insert(0, str(Path(__file__).parent))
    import architectures

    if args.architectures_only:
        architectures.table()
        return

    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")
    ours = run_worker("ours", "gpt-1.3b")
    print(f"\nGPT {ours['parameters'] / 1e9:.2f}B parameters, seq 2048, batch 1")
    print(f"  our path   (meta, FlopCounterMode + fvcore cross-check): {ours['wall_s']:6.2f} s, "
          f"peak RSS {ours['peak_rss_mb']:6.0f} MB (forked cross-check {ours['peak_rss_children_mb']:.0f} MB)")
    exact = palm_training_flops("gpt-1.3b")
    print(f"  training FLOPs/sequence {ours['per_sample_training_flops']:.4e} "
          f"(PaLM formula {exact:.4e}, ratio {ours['per_sample_training_flops'] / exact:.4f}); "
          f"forward torch {ours['per_sample_forward_flops']:.4e} vs fvcore x2 {ours['fvcore_forward']:.4e}")
    print(f"  targets: < 2 s -> {'met' if ours['wall_s'] < 2 else 'MISSED'}; "
          f"< 600 MB -> {'met' if ours['peak_rss_mb'] < 600 else 'MISSED'}")
    if not args.skip_naive:
        naive = run_worker("naive", "gpt-1.3b")
        if "error" in naive:
            print(f"  naive path failed: {naive['error']}")
        else:
            print(f"  naive path (fvcore on real CPU tensors, forward only):  {naive['wall_s']:6.2f} s, "
                  f"peak RSS {naive['peak_rss_mb']:6.0f} MB")
            speedup = naive["wall_s"] / ours["wall_s"]
            print(f"  ratios: {speedup:.1f}x faster, {naive['peak_rss_mb'] / ours['peak_rss_mb']:.1f}x less memory "
                  f"(target >= 20x faster -> {'met' if speedup >= 20 else 'MISSED'})")
    print(f"  sandboxed end to end (child start, imports, count): {sandboxed_end_to_end('gpt-1.3b'):.2f} s")

    big = run_worker("ours", "gpt-65b")
    print(f"\nGPT {big['parameters'] / 1e9:.1f}B parameters, seq 2048, batch 1")
    print(f"  our path: {big['wall_s']:.2f} s, peak RSS {big['peak_rss_mb']:.0f} MB; "
          f"training FLOPs/sequence {big['per_sample_training_flops']:.4e} "
          f"(PaLM {palm_training_flops('gpt-65b'):.4e}); target < 10 s -> {'met' if big['wall_s'] < 10 else 'MISSED'}")
    architectures.table()


if __name__ == "__main__":
    main()
