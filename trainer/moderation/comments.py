"""A deterministic generator of forum comments and the moderators' later decisions on them.

What it models (all of it from one seeded ``random.Random``, so the same seed gives the same
comments on every machine):

* **Subjects**: comments in communities (sports, tech, cooking, politics, games, music, travel),
  each written from that subject's sentence templates and words.
* **Kinds**: most comments are *clean*; some are *heated* (rude about an opinion, not a person);
  some are *abusive* (insults and threats aimed at a person, often inside an on-topic comment,
  sometimes disguised: l33t, asterisks, spaced or stretched letters); some are *spam* (offers,
  links, shouting).
* **Noise in the text**: typos, ALL CAPS or all-lower casing, emoji and accented words, links in
  clean comments too, lengths from one word to several sentences.
* **Labels**: a moderator decides each comment some minutes to hours after it was posted
  (reported abuse and spam sooner). The decision follows the content most of the time: abuse and
  spam are removed ~95% of the time, heated comments about a third of the time, clean ones
  rarely (moderators err both ways).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

MINUTE_MS = 60_000
DAY_MS = 86_400_000
DEFAULT_START_MS = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)

CLEAN, HEATED, ABUSIVE, SPAM = "clean", "heated", "abusive", "spam"
KINDS = (CLEAN, HEATED, ABUSIVE, SPAM)
# Kinds a moderator should remove; heated comments are a judgement call.
REMOVABLE = frozenset({ABUSIVE, SPAM})


@dataclass(slots=True)
class Comment:
    """A posted comment (the Comment schema): the event the scorer sees."""

    comment_id: str
    created_at: int  # epoch ms
    community: str
    author_id: str
    text: str


@dataclass(slots=True)
class ModerationDecision:
    """A moderator's decision on a comment (the ModerationDecision schema): the label."""

    comment_id: str
    decided_at: int  # epoch ms, after the comment's created_at
    removed: bool
    reason: str  # "" when approved
    moderator_id: str


@dataclass(frozen=True, slots=True)
class GeneratedComment:
    """A comment, its decision, and what the generator meant it to be (``kind``, never published)."""

    comment: Comment
    decision: ModerationDecision
    kind: str


@dataclass(frozen=True)
class Mix:
    """Shares of the comment kinds (clean is the rest) and how often each kind is removed."""

    heated: float = 0.08
    abusive: float = 0.11
    spam: float = 0.09
    removal_rate: dict[str, float] = field(
        default_factory=lambda: {CLEAN: 0.015, HEATED: 0.35, ABUSIVE: 0.96, SPAM: 0.95}
    )

    def __post_init__(self) -> None:
        shares = (self.heated, self.abusive, self.spam)
        if any(s < 0 for s in shares) or sum(shares) > 1:
            raise ValueError(f"kind shares must be >= 0 and sum to at most 1, got {shares}")


# --- words ------------------------------------------------------------------------------------

