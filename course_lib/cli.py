"""The `course` command line: one verb per course step."""
from __future__ import annotations

import argparse
import json
import shlex
import time
from dataclasses import asdict
from datetime import datetime

from course_lib.config import ALL_PROFILES, ConfigError, Profile
from course_lib.diagnose import DEBUG_VARIABLE, run_verb
from course_lib.messages import say


def cmd_apply(args: argparse.Namespace) -> int:
    """Register the feature definitions and print what changed."""
    from course_lib.config import load_store, resolve_profile
    from course_lib.serving import apply

    profile = resolve_profile(args.profile)
    print(apply(load_store(profile), profile))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check the environment and services; exit 1 if any check failed."""
    from course_lib.config import resolve_profile
    from course_lib.doctor import format_report, run_checks

    checks = run_checks(resolve_profile(args.profile))
    if args.json:
        print(json.dumps([asdict(check) for check in checks], indent=2))
    else:
        print(format_report(checks))
    return 0 if all(check.ok for check in checks) else 1


def cmd_data(args: argparse.Namespace) -> int:
    """Load a dataset, build the feature-view tables and write them to the offline store."""
    from course_lib import datasets
    from course_lib.adapter import build_feature_tables, write_offline
    from course_lib.config import resolve_profile

    profile = resolve_profile(args.profile)
    started = time.perf_counter()
    if args.source == "movielens":
        if not args.path:
            raise ConfigError(say("cli.movielens_needs_path"))
        dataset = datasets.movielens(args.path)
    else:
        size = {**datasets.SIZES[args.size], **{k: v for k, v in (
            ("n_users", args.users), ("n_movies", args.movies), ("n_events", args.events)) if v}}
        dataset = datasets.synthetic(seed=args.seed, days=args.days, **size)
    tables = build_feature_tables(dataset)
    locations = write_offline(tables, profile)
    dataset.save(profile.raw_dir)
    for view, table in tables.items():
        ts = table["event_timestamp"]
        print(f"{view}: {len(table):,} rows, {ts.min():%Y-%m-%d} .. {ts.max():%Y-%m-%d} -> {locations[view]}")
    print(f"{dataset.name} data ready for profile {profile.name} in {time.perf_counter() - started:.1f} s")
    return 0


def cmd_materialize(args: argparse.Namespace) -> int:
    """Materialize offline features once or on a schedule, under a lock; report what was written."""
    from course_lib.config import load_store, resolve_profile
    from course_lib.dataclock import materialization_end
    from course_lib.materialize import RetryPolicy, materialize_every, materialize_once, parse_every

    if args.attempts < 1:
        raise ConfigError(say("cli.attempts", attempts=args.attempts))
    retry = RetryPolicy(attempts=args.attempts)
    profile = resolve_profile(args.profile)
    store = load_store(profile, tuned=args.tuned)
    if args.every:
        if args.end:
            raise ConfigError(say("cli.end_with_every"))
        try:
            materialize_every(store, profile, parse_every(args.every), incremental=args.incremental, retry=retry,
                              on_outcome=lambda outcome: print("\n".join(outcome.lines()), flush=True))
        except KeyboardInterrupt:
            print("schedule stopped")
        return 0
    outcome = materialize_once(store, profile, incremental=args.incremental,
                               end=materialization_end(args.end, profile), force=args.force, retry=retry)
    if outcome.exception is not None:  # retried and failed: one line naming the store and its fix
        raise outcome.exception
    print("\n".join(outcome.lines()))
    for line in expired_note(profile, outcome.report.end) if outcome.report else []:
        print(line)
    return 0 if outcome.status == "ok" else 1


def expired_note(profile: Profile, end: datetime) -> list[str]:
    """A warning when every view's TTL has passed between the newest offline row and `end` (else nothing)."""
    from course_lib.dataclock import newest_event
    from feature_repo.definitions import VIEWS

    newest = newest_event(profile)
    longest = max(ttl for _, ttl, _ in VIEWS.values())
    if end - newest <= longest:
        return []
    return [f"note: the newest offline row is from {newest:%Y-%m-%d %H:%M}, {(end - newest).days} days before the end "
            f"{end:%Y-%m-%d %H:%M}: past every view's TTL, so the API will score with empty features. For the "
            f"course's replayed data, leave out --end: materialization then ends at the data's newest event "
            f"(docs/troubleshooting.md #17)."]


