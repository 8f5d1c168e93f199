"""The run page's "Forward FLOPs by module" table, as rows that read as a tree.

The counter (validator/compute/counting.py) credits each FLOP to every module on the call stack, plus "Global": so
the whole model appears twice ("Global" and its root module, e.g. "Sequential"), a container with one child
repeats that child, and children's names repeat their parents'. Here the total is shown once, such repeats are
folded into one row, each row is named relative to its parent, and what a module runs itself (attention's matrix
products, say, which belong to no submodule) gets a row of its own so that children add up to their parent.
"""

from __future__ import annotations

import re

TOTAL = "Global"
OWN = "(its own operations)"


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0)


def _natural(name: str) -> list:
    # blocks.2 before blocks.10
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def module_table(by_module: dict | None) -> dict:
    """{"total", "model" (the root module's name when it is the whole model), "rows", "grouped" (whether a row
    stands for several alike modules)}: rows in tree order, each {"label", "path", "depth", "flops", "share",
    "own"}; "share" is of the total, None when the total is 0."""
    values = {str(k): float(v) for k, v in (by_module or {}).items() if isinstance(v, (int, float)) and v >= 0}
    total = values.pop(TOTAL, None)
    parent: dict[str, str | None] = {}
    for name in values:  # the longest dotted prefix that is itself a module
        parts = name.split(".")
        parent[name] = next((p for p in (".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1))
                             if p in values), None)
    children: dict[str | None, list[str]] = {}
    for name in sorted(values, key=_natural):
        children.setdefault(parent[name], []).append(name)
    for kids in children.values():
        kids.sort(key=lambda n: -values[n])  # stable: equal values keep their natural order
    tops = children.get(None, [])
    if total is None:
        total = sum(values[n] for n in tops)
    model = None
    if len(tops) == 1 and _same(values[tops[0]], total):
        model = tops[0]
        tops = children.get(model, [])
    rows: list[dict] = []

    def share(v: float) -> float | None:
        return v / total if total else None

    signatures: dict[str, tuple] = {}

    def signature(name: str) -> tuple:
        if name not in signatures:
            signatures[name] = (values[name], tuple((_relative(k, name), signature(k)) for k in children.get(name, [])))
        return signatures[name]

    def alike(kids: list[str], parent: str | None) -> list[tuple[str, str, int]]:
        """(first module, label, count) per row: a run of 3 or more consecutively numbered siblings with the same
        breakdown (a transformer's blocks) is one row of their sum, so 24 layers do not take 24 times the rows."""
        runs: list[list] = []  # [first, prefix, start, count]; prefix None when not numbered
        for k in kids:
            m = re.fullmatch(r"(.*)\[(\d+)\]", _relative(k, parent))
            last = runs[-1] if runs else None
            if m and last and last[1] == m[1] and int(m[2]) == last[2] + last[3] \
                    and signature(k) == signature(last[0]):
                last[3] += 1
            else:
                runs.append([k, m[1] if m else None, int(m[2]) if m else 0, 1])
        out = []
        for first, prefix, begin, count in runs:
            if count >= 3:
                out.append((first, f"{prefix}[{begin}–{begin + count - 1}] ({count} alike)", count))
            else:  # too few to be worth a group: each sibling keeps its row
                i = kids.index(first)
                out += [(k, _relative(k, parent), 1) for k in kids[i:i + count]]
        return out

    def walk(name: str, label: str, depth: int, times: int = 1) -> None:
        kids = children.get(name, [])
        own = values[name] - sum(values[k] for k in kids)
        if len(kids) == 1 and _same(values[kids[0]], values[name]):  # a wrapper: show what it wraps, once
            rel = _relative(kids[0], name)
            walk(kids[0], label + ("" if rel.startswith("[") else ".") + rel, depth, times)
            return
        path = name if times == 1 else f"{name} and {times - 1} alike"  # a group's figures are of all of them
        rows.append({"label": label, "path": path, "depth": depth, "flops": times * values[name],
                     "share": share(times * values[name]), "own": False})
        for k, sub, n in alike(kids, name):
            walk(k, sub, depth + 1, times * n)
        if kids and own > 0 and not _same(own, 0.0):
            rows.append({"label": OWN, "path": path, "depth": depth + 1, "flops": times * own,
                         "share": share(times * own), "own": True})

    for name, label, n in alike(tops, model):
        walk(name, label, 0, n)
    rest = total - sum(values[n] for n in tops)
    if tops and rest > 0 and not _same(rest, 0.0):
        rows.append({"label": OWN if model else "(outside any module)", "path": model or "", "depth": 0,
                     "flops": rest, "share": share(rest), "own": True})
    return {"total": total, "model": model, "rows": rows, "grouped": any(" alike" in r["path"] for r in rows)}


def _relative(name: str, parent: str | None) -> str:
    rel = name[len(parent) + 1:] if parent and name.startswith(parent + ".") else name
    # children of a Sequential or ModuleList are numbered: "blocks.0" reads better as "blocks[0]", "0" as "[0]"
    return re.sub(r"(?:^|\.)(\d+)(?=\.|$)", r"[\1]", rel)
