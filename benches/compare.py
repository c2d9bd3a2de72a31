#!/usr/bin/env python3
"""What a change costs, in one command: builds two git refs and runs them interleaved.

    python3 benches/compare.py A B [--rounds 2] [--filter RE] [--rows N] [--wide-rows N]
                                   [--reps 3] [--no-e2e] [--build-only]
    just bench-compare A B

Each ref (a commit, branch or tag; `WORKTREE` means the files as they are now, uncommitted
changes included) is checked out into its own git worktree under target/compare/ and built
there with its own target directory (a new one starts as a copy of the newest earlier one,
for the dependencies: each worktree's own crates are never reused), the release `pgarrow`
binary and the two criterion bench executables below. `--build-only` stops after the
builds (do them ahead, then measure on a quiet machine: the worktrees and builds are reused).

1. criterion, A and B alternately, `--rounds` times each (A B, then B A, ...), on the same
   machine minutes apart; per case the best median of each side is kept and the ratio B/A is
   printed (below 1: B is faster). `--filter` (a criterion regex) picks cases of both.
   - `decode`: the decoder benchmarks (`crates/pgarrow-decode/benches/decode.rs`:
     `decode/*`, `chunks/*`, `messages/*`), on captured COPY streams, no server;
   - `changes`: change decoding (pgoutput parsed and decoded into Arrow,
     `changes/update_full/{binary,text}`), the bench target `changes` of whichever package
     holds it on each side (`crates/pgarrow-changes/benches/changes.rs`; before the crate was
     split off, `crates/pgarrow/benches/changes.rs` in package `pgarrow`). Each run first
     captures its stream from a scratch cluster it starts itself (pgarrow-testkit: the
     PostgreSQL server binaries must be there, as for the tests; no server works while it
     is timed: the capture's cluster is stopped by then, the testkit's shared one idles); the
     message counts and bytes of both sides' streams are reported, so
     that the inputs can be seen to be equal. Skipped when `--filter` matches none of its
     cases or a side has no such bench.
2. end to end (not with `--no-e2e`): `benches/e2e.py` with B's binary and A's as
   `--baseline`, interleaved in the same rounds (`--reps`), against scratch clusters of this
   tree's `target/release/examples/serve` (built here first); per case B/A of the median
   wall times is printed, followed by e2e.py's own tables:
   - export, `--tools "pgarrow --to" "pgarrow --partitions 2"`: `pgarrow export` to null,
     arrow-stream and Parquet, and partitioned (`--partitions 2`, to null and Parquet), on
     lineitem (--rows) and wide (--wide-rows);
   - load, `--load --tools "pgarrow import" "pgarrow copy"`: `pgarrow import` of lineitem
     (--rows) from a Parquet file and `pgarrow copy` PostgreSQL -> PostgreSQL.
   Both with the limit (psql) that e2e.py always runs; the Python peers are not run.

Standard library only. Results go to the terminal and to target/compare/RESULTS-<a>-<b>.md
(e2e.py's own tables also to target/compare/e2e.md).
"""

import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "target", "compare")
E2E = os.path.join(ROOT, "benches", "e2e.py")
E2E_DATA = os.path.join(ROOT, "benches", "data")  # where e2e.py leaves its runs as JSON

# The cases of the `changes` bench: it starts a cluster before criterion applies the filter,
# so it is not run for a --filter that matches none of them.
CHANGES_CASES = ("changes/update_full/binary", "changes/update_full/text")


