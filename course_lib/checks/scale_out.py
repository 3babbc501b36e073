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
from course_lib.redis_format import redis_key

# Keys for the hash-tag rule: when a "{" is followed later by a "}" with at least one byte between
# them, only the bytes between the first "{" and the first "}" after it are hashed.
TAGGED_KEYS: list[tuple[str, bytes]] = [
    ("a hash tag", b"{user1000}.following"),
    ("the same hash tag, so the same slot", b"{user1000}.followers"),
    ("two tags: only the first counts", b"foo{bar}{zap}"),
    ("an empty tag: the whole key is hashed", b"foo{}{bar}"),
    ("a tag that contains '{'", b"foo{{bar}}zap"),
    ("no '}' after its '{'", b"}{no tag"),
    ("no bytes at all", b""),
]
# Entities whose Feast keys hold the id bytes 0x7b '{' and 0x7d '}': a tag, the wrong order, an empty tag, a 1-byte tag.
ACCIDENTAL_TAGS = [{"movie_id": 123, "user_id": 125}, {"movie_id": 125, "user_id": 123}, {"movie_id": 32_123},
                   {"user_id": 8_192_123}]


def slot_keys(project: str) -> list[tuple[str, bytes]]:
    """(description, key): Feast keys of many users, movies and pairs, then keys with hash tags."""
    rows = ([{"user_id": u} for u in range(1, 1001)] + [{"movie_id": m} for m in range(1, 201)]
            + [{"user_id": u, "movie_id": m} for u in range(1, 21) for m in range(1, 21)])
    feast = [(f"Feast's key of {row}", redis_key(row, project)) for row in rows]
    accidental = [(f"Feast's key of {row}; an id byte 0x7b is '{{', 0x7d is '}}'", redis_key(row, project))
                  for row in ACCIDENTAL_TAGS]
    return feast + TAGGED_KEYS + accidental


def _crc_slot(data: bytes) -> int:
    """CRC16/XMODEM of the bytes modulo the slot count, hash tags ignored."""
    return binascii.crc_hqx(data, 0) % SLOTS


def _slot_hint(key: bytes, got: Any) -> str:
    """The likely mistake behind a wrong slot."""
    start = key.find(b"{")
    end = key.find(b"}", start + 1) if start >= 0 else -1
    whole = binascii.crc_hqx(key, 0)
    mistakes = [(whole, "take the CRC modulo 16384: slots run from 0 to 16383"),
                (whole % (SLOTS - 1), "take the CRC modulo 16384, not 16383"),
                (zlib.crc32(key) % SLOTS,
                 "Redis Cluster uses CRC16 in the XMODEM variant (binascii.crc_hqx(key, 0)), not CRC32")]
    if end > start + 1:
        mistakes += [(_crc_slot(key), f"this key has the hash tag {key[start + 1:end]!r}: hash only the bytes "
                                      "between the first '{' and the first '}' after it"),
                     (_crc_slot(key[start:end + 1]), "hash the bytes between the braces, without the braces"),
                     (_crc_slot(key[start + 1:key.rfind(b"}")]),
                      "the tag ends at the first '}' after the first '{', not at the last '}'")]
    if end == start + 1:
        mistakes.append((_crc_slot(b""), "an empty tag '{}' does not count: then the whole key is hashed"))
    want = redis_crc.key_slot(key)
    for value, hint in mistakes:
        if value != want and got == value:
            return hint
    return ("the slot is CRC16/XMODEM (binascii.crc_hqx(data, 0)) modulo 16384 of the hash tag — the bytes between "
            "the first '{' and the first '}' after it, if at least one lies between them — or else of the whole key")


def key_slot(fn: Callable[..., Any], project: str) -> None:
    """Exercise 6.1: the Redis Cluster hash slot of a key, against redis-py's key_slot."""
    keys = slot_keys(project)
    for what, key in keys:
        got = answer(fn, "key_slot", key)
        if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
            raise CheckFailed(f"key_slot returned {got!r:.60} ({type(got).__name__}); return the slot as an int "
                              "from 0 to 16383")
        want = redis_crc.key_slot(key)
        if got != want:
            raise CheckFailed(f"for the key {key!r} ({what}), your slot is {got}; Redis Cluster puts it in slot {want} "
                              "(redis.crc.key_slot) — " + _slot_hint(key, got))
    passed("key_slot", f"equals redis-py's key_slot on all {len(keys)} keys: Feast keys of project {project!r} "
                        "and keys with hash tags, accidental ones in Feast keys included")


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
MASTERS_RULE = ("masters = max(⌈qps × keys_per_request / (key_reads_per_s × target_utilization)⌉, "
                "⌈entities × bytes_per_key / (shard_memory_gib × 2**30 × memory_fill)⌉, 3)")


