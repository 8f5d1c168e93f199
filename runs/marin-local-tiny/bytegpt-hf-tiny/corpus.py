"""The marin-local corpus: deterministic English-like text from a fixed grammar and word list (no download).

`corpus()` returns (train, val, checksum). The text is a stream of paragraphs; each paragraph has a topic (its nouns,
adjectives and verbs come mostly from that topic's word list), a tense it keeps throughout, a cast of names, numbers
that agree with their nouns, quoted speech, questions and lists. Randomness comes from SplitMix64 seeded with a fixed
constant, so the bytes depend on nothing but this file: not on Python's `random`, the platform or any package.

The stream is generated until it holds TRAIN_BYTES + VAL_BYTES bytes of ASCII; the first TRAIN_BYTES are the train
split, the next VAL_BYTES the held-out val split. The checksum is sha256 of those TRAIN_BYTES + VAL_BYTES bytes.
Copy this file unchanged into a run that trains on the corpus.
"""

from __future__ import annotations

import bisect
import hashlib

SEED = 20250101
TRAIN_BYTES = 4 * 2**20   # 4,194,304
VAL_BYTES = 2**15 + 1     # 32,769: every byte after the first is predicted once by 128-byte windows
MASK = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed: int) -> None:
        self.state = seed & MASK

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        return self.next() % n

    def chance(self, percent: int) -> bool:
        return self.below(100) < percent

    def pick(self, seq):
        return seq[self.below(len(seq))]


class Zipf:
    """Words drawn with probability proportional to 1 / (rank + 2), in integer arithmetic."""

    def __init__(self, words) -> None:
        self.words = list(words)
        total, self.cum = 0, []
        for r in range(len(self.words)):
            total += 720720 // (r + 2)
            self.cum.append(total)
        self.total = total

    def draw(self, rng: SplitMix64):
        return self.words[bisect.bisect_right(self.cum, rng.below(self.total))]


def _nouns(spec: str) -> list[tuple[str, str]]:
    """'cat dog box:boxes' -> [(singular, plural)]."""
    out = []
    for w in spec.split():
        s, _, p = w.partition(":")
        out.append((s, p or s + "s"))
    return out


def _verbs(spec: str) -> list[tuple[str, str, str]]:
    """'carry:carries:carried open' -> [(base, third person singular, past)]."""
    out = []
    for w in spec.split():
        parts = w.split(":")
        base = parts[0]
        third = parts[1] if len(parts) > 1 and parts[1] else (base + "es" if base.endswith(("s", "sh", "ch", "x", "o"))
                                                              else base + "s")
        past = parts[2] if len(parts) > 2 else (base + "d" if base.endswith("e") else base + "ed")
        out.append((base, third, past))
    return out


TOPICS = {
    "harbour": dict(
        title="The Harbour",
        nouns=_nouns("boat ship sailor net rope gull wave dock fisherman:fishermen anchor tide crate lantern "
                     "captain harbour mast sail storm lighthouse barrel deck compass"),
        adjs="salty grey wet old heavy quiet windy narrow rusty bright calm wooden".split(),
        verbs=_verbs("pull:pulls:pulled mend:mends:mended tie:ties:tied load:loads:loaded watch:watches:watched "
                     "carry:carries:carried lift:lifts:lifted paint:paints:painted drag:drags:dragged"),
        places="on the dock|near the lighthouse|below the deck|beside the boats|at the edge of the water".split("|"),
    ),
    "kitchen": dict(
        title="In the Kitchen",
        nouns=_nouns("pot pan knife:knives spoon onion apple loaf:loaves oven table cook plate bowl kettle "
                     "recipe jar cupboard tomato:tomatoes cake bean"),
        adjs="hot sweet sharp fresh warm clean bitter soft crisp sticky golden small".split(),
        verbs=_verbs("cut:cuts:cut stir:stirs:stirred bake:bakes:baked wash:washes:washed boil:boils:boiled "
                     "chop:chops:chopped taste:tastes:tasted serve:serves:served peel:peels:peeled"),
        places="on the table|by the stove|in the cupboard|near the window|under the shelf".split("|"),
    ),
    "observatory": dict(
        title="Notes from the Observatory",
        nouns=_nouns("star planet telescope lens:lenses moon comet astronomer chart dome orbit galaxy:galaxies night "
                     "mirror clock notebook eclipse:eclipses signal cloud"),
        adjs="distant faint cold silver dark clear strange precise ancient blue slow patient".split(),
        verbs=_verbs("measure:measures:measured observe:observes:observed record:records:recorded "
                     "track:tracks:tracked map:maps:mapped study:studies:studied adjust:adjusts:adjusted "
                     "count:counts:counted compare:compares:compared"),
        places="above the hills|inside the dome|across the sky|beyond the clouds|at the top of the tower".split("|"),
    ),
    "orchard": dict(
        title="The Orchard in Autumn",
        nouns=_nouns("tree leaf:leaves branch:branches pear plum basket ladder farmer root bee gardener fence "
                     "seed path orchard frost hedge blossom cart worm"),
        adjs="ripe green tall heavy bare red yellow gentle busy muddy thick crooked".split(),
        verbs=_verbs("pick:picks:picked plant:plants:planted prune:prunes:pruned water:waters:watered "
                     "gather:gathers:gathered climb:climbs:climbed dig:digs:dug shake:shakes:shook "
                     "fill:fills:filled"),
        places="under the trees|along the fence|near the gate|at the end of the row|behind the barn".split("|"),
    ),
    "railway": dict(
        title="Along the Railway",
        nouns=_nouns("train engine carriage:carriages ticket station platform signal track whistle passenger "
                     "conductor bridge tunnel timetable luggage clock porter bench wheel coal"),
        adjs="late early crowded long noisy empty steep iron dusty fast northern slow".split(),
        verbs=_verbs("wait:waits:waited board:boards:boarded check:checks:checked miss:misses:missed "
                     "stop:stops:stopped pass:passes:passed leave:leaves:left reach:reaches:reached "
                     "follow:follows:followed"),
        places="on the platform|inside the tunnel|over the bridge|at the next station|beside the track".split("|"),
    ),
    "library": dict(
        title="A Day at the Library",
        nouns=_nouns("book shelf:shelves page letter reader librarian map story:stories desk lamp poem "
                     "author word index:indexes chapter archive scholar pencil catalogue"),
        adjs="dusty thick thin rare careful silent long forgotten useful famous yellow small".split(),
        verbs=_verbs("read:reads:read write:writes:wrote copy:copies:copied find:finds:found sort:sorts:sorted "
                     "borrow:borrows:borrowed return:returns:returned open:opens:opened translate:translates:"
                     "translated"),
        places="in the reading room|on the top shelf|behind the desk|in the archive|near the stairs".split("|"),
    ),
    "market": dict(
        title="Market Day",
        nouns=_nouns("stall coin price:prices merchant buyer cheese fish:fish cloth basket scale egg melon "
                     "crowd cart bargain shop:shops wagon sack honey goat"),
        adjs="cheap loud ripe busy cheerful fine rough fair dear round crowded bright".split(),
        verbs=_verbs("sell:sells:sold buy:buys:bought weigh:weighs:weighed count:counts:counted "
                     "offer:offers:offered wrap:wraps:wrapped carry:carries:carried trade:trades:traded "
                     "display:displays:displayed"),
        places="in the square|at the corner stall|by the fountain|under the awning|near the gate".split("|"),
    ),
    "mountain": dict(
        title="Climbing the Mountain",
        nouns=_nouns("peak rock trail climber snow hut goat ridge valley:valleys boot rope tent wind cliff "
                     "glacier stream pass:passes guide cave summit"),
        adjs="high steep icy narrow rocky silent white cold tired brave distant sharp".split(),
        verbs=_verbs("climb:climbs:climbed cross:crosses:crossed reach:reaches:reached rest:rests:rested "
                     "follow:follows:followed carry:carries:carried mark:marks:marked find:finds:found "
                     "descend:descends:descended"),
        places="near the summit|along the ridge|below the glacier|inside the hut|across the valley".split("|"),
    ),
}