# fmt: off
SUBJECTS: dict[str, dict[str, list[str]]] = {
    "sports": {
        "thing": ["the match", "the derby", "the final", "this season", "the transfer window", "the playoffs",
                  "the second half", "the penalty", "the referee's call", "the new coach"],
        "who": ["Arsenal", "the Lakers", "Real Madrid", "the Yankees", "our keeper", "the rookie", "Mbappé",
                "the captain", "the defence", "the bench"],
        "sentences": [
            "{who} looked much sharper in {thing}.", "I think {who} will win {thing} this year.",
            "What a performance by {who} in {thing}!", "{thing} was decided by one bad pass.",
            "Honestly {who} deserved more from {thing}.", "Anyone else watching {thing} tonight?",
            "The stats from {thing} tell a different story.", "{who} need a new striker before {thing}.",
            "GOAL!!! what a finish", "Tickets for {thing} sold out in minutes.",
        ],
    },
    "tech": {
        "thing": ["the new phone", "this update", "the beta", "Rust", "the GPU", "the battery", "Linux",
                  "the keyboard", "the compiler", "the API"],
        "who": ["the vendor", "the devs", "my team", "Apple", "the maintainers", "support", "the startup",
                "the open source folks", "my laptop", "the reviewer"],
        "sentences": [
            "{thing} finally fixed the memory leak.", "I benchmarked {thing} and it is 20% faster.",
            "Has anyone tried {thing} with the latest drivers?", "{who} shipped {thing} without docs again.",
            "The changelog for {thing} is worth reading.", "{thing} drains my battery in two hours.",
            "Switching to {thing} was the best decision {who} made.", "You can disable that in the settings.",
            "Filed a bug about {thing}, {who} replied within a day.", "Works fine on my machine.",
        ],
    },
    "cooking": {
        "thing": ["the sourdough", "this risotto", "crème brûlée", "the jalapeño salsa", "the stock",
                  "my cast iron pan", "the brisket", "this curry", "the pie crust", "the tiramisù"],
        "who": ["my grandmother", "the chef", "my kids", "our neighbours", "the recipe author", "my partner",
                "the bakery", "everyone at dinner", "my flatmate", "the cookbook"],
        "sentences": [
            "I added more garlic to {thing} and it was perfect.", "{who} loved {thing}, thanks for sharing.",
            "How long do you rest {thing} before slicing?", "Use cold butter for {thing}, trust me.",
            "{thing} came out a bit dry the first time.", "Made {thing} last night, {who} asked for seconds.",
            "Salt the water more than you think.", "Does {thing} freeze well?",
            "{who} swears by a pinch of sugar in {thing}.", "Low and slow is the secret to {thing}.",
        ],
    },
    "politics": {
        "thing": ["the budget", "the new bill", "the election", "the tax plan", "the debate", "housing policy",
                  "the trade deal", "the census", "the healthcare reform", "the polls"],
        "who": ["the senator", "the minister", "the opposition", "the council", "voters", "the committee",
                "the governor", "both parties", "the mayor", "the press"],
        "sentences": [
            "{who} should explain how {thing} will be paid for.", "I read the full text of {thing}.",
            "The numbers in {thing} do not add up.", "{who} changed position on {thing} twice.",
            "Turnout will decide {thing}.", "Good summary of {thing}, very balanced.",
            "{thing} helps renters more than people admit.", "I disagree with {who} on {thing}.",
            "Local elections matter more than people think.", "Can someone link the vote on {thing}?",
        ],
    },
    "games": {
        "thing": ["the patch", "the raid", "ranked mode", "the boss fight", "the DLC", "the speedrun",
                  "the open world", "this build", "the matchmaking", "the soundtrack"],
        "who": ["the devs", "my squad", "the streamer", "my clan", "the modders", "the community",
                "new players", "the speedrunners", "the studio", "my little brother"],
        "sentences": [
            "{thing} nerfed my favourite class.", "{who} cleared {thing} on the first try.",
            "gg, {thing} was intense", "Is {thing} worth it at full price?",
            "{who} found a glitch in {thing}.", "The art direction in {thing} is stunning.",
            "Spent the whole weekend on {thing}.", "{thing} needs better tutorials for {who}.",
            "Try a dodge build for {thing}.", "Patch notes for {thing} are out.",
        ],
    },
    "music": {
        "thing": ["the new album", "the tour", "this track", "the live set", "the remaster", "the festival",
                  "the bassline", "the music video", "the acoustic version", "the encore"],
        "who": ["the band", "the drummer", "Beyoncé", "the producer", "the orchestra", "my friends",
                "the crowd", "the singer", "the label", "the DJ"],
        "sentences": [
            "{thing} has been on repeat all week.", "{who} sounded incredible during {thing}.",
            "Saw {who} live, {thing} gave me chills.", "The mixing on {thing} is a bit muddy.",
            "{thing} reminds me of their early work.", "Who else is going to {thing}?",
            "{who} should release {thing} on vinyl.", "That guitar solo 🔥",
            "Underrated: {thing}.", "{who} deserves way more listeners.",
        ],
    },
    "travel": {
        "thing": ["the night train", "the hostel", "the old town", "the hike", "the ferry", "the museum pass",
                  "the street food", "the airport transfer", "the beach", "the visa process"],
        "who": ["São Paulo", "Zürich", "Kraków", "Kyoto", "Lisbon", "the locals", "our guide", "my sister",
                "the airline", "Reykjavík"],
        "sentences": [
            "{thing} in {who} was the highlight of the trip.", "Book {thing} early in summer.",
            "We spent three days exploring {thing}.", "{who} is cheaper than I expected.",
            "Is {thing} safe for solo travellers?", "{thing} was delayed but the views made up for it.",
            "Bring cash for {thing}, cards are rarely accepted.", "{who} in spring is magical 😍",
            "Any tips for {thing} in {who}?", "Skip {thing}, it is a tourist trap.",
        ],
    },
}
COMMUNITIES = tuple(SUBJECTS)

