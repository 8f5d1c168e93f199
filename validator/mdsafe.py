"""Markdown for PR comments out of strings a submission chose (names, paths, messages that quote submitted values).

GitHub turns `@user`, `#123`, links, images, bare URLs and a set of raw HTML tags into live content, and it skips all
of that inside code spans. So a submitted string is either shown inside a code span it cannot close, or, word by word,
as plain prose when the word is made only of characters that no Markdown or GitHub construct starts with.
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse

MAX_CHARS = 200
# Characters with no meaning to GFM or GitHub's filters. No `:` (URL schemes, emoji), `@`, `#`, `_`/`*`/`~`,
# brackets, `<`, `&` (entities decode to `@`), `$` (math), backslash, backtick or `|`.
_PLAIN_WORD = re.compile(r"(?:[^\W_]|[.,;'\"=+\-/%()…])+:?")
# Words made of those characters that GitHub still links: `www.` autolinks and `GH-123` issue references.
_LINKED_WORD = re.compile(r"www\.|gh-\d", re.IGNORECASE)
_HIDDEN = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def clean(value: object, limit: int = MAX_CHARS) -> str:
    """One line of visible characters: control, format (bidi overrides, zero-width) and line-breaking characters
    become spaces, and the text is cut to `limit` characters."""
    text = "".join(" " if unicodedata.category(ch) in _HIDDEN else ch for ch in str(value))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def code(value: object, *, table: bool = False, limit: int = MAX_CHARS) -> str:
    """`value` as one inline code span that nothing inside it can close."""
    text = clean(value, limit).replace("<!--", "<! --")  # the sticky comment's marker is found by substring
    if not text:
        return "` `"
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    if text[0] in "` " or text[-1] in "` ":
        text = f" {text} "  # CommonMark strips one space from each side, so a backtick never touches the fence
    if table:
        text = text.replace("|", "\\|")  # GFM splits cells before it parses code spans
    return f"{fence}{text}{fence}"


def _plain(word: str) -> bool:
    return bool(_PLAIN_WORD.fullmatch(word)) and not _LINKED_WORD.search(word)


def prose(value: object, *, table: bool = False, limit: int = 300) -> str:
    """Readable text with every word that could take effect (a mention, link, tag, reference) in a code span."""
    out: list[str] = []
    held: list[str] = []

    def flush() -> None:
        text = " ".join(held)
        tail = re.search(r"[.,;:]*$", text).group() if len(text.rstrip(".,;:")) else ""
        out.append(code(text[: len(text) - len(tail)], table=table, limit=limit) + tail)
        held.clear()

    for word in clean(value, limit).split(" "):
        if _plain(word):
            if held:
                flush()
            out.append(word)
        elif word:
            held.append(word)
    if held:
        flush()
    return " ".join(out)


def image(alt: object, url: str) -> str:
    """An image whose alt text is plain letters and whose address cannot end early: percent-encoding leaves no space,
    parenthesis, bracket or angle bracket to close the link."""
    words = re.sub(r"[^A-Za-z0-9.-]+", " ", clean(alt)).strip()
    return f"![{words}]({urllib.parse.quote(url, safe=':/%?=&#~')})"
