"""JAX runs counted by XLA (issue 12, part 4; docs/jax.md): real jax, real sandbox, no mocks.

The submission's side (jaxtrace.py) runs in bubblewrap; XLA compiles and costs the modules in a second sandbox that
holds no submitted code (jaxcount.py); the parent judges (jaxjudge.py). Forged payloads are handed straight to the
second and third steps, as a submission that controls the first would send them.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

jax = pytest.importorskip("jax", reason="jax is not installed (pip install -c constraints.txt -e '.[dev]')")
pytest.importorskip("flatbuffers", reason="flatbuffers (jax.export serialisation) is not installed")

import jax.numpy as jnp  # noqa: E402
from jax import export  # noqa: E402

from validator.compute.jaxrecount import count_exported, count_jax_in_sandbox  # noqa: E402
from validator.compute.recount import FlopsFailure  # noqa: E402
from validator.compute.sandbox import Limits  # noqa: E402
from validator.environment import SandboxEnv  # noqa: E402

# The tests export modules here (trusted test code); subprocess's fork-exec after that is safe, JAX's warning is noise.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "runs" / "marin-local-tiny" / "bytegpt-jax-tiny"
LIMITS = Limits(timeout_s=180)
ENV = SandboxEnv(python=sys.executable)
D, H, O = 64, 128, 10
T, HEADS = 16, 4

MLP = f"""
import jax, jax.numpy as jnp
def loss_fn(params, batch):
    x, y = batch
    logits = jax.nn.relu(x @ params["w1"]) @ params["w2"]
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))
def build_for_flops(batch_size):
    params = {{"w1": jax.ShapeDtypeStruct(({D}, {H}), jnp.float32), "w2": jax.ShapeDtypeStruct(({H}, {O}), jnp.float32)}}
    return loss_fn, params, (jax.ShapeDtypeStruct((batch_size, {D}), jnp.float32),
                             jax.ShapeDtypeStruct((batch_size,), jnp.int32))
"""

# One attention layer over T positions: q, k, v and output projections, both attention products.
ATTENTION = f"""
import jax, jax.numpy as jnp
def loss_fn(p, x):
    b, t, d = x.shape
    q, k, v = ((x @ p[w]).reshape(b, t, {HEADS}, d // {HEADS}) for w in ("wq", "wk", "wv"))
    s = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, k), axis=-1)
    return jnp.sum(jnp.einsum("bhqk,bkhd->bqhd", s, v).reshape(b, t, d) @ p["wo"])
def build_for_flops(batch_size):
    w = jax.ShapeDtypeStruct(({D}, {D}), jnp.float32)
    return loss_fn, {{"wq": w, "wk": w, "wv": w, "wo": w}}, jax.ShapeDtypeStruct((batch_size, {T}, {D}), jnp.float32)
"""

SCAN = f"""
import jax, jax.numpy as jnp
def loss_fn(w, x):
    x, _ = jax.lax.scan(lambda x, wi: (jnp.tanh(x @ wi), None), x, w{{unroll}})
    return jnp.sum(x)
def build_for_flops(batch_size):
    return loss_fn, jax.ShapeDtypeStruct((4, {D}, {D}), jnp.float32), jax.ShapeDtypeStruct((batch_size, {D}), jnp.float32)
"""

# The same loop with its matmul written as a broadcast multiply and a sum: no dot, but floating-point work all the same.
HIDDEN = f"""
import jax, jax.numpy as jnp
def loss_fn(w, x):
    x, _ = jax.lax.scan(lambda x, wi: (jnp.tanh(jnp.sum(x[:, :, None] * wi[None], axis=1)), None), x, w)
    return jnp.sum(x)
def build_for_flops(batch_size):
    return loss_fn, jax.ShapeDtypeStruct((4, {D}, {D}), jnp.float32), jax.ShapeDtypeStruct((batch_size, {D}), jnp.float32)
"""

SOLVE = f"""
import jax, jax.numpy as jnp
def loss_fn(w, x):
    return jnp.sum(jnp.linalg.solve(w, (x @ w).T))   # LAPACK custom calls on the CPU
