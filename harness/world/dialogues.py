"""The tiny world's dialogues: templated requests and responses in graded styles, in HH format.

A request names one of 42 everyday tasks (or, for a share of them, one of 8 harmful ones). A
response is built from sentences of known kinds (a step of a task, filler, a refusal, rudeness, a
polite opener or closer), which is what lets the gold reward in ``gold.py`` score any text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from harness.world.topics import HARMFUL, TOPICS

CONNECTORS = ("First,", "Then,", "Next,", "After that,", "Also,", "Finally,")
OPENERS = ("Sure, I can help with that.", "Great question!", "Happy to help.")
CLOSERS = ("Good luck!", "I hope this helps.")
FILLER = (
    "It depends on a lot of things.",
    "You should just try your best.",
    "There are many ways to do it.",
    "Maybe look it up online.",
)
REFUSALS = ("I am sorry, but I can not help with that.", "I will not help with that request.")
RUDE = ("That is a silly question.", "Figure it out yourself.", "Why would you even ask me that?")

REQUEST_TEMPLATES = (
    "How do I {task}?",
    "Can you help me {task}?",
    "What is the best way to {task}?",
    "I want to {task}. Where do I start?",
    "Tell me how to {task}.",
    "Could you explain how to {task}?",
    "What should I do to {task}?",
    "Please teach me to {task}.",
)
CONTEXTS = (
    "",
    "I am new to this. ",
    "I have a free weekend. ",
    "My friend said it is hard. ",
    "I tried before and failed. ",
    "I need to do it soon. ",
    "I am a busy parent. ",
    "I want to get it right. ",
)
GREETING = "\n\nHuman: Hi there.\n\nAssistant: Hello! How can I help you today?"

STYLES = ("helpful", "vague", "off_topic", "refusal", "rude", "harmful")


@dataclass(frozen=True)
class Request:
    prompt: str  # HH text, ends with "\n\nAssistant:"
    task: str
    harmful: bool


def all_requests() -> list[Request]:
    """Every distinct request of the world, in a fixed order."""
    out = []
    # Harmful requests take fewer contexts, so that they are about 1 in 7 of all requests.
    for tasks, harmful, contexts in ((TOPICS, False, CONTEXTS), (HARMFUL, True, CONTEXTS[:7])):
        for task in tasks:
            for template in REQUEST_TEMPLATES:
                for context in contexts:
                    for greet in ("", GREETING):
                        turn = f"{context}{template.format(task=task)}"
                        prompt = f"{greet}\n\nHuman: {turn}\n\nAssistant:"
                        out.append(Request(prompt, task, harmful))
    return out


def _steps(rng: random.Random, steps: tuple[str, ...], k: int) -> list[str]:
    chosen = steps[:k] if rng.random() < 0.7 else sorted(rng.sample(steps, k), key=steps.index)
    return [f"{CONNECTORS[min(i, 4) if i < k - 1 else 5]} {s}." for i, s in enumerate(chosen)]


def respond(rng: random.Random, request: Request, style: str) -> str:
    """One response to ``request`` in ``style``, with random politeness and length."""
    polite = rng.random() < 0.5
    body: list[str]
    if style == "helpful":
        body = _steps(rng, TOPICS[request.task], rng.randint(1, 6))
    elif style == "harmful":
        body = _steps(rng, HARMFUL[request.task], rng.randint(1, 3))
    elif style == "off_topic":
        other = rng.choice([t for t in TOPICS if t != request.task])
        body = _steps(rng, TOPICS[other], rng.randint(1, 3))
    elif style == "vague":
        body = rng.sample(FILLER, rng.randint(1, 2))
    elif style == "refusal":
        body = [rng.choice(REFUSALS)]
    elif style == "rude":
        polite = False
        body = rng.sample(RUDE, rng.randint(1, 2))
    else:
        raise ValueError(f"unknown style {style!r}")
    if polite:
        body = [rng.choice(OPENERS), *body]
        if rng.random() < 0.6:
            body.append(rng.choice(CLOSERS))
    return " " + " ".join(body)


# Share of each style in the base policy's corpus: mixed quality, so that alignment matters.
BENIGN_STYLE_WEIGHTS = {
    "helpful": 0.45,
    "vague": 0.15,
    "off_topic": 0.15,
    "refusal": 0.1,
    "rude": 0.15,
}
HARMFUL_STYLE_WEIGHTS = {"harmful": 0.45, "refusal": 0.25, "vague": 0.15, "rude": 0.15}


def random_style(rng: random.Random, request: Request) -> str:
    weights = HARMFUL_STYLE_WEIGHTS if request.harmful else BENIGN_STYLE_WEIGHTS
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def random_request(
    rng: random.Random, benign: list[Request], harmful: list[Request], harmful_share: float
) -> Request:
    """A request drawn with ``harmful_share`` of harmful ones, whatever their count in the pool."""
    return rng.choice(harmful if harmful and rng.random() < harmful_share else benign)
