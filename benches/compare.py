#!/usr/bin/env python3
"""What a change costs, in one command: builds two git refs and runs them interleaved.

    python3 benches/compare.py A B [--rounds 3] [--rows N] [--wide-rows N] [--no-e2e]
    just bench-compare A B

Each ref (a commit, branch or tag; `WORKTREE` means the files as they are now, uncommitted
changes included) is checked out into its own git worktree under target/compare/ and built
there with its own target directory (so no build reuses the other's artifacts):

1. criterion: the decoder benchmarks (`crates/pgarrow-decode/benches/decode.rs`: `decode/*`,
   `chunks/*`, `messages/*`) of A and B run alternately, `--rounds` times each, on the same
   machine minutes apart; per case the best median of each side is kept and the ratio B/A is
   printed (below 1: B is faster);
2. end to end: `benches/e2e.py --tools pgarrow` measures B's binary with A's as `--baseline`,
   interleaved in the same rounds, against one scratch cluster (lineitem and wide tables).

Standard library only. Results go to the terminal and to target/compare/RESULTS-<a>-<b>.md.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "target", "compare")


def run(cmd, **kw):
    print("+ " + " ".join(cmd), flush=True)
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


def build(src, label):
    """Builds the release CLI and the criterion bench binary; returns their paths."""
    target = os.path.join(WORK, f"build-{label}")
    env = dict(os.environ, CARGO_TARGET_DIR=target)
    run(["cargo", "build", "--release", "-p", "pgarrow-cli"], cwd=src, env=env)
    out = subprocess.run(
        ["cargo", "bench", "-p", "pgarrow-decode", "--bench", "decode", "--no-run",
         "--message-format=json"],
        cwd=src, env=env, check=True, capture_output=True, text=True)
    bench = None
    for line in out.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "decode" \
                and msg.get("executable"):
            bench = msg["executable"]
    if bench is None:
        sys.exit(f"no decode bench executable built for {label}")
    return os.path.join(target, "release", "pgarrow"), bench


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


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="the reference (e.g. main, HEAD~1)")
    p.add_argument("b", help="the change (e.g. a branch, HEAD, or WORKTREE)")
    p.add_argument("--rounds", type=int, default=2, help="criterion rounds per side (default 2)")
    p.add_argument("--rows", type=int, default=2_000_000, help="lineitem rows end to end")
    p.add_argument("--wide-rows", type=int, default=1_000_000, help="wide rows end to end")
    p.add_argument("--reps", type=int, default=3, help="end-to-end rounds")
    p.add_argument("--filter", default="", help="only criterion cases matching this")
    p.add_argument("--no-e2e", action="store_true", help="criterion only")
    args = p.parse_args()

    os.makedirs(WORK, exist_ok=True)
    sides = []
    for name in (args.a, args.b):
        sha = resolve(name)
        label = "worktree" if sha == "WORKTREE" else sha[:12]
        src = checkout(sha)
        cli, bench = build(src, label)
        sides.append({"name": name, "label": label, "src": src, "cli": cli, "bench": bench})
    if sides[0]["label"] == sides[1]["label"]:
        sys.exit("A and B are the same commit")

    home = os.path.join(WORK, "criterion")
    shutil.rmtree(home, ignore_errors=True)
    for r in range(args.rounds):
        for s in sides:
            cmd = [s["bench"], "--bench", "--noplot", "--save-baseline", f"{s['label']}-r{r}"]
            if args.filter:
                cmd.append(args.filter)
            run(cmd, cwd=os.path.join(s["src"], "crates", "pgarrow-decode"),
                env=dict(os.environ, CRITERION_HOME=home), stdout=subprocess.DEVNULL)
    best = []
    for s in sides:
        merged = {}
        for r in range(args.rounds):
            for case, ns in criterion_medians(home, f"{s['label']}-r{r}").items():
                merged[case] = min(ns, merged.get(case, ns))
        best.append(merged)
    lines = [f"## `{args.a}` ({sides[0]['label']}) vs `{args.b}` ({sides[1]['label']})", "",
             f"criterion, best median of {args.rounds} alternating round(s) per side:", "",
             "| case | A ms | B ms | B/A |", "|---|--:|--:|--:|"]
    for case in sorted(set(best[0]) & set(best[1])):
        a, b = best[0][case], best[1][case]
        lines.append(f"| {case} | {a / 1e6:.2f} | {b / 1e6:.2f} | {b / a:.3f} |")
    only = sorted(set(best[0]) ^ set(best[1]))
    if only:
        lines.append("")
        lines.append("cases on one side only: " + ", ".join(only))
    text = "\n".join(lines) + "\n"
    print()
    print(text)

    if not args.no_e2e:
        e2e_results = os.path.join(WORK, "e2e.md")
        if os.path.exists(e2e_results):
            os.remove(e2e_results)
        run(["cargo", "build", "--release", "-p", "pgarrow-testkit", "--example", "serve"], cwd=ROOT)
        run([sys.executable, os.path.join(ROOT, "benches", "e2e.py"), "--tools", "pgarrow",
             "--pgarrow", sides[1]["cli"], "--baseline", sides[0]["cli"],
             "--rows", str(args.rows), "--wide-rows", str(args.wide_rows),
             "--reps", str(args.reps), "--results", e2e_results])
        with open(e2e_results) as f:
            text += "\nend to end (B; A as [baseline]):\n\n" + f.read()
    out = os.path.join(WORK, f"RESULTS-{sides[0]['label']}-{sides[1]['label']}.md")
    with open(out, "w") as f:
        f.write(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