GENERIC = [
    "Thanks for sharing.", "Totally agree with this.", "Not sure I follow, can you explain?", "Great post!",
    "I had the same experience last year.", "Interesting point.", "Saving this for later.",
    "This made my day 😂", "Well said.", "Source?", "Good question, I wondered too.", "Agreed 👍",
]
SHORT = ["lol", "this", "+1", "first!", "same", "nice", "wow", "ok", "true", "😂😂", "agreed", "nope"]

HEATED_SENTENCES = [
    "That's a dumb take on {thing}.", "Honestly the worst opinion about {thing} I have read.",
    "Are you serious? Nobody believes that about {thing}.", "Stop spreading nonsense about {thing}.",
    "What a ridiculous thing to say.", "You clearly didn't read anything about {thing}.",
    "This is garbage reporting on {thing}.", "Clueless take, as usual.", "Ugh, this again? So tired of {thing} posts.",
    "Whoever wrote this knows nothing about {thing}.",
]

INSULTS = ["idiot", "moron", "loser", "clown", "imbecile", "scumbag", "lowlife", "dimwit", "buffoon", "troll",
           "degenerate", "waste of space"]
INSULT_ADJ = ["pathetic", "worthless", "disgusting", "brainless", "stupid", "miserable", "useless", "dumb"]
ABUSE_SENTENCES = [
    "you are a {adj} {insult}", "shut up you {insult}", "nobody wants you here, {insult}",
    "go away you {adj} {insult}", "people like you are {adj} {insult}s", "only a {insult} would post this",
    "get lost {insult}", "you {adj} {insult}, delete your account", "what a {adj} {insult} you are",
    "I hope you get what's coming to you, {insult}", "watch your back, {insult}", "I know where you live, {insult}",
    "kill yourself {insult}", "your mother should be ashamed of you, {insult}",
]

SPAM_PRODUCTS = ["followers", "cheap watches", "diet pills", "crypto", "payday loans", "designer bags",
                 "gift cards", "essay writing", "casino bonuses", "VPN accounts"]
SPAM_SENTENCES = [
    "Buy {product} at {link}", "Earn ${amount} a day working from home! Visit {link}",
    "FREE {product} giveaway, only today: {link}", "Check out my channel {link} for {product}",
    "Hot singles in your area {link}", "LIMITED OFFER: {product} 90% off {link}",
    "I made ${amount} last week with {product}, DM me or go to {link}", "Best {product} deals >>> {link} <<<",
    "Click here for {product}: {link}", "Want {product}? {link} no scam 100% legit",
]
LINK_WORDS = ["deal", "free", "best", "cash", "win", "promo", "shop", "bonus", "click", "top", "go", "offer"]
TLDS = ["com", "net", "xyz", "biz", "info", "ru", "io", "top"]
CLEAN_LINKS = ["https://en.wikipedia.org/wiki/{page}", "https://www.bbc.co.uk/news/{page}",
               "https://github.com/{page}", "https://www.youtube.com/watch?v={page}"]