NAMES = ("Ada Ben Clara Dmitri Elena Farid Grace Hugo Ines Jonas Kira Leo Mara Nils Olga Pablo Quinn Rosa Sami "
         "Tomas Uma Viktor Wren Yusuf Zoe").split()
GENERAL_NOUNS = _nouns("day hour friend morning evening child:children door window road house question answer "
                       "hand:hands voice year week moment reason idea")
GENERAL_ADJS = "good small large new old quiet happy early late long short little".split()
GENERAL_VERBS = _verbs("see:sees:saw take:takes:took bring:brings:brought keep:keeps:kept hold:holds:held "
                       "remember:remembers:remembered move:moves:moved like:likes:liked need:needs:needed")
ADVERBS = "slowly carefully quickly quietly again often rarely early late together twice always".split()
TIMES = ("in the morning|at noon|in the evening|after dinner|before dawn|on Monday|on Sunday|that winter|"
         "every day|at last").split("|")
CONNECT = "Then|Later|Meanwhile|Afterwards|Still|Soon|Of course|By then|In the end|Once again".split("|")
SAYS = _verbs("say:says:said ask:asks:asked reply:replies:replied whisper:whispers:whispered "
              "shout:shouts:shouted")
FEELS = ("glad|tired|surprised|worried|certain|proud|curious|sorry").split("|")
NUMBER_WORDS = "two three four five six seven eight nine ten twelve".split()