def run(cmd, **kw):
    print("+ " + shlex.join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def resolve(ref):
    if ref == "WORKTREE":
        return "WORKTREE"
    out = subprocess.run(["git", "-C", ROOT, "rev-parse", "--verify", f"{ref}^{{commit}}"],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def checkout(sha):
    """A worktree at `sha`, or the current tree for WORKTREE."""
    if sha == "WORKTREE":
        return ROOT
    path = os.path.join(WORK, f"src-{sha[:12]}")
    if not os.path.isdir(path):
        run(["git", "-C", ROOT, "worktree", "add", "--detach", path, sha])
    return path


def package_name(crate_dir):
    """The `name` of the [package] section of crate_dir/Cargo.toml."""
    section = None
    with open(os.path.join(crate_dir, "Cargo.toml")) as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                section = line
            elif section == "[package]":
                m = re.match(r'name\s*=\s*"([^"]+)"', line)
                if m:
                    return m.group(1)
    sys.exit(f"no package name in {crate_dir}/Cargo.toml")


def changes_crate(src):
    """(package, crate directory) holding the bench `changes` in the tree `src`, or None."""
    crates = os.path.join(src, "crates")
    found = sorted(d for d in os.listdir(crates)
                   if os.path.isfile(os.path.join(crates, d, "benches", "changes.rs")))
    if len(found) > 1:
        sys.exit(f"more than one crate of {src} has benches/changes.rs: {', '.join(found)}")
    if not found:
        return None
    crate = os.path.join(crates, found[0])
    return package_name(crate), crate


def bench_executable(src, env, package, bench, label):
    """Builds the criterion bench `bench` of `package`; its executable."""
    cmd = ["cargo", "bench", "-p", package, "--bench", bench, "--no-run", "--message-format=json"]
    print("+ " + shlex.join(cmd), flush=True)
    out = subprocess.run(cmd, cwd=src, env=env, check=True, stdout=subprocess.PIPE, text=True)
    exe = None
    for line in out.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == bench \
                and "bench" in msg["target"]["kind"] and msg.get("executable"):
            exe = msg["executable"]
    if exe is None:
        sys.exit(f"no {bench} bench executable built for {label}")
    return exe


def seed(target):
    """A new target directory starts as a copy of the newest one of an earlier build, so that
    only what differs is compiled again: the dependencies are the same artifacts, and each
    worktree's own crates are at another path (other metadata hashes), never reused."""
    if os.path.isdir(target):
        return
    earlier = [os.path.join(WORK, d) for d in os.listdir(WORK) if d.startswith("build-")]
    earlier = [d for d in earlier if os.path.isdir(os.path.join(d, "release"))]
    if earlier:
        newest = max(earlier, key=os.path.getmtime)
        try:
            run(["cp", "-a", "--reflink=auto", newest, target])
        except subprocess.CalledProcessError:
            shutil.rmtree(target, ignore_errors=True)


def build(src, label):
    """Builds the release CLI and the criterion bench executables of the tree `src`: the
    CLI's path and {bench: (executable, directory to run it in, package)}."""
    target = os.path.join(WORK, f"build-{label}")
    seed(target)
    env = dict(os.environ, CARGO_TARGET_DIR=target)
    run(["cargo", "build", "--release", "-p", "pgarrow-cli"], cwd=src, env=env)
    benches = {"decode": (bench_executable(src, env, "pgarrow-decode", "decode", label),
                          os.path.join(src, "crates", "pgarrow-decode"), "pgarrow-decode")}
    changes = changes_crate(src)
    if changes is None:
        print(f"   {label}: no crate has benches/changes.rs; the changes bench is skipped",
              flush=True)
    else:
        package, crate = changes
        benches["changes"] = (bench_executable(src, env, package, "changes", label), crate, package)
    return os.path.join(target, "release", "pgarrow"), benches


def criterion_medians(home, baseline):
    """{case: median ns} for every benchmark saved under `baseline`."""
    out = {}
    for dirpath, _, files in os.walk(home):
        if os.path.basename(dirpath) == baseline and "estimates.json" in files:
            with open(os.path.join(dirpath, "estimates.json")) as f:
                est = json.load(f)
            case = os.path.relpath(os.path.dirname(dirpath), home)
            out[case] = est["median"]["point_estimate"]
    return out


def filter_may_match(pattern, cases):
    if not pattern:
        return True
    try:
        return any(re.search(pattern, c) for c in cases)
    except re.error:
        return True  # not a Python regex: let criterion decide


def criterion(sides, args, home):
    """Runs the criterion benches of both sides alternately; the report's lines."""
    names = ["decode"]
    notes = []
    if not all("changes" in s["benches"] for s in sides):
        notes.append("the changes bench was not run: "
                     + ", ".join(f"{s['label']} has none" for s in sides if "changes" not in s["benches"]))
    elif not filter_may_match(args.filter, CHANGES_CASES):
        notes.append(f"the changes bench was not run: --filter {args.filter!r} matches none of "
                     + ", ".join(CHANGES_CASES))
    else:
        names.append("changes")
    for note in notes:
        print("   " + note, flush=True)
    streams = {s["label"]: set() for s in sides}  # what the changes bench says it captured
    for r in range(args.rounds):
        for name in names:
            for s in (sides if r % 2 == 0 else sides[::-1]):
                exe, cwd, _ = s["benches"][name]
                cmd = [exe, "--bench", "--noplot", "--save-baseline", f"{s['label']}-r{r}"]
                if args.filter:
                    cmd.append(args.filter)
                out = run(cmd, cwd=cwd, env=dict(os.environ, CRITERION_HOME=os.path.join(home, name)),
                          stdout=subprocess.PIPE, text=True)
                if name == "changes":
                    streams[s["label"]].update(
                        l.strip() for l in out.stdout.splitlines()
                        if re.match(r"\s*\w+: \d+ messages, \d+ bytes\s*$", l))
    lines = []
    for name in names:
        best = []
        for s in sides:
            merged = {}
            for r in range(args.rounds):
                for case, ns in criterion_medians(os.path.join(home, name), f"{s['label']}-r{r}").items():
                    merged[case] = min(ns, merged.get(case, ns))
            best.append(merged)
        a_pkg, b_pkg = (s["benches"][name][2] for s in sides)
        where = f"package {a_pkg}" if a_pkg == b_pkg else f"A: package {a_pkg}, B: package {b_pkg}"
        lines += [f"criterion `{name}` ({where}), best median of {args.rounds} alternating "
                  "round(s) per side:", "",
                  "| case | A ms | B ms | B/A |", "|---|--:|--:|--:|"]
        for case in sorted(set(best[0]) & set(best[1])):
            a, b = best[0][case], best[1][case]
            lines.append(f"| {case} | {a / 1e6:.2f} | {b / 1e6:.2f} | {b / a:.3f} |")
        only = sorted(set(best[0]) ^ set(best[1]))
        if only:
            lines += ["", "cases on one side only: " + ", ".join(only)]
        if name == "changes":
            a, b = (sorted(streams[s["label"]]) for s in sides)
            if a == b:
                lines += ["", "captured streams, the same on both sides: " + "; ".join(a)]
            else:
                lines += ["", "**the captured streams differ** (the ratios compare different "
                          f"inputs): A: {'; '.join(a)}; B: {'; '.join(b)}"]
        lines.append("")
    for note in notes:
        lines += [note, ""]
    return lines


def e2e_ratios(path, since, title):
    """B/A of the median wall times of each case of an e2e.py JSON file written after
    `since` (`X` is B's, `X [baseline]` A's): the table's rows."""
    if not os.path.exists(path) or os.path.getmtime(path) < since:
        return [f"| {title} | no results ({path} not written by this run) | | | |"]
    with open(path) as f:
        runs = json.load(f)["runs"]
    rows = []
    for name, b_runs in runs.items():
        if name.endswith(" [baseline]") or f"{name} [baseline]" not in runs:
            continue
        a = [r["wall"] for r in runs[f"{name} [baseline]"] if "error" not in r]
        b = [r["wall"] for r in b_runs if "error" not in r]
        if not a or not b:
            err = next((r["error"] for r in runs[f"{name} [baseline]"] + b_runs if "error" in r), "?")
            rows.append(f"| {title} | {name} | failed: {err} | | |")
            continue
        ma, mb = statistics.median(a), statistics.median(b)
        rows.append(f"| {title} | {name} | {ma:.2f} ({min(a):.2f}-{max(a):.2f}) "
                    f"| {mb:.2f} ({min(b):.2f}-{max(b):.2f}) | {mb / ma:.3f} |")
    return rows


def e2e(sides, args):
    """The export and load suites of e2e.py, B against A as --baseline; the report's text."""
    results = os.path.join(WORK, "e2e.md")
    if os.path.exists(results):
        os.remove(results)
    run(["cargo", "build", "--release", "-p", "pgarrow-testkit", "--example", "serve"], cwd=ROOT)
    base = [sys.executable, E2E, "--pgarrow", sides[1]["cli"], "--baseline", sides[0]["cli"],
            "--reps", str(args.reps), "--results", results]
    rows = []
    since = time.time()
    run(base + ["--tools", "pgarrow --to", "pgarrow --partitions 2", "--rows", str(args.rows), "--wide-rows", str(args.wide_rows)])
    for dataset in ("lineitem", "wide"):
        if dataset == "lineitem" or args.wide_rows > 0:
            rows += e2e_ratios(os.path.join(E2E_DATA, f"e2e-{dataset}.json"), since, dataset)
    since = time.time()
    run(base + ["--load", "--tools", "pgarrow import", "pgarrow copy", "--rows", str(args.rows)])
    rows += e2e_ratios(os.path.join(E2E_DATA, "e2e-load.json"), since, "load")
    text = (f"\nend to end, B/A of the median wall times of {args.reps} interleaved round(s) "
            "(min-max in brackets):\n\n| data | case | A s | B s | B/A |\n|---|---|--:|--:|--:|\n"
            + "\n".join(rows) + "\n")
    print(text, flush=True)
    with open(results) as f:
        return text + "\nend to end, e2e.py's tables (B; A as [baseline]):\n\n" + f.read()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="the reference (e.g. main, HEAD~1)")
    p.add_argument("b", help="the change (e.g. a branch, HEAD, or WORKTREE)")
    p.add_argument("--rounds", type=int, default=2, help="criterion rounds per side (default 2)")
    p.add_argument("--rows", type=int, default=2_000_000, help="lineitem rows end to end (export and load)")
    p.add_argument("--wide-rows", type=int, default=1_000_000, help="wide rows end to end (0: skip)")
    p.add_argument("--reps", type=int, default=3, help="end-to-end rounds")
    p.add_argument("--filter", default="", help="only criterion cases matching this (a regex)")
    p.add_argument("--no-e2e", action="store_true", help="criterion only")
    p.add_argument("--build-only", action="store_true",
                   help="check out and build both sides, then stop (measure later)")
    args = p.parse_args()

    os.makedirs(WORK, exist_ok=True)
    shas = [resolve(name) for name in (args.a, args.b)]
    if shas[0] == shas[1]:
        sys.exit("A and B are the same commit")
    sides = []
    for name, sha in zip((args.a, args.b), shas):
        label = "worktree" if sha == "WORKTREE" else sha[:12]
        src = checkout(sha)
        cli, benches = build(src, label)
        sides.append({"name": name, "label": label, "src": src, "cli": cli, "benches": benches})
    if args.build_only:
        for s in sides:
            print(f"built {s['name']} ({s['label']}) in {s['src']}: {s['cli']}; "
                  + ", ".join(f"{n} bench of {pkg}: {exe}" for n, (exe, _, pkg) in s["benches"].items()))
        return

    home = os.path.join(WORK, "criterion")
    shutil.rmtree(home, ignore_errors=True)
    lines = [f"## `{args.a}` ({sides[0]['label']}) vs `{args.b}` ({sides[1]['label']})", ""]
    lines += criterion(sides, args, home)
    text = "\n".join(lines)
    print()
    print(text)

    if not args.no_e2e:
        text += e2e(sides, args)
    out = os.path.join(WORK, f"RESULTS-{sides[0]['label']}-{sides[1]['label']}.md")
    with open(out, "w") as f:
        f.write(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