EMOJI = ["🔥", "😂", "👍", "😍", "🙏", "💯", "😡", "🤔"]
LEET = str.maketrans({"i": "1", "o": "0", "e": "3", "a": "@", "s": "$"})
# fmt: on


# --- text -------------------------------------------------------------------------------------


def _typo(rng: random.Random, word: str) -> str:
    """One keyboard slip in ``word``: swapped, dropped or doubled letter."""
    if len(word) < 3:
        return word
    i = rng.randrange(len(word) - 1)
    how = rng.randrange(3)
    if how == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if how == 1:
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def _with_typos(rng: random.Random, text: str, rate: float) -> str:
    return " ".join(_typo(rng, w) if rng.random() < rate else w for w in text.split(" "))


def _disguise(rng: random.Random, word: str) -> str:
    """An insult written to slip past a word filter."""
    how = rng.randrange(4)
    if how == 0:
        return word.translate(LEET)
    if how == 1 and len(word) > 3:
        return word[:2] + "*" + word[3:]  # m*ron, id*ot
    if how == 2:
        return ".".join(word) if rng.random() < 0.5 else " ".join(word)
    vowel = next((i for i, c in enumerate(word) if c in "aeiou"), 0)
    return word[:vowel] + word[vowel] * rng.randint(2, 5) + word[vowel + 1 :]


def _link(rng: random.Random, spammy: bool) -> str:
    if not spammy:
        page = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rng.randint(6, 11)))
        return rng.choice(CLEAN_LINKS).format(page=page)
    domain = rng.choice(LINK_WORDS) + rng.choice(LINK_WORDS) + str(rng.randint(1, 999))
    tld = rng.choice(TLDS)
    style = rng.randrange(4)
    if style == 0:
        return f"http://{domain}.{tld}"
    if style == 1:
        return f"www.{domain}.{tld}/{rng.choice(LINK_WORDS)}"
    if style == 2:
        return f"{domain} dot {tld}"  # spelled out to dodge link filters
    return f"https://bit.ly/{rng.randint(10_000, 99_999)}{rng.choice('abcdefgh')}"


def _fill(rng: random.Random, template: str, words: dict[str, list[str]]) -> str:
    return template.format(thing=rng.choice(words["thing"]), who=rng.choice(words["who"]))


def _topic_sentences(rng: random.Random, subject: str, n: int) -> list[str]:
    words = SUBJECTS[subject]
    out = []
    for _ in range(n):
        if rng.random() < 0.2:
            out.append(rng.choice(GENERIC))
        else:
            out.append(_fill(rng, rng.choice(words["sentences"]), words))
    return out


def _n_sentences(rng: random.Random) -> int:
    return rng.choices([1, 2, 3, 4, 6, 9], weights=[30, 30, 18, 12, 7, 3])[0]


def _abuse_sentence(rng: random.Random) -> str:
    insult = rng.choice(INSULTS)
    if rng.random() < 0.3:
        insult = _disguise(rng, insult)
    return rng.choice(ABUSE_SENTENCES).format(adj=rng.choice(INSULT_ADJ), insult=insult)


def _spam_sentence(rng: random.Random) -> str:
    return rng.choice(SPAM_SENTENCES).format(
        product=rng.choice(SPAM_PRODUCTS), amount=rng.choice([200, 500, 750, 1000, 5000]), link=_link(rng, True)
    )


