"""Checks of notebook 06 (scale-out): a key's hash slot, and Redis masters for a load."""
from __future__ import annotations

import binascii
import zlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from redis import crc as redis_crc

from course_lib.capacity import Assumptions, CapacityInputs, capacity_plan
from course_lib.checks.common import CheckFailed, answer, passed, same_value, show
from course_lib.cluster import SLOTS
from course_lib.messages import say
from course_lib.redis_format import redis_key

# Keys for the hash-tag rule: when a "{" is followed later by a "}" with at least one byte between
# them, only the bytes between the first "{" and the first "}" after it are hashed.
# (message key of the description, key)
TAGGED_KEYS: list[tuple[str, bytes]] = [
    ("scale_out.key_tag", b"{user1000}.following"),
    ("scale_out.key_same_tag", b"{user1000}.followers"),
    ("scale_out.key_two_tags", b"foo{bar}{zap}"),
    ("scale_out.key_empty_tag", b"foo{}{bar}"),
    ("scale_out.key_brace_in_tag", b"foo{{bar}}zap"),
    ("scale_out.key_no_close", b"}{no tag"),
    ("scale_out.key_empty", b""),
]
# Entities whose Feast keys hold the id bytes 0x7b '{' and 0x7d '}': a tag, the wrong order, an empty tag, a 1-byte tag.
ACCIDENTAL_TAGS = [{"movie_id": 123, "user_id": 125}, {"movie_id": 125, "user_id": 123}, {"movie_id": 32_123},
                   {"user_id": 8_192_123}]


def slot_keys(project: str) -> list[tuple[str, bytes]]:
    """(description, key): Feast keys of many users, movies and pairs, then keys with hash tags."""
    rows = ([{"user_id": u} for u in range(1, 1001)] + [{"movie_id": m} for m in range(1, 201)]
            + [{"user_id": u, "movie_id": m} for u in range(1, 21) for m in range(1, 21)])
    feast = [(say("scale_out.key_feast", row=row), redis_key(row, project)) for row in rows]
    tagged = [(say(what), key) for what, key in TAGGED_KEYS]
    accidental = [(say("scale_out.key_accidental", row=row), redis_key(row, project)) for row in ACCIDENTAL_TAGS]
    return feast + tagged + accidental


def _crc_slot(data: bytes) -> int:
    """CRC16/XMODEM of the bytes modulo the slot count, hash tags ignored."""
    return binascii.crc_hqx(data, 0) % SLOTS


def _slot_hint(key: bytes, got: Any) -> str:
    """The likely mistake behind a wrong slot."""
    start = key.find(b"{")
    end = key.find(b"}", start + 1) if start >= 0 else -1
    whole = binascii.crc_hqx(key, 0)
    mistakes = [(whole, say("scale_out.hint_modulo")), (whole % (SLOTS - 1), say("scale_out.hint_16383")),
                (zlib.crc32(key) % SLOTS, say("scale_out.hint_crc32"))]
    if end > start + 1:
        mistakes += [(_crc_slot(key), say("scale_out.hint_tag", tag=key[start + 1:end])),
                     (_crc_slot(key[start:end + 1]), say("scale_out.hint_braces")),
                     (_crc_slot(key[start + 1:key.rfind(b"}")]), say("scale_out.hint_last_brace"))]
    if end == start + 1:
        mistakes.append((_crc_slot(b""), say("scale_out.hint_empty_tag")))
    want = redis_crc.key_slot(key)
    for value, hint in mistakes:
        if value != want and got == value:
            return hint
    return say("scale_out.hint_slot")


def key_slot(fn: Callable[..., Any], project: str) -> None:
    """Exercise 6.1: the Redis Cluster hash slot of a key, against redis-py's key_slot."""
    keys = slot_keys(project)
    for what, key in keys:
        got = answer(fn, "key_slot", key)
        if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
            raise CheckFailed(say("scale_out.slot_type", got=got, type=type(got).__name__))
        want = redis_crc.key_slot(key)
        if got != want:
            raise CheckFailed(say("scale_out.slot_wrong", key=key, what=what, got=got, want=want,
                                  hint=_slot_hint(key, got)))
    passed("key_slot", say("scale_out.slot_passed", count=len(keys), project=project))


# (requests/s, entity hashes, measured figures, assumptions) the master count is checked on: figures like
# this notebook's in-process measurement and like `make bench`'s, at the default and at other assumptions.
CapacityCase = tuple[int, int, CapacityInputs, Assumptions]
CAPACITY_FIGURES = [
    CapacityInputs(replica_rps=137.0, key_reads_per_s=124_000.0, bytes_per_key=232.0, keys_per_request=41,
                            source="41 hashes per request, 124,000 hash reads/s per master, 232 B per hash"),
    CapacityInputs(replica_rps=150.0, key_reads_per_s=100_000.0, bytes_per_key=250.0, keys_per_request=201,
                            source="201 hashes per request, 100,000 hash reads/s per master, 250 B per hash")]
