"""Tests for harness/load/data.py and harness/load/hub.py: the HH split, drop reasons, file and hub
loaders, truncation."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.load.data import (
    DataUnavailableError,
    DropReason,
    HHFormatError,
    LoadReport,
    left_truncate_prompt,
    load_pairs_file,
    load_prompts_file,
    pair_from_hh,
    split_hh,
)
from harness.load.hub import load_pairs_hub, load_prompts_hub
from methods.base import PreferencePair

REAL_HH = Path(__file__).resolve().parents[3] / "shared" / "data" / "hh-rlhf"
REAL_HH_TEST = REAL_HH / "harmless-base-test.jsonl.gz"
REAL_HH_RECORDS = 2312

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No hub: set the env vars, and the flags ``datasets`` and the hub client read at import."""
    for key, value in OFFLINE_ENV.items():
        monkeypatch.setenv(key, value)
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def dialogue(*turns: str) -> str:
    """HH text from alternating human / assistant turns (human first)."""
    speakers = ("Human", "Assistant")
    return "".join(f"\n\n{speakers[i % 2]}: {turn}" for i, turn in enumerate(turns))


def record(chosen: str, rejected: str) -> dict[str, str]:
    return {"chosen": chosen, "rejected": rejected}


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    """Write values as JSON lines; ``str`` and ``bytes`` items are written raw."""
    raw = b"".join(_raw_line(line) + b"\n" for line in lines)
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


def _raw_line(line: Any) -> bytes:
    if isinstance(line, bytes):
        return line
    if isinstance(line, str):
        return line.encode()
    return json.dumps(line).encode()


# --- split_hh ---------------------------------------------------------------------------------


def test_split_hh_multi_turn_cuts_at_the_last_assistant_turn() -> None:
    text = dialogue("Hi", "Hello! How can I help?", "Name a fruit.", "An apple.")
    prompt, response = split_hh(text)
    assert prompt == dialogue("Hi", "Hello! How can I help?", "Name a fruit.") + "\n\nAssistant:"
    assert response == " An apple."  # the leading space is kept, as HH writes it
    assert prompt + response == text


def test_split_hh_restores_a_missing_leading_newline_pair() -> None:
    prompt, response = split_hh("Human: Hi\n\nAssistant: Hello")
    assert prompt == "\n\nHuman: Hi\n\nAssistant:"
    assert response == " Hello"


def test_split_hh_keeps_an_empty_final_turn_empty() -> None:
    assert split_hh(dialogue("Hi") + "\n\nAssistant:") == ("\n\nHuman: Hi\n\nAssistant:", "")


def test_split_hh_without_assistant_turn_raises() -> None:
    with pytest.raises(HHFormatError):
        split_hh("\n\nHuman: is anyone there?")


# --- pair_from_hh: one case per drop reason -------------------------------------------------


def test_pair_from_hh_keeps_a_good_pair() -> None:
    chosen = dialogue("Hi", "Hello", "Help me cook rice.", "Rinse it, then simmer 15 minutes.")
    rejected = dialogue("Hi", "Hello", "Help me cook rice.", "No.")
    assert pair_from_hh(chosen, rejected) == PreferencePair(
        prompt=dialogue("Hi", "Hello", "Help me cook rice.") + "\n\nAssistant:",
        chosen=" Rinse it, then simmer 15 minutes.",
        rejected=" No.",
    )


def test_pair_from_hh_tolerates_the_missing_leading_newlines_on_one_side() -> None:
    pair = pair_from_hh("Human: Hi\n\nAssistant: Hello", "\n\nHuman: Hi\n\nAssistant: Go away")
    assert isinstance(pair, PreferencePair)
    assert pair.prompt == "\n\nHuman: Hi\n\nAssistant:"