def cmd_classroom(args: argparse.Namespace) -> int:
    """Create (--drop: remove) per-learner PostgreSQL roles and Redis ACL users; print each learner's settings."""
    from course_lib import classroom
    from course_lib.config import resolve_profile

    profile = resolve_profile(args.profile or "enterprise")
    if args.drop:
        print(f"removed learners: {', '.join(classroom.drop(profile)) or 'none'}")
        return 0
    names = classroom.learner_names(args.count, args.learners.split(",") if args.learners else None)
    for learner in classroom.create(profile, names):
        print(f"# {learner.name}\n" + "\n".join(f"export {key}={shlex.quote(value)}" for key, value in
                                                  learner.settings(profile).items()))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train the ranker on point-in-time-correct features and save it."""
    from course_lib.config import resolve_profile
    from course_lib.ranker import train_and_save

    ranker = train_and_save(resolve_profile(args.profile))
    print(json.dumps(ranker.metrics, indent=2))
    if ranker.compiled:
        print(f"scoring: trees compiled with {ranker.runtime}, saved in the model file")
    else:
        print("scoring: no C compiler found (set CC, or install gcc or clang), so the API scores with "
              "scikit-learn: the same scores, several times slower; install one and retrain to compile")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the feature / recommendation API."""
    from course_lib.api import serve

    serve(args.profile, host=args.host, port=args.port, workers=args.workers)
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    """Drop the course's registry objects, online rows and offline tables for one profile."""
    from course_lib.config import resolve_profile
    from course_lib.reset import reset_course

    print("\n".join(reset_course(resolve_profile(args.profile)).lines()))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Run every benchmark in one process and write the JSON (and plots)."""
    from pathlib import Path

    from course_lib import bench

    result = bench.run(args.profile, size=args.size)
    document = bench.to_json(result)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2, default=str))
    for path in bench.plot(result, Path(args.plots)) if args.plots else []:
        print(f"plot: {path}")
    for name, goal in document["goals"].items():
        print(f"{'MET ' if goal['met'] else 'MISS' if goal['met'] is False else 'n/a '} {name}: "
              f"measured {goal['measured']:.3g}" + (f", goal {goal['goal']:g}" if goal["goal"] else ""))
    print(f"results: {out}")
    return 0


def cmd_skew(args: argparse.Namespace) -> int:
    """Compare the served-feature log with point-in-time features; exit 1 if any feature differs."""
    import pandas as pd

    from course_lib.config import load_store, resolve_profile
    from course_lib.feature_log import read_log
    from course_lib.skew import skew_report, skewed

    profile = resolve_profile(args.profile)
    log = read_log(profile)
    report = skew_report(load_store(profile), log)
    with pd.option_context("display.width", 200, "display.max_colwidth", 80):
        print(report.to_string(index=False))
    if args.json:
        report.to_json(args.json, orient="records", indent=2)
    found = skewed(report)
    print(say("cli.skew_found", features=", ".join(found)) if found else
          say("cli.skew_none", features=len(report), rows=len(log)))
    return 1 if found else 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Check the guide's completion criteria on this machine; print the table, write the JSON; exit 1 on a FAIL."""
    from pathlib import Path

    from course_lib import verify

    result = verify.run(args.profile, soak_seconds=args.soak_seconds, rate=args.rate)
    print(verify.format_table(result))
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result.to_json(), indent=2, ensure_ascii=False, default=str))
        print(f"figures: {out}")
    return 0 if result.passed else 1