CAPACITY_ASSUMPTIONS = [Assumptions(),
                        Assumptions(target_utilization=0.7, shard_memory_gib=16.0, memory_fill=0.6)]
CAPACITY_LOADS = [(100, 100_000), (5_000, 10_000_000), (2_000, 300_000_000), (20_000, 100_000_000),
                  (200_000, 1_000_000)]


def figures(inputs: CapacityInputs) -> str:
    """The measured figures of a case, as its message shows them (CAPACITY_FIGURES' `source`, in English)."""
    return say("scale_out.figures", keys=inputs.keys_per_request, reads=inputs.key_reads_per_s,
               size=inputs.bytes_per_key)


def capacity_cases() -> list[CapacityCase]:
    """Every load with every set of figures and assumptions."""
    return [(qps, entities, inputs, assumptions) for inputs in CAPACITY_FIGURES
            for assumptions in CAPACITY_ASSUMPTIONS for qps, entities in CAPACITY_LOADS]


def _plan_row(case: CapacityCase) -> pd.Series:
    """The course's capacity plan for one case."""
    qps, entities, inputs, assumptions = case
    return capacity_plan(inputs, [(qps, entities)], assumptions).iloc[0]


def _master_mistakes(case: CapacityCase) -> list[tuple[int, str]]:
    """(master count, hint's message key) of typical mistakes: the course's plan with one rule broken."""
    qps, entities, inputs, a = case
    row = _plan_row(case)
    reads, memory = int(row["masters for reads"]), int(row["masters for memory"])

    def masters(figures: CapacityInputs, assumptions: Assumptions) -> int:
        return int(_plan_row((qps, entities, figures, assumptions))["Redis masters"])

    return [
        (masters(inputs, replace(a, target_utilization=1.0)), "scale_out.hint_utilization"),
        (masters(inputs, replace(a, memory_fill=1.0)), "scale_out.hint_fill"),
        (masters(inputs, replace(a, shard_memory_gib=a.shard_memory_gib * 1e9 / 2**30)), "scale_out.hint_gib"),
        (masters(replace(inputs, keys_per_request=1), a), "scale_out.hint_per_request"),
        (max(reads, memory), "scale_out.hint_minimum"),
        (max(reads, 3), "scale_out.hint_memory"),
        (max(memory, 3), "scale_out.hint_reads"),
        (max(reads + memory, 3), "scale_out.hint_sum"),
        (int(row["Redis nodes incl. replicas"]), "scale_out.hint_replicas"),
    ]


def _masters_hint(cases: list[CapacityCase], answers: list[Any]) -> str:
    """The one typical mistake that explains all of the learner's answers, else the rule itself."""
    mistakes = [_master_mistakes(case) for case in cases]
    for k, (_, hint) in enumerate(mistakes[0]):
        if all(same_value(got, found[k][0]) for got, found in zip(answers, mistakes)):
            return say(hint)
    return say("scale_out.masters_rule")


def redis_masters(fn: Callable[..., Any]) -> None:
    """Exercise 6.2: Redis masters for a load, against the course's capacity plan."""
    cases, answers = capacity_cases(), []
    for qps, entities, inputs, assumptions in cases:
        got = answer(fn, "redis_masters", qps, entities, inputs, assumptions)
        if isinstance(got, bool) or not isinstance(got, (int, float, np.number)):
            raise CheckFailed(say("scale_out.masters_type", got=got, type=type(got).__name__))
        if not float(got).is_integer():
            raise CheckFailed(say("scale_out.masters_fraction", got=show(got), qps=qps, entities=entities))
        answers.append(got)
    for case, got in zip(cases, answers):
        qps, entities, inputs, a = case
        want, reads, memory = (int(_plan_row(case)[column]) for column in
                               ("Redis masters", "masters for reads", "masters for memory"))
        if not same_value(got, want):
            raise CheckFailed(say("scale_out.masters_wrong", qps=qps, entities=entities, figures=figures(inputs),
                                  utilization=a.target_utilization, gib=a.shard_memory_gib, fill=a.memory_fill,
                                  got=show(got), want=want, reads=reads, memory=memory,
                                  hint=_masters_hint(cases, answers)))
    passed("redis_masters", say("scale_out.masters_passed", cases=len(cases), loads=len(CAPACITY_LOADS),
                                figures=len(CAPACITY_FIGURES), assumptions=len(CAPACITY_ASSUMPTIONS)))