def build_for_flops(batch_size):
    return loss_fn, jax.ShapeDtypeStruct(({D}, {D}), jnp.float32), jax.ShapeDtypeStruct((batch_size, {D}), jnp.float32)
"""

DROPOUT = f"""
import jax, jax.numpy as jnp
def loss_fn(w, x):
    keep = jax.random.bernoulli(jax.random.key(0), 0.9, (x.shape[0], {D}))   # threefry rounds: a loop, no matmul
    return jnp.sum(keep * (x @ w))
def build_for_flops(batch_size):
    return loss_fn, jax.ShapeDtypeStruct(({D}, {D}), jnp.float32), jax.ShapeDtypeStruct((batch_size, {D}), jnp.float32)
"""


def _run(tmp_path: Path, source: str) -> Path:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "model.py").write_text(textwrap.dedent(source), encoding="utf-8")
    return run


def _count(tmp_path: Path, source: str, env: SandboxEnv = ENV) -> dict:
    return count_jax_in_sandbox(_run(tmp_path, source), "model.py:build_for_flops", LIMITS, env)


def test_mlp_against_the_analytic_matmul_count(tmp_path):
    result = _count(tmp_path, MLP)
    forward = 2 * (D * H + H * O)
    # backward: the gradients of w1 and w2 and of the hidden activations; the input needs none (XLA drops it)
    training = forward + 2 * (D * H + H * O) + 2 * H * O
    assert result["linear_in_batch"] and result["parameters"] == D * H + H * O
    # XLA counts after optimisation: every matmul, plus the relu, softmax and loss (about 1 % here), never less
    assert 1.0 <= result["per_sample_forward_flops"] / forward < 1.02
    assert 1.0 <= result["per_sample_training_flops"] / training < 1.02
    assert set(result) >= {"device", "per_sample_forward_flops", "per_sample_training_flops", "training_forward_ratio",
                           "linear_in_batch", "batch_counts", "by_module", "parameters", "trainable_parameters",
                           "counters", "notes", "seconds", "source"}
    assert result["counters"]["xla"]["jax"] == jax.__version__ and result["source"] == "entrypoint"


def test_attention_and_linearity(tmp_path):
    result = _count(tmp_path, ATTENTION)
    forward = T * (4 * 2 * D * D) + 2 * 2 * T * T * D  # projections, then scores and weighted values (all heads)
    assert 1.0 <= result["per_sample_forward_flops"] / forward < 1.03
    # backward: weight gradients of the four projections, the output projection's input gradient (the input x
    # needs none, so q, k and v have no input-gradient matmul), and four attention products (twice the forward's)
    training = forward + 5 * 2 * T * D * D + 2 * 2 * 2 * T * T * D
    assert 1.0 <= result["per_sample_training_flops"] / training < 1.03
    counts = result["batch_counts"]
    assert result["linear_in_batch"]
    for kind in ("forward", "training"):
        assert abs(counts["4"][kind] / counts["2"][kind] - 2) < 1e-3


def test_loop_with_a_matmul_is_refused(tmp_path):
    with pytest.raises(FlopsFailure) as err:
        _count(tmp_path, SCAN.replace("{unroll}", ""))
    assert err.value.rule == "jax-loop" and "trip count 4" in str(err.value)
    unrolled = _count(tmp_path, SCAN.replace("{unroll}", ", unroll=True"))
    assert unrolled["per_sample_forward_flops"] >= 4 * 2 * D * D
    with pytest.raises(FlopsFailure) as err:
        _count(tmp_path, HIDDEN)
    assert err.value.rule == "jax-loop" and "0 with a matmul" in str(err.value)


def test_custom_call_is_refused_and_a_loop_without_matmul_is_noted(tmp_path):
    with pytest.raises(FlopsFailure) as err:
        _count(tmp_path, SOLVE)
    assert err.value.rule == "jax-custom-call" and "lapack" in str(err.value)
    result = _count(tmp_path, DROPOUT)
    assert any("integer work only" in n for n in result["notes"])


def test_jax_missing_in_the_environment(tmp_path):
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    env = SandboxEnv(python=str(bare / "bin" / "python"), readonly=(bare,))
    with pytest.raises(FlopsFailure) as err:
        _count(tmp_path, MLP, env)
    assert err.value.rule == "jax-unavailable"


def test_undeclared_import_is_refused(tmp_path):
    from validator import environment

    if not hasattr(environment, "guard_argument"):
        pytest.skip("track environments (validator/environment.py guard_argument) are not in this checkout")
    env = SandboxEnv(python=sys.executable, allowed_imports=frozenset({"jax", "flatbuffers"}))
    with pytest.raises(FlopsFailure) as err:
        _count(tmp_path, "import importlib\nimportlib.import_module('sklearn')\n" + MLP, env)
    assert err.value.rule == "env-undeclared-import" and "sklearn" in str(err.value)
    assert _count(tmp_path, MLP, env)["parameters"] == D * H + H * O


# --- forged payloads: what a submission controlling the sandbox could send --------------------------------------

def _module(f, *avals, **kw) -> str:
    return base64.b64encode(bytes(export.export(jax.jit(f), **kw)(*avals).serialize())).decode()


def _honest() -> dict:
    w = {"w": jax.ShapeDtypeStruct((D, D), jnp.float32)}

    def loss(p, x):
        return jnp.sum(jnp.tanh(x @ p["w"]))

    batches = {}
    for b in (2, 4):
        x = jax.ShapeDtypeStruct((b, D), jnp.float32)
        batches[str(b)] = {"forward": _module(loss, w, x), "training": _module(jax.value_and_grad(loss), w, x)}
    return {"batches": batches, "parameters": D * D}


@pytest.fixture(scope="module")
def honest() -> dict:
    return _honest()


def _forged(honest: dict, batch: str, kind: str, blob) -> dict:
    forged = json.loads(json.dumps(honest))
    forged["batches"][batch][kind] = blob
    return forged


def _refused(payload: dict) -> str:
    with pytest.raises(FlopsFailure) as err:
        count_exported(payload, LIMITS, ENV)
    assert err.value.rule == "flops-bad-trace", err.value
    return str(err.value)


def test_honest_payload_counts(honest):
    result = count_exported(honest, LIMITS, ENV)
    assert result["per_sample_forward_flops"] >= 2 * D * D and result["parameters"] == D * D


@pytest.mark.parametrize("blob, says", [
    (base64.b64encode(b"\x00garbage" * 1000).decode(), "not a serialised"),
    ("%%% not base64 %%%", "not base64"),
    ({"flops": 1}, "missing or larger"),
    ("A" * (44 * 1024**2), "larger than"),
], ids=["garbage-bytes", "not-base64", "not-a-string", "huge-blob"])
def test_garbage_is_a_problem_not_a_crash(honest, blob, says):
    assert says in _refused(_forged(honest, "2", "training", blob))


def test_modules_that_are_not_what_they_claim(honest):
    b = honest["batches"]
    assert "same batch" in _refused({**honest, "batches": {"2": b["2"], "4": b["2"]}})
    assert "one gradient per parameter" in _refused(_forged(honest, "2", "training", b["2"]["forward"]))
    assert "more than the loss" in _refused(_forged(honest, "4", "forward", b["4"]["training"]))
    assert "parameters" in _refused({**honest, "parameters": 1})
    other = _module(lambda p, x: jnp.sum(x @ p["w"]), {"w": jax.ShapeDtypeStruct((D, 2 * D), jnp.float32)},
                    jax.ShapeDtypeStruct((2, D), jnp.float32))
    assert "other parameters" in _refused(_forged(honest, "2", "forward", other))
    cuda = _module(lambda p, x: jnp.sum(x @ p["w"]), {"w": jax.ShapeDtypeStruct((D, D), jnp.float32)},
                   jax.ShapeDtypeStruct((2, D), jnp.float32), platforms=["cuda"])
    assert "not for one CPU" in _refused(_forged(honest, "2", "forward", cuda))


def test_bundled_jax_run_validates(tmp_path):
    done = subprocess.run([sys.executable, "-m", "speedrun", "validate", str(BUNDLED), "--flops",
                           "--format", "json"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    report = json.loads(done.stdout)
    text = json.dumps(report)
    assert "flops-counters-disagree" not in text and '"xla"' in text and "torch_config" in text