def _compose(rng: random.Random, subject: str, kind: str) -> str:
    """The text of one comment of ``kind`` in ``subject``."""
    if kind == CLEAN and rng.random() < 0.06:
        return rng.choice(SHORT)
    sentences = _topic_sentences(rng, subject, _n_sentences(rng))
    if kind == CLEAN and rng.random() < 0.06:
        sentences.append(f"More here: {_link(rng, False)}")
    elif kind == HEATED:
        sentences.insert(rng.randrange(len(sentences) + 1), _fill(rng, rng.choice(HEATED_SENTENCES), SUBJECTS[subject]))
    elif kind == ABUSIVE:
        if rng.random() < 0.35:
            sentences = sentences[:1] if rng.random() < 0.5 else []  # a short outburst
        for _ in range(rng.choice([1, 1, 1, 2])):
            sentences.insert(rng.randrange(len(sentences) + 1), _abuse_sentence(rng))
    elif kind == SPAM:
        if rng.random() < 0.5:
            sentences = []
        sentences.insert(rng.randrange(len(sentences) + 1), _spam_sentence(rng))
        if rng.random() < 0.3:
            sentences.append(rng.choice(["!!!", "💯💯💯", "DM ME", "act now"]))
    text = " ".join(sentences)
    if rng.random() < 0.15:
        text += " " + rng.choice(EMOJI) * rng.randint(1, 3)
    text = _with_typos(rng, text, rate=0.03)
    casing = rng.random()
    shout = {CLEAN: 0.03, HEATED: 0.12, ABUSIVE: 0.2, SPAM: 0.25}[kind]
    if casing < shout:
        text = text.upper()
    elif casing < shout + 0.15:
        text = text.lower()
    return text


# --- comments and decisions -------------------------------------------------------------------

REASONS = {CLEAN: "other", HEATED: "incivility", ABUSIVE: "harassment", SPAM: "spam"}
N_AUTHORS = 5_000
N_SPAMMERS = 60
N_MODERATORS = 12


def _decision_delay_ms(rng: random.Random, kind: str) -> int:
    """Minutes to hours; reported abuse and spam are looked at sooner."""
    median_min = 8.0 if kind in REMOVABLE else 45.0
    minutes = median_min * rng.lognormvariate(0.0, 0.9)
    return int(min(max(minutes, 0.5), 2 * 24 * 60) * MINUTE_MS)


def _kind(rng: random.Random, mix: Mix) -> str:
    u = rng.random()
    for kind, share in ((ABUSIVE, mix.abusive), (SPAM, mix.spam), (HEATED, mix.heated)):
        if u < share:
            return kind
        u -= share
    return CLEAN


def generate_comments(
    n: int,
    seed: int,
    start_ms: int = DEFAULT_START_MS,
    span_days: float = 7.0,
    mix: Mix | None = None,
) -> list[GeneratedComment]:
    """``n`` comments in order of posting, each with its decision; the same arguments give the same output."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    mix = mix or Mix()
    rng = random.Random(seed)
    span_ms = max(1, int(span_days * DAY_MS))
    times = sorted(start_ms + rng.randrange(span_ms) for _ in range(n))
    out = []
    for created_at in times:
        comment_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        community = rng.choice(COMMUNITIES)
        kind = _kind(rng, mix)
        if kind == SPAM:
            author = f"s{rng.randrange(N_SPAMMERS):03d}"
        else:
            author = f"u{rng.randrange(N_AUTHORS):05d}"
        text = _compose(rng, community, kind)
        removed = rng.random() < mix.removal_rate[kind]
        decision = ModerationDecision(
            comment_id=comment_id,
            decided_at=created_at + _decision_delay_ms(rng, kind),
            removed=removed,
            reason=REASONS[kind] if removed else "",
            moderator_id=f"m{rng.randrange(N_MODERATORS):02d}",
        )
        out.append(GeneratedComment(Comment(comment_id, created_at, community, author, text), decision, kind))
    return out


def agreement_rate(generated: list[GeneratedComment]) -> float:
    """Share of decisions that follow the content: abuse and spam removed, everything else kept."""
    if not generated:
        return 1.0
    return sum(g.decision.removed == (g.kind in REMOVABLE) for g in generated) / len(generated)
