#!/usr/bin/env bash
# buf breaking: fails when proto/ changes the API in a way that breaks
# existing clients (rules: `breaking` in buf.yaml, FILE = wire, JSON and
# generated-source compatibility per file).
#
#   scripts/buf-breaking.sh            # pick the baseline as below
#   scripts/buf-breaking.sh <git-ref>  # compare against that commit/tag/branch
#
# What proto/ (the working tree, committed or not) is compared against:
#   * HEAD is not main's tip (a topic branch, a PR):  main's tip, i.e.
#     buf breaking proto --against '.git#ref=<main>,subdir=proto'
#     (the local branch `main`, else `origin/main`).
#   * HEAD is main (CI on main, or a clone with no main branch): the commit
#     before, HEAD~1 ('.git#ref=HEAD~1,subdir=proto'), so a commit that
#     breaks the API fails the build that tests it.
#     Exception: when proto/ has uncommitted changes, HEAD itself, so you
#     catch a break before you commit it.
#   * Skipped, with a message and exit 0, when there is no baseline: not a
#     git checkout, a clone with a single commit, a shallow clone whose
#     baseline commit was not fetched (fetch more history, e.g.
#     `git fetch --deepen=1`, to check), or a baseline without proto/.
#
# `subdir=proto` compares the module rooted at proto/ (file paths
# convgroups/v1/*.proto on both sides), so the check works against commits
# made before buf.yaml existed; the rules come from ./buf.yaml.
#
# buf: $BUF, else `buf` on PATH, else the copy scripts/test.sh installs
# into .tools (npm install @bufbuild/buf).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf 'buf-breaking: %s\n' "$*"; }

if [[ -z "${BUF:-}" ]]; then
    if command -v buf >/dev/null 2>&1; then
        BUF="$(command -v buf)"
    else
        eval "$(scripts/test.sh --tools-only)"
    fi
fi

if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    say "skipped: $ROOT is not a git checkout, so there is no earlier proto/ to compare with"
    exit 0
fi

head="$(git rev-parse HEAD)"
base_ref=""
why=""
if [[ $# -gt 0 ]]; then
    base_ref="$1"
    why="the given ref"
else
    main_ref=""
    for candidate in refs/heads/main refs/remotes/origin/main; do
        if git rev-parse --verify -q "$candidate^{commit}" >/dev/null; then
            main_ref="$candidate"
            break
        fi
    done
    if [[ -n "$main_ref" && "$(git rev-parse "$main_ref")" != "$head" ]]; then
        base_ref="$main_ref"
        why="the tip of main (HEAD is not main)"
    elif ! git diff --quiet HEAD -- proto; then
        base_ref="HEAD"
        why="HEAD (proto/ has uncommitted changes)"
    else
        base_ref="HEAD~1"
        why="the commit before HEAD"
        if ! git rev-parse --verify -q "HEAD~1^{commit}" >/dev/null; then
            if [[ "$(git rev-parse --is-shallow-repository)" == true ]]; then
                say "skipped: shallow clone without the commit before HEAD (run 'git fetch --deepen=1' to check)"
            else
                say "skipped: HEAD is the only commit, so there is no earlier API to break"
            fi
            exit 0
        fi
    fi
fi

if ! base="$(git rev-parse --verify -q "$base_ref^{commit}")"; then
    say "skipped: $base_ref is not in this clone (shallow clone? run 'git fetch --deepen=1')"
    exit 0
fi
if ! git cat-file -e "$base:proto" 2>/dev/null; then
    say "skipped: $base_ref ($(git rev-parse --short "$base")) has no proto/ directory"
    exit 0
fi

say "proto/ against $why: $base_ref = $(git log -1 --format='%h %s' "$base")"
# The full commit id: buf clones the local .git and checks that commit out.
"$BUF" breaking proto --against ".git#ref=$base,subdir=proto"
say "no breaking changes"