def capacity_cases() -> list[CapacityCase]:
    """Every load with every set of figures and assumptions."""
    return [(qps, entities, inputs, assumptions) for inputs in CAPACITY_FIGURES
            for assumptions in CAPACITY_ASSUMPTIONS for qps, entities in CAPACITY_LOADS]


def _plan_row(case: CapacityCase) -> pd.Series:
    """The course's capacity plan for one case."""
    qps, entities, inputs, assumptions = case
    return capacity_plan(inputs, [(qps, entities)], assumptions).iloc[0]


def _master_mistakes(case: CapacityCase) -> list[tuple[int, str]]:
    """(master count, hint) of typical mistakes: the course's plan with one rule broken."""
    qps, entities, inputs, a = case
    row = _plan_row(case)
    reads, memory = int(row["masters for reads"]), int(row["masters for memory"])

    def masters(figures: CapacityInputs, assumptions: Assumptions) -> int:
        return int(_plan_row((qps, entities, figures, assumptions))["Redis masters"])

    return [
        (masters(inputs, replace(a, target_utilization=1.0)),
         "plan the reads at the target utilization: a master serves key_reads_per_s × target_utilization hash reads/s"),
        (masters(inputs, replace(a, memory_fill=1.0)),
         "only memory_fill of a master's memory may hold data: shard_memory_gib × 2**30 × memory_fill bytes"),
        (masters(inputs, replace(a, shard_memory_gib=a.shard_memory_gib * 1e9 / 2**30)),
         "a GiB is 2**30 bytes, not 10**9"),
        (masters(replace(inputs, keys_per_request=1), a), "each request reads keys_per_request entity hashes, not one"),
        (max(reads, memory), "Redis Cluster needs at least 3 masters, whatever the load: they vote on failovers"),
        (max(reads, 3), "the data must fit too: add the masters that entities × bytes_per_key needs"),
        (max(memory, 3), "the reads must be served too: add the masters that qps × keys_per_request hash reads/s need"),
        (max(reads + memory, 3),
         "every master serves reads and holds data at once: take the larger of the two needs, not their sum"),
        (int(row["Redis nodes incl. replicas"]), "count masters only: the failover replicas come on top of them"),
    ]


def _masters_hint(cases: list[CapacityCase], answers: list[Any]) -> str:
    """The one typical mistake that explains all of the learner's answers, else the rule itself."""
    mistakes = [_master_mistakes(case) for case in cases]
    for k, (_, hint) in enumerate(mistakes[0]):
        if all(same_value(got, found[k][0]) for got, found in zip(answers, mistakes)):
            return hint
    return MASTERS_RULE


def redis_masters(fn: Callable[..., Any]) -> None:
    """Exercise 6.2: Redis masters for a load, against the course's capacity plan."""
    cases, answers = capacity_cases(), []
    for qps, entities, inputs, assumptions in cases:
        got = answer(fn, "redis_masters", qps, entities, inputs, assumptions)
        if isinstance(got, bool) or not isinstance(got, (int, float, np.number)):
            raise CheckFailed(f"redis_masters returned {got!r:.60} ({type(got).__name__}); return a whole number "
                              "of masters")
        if not float(got).is_integer():
            raise CheckFailed(f"redis_masters returned {show(got)} for {qps:,} requests/s over {entities:,} entity "
                              "hashes; a master cannot be split: round each need up (math.ceil)")
        answers.append(got)
    for case, got in zip(cases, answers):
        qps, entities, inputs, a = case
        want, reads, memory = (int(_plan_row(case)[column]) for column in
                               ("Redis masters", "masters for reads", "masters for memory"))
        if not same_value(got, want):
            raise CheckFailed(
                f"for {qps:,} requests/s over {entities:,} entity hashes ({inputs.source}; target utilization "
                f"{a.target_utilization:g}, {a.shard_memory_gib:g} GiB masters, {a.memory_fill:.0%} of it for data) "
                f"your count is {show(got)}; the course's capacity plan needs {want} masters: {reads} for the reads, "
                f"{memory} for the memory, at least 3 — " + _masters_hint(cases, answers))
    passed("redis_masters", f"equals the course's capacity plan in all {len(cases)} cases ({len(CAPACITY_LOADS)} "
                             f"loads × {len(CAPACITY_FIGURES)} sets of figures × {len(CAPACITY_ASSUMPTIONS)} of "
                             "assumptions)")
