"""Hostile values and raw text spliced into documents: numbers past what a float or Python's int-to-text
conversion allows, text that spreadsheets, shells, templates or terminals treat specially, JSON extensions, and YAML
tags, anchors, aliases and merge keys that a JSON data model has no room for."""

NUMBERS = [0, -1, -(10**18), 2**63, 2**64, -(2**63) - 1, 10**30, 1e308, -1e308, 5e-324, 1.7976931348623157e308,
           float("nan"), float("inf"), float("-inf"), -0.0, 0.1, True]
STRINGS = ["", " ", "=1+2", "@SUM(A1)", "+cmd|' /C calc'!A0", "-2+3", "\t=x", "../../etc/passwd", "/etc/passwd",
           "C:\\x", "a\u202eb", "\u200b", "<script>alert(1)</script>", "{{7*7}}", "${HOME}", "%s%n", "\x00", "\ud800",
           "runs/../x", "\U0001f600" * 3, "1e308", "NaN", "true", "null", "2024-02-30", "9999-12-31", "0001-01-01",
           "javascript:alert(1)", "a" * 300, "line\nbreak", "x::$.y: fake [rule]"]
HUGE_INT = "1" + "0" * 4300  # 4,301 digits: past Python's int-to-str limit
JSON_TOKENS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-400", "-0", "1E+400", HUGE_INT,
               '"\\ud800"', '"\\u0000"', "[]", "{}", "null"]
YAML_TOKENS = ["!!binary aGVsbG8=", "!!set {a, b}", "!!python/object/apply:os.system ['true']",
               "!!python/name:os.system", "!!omap [{a: 1}, {b: 2}]", "!!pairs [{a: 1}, {a: 2}]",
               "!!timestamp 2001-12-14t21:59:43.10-05:00", "2024-02-30", "2024-01-01", "2024-01-01 10:00:00",
               "!!float .nan", ".inf", "-.inf", "0o17", "0x1F", "190:20:30", "yes", "off", "~", "!!str 12", "!local x",
               "!<tag:example.com,2000:x> 1", "{<<: {a: 1}, b: 2}", "{<<: [{a: 1}, {c: 3}]}", "{<<: 1}",
               "[&r1 [1, 2], *r1, *r1]", "&r2 [*r2]", "&r3 {a: *r3}", "*undefined", "{? [1, 2] : v}",
               "{? {a: 1} : v}", "{1: a, 2.5: b, null: c, true: d}", "{a: 1, a: 2}", '"\\ud800"', '"\\x00"',
               "!!null ''", "!!int '12'", "!!bool maybe", "!!bool ''", "!!float ''", "!!int ''", "!!map [1]",
               "!!seq x", "!!str {a: 1}", HUGE_INT, "1e999", ".NaN"]
WHOLE = [b"", b"# nothing here\n", b"null\n", b"[]\n", b"42\n", b'"text"\n', b"---\na: 1\n---\nb: 2\n", b"{}",
         b"\xef\xbb\xbf", b"a: 1\n\tb: 2\n", b"\x00" * 16]


def bomb(tag: int, levels: int, width: int) -> str:
    """A billion-laughs sequence: `width ** levels` items once the aliases are expanded, a few hundred bytes as text."""
    parts = [f"&b{tag}x0 [" + ", ".join(["lol"] * width) + "]"]
    parts += [f"&b{tag}x{i} [" + ", ".join([f"*b{tag}x{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"