@pytest.mark.parametrize(
    ("chosen", "rejected", "reason"),
    [
        pytest.param(
            dialogue("Hi", "Hello"),
            dialogue("Hey", "Hello there"),
            DropReason.PROMPT_MISMATCH,
            id="prompt_mismatch",
        ),
        pytest.param(
            # the real-data quirk: one reply itself contains "\n\nAssistant:"
            dialogue("Hi", "Hello") + "\n\nAssistant: again",
            dialogue("Hi", "Go away"),
            DropReason.PROMPT_MISMATCH,
            id="prompt_mismatch_extra_assistant_turn",
        ),
        pytest.param(
            dialogue("Hi") + "\n\nAssistant: ",
            dialogue("Hi", "Hello"),
            DropReason.EMPTY_RESPONSE,
            id="empty_chosen",
        ),
        pytest.param(
            dialogue("Hi", "Hello"),
            dialogue("Hi") + "\n\nAssistant: \n\t ",
            DropReason.EMPTY_RESPONSE,
            id="whitespace_rejected",
        ),
        pytest.param(
            dialogue("Hi", "Hello"),
            dialogue("Hi", "Hello"),
            DropReason.IDENTICAL_RESPONSES,
            id="identical_responses",
        ),
        pytest.param(
            dialogue("Hi", "Hello"),
            dialogue("Hi", "Hello  ") + "\n",
            DropReason.IDENTICAL_RESPONSES,
            id="identical_up_to_edge_whitespace",
        ),
        pytest.param(
            "\n\nHuman: Hi",
            dialogue("Hi", "Hello"),
            DropReason.NO_ASSISTANT_TURN,
            id="no_assistant_turn",
        ),
        pytest.param(
            dialogue("Hi", "Hello"),
            "just some text",
            DropReason.NO_ASSISTANT_TURN,
            id="no_assistant_turn_rejected",
        ),
    ],
)
def test_pair_from_hh_drop_reasons(chosen: str, rejected: str, reason: DropReason) -> None:
    assert pair_from_hh(chosen, rejected) is reason


# --- LoadReport -------------------------------------------------------------------------------


def test_load_report_counts_and_summary() -> None:
    report = LoadReport("x.jsonl", kept=3)
    report.drop(DropReason.EMPTY_RESPONSE)
    report.drop(DropReason.MALFORMED_RECORD)
    report.drop(DropReason.EMPTY_RESPONSE)
    assert report.total == 6
    assert report.dropped == {"empty_response": 2, "malformed_record": 1}
    assert report.summary() == "x.jsonl: kept 3 of 6 (dropped empty_response 2, malformed_record 1)"
    assert LoadReport("y", kept=1).summary() == "y: kept 1 of 1 (dropped none)"


# --- local files ------------------------------------------------------------------------------

GOOD = record(dialogue("Hi", "Hello"), dialogue("Hi", "Go away"))
GOOD_2 = record(dialogue("Hi", "Hello", "Bye", "Bye!"), dialogue("Hi", "Hello", "Bye", "Hmph"))
BAD_LINES: list[Any] = [
    "{not json",
    b'{"chosen": "\xff\xfe broken utf-8"}',
    "[1, 2, 3]",
    '"a string"',
    {"chosen": dialogue("Hi", "Hello")},  # rejected missing
    {"chosen": dialogue("Hi", "Hello"), "rejected": None},
    {"chosen": 7, "rejected": dialogue("Hi", "Hello")},
]


@pytest.mark.parametrize("name", ["pairs.jsonl", "pairs.jsonl.gz"])
def test_load_pairs_file_drops_and_counts_bad_records(tmp_path: Path, name: str) -> None:
    lines = [GOOD, *BAD_LINES, "", "   ", GOOD_2, record("no turns", "none here")]
    pairs, report = load_pairs_file(write_jsonl(tmp_path / name, lines))
    assert [p.chosen for p in pairs] == [" Hello", " Bye!"]
    assert report.kept == 2
    assert report.dropped == {"malformed_record": len(BAD_LINES), "no_assistant_turn": 1}
    assert report.total == 2 + len(BAD_LINES) + 1  # blank lines are not records


def test_load_pairs_file_limit_counts_kept_pairs(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [GOOD, "{bad", GOOD_2, GOOD, GOOD])
    pairs, report = load_pairs_file(path, limit=2)
    assert len(pairs) == 2
    assert (report.kept, report.total) == (2, 3)  # stops reading once the limit is reached
    assert load_pairs_file(path, limit=0)[0] == []
    with pytest.raises(ValueError, match="limit"):
        load_pairs_file(path, limit=-1)