def add_profile(parser: argparse.ArgumentParser) -> None:
    """Add the shared `--profile` option."""
    parser.add_argument("--profile", choices=ALL_PROFILES, default=None,
                        help="course profile (default: $COURSE_PROFILE, else local)")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, one sub-command per verb."""
    parser = argparse.ArgumentParser(prog="course", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    apply_p = verbs.add_parser("apply", help="register entities, feature views and the service")
    add_profile(apply_p)
    apply_p.set_defaults(handler=cmd_apply)
    doctor_p = verbs.add_parser("doctor", help="check Python, packages, kernel, services and the registry")
    add_profile(doctor_p)
    doctor_p.add_argument("--json", action="store_true", help="print the checks as a JSON list")
    doctor_p.set_defaults(handler=cmd_doctor)
    data_p = verbs.add_parser("data", help="build feature tables from a dataset and write them offline")
    add_profile(data_p)
    data_p.add_argument("--source", choices=("synthetic", "movielens"), default="synthetic")
    data_p.add_argument("--path", help="MovieLens ml-latest-small folder (for --source movielens)")
    data_p.add_argument("--size", choices=("small", "full"), default="small", help="synthetic preset size")
    data_p.add_argument("--seed", type=int, default=42)
    data_p.add_argument("--days", type=int, default=90, help="synthetic time window in days")
    data_p.add_argument("--users", type=int, help="override the preset's number of users")
    data_p.add_argument("--movies", type=int, help="override the preset's number of movies")
    data_p.add_argument("--events", type=int, help="override the preset's number of watch events")
    data_p.set_defaults(handler=cmd_data)
    mat_p = verbs.add_parser("materialize", help="load the latest features into the online store")
    add_profile(mat_p)
    mat_p.add_argument("--incremental", action="store_true", help="continue from each view's last end")
    mat_p.add_argument("--end", help="ISO 8601 end time (UTC if no offset), or `now` for the wall clock "
                                     "(default: one second after the newest event in the offline store)")
    mat_p.add_argument("--force", action="store_true",
                       help="let a --tuned run use an --end older than the last one (rolls online values back)")
    mat_p.add_argument("--every", metavar="INTERVAL",
                       help="repeat on a schedule, e.g. 5m, 90s, 1h (runs until interrupted)")
    mat_p.add_argument("--tuned", action="store_true",
                       help="use the tuned store settings (feature_store.tuned.yaml: bulk-load options)")
    mat_p.add_argument("--attempts", type=int, default=3,
                       help="tries per run when a store is unreachable, waiting 5 s, then 10 s, ... between them "
                            "(default %(default)s)")
    mat_p.set_defaults(handler=cmd_materialize)
    train_p = verbs.add_parser("train", help="train and save the ranker")
    add_profile(train_p)
    train_p.set_defaults(handler=cmd_train)
    class_p = verbs.add_parser("classroom", help="per-learner PostgreSQL roles and Redis users (instructors)")
    add_profile(class_p)
    class_p.add_argument("--count", type=int, help="learners learner_01 ... learner_N")
    class_p.add_argument("--learners", help="comma-separated learner names (project names)")
    class_p.add_argument("--drop", action="store_true", help="remove exactly what `course classroom` created")
    class_p.set_defaults(handler=cmd_classroom)
    serve_p = verbs.add_parser("serve", help="run the feature / recommendation API")
    add_profile(serve_p)
    serve_p.add_argument("--host", default="127.0.0.1")
    serve_p.add_argument("--port", type=int, default=8000)
    serve_p.add_argument("--workers", type=int, default=1,
                         help="uvicorn worker processes (one per core to use; each opens its own connections)")
    serve_p.set_defaults(handler=cmd_serve)
    bench_p = verbs.add_parser("bench", help="benchmark online, HTTP, historical and materialization paths")
    bench_p.add_argument("--profile", choices=ALL_PROFILES, default="enterprise",
                         help="profile of the online, HTTP and materialization figures (default: enterprise); "
                              "historical retrieval is measured on local and enterprise alike")
    bench_p.add_argument("--size", choices=("small", "full"), default="small")
    bench_p.add_argument("--json", default="bench/results.json", help="where to write the results")
    bench_p.add_argument("--plots", help="folder for latency CDF and speed-up plots")
    bench_p.set_defaults(handler=cmd_bench)
    skew_p = verbs.add_parser("skew", help="compare the served-feature log with point-in-time training features")
    add_profile(skew_p)
    skew_p.add_argument("--json", help="also write the report to this JSON file")
    skew_p.set_defaults(handler=cmd_skew)
    verify_p = verbs.add_parser("verify", help="check the guide's completion criteria (완료 기준) on this machine")
    add_profile(verify_p)
    verify_p.add_argument("--json", help="write every figure to this JSON file")
    verify_p.add_argument("--soak-seconds", type=float, default=60.0,
                          help="length of the availability soak (default 60; at least 20)")
    verify_p.add_argument("--rate", type=float, default=200.0, help="requests per second the soak offers")
    verify_p.set_defaults(handler=cmd_verify)
    reset_p = verbs.add_parser("reset", help="drop this project's registry objects, online rows and "
                                             "offline tables (nothing else)")
    add_profile(reset_p)
    reset_p.set_defaults(handler=cmd_reset)
    add_debug(verbs)
    return parser


def add_debug(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Give every verb `--debug`: show the traceback of a failure instead of its one line."""
    for verb in verbs.choices.values():
        verb.add_argument("--debug", action="store_true",
                          help=f"print the traceback of a failure (also: {DEBUG_VARIABLE}=1)")


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit code; failures print one line (course_lib.diagnose)."""
    args = build_parser().parse_args(argv)
    return run_verb(args.verb, lambda: args.handler(args), profile=getattr(args, "profile", None), debug=args.debug)