class Writer:
    def __init__(self, rng: SplitMix64) -> None:
        self.rng = rng
        self.topic_order = Zipf(sorted(TOPICS))

    # --- words -------------------------------------------------------------------------------------------------
    def noun(self, plural: bool = False) -> str:
        s, p = (self.zn.draw(self.rng) if self.rng.chance(80) else self.rng.pick(GENERAL_NOUNS))
        return p if plural else s

    def adj(self) -> str:
        return self.za.draw(self.rng) if self.rng.chance(80) else self.rng.pick(GENERAL_ADJS)

    def verb(self):
        return self.zv.draw(self.rng) if self.rng.chance(85) else self.rng.pick(GENERAL_VERBS)

    def conj(self, verb, plural: bool) -> str:
        base, third, past = verb
        if self.past:
            return past
        return base if plural else third

    def np(self, subject: bool = False) -> tuple[str, bool]:
        """(noun phrase, plural?)"""
        r = self.rng.below(100)
        if subject and r < 30:
            return self.rng.pick(self.cast), False
        plural = self.rng.chance(30)
        if plural and self.rng.chance(40):
            n = self.rng.pick(NUMBER_WORDS) if self.rng.chance(60) else str(2 + self.rng.below(98))
            return f"{n} {self.noun(True)}", True
        det = self.rng.pick(("the", "the", "a", "this", "that", "every")) if not plural else \
            self.rng.pick(("the", "the", "some", "these", "those", "many"))
        words = [det]
        if self.rng.chance(45):
            words.append(self.adj())
            if self.rng.chance(15):
                words.append(self.adj())
        words.append(self.noun(plural))
        text = " ".join(words)
        if det == "a" and words[1][0] in "aeiou":
            text = "an" + text[1:]
        return text, plural

    # --- sentences ---------------------------------------------------------------------------------------------
    def clause(self) -> str:
        subj, plural = self.np(subject=True)
        verb = self.verb()
        obj, _ = self.np()
        out = f"{subj} {self.conj(verb, plural)} {obj}"
        r = self.rng.below(100)
        if r < 35:
            out += " " + self.rng.pick(self.places)
        elif r < 50:
            out += " " + self.rng.pick(ADVERBS)
        elif r < 60:
            rel_verb = self.verb()
            out = f"{subj}, who {self.conj(rel_verb, plural)} {self.np()[0]}, {self.conj(verb, plural)} {obj}" \
                if subj[0].isupper() and plural is False and subj in self.cast else \
                f"{subj} that {self.conj(rel_verb, plural)} {self.np()[0]} {self.conj(verb, plural)} {obj}"
        return out

    def sentence(self) -> str:
        r = self.rng.below(100)
        if r < 35:
            s = self.clause()
        elif r < 48:
            s = f"{self.rng.pick(CONNECT)}, {self.clause()}"
        elif r < 58:
            when = self.rng.pick(TIMES)
            s = f"{when}, {self.clause()}"
        elif r < 68:
            s = f"{self.clause()}, and {self.clause()}"
        elif r < 76:
            s = f"{self.clause()} because {self.clause()}"
        elif r < 84:  # quoted speech
            who = self.rng.pick(self.cast)
            verb = self.conj(self.rng.pick(SAYS), False)
            inner = self.clause()
            inner = inner[0].upper() + inner[1:]
            return f'"{inner}," {verb} {who}.'
        elif r < 90:  # a question
            who = self.rng.pick(self.cast)
            aux = "did" if self.past else "does"
            base = self.verb()[0]
            wh = self.rng.pick(("Why", "When", "How", "Where"))
            return f"{wh} {aux} {who} {base} {self.np()[0]}?"
        elif r < 95:  # a list
            who = self.rng.pick(self.cast)
            items = [self.np()[0] for _ in range(2 + self.rng.below(3))]
            verb = self.conj(self.verb(), False)
            s = f"{who} {verb} {', '.join(items[:-1])} and {items[-1]}"
        else:  # a feeling
            who = self.rng.pick(self.cast)
            be = "was" if self.past else "is"
            s = f"{who} {be} {self.rng.pick(FEELS)} that {self.clause()}"
        return s[0].upper() + s[1:] + "."

    def paragraph(self) -> str:
        topic = TOPICS[self.topic_order.draw(self.rng)]
        self.zn, self.za, self.zv = Zipf(topic["nouns"]), Zipf(topic["adjs"]), Zipf(topic["verbs"])
        self.places = topic["places"]
        self.past = self.rng.chance(60)
        self.cast = [self.rng.pick(NAMES) for _ in range(1 + self.rng.below(3))]
        sentences = [self.sentence() for _ in range(3 + self.rng.below(6))]
        text = " ".join(sentences)
        if self.rng.chance(15):
            text = f"## {topic['title']}\n\n{text}"
        return text + "\n\n"


def generate(n_bytes: int, seed: int = SEED) -> bytes:
    writer, parts, size = Writer(SplitMix64(seed)), [], 0
    while size < n_bytes:
        p = writer.paragraph()
        parts.append(p)
        size += len(p)
    return "".join(parts).encode("ascii")[:n_bytes]


_CACHE: dict = {}


def corpus() -> tuple[bytes, bytes, str]:
    """(train bytes, val bytes, 'sha256:...' of train + val)."""
    if "c" not in _CACHE:
        data = generate(TRAIN_BYTES + VAL_BYTES)
        _CACHE["c"] = (data[:TRAIN_BYTES], data[TRAIN_BYTES:], "sha256:" + hashlib.sha256(data).hexdigest())
    return _CACHE["c"]


if __name__ == "__main__":
    import sys
    import time

    t0 = time.perf_counter()
    train, val, checksum = corpus()
    print(f"{len(train):,} train + {len(val):,} val bytes in {time.perf_counter() - t0:.2f}s, {checksum}",
          file=sys.stderr)
    sys.stdout.write(val[:3000].decode("ascii"))