def test_load_pairs_file_missing_or_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(DataUnavailableError, match="no such file"):
        load_pairs_file(tmp_path / "absent.jsonl")
    with pytest.raises(ValueError, match=r"\.jsonl"):
        load_pairs_file(tmp_path / "pairs.parquet")


def test_load_prompts_file_hh_dedups_in_order(tmp_path: Path) -> None:
    other = record(dialogue("Other?", "Yes"), dialogue("Other?", "No"))
    lines = [GOOD, other, GOOD_2, GOOD, "{bad", record("no turns", "x")]
    prompts, report = load_prompts_file(write_jsonl(tmp_path / "p.jsonl.gz", lines), "hh")
    assert prompts == [
        "\n\nHuman: Hi\n\nAssistant:",
        "\n\nHuman: Other?\n\nAssistant:",
        dialogue("Hi", "Hello", "Bye") + "\n\nAssistant:",
    ]
    assert report.dropped == {
        "duplicate_prompt": 1,
        "malformed_record": 1,
        "no_assistant_turn": 1,
    }
    assert report.total == len(lines)


def test_load_prompts_file_hh_keeps_the_prompt_of_an_empty_chosen_reply(tmp_path: Path) -> None:
    line = record(dialogue("Hi") + "\n\nAssistant: ", dialogue("Hi", "Hello"))
    prompts, _ = load_prompts_file(write_jsonl(tmp_path / "p.jsonl", [line]), "hh")
    assert prompts == ["\n\nHuman: Hi\n\nAssistant:"]


def test_load_prompts_file_prompt_format(tmp_path: Path) -> None:
    lines = [{"prompt": "a"}, {"prompt": "b"}, {"prompt": "a"}, {"prompt": " "}, {"text": "c"}]
    prompts, report = load_prompts_file(write_jsonl(tmp_path / "p.jsonl", lines), "prompt", 10)
    assert prompts == ["a", "b", "a"]  # as written, repeats included
    assert report.dropped == {"empty_prompt": 1, "malformed_record": 1}


def test_load_prompts_file_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown prompt format 'chat'"):
        load_prompts_file(write_jsonl(tmp_path / "p.jsonl", [GOOD]), "chat")  # type: ignore[arg-type]


# --- the hub ----------------------------------------------------------------------------------


# Offline, the hub loaders fail without a single network connection: a connection attempted
# would be a hub that is retried, instead of the local cache alone decided once.
RECORD_CONNECTIONS = """
import socket
connections = []
_connect = socket.socket.connect


def _recorded(self, address):
    if isinstance(address, tuple):  # a network address (not a Unix socket's path)
        connections.append(address)
    return _connect(self, address)


socket.socket.connect = _recorded
"""


def test_hub_unreachable_raises_data_unavailable_in_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connections: list[object] = []
    connect = socket.socket.connect

    def recorded(self: socket.socket, address: Any) -> None:
        if isinstance(address, tuple):  # a network address (not a Unix socket's path)
            connections.append(address)
        connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", recorded)
    with pytest.raises(DataUnavailableError) as caught:
        load_pairs_hub("Anthropic/hh-rlhf", "test", data_dir="harmless-base")
    assert caught.value.name == "Anthropic/hh-rlhf/harmless-base[test]"
    assert "HF_HUB_OFFLINE" in str(caught.value)
    with pytest.raises(DataUnavailableError):
        load_prompts_hub("Anthropic/hh-rlhf", "train", "hh", revision="main")
    assert connections == []


