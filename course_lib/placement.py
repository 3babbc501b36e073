"""Where the online rows live in a Redis Cluster (follow-up to 2.7.5): hash slots, their masters,
and the keys each master should and does hold.

A Feast key (`redis_format.redis_key`) has no hash tag, so its whole bytes pick its slot
(CRC16 mod 16384); `CLUSTER SLOTS` says which master serves each slot range.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pandas as pd
from redis.crc import key_slot

from course_lib.cluster import Node, client
from course_lib.config import Profile
from course_lib.redis_format import project_keys, redis_key
from feature_repo.definitions import join_keys

if TYPE_CHECKING:
    import matplotlib.figure


def slot_owners(node: Node, password: str = "") -> list[tuple[int, int, str]]:
    """(first slot, last slot, `host:port` of its master) from `CLUSTER SLOTS`, sorted by slot."""
    with client(node, password) as conn:
        ranges = conn.execute_command("CLUSTER SLOTS")
    return sorted((int(first), int(last), f"{master[0].decode()}:{master[1]}") for first, last, master, *_ in ranges)


def owner_of(slot: int, owners: list[tuple[int, int, str]]) -> str:
    """The master (`host:port`) serving a slot."""
    return next(name for first, last, name in owners if first <= slot <= last)


def entity_rows(tables: dict[str, pd.DataFrame]) -> dict[str, list[dict[str, int]]]:
    """Per feature view, every distinct entity key that has an offline row (what materialization writes)."""
    return {view: table[join_keys(view)].drop_duplicates().astype("int64").to_dict("records")
            for view, table in tables.items()}


def masters(profile: Profile) -> list[tuple[int, int, str]]:
    """The cluster's slot ranges and their masters, asked of the first listed node."""
    return slot_owners(profile.redis_cluster_nodes()[0], profile.settings.redis_password.get_secret_value())


def expected_keys_per_node(profile: Profile, rows: Iterable[dict[str, int]],
                           project: str | None = None) -> dict[str, int]:
    """How many of these entities' Redis hashes each master should hold, from CRC16 slots and
    `CLUSTER SLOTS` (for the profile's project, or another project name)."""
    owners = masters(profile)
    counts = {name: 0 for _, _, name in owners}
    for key in {redis_key(row, project or profile.project) for row in rows}:
        counts[owner_of(key_slot(key), owners)] += 1
    return counts


def slot_spread(profile: Profile, rows: list[dict[str, int]], project: str) -> dict[str, object]:
    """How the entities' keys under a project name spread: distinct slots used, and each master's share."""
    slots = {key_slot(redis_key(row, project)) for row in rows}
    counts = expected_keys_per_node(profile, rows, project)
    return {"project": project, "distinct slots": len(slots),
            **{name: f"{count / len(rows):.1%}" for name, count in counts.items()}}


def stored_keys_per_node(profile: Profile) -> dict[str, int]:
    """How many of the project's Redis hashes each master really holds, counted with SCAN (exact project match)."""
    counts = {}
    for name in dict.fromkeys(name for _, _, name in masters(profile)):
        host, port = name.rsplit(":", 1)
        with client((host, int(port)), profile.settings.redis_password.get_secret_value(), timeout_s=5) as conn:
            counts[name] = sum(1 for _ in project_keys(conn, profile.project))
    return counts


def plot_keys_per_node(expected: dict[str, int], stored: dict[str, int]) -> matplotlib.figure.Figure:
    """Bars of the keys each master holds (SCAN), with the count its slots predict marked."""
    import matplotlib.pyplot as plt

    names = list(expected)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(names, [stored.get(n, 0) for n in names], color="tab:blue", label="stored (SCAN)")
    ax.scatter(names, [expected[n] for n in names], color="tab:orange", zorder=3, label="predicted (CRC16 slot)")
    ax.set_ylabel("entity hashes")
    ax.set_title("Keys per Redis Cluster master")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig
