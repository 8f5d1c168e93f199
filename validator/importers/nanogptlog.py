"""One modded-nanogpt training log (`records/track_1_short/<record>/*.txt`), read as its trainer writes it: the full
training script, a line of 100 '=', the versions and `nvidia-smi`'s table, another such line, then the step lines
(`step:1875/1875 val_loss:3.2783 train_time:301825ms step_avg:161.84ms`). Every figure an import shows comes from
here; anything missing is refused with the file and line, never guessed."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..problems import InvalidInput

SEPARATOR = "=" * 100
_VAL = re.compile(r"^step:(\d+)/(\d+) val_loss:([0-9.]+) train_time:(\d+)ms\b")
_STEP = re.compile(r"^step:\d+/\d+\b")
# nvidia-smi's row of one device: "|   0  NVIDIA H100 80GB HBM3          On  |   00000000:61:00.0 Off |"
_GPU = re.compile(r"^\|\s+(\d+)\s+(.+?)\s{2,}(?:On|Off)\s+\|")
_SMI_DATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (\w{3}) +(\d{1,2}) (\d\d:\d\d:\d\d) (\d{4})\s*$")
MAX_LOG_BYTES = 16 * 1024 * 1024  # the largest real log is under 1 MB; a bigger file is not a training log


@dataclass
class Evaluation:
    step: int
    val_loss: float
    train_time_seconds: float
    line: int


@dataclass
class TrainingLog:
    path: Path
    script: str
    versions: dict[str, str]
    accelerator: str
    count: int
    started: dt.datetime | None
    total_steps: int
    evaluations: list[Evaluation] = field(default_factory=list)

    @property
    def final(self) -> Evaluation:
        return self.evaluations[-1]

    def first_reaching(self, target: float) -> Evaluation | None:
        return next((e for e in self.evaluations if e.val_loss <= target), None)


def _versions(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        if m := re.match(r"^Running Python (\S+)", line):
            out["python"] = m[1]
        elif m := re.match(r"^Running [Pp]y[Tt]orch (\S+)(?: compiled for CUDA (\S+))?", line):
            out["torch"] = m[1]
            if m[2]:
                out["cuda"] = m[2]
        elif m := re.match(r"^Running Triton version (\S+)", line):
            out["triton"] = m[1]
        elif m := re.search(r"Driver Version: (\S+)", line):
            out["nvidia_driver"] = m[1]
    return out


def _header_end(lines: list[str], path: Path) -> tuple[int, int]:
    """Indexes of the separator that closes the script and of the one that closes the environment header."""
    for i, line in enumerate(lines):
        if line.rstrip() == SEPARATOR and i + 1 < len(lines) and lines[i + 1].startswith("Running "):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].rstrip() == SEPARATOR), None)
            if end is None:
                raise InvalidInput(f"{path}:{i + 1}: the environment header opened here is never closed by a line "
                                   f"of 100 '='; is the log cut short?")
            return i, end
    raise InvalidInput(f"{path}: no line of 100 '=' followed by 'Running Python/PyTorch ...': not a modded-nanogpt "
                       "training log (it should start with the training script, then the versions and nvidia-smi)")


def read_log(path: Path, display: str | None = None) -> TrainingLog:
    name = display or str(path)
    try:
        if path.stat().st_size > MAX_LOG_BYTES:
            raise InvalidInput(f"{name}: {path.stat().st_size:,} bytes is larger than any training log "
                               f"({MAX_LOG_BYTES:,}); pass the record's *.txt logs only")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start}); pass the *.txt log") from None
    except OSError as exc:
        raise InvalidInput(f"{name}: cannot be read ({exc.strerror})") from None
    lines = text.splitlines()
    start, end = _header_end(lines, Path(name))
    script_lines = lines[1:start] if lines and lines[0].rstrip() == SEPARATOR else lines[:start]
    header = lines[start + 1:end]
    gpus = [(m[1], m[2].strip()) for line in header if (m := _GPU.match(line))]
    if not gpus:
        raise InvalidInput(f"{name}:{start + 2}-{end}: the header has no nvidia-smi device rows "
                           "('|   0  NVIDIA H100 80GB HBM3  On  |'); the hardware cannot be read from the log")
    names = {g for _, g in gpus}
    if len(names) > 1:
        raise InvalidInput(f"{name}:{start + 2}-{end}: nvidia-smi lists different devices ({', '.join(sorted(names))})")
    started = None
    for line in header:
        if m := _SMI_DATE.match(line):
            started = dt.datetime.strptime(f"{m[2]} {m[3]} {m[4]} {m[5]}", "%b %d %H:%M:%S %Y")
    evaluations, total = [], None
    for i in range(end + 1, len(lines)):
        line = lines[i]
        if m := _VAL.match(line):
            step, steps, loss, ms = int(m[1]), int(m[2]), m[3], int(m[4])
            try:
                value = float(loss)
            except ValueError:
                raise InvalidInput(f"{name}:{i + 1}: val_loss {loss!r} is not a number") from None
            if total is not None and steps != total:
                raise InvalidInput(f"{name}:{i + 1}: step:{step}/{steps} disagrees with the earlier total of {total}")
            if evaluations and (step <= evaluations[-1].step or ms / 1000 < evaluations[-1].train_time_seconds):
                raise InvalidInput(f"{name}:{i + 1}: step or train_time goes backwards (after line "
                                   f"{evaluations[-1].line}); two runs in one file?")
            total = steps
            evaluations.append(Evaluation(step, value, ms / 1000, i + 1))
        elif line.startswith("step:") and "val_loss" in line:
            raise InvalidInput(f"{name}:{i + 1}: malformed evaluation line {line[:80]!r}; expected "
                               "'step:N/T val_loss:X train_time:Nms ...'")
    if not evaluations:
        raise InvalidInput(f"{name}: no 'step:N/T val_loss:X train_time:Nms' line after the header "
                           f"(line {end + 1}); the run never evaluated")
    if evaluations[-1].step != total:
        raise InvalidInput(f"{name}:{evaluations[-1].line}: the last evaluation is at step {evaluations[-1].step} of "
                           f"{total}: the run did not finish")
    return TrainingLog(path, "\n".join(script_lines) + "\n", _versions(header), gpus[0][1], len(gpus), started,
                       total, evaluations)