@pytest.mark.slow
def test_hub_unreachable_fails_with_a_clear_message_in_a_fresh_process() -> None:
    """The env vars as a user sets them, read by ``datasets`` at import; no traceback, and no
    network connection attempted."""
    script = RECORD_CONNECTIONS + textwrap.dedent(
        """
        from harness.load.data import DataUnavailableError
        from harness.load.hub import load_pairs_hub
        try:
            load_pairs_hub("Anthropic/hh-rlhf", "test", data_dir="harmless-base")
        except DataUnavailableError as error:
            print("UNAVAILABLE:", error)
        print("CONNECTIONS:", connections)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **OFFLINE_ENV},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "UNAVAILABLE: data source 'Anthropic/hh-rlhf/harmless-base[test]'" in done.stdout
    assert "CONNECTIONS: []" in done.stdout
    assert "Traceback" not in done.stderr


def test_hub_loader_parses_a_local_dataset_folder(tmp_path: Path) -> None:
    """The real ``datasets.load_dataset`` on a folder laid out like Anthropic/hh-rlhf."""
    root = tmp_path / "hh-rlhf"
    (root / "harmless-base").mkdir(parents=True)
    (root / "helpful-base").mkdir()
    write_jsonl(root / "harmless-base" / "test.jsonl.gz", [GOOD, record("x", "y"), GOOD_2, GOOD])
    write_jsonl(root / "helpful-base" / "test.jsonl.gz", [GOOD])
    cache = str(tmp_path / "cache")

    pairs, report = load_pairs_hub(str(root), "test", data_dir="harmless-base", cache_dir=cache)
    assert [p.rejected for p in pairs] == [" Go away", " Hmph", " Go away"]
    assert report.dropped == {"no_assistant_turn": 1}
    assert report.source == f"{root}/harmless-base[test]"

    prompts, report = load_prompts_hub(
        str(root), "test", "hh", data_dir="harmless-base", limit=1, cache_dir=cache
    )
    assert prompts == ["\n\nHuman: Hi\n\nAssistant:"]
    assert report.kept == 1

    with pytest.raises(DataUnavailableError, match="no_such_split"):
        load_pairs_hub(str(root), "no_such_split", data_dir="harmless-base", cache_dir=cache)


def test_hub_loader_passes_arguments_and_drops_bad_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import datasets

    calls: list[dict[str, Any]] = []
    rows = {
        "org/data": [GOOD, {"chosen": None, "rejected": "x"}, {"chosen": "x", "rejected": None}],
        "org/prompts": [{"prompt": "q"}, {"prompt": None}],
    }

    def fake_load_dataset(name: str, **kwargs: Any) -> datasets.Dataset:
        calls.append({"name": name, **kwargs})
        return datasets.Dataset.from_list(rows[name])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    pairs, report = load_pairs_hub("org/data", "train", data_dir="sub", revision="abc123")
    assert calls == [
        {
            "name": "org/data",
            "data_dir": "sub",
            "split": "train",
            "revision": "abc123",
            "cache_dir": None,
        }
    ]
    assert len(pairs) == 1
    assert report.dropped == {"malformed_record": 2}  # None fields
    prompts, report = load_prompts_hub("org/prompts", "train", "prompt")
    assert prompts == ["q"]
    assert report.dropped == {"malformed_record": 1}
    # a dataset without the expected columns drops every row, it does not crash
    assert load_prompts_hub("org/data", "train", "prompt")[1].dropped == {"malformed_record": 3}


def test_hub_loader_wraps_any_load_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def broken(name: str, **kwargs: Any) -> None:
        raise ConnectionError("Couldn't reach 'org/data' on the Hub\nlong detail")

    monkeypatch.setattr(datasets, "load_dataset", broken)
    with pytest.raises(DataUnavailableError) as caught:
        load_pairs_hub("org/data", "train", revision="v1")
    assert caught.value.name == "org/data[train]@v1"
    assert caught.value.reason.startswith("ConnectionError: Couldn't reach 'org/data' on the Hub")
    assert "long detail" not in caught.value.reason
    assert isinstance(caught.value.__cause__, ConnectionError)


# --- left_truncate_prompt --------------------------------------------------------------------

TOPICS = ["bread", "rice", "tea", "bikes", "plants", "taxes", "paint", "chess", "soap", "maps"]


def corpus() -> Iterator[str]:
    """A few hundred HH-style lines to train a tiny BPE tokenizer on."""
    for i in range(400):
        topic, other = TOPICS[i % len(TOPICS)], TOPICS[(i * 7) % len(TOPICS)]
        yield dialogue(
            f"How do I start with {topic}?",
            f"Step {i % 6 + 1}: read about {topic}, then try {other} for {i % 9 + 1} days.",
        )


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", unk_token="<unk>")


def n_tokens(text: str, tokenizer: Any) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def long_prompt(turns: int) -> str:
    pairs = [
        (f"Tell me about {TOPICS[i % 10]} please.", f"Sure: {TOPICS[i % 10]} is fun, try it.")
        for i in range(turns)
    ]
    flat = [text for pair in pairs for text in pair]
    return dialogue(*flat, "And one last question about maps?") + "\n\nAssistant:"


def test_left_truncate_short_prompt_is_unchanged(tokenizer: Any) -> None:
    prompt = long_prompt(1)
    assert left_truncate_prompt(prompt, tokenizer, n_tokens(prompt, tokenizer)) == prompt
    assert left_truncate_prompt(prompt, tokenizer, 10_000) == prompt


def test_left_truncate_cuts_at_the_first_turn_boundary_in_budget(tokenizer: Any) -> None:
    prompt = long_prompt(12)
    total = n_tokens(prompt, tokenizer)
    for max_tokens in (total // 5, total // 3, total // 2, total - 1):
        kept = left_truncate_prompt(prompt, tokenizer, max_tokens)
        assert prompt.endswith(kept)
        assert kept.startswith("\n\nHuman:") and kept.endswith("\n\nAssistant:")
        assert n_tokens(kept, tokenizer) <= max_tokens
        # the earliest boundary that fits: one human turn more would not fit
        previous = prompt.rfind("\n\nHuman:", 0, len(prompt) - len(kept))
        assert previous >= 0
        assert n_tokens(prompt[previous:], tokenizer) > max_tokens


def test_left_truncate_cuts_mid_turn_when_no_boundary_fits(tokenizer: Any) -> None:
    words = " ".join(f"{TOPICS[i % 10]} {i}" for i in range(200))
    prompt = dialogue("Hi", "Hello", f"Please sort these: {words}") + "\n\nAssistant:"
    kept = left_truncate_prompt(prompt, tokenizer, 50)
    assert prompt.endswith(kept)
    assert "\n\nHuman:" not in kept and kept.endswith("\n\nAssistant:")
    assert 45 <= n_tokens(kept, tokenizer) <= 50


def test_left_truncate_rejects_a_non_positive_budget(tokenizer: Any) -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        left_truncate_prompt("\n\nHuman: Hi\n\nAssistant:", tokenizer, 0)


# --- the real HH file -------------------------------------------------------------------------


def real_records() -> list[dict[str, Any]]:
    if not REAL_HH_TEST.is_file():
        pytest.skip(f"real HH data not found at {REAL_HH_TEST} (shared data not mounted)")
    with gzip.open(REAL_HH_TEST, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def test_real_hh_file_loads_and_accounts_for_every_record() -> None:
    records = real_records()
    assert len(records) == REAL_HH_RECORDS
    pairs, report = load_pairs_file(REAL_HH_TEST)
    print(report.summary())
    assert report.total == REAL_HH_RECORDS
    assert report.kept == len(pairs)
    # measured on this file (2,312 records): 4 empty chosen replies ("\n\nAssistant: " at the
    # end); 5 records where one reply itself contains "\n\nAssistant:" so the prompts disagree
    assert report.dropped == {"empty_response": 4, "prompt_mismatch": 5}
    for pair in pairs:
        assert pair.prompt.startswith("\n\nHuman:")
        assert pair.prompt.endswith("\n\nAssistant:")
        assert pair.chosen.strip() and pair.rejected.strip()
        assert pair.chosen.strip() != pair.rejected.strip()


def test_real_hh_longest_dialogue_is_kept() -> None:
    records = real_records()
    longest = max(records, key=lambda r: r["chosen"].count("\n\nHuman:"))
    pair = pair_from_hh(longest["chosen"], longest["rejected"])
    assert isinstance(pair, PreferencePair)
    print(f"longest dialogue: {pair.prompt.count(chr(10) * 2 + 'Human:')} human turns")
    pairs, _ = load_pairs_file(REAL_HH_TEST)
    assert pair in pairs


def test_real_hh_prompts_load_deduplicated() -> None:
    records = real_records()
    prompts, report = load_prompts_file(REAL_HH_TEST, "hh")
    print(report.summary())
    assert report.total == len(records)
    assert len(prompts) == len(set(prompts)) == report.kept
    assert all(prompt.endswith("\n\nAssistant:") for prompt in prompts)
