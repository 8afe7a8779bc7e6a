"""Mutation testing of the modules whose numbers users read (`make mutate`).

cosmic-ray plants one small bug at a time (an operator, a constant, a comparison) in a module
and runs the fast tests that cover it; a mutant the tests do not notice "survives". Each
module runs in its own scratch copy of the tree under `build/mutation/`, since cosmic-ray
edits files on disk, and a run that is stopped picks up where it stopped when started again
on unchanged sources.

Survivors are either killed by a new test or listed in `mutation/explained.toml` with the
reason no test should notice them. The report, `mutation/survivors.md`, gives each module's
score and every survivor; the command exits with 1 while a survivor is not explained.

    .venv/bin/python mutation/mutate.py                    # every module, two at a time
    .venv/bin/python mutation/mutate.py metrics runs       # some of them
    .venv/bin/python mutation/mutate.py --report           # the report from the last runs
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = ROOT / "build" / "mutation"
EXPLAINED = ROOT / "mutation" / "explained.toml"
REPORT = ROOT / "mutation" / "survivors.md"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Target:
    """A module (file or package) and the fast tests that are its oracle, fastest first."""

    path: str
    tests: tuple[str, ...]
    deselect: tuple[str, ...] = ()
    timeout: float = 60.0


SOFT_F1_BEHAVIOUR = (
    "tests/test_behaviour.py::test_soft_f1_beats_a_constant_predictor_and_the_untrained_network"
)

TARGETS = {  # largest first, so that two jobs end together
    "growth": Target(
        "growml/growth",
        (
            "tests/test_schedule.py",
            "tests/test_growth_methods.py",
            "tests/test_growth_parts.py",
            "tests/test_tiny.py",
            "tests/test_pool.py",
            "tests/test_behaviour.py",
            "tests/test_growth.py",
        ),
        deselect=(SOFT_F1_BEHAVIOUR,),
    ),
    "losses": Target(
        "growml/losses",
        (
            "tests/test_losses.py",
            "tests/test_independent.py",
            "tests/test_softset.py",
        ),
        deselect=(  # fits of a whole network, each a second or more
            "tests/test_softset.py::test_growth_and_pruning_work_with_soft_f1",
            "tests/test_softset.py::test_fit_with_soft_f1_stores_and_reports_the_threshold",
        ),
    ),
    "runs": Target(
        "growml/runs",
        (
            "tests/test_run_directory.py",
            "tests/test_records.py",
            "tests/test_workdir.py",
            "tests/test_growth_methods.py",
            "tests/test_prediction_inputs.py",
            "tests/test_consistency.py",
            "tests/test_outputs.py",
            "tests/test_independent.py",
            *(  # refused and damaged run directories, through the command line
                f"tests/test_cli.py::{name}"
                for name in (
                    "test_existing_run_is_kept_unless_overwrite",
                    "test_overwrite_never_deletes_a_directory_that_is_not_a_run",
                    "test_out_below_a_file_or_above_the_working_directory_is_refused",
                    "test_damaged_run_directory_is_reported_not_crashed_on",
                )
            ),
        ),
    ),
    "metrics": Target(
        "growml/train/metrics.py", ("tests/test_independent.py", "tests/test_trainer.py")
    ),
}

# cosmic-ray replaces each binary operator by every other one and each comparison by every
# other one: eleven mutants per `+`, seven per `<`. Most of them are killed by the first test
# that runs (a float or tensor has no `>>`) and they would make a run several hours long. The
# mutants kept are the ones a slip of the hand makes: the inverse arithmetic operator, a
# comparison moved across its boundary or negated, a sign dropped.
KEPT_BINARY = (
    "Add_Sub",
    "Sub_Add",
    "Mul_Div",
    "Div_Mul",
    "FloorDiv_Div",
    "Pow_Mul",
    "Mod_FloorDiv",
)
KEPT_COMPARISON = (
    "Lt_LtE", "LtE_Lt", "Gt_GtE", "GtE_Gt", "Eq_NotEq", "NotEq_Eq", "Is_IsNot", "IsNot_Is",
    "In_NotIn", "NotIn_In",
)  # fmt: skip
EXCLUDED_OPERATORS = (
    rf"core/ReplaceBinaryOperator_(?!(?:{'|'.join(KEPT_BINARY)})$)",
    rf"core/ReplaceComparisonOperator_(?!(?:{'|'.join(KEPT_COMPARISON)})$)",
    r"core/ReplaceUnaryOperator_USub_",  # -x to +x, ~x, not x; Delete_USub already drops the sign
)


def _module_files(target: Target) -> list[Path]:
    module = ROOT / target.path
    return sorted(module.rglob("*.py")) if module.is_dir() else [module]


def _fingerprint(files: list[Path], *settings: object) -> str:
    digest = hashlib.sha256(repr(settings).encode())
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _copy_tree(destination: Path) -> None:
    """Copy the files git knows of (committed or not, but not ignored) into `destination`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for relative in filter(None, listed):
        source = ROOT / relative
        if source.is_file():
            (destination / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / relative)


def _test_command(target: Target) -> list[str]:
    command = [str(BIN / "python"), "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
    return command + list(target.tests) + [f"--deselect={d}" for d in target.deselect]


def _config(target: Target) -> str:
    command = _test_command(target)
    excluded = ", ".join(json.dumps(e) for e in EXCLUDED_OPERATORS)
    return (
        "[cosmic-ray]\n"
        f'module-path = "{target.path}"\n'
        f"timeout = {target.timeout}\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(' '.join(command))}\n"
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
        "[cosmic-ray.filters.operators-filter]\n"
        f"exclude-operators = [{excluded}]\n"
    )


def _tool(name: str, *args: str, cwd: Path) -> None:
    subprocess.run([str(BIN / name), *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def _module_fingerprint(target: Target) -> str:
    return _fingerprint(_module_files(target), target.path, EXCLUDED_OPERATORS)


# What a resumed session keeps of its scratch directory; the rest is copied afresh.
_SESSION_FILES = ("session.sqlite", "module-fingerprint", "recheck.json")


def run_target(name: str, target: Target) -> None:
    """Mutate one module in its scratch copy.

    A session goes on where it stopped while the module is unchanged, with the current tests:
    tests added since judge the mutants still to run, and ``--recheck`` judges the earlier
    survivors again. A changed module starts a new session.
    """
    scratch = SCRATCH / name
    stamp = scratch / "module-fingerprint"
    fingerprint = _module_fingerprint(target)
    fresh = not (
        (scratch / "session.sqlite").exists()
        and stamp.exists()
        and stamp.read_text() == fingerprint
    )
    if fresh:
        shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True, exist_ok=True)
    for child in scratch.iterdir():  # a stopped run may have left a mutant on disk
        if child.name not in _SESSION_FILES:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    _copy_tree(scratch)
    (scratch / "cr.toml").write_text(_config(target))
    imported = subprocess.run(
        [str(BIN / "python"), "-c", "import growml; print(growml.__file__)"],
        cwd=scratch, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    if not Path(imported).resolve().is_relative_to(scratch.resolve()):
        raise SystemExit(f"{name}: the tests would import {imported}, not the scratch copy.")
    if subprocess.run(_test_command(target), cwd=scratch, capture_output=True).returncode:
        raise SystemExit(f"{name}: the tests fail before any mutation; fix them first.")
    if fresh:
        _tool("cosmic-ray", "init", "cr.toml", "session.sqlite", cwd=scratch)
        _tool("cr-filter-operators", "session.sqlite", "cr.toml", cwd=scratch)
        stamp.write_text(fingerprint)
    started = time.monotonic()
    print(f"{name}: mutating {target.path} ({'new session' if fresh else 'resumed'})", flush=True)
    _tool("cosmic-ray", "exec", "cr.toml", "session.sqlite", cwd=scratch)
    print(f"{name}: done in {time.monotonic() - started:.0f} s", flush=True)


def recheck_target(name: str, target: Target) -> None:
    """Run a session's unexplained survivors again against the current tests (after tests
    were added).

    Only the survivors run, each in a fresh copy of the tree, so this takes minutes where the
    whole session takes an hour; the module itself must be unchanged, since a mutant is named
    by its operator's occurrence in the module's source.
    """
    scratch = SCRATCH / name
    stamp = scratch / "module-fingerprint"
    if not stamp.exists():
        raise SystemExit(f"{name}: no session to recheck; run `mutate.py {name}` first.")
    if stamp.read_text() != _module_fingerprint(target):
        raise SystemExit(f"{name}: {target.path} changed since its session; run it again whole.")
    explanations = load_explanations()
    survivors = [
        m
        for m in read_session(name) or []
        if m.outcome == "survived" and _explanation(explanations, m) is None
    ]
    copy = SCRATCH / f"{name}-recheck"
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir(parents=True)
    _copy_tree(copy)
    rechecked = _load_rechecks(name)
    command = " ".join(_test_command(target))
    print(f"{name}: rechecking {len(survivors)} survivor(s)", flush=True)
    for mutant in survivors:
        try:
            done = subprocess.run(
                [str(BIN / "cosmic-ray"), "mutate-and-test", mutant.module,
                 f"core/{mutant.operator}", str(mutant.occurrence), command],
                cwd=copy, capture_output=True, text=True, timeout=target.timeout + 30,
            )  # fmt: skip
            outcome = json.loads(done.stdout)["test_outcome"]
        except subprocess.TimeoutExpired:
            outcome = "killed"  # as cosmic-ray counts a test run past its timeout
        rechecked[mutant.job] = {"outcome": outcome}
        (scratch / "recheck.json").write_text(json.dumps(rechecked, indent=1))
    killed = sum(rechecked[m.job]["outcome"] == "killed" for m in survivors)
    print(f"{name}: {killed} of {len(survivors)} survivor(s) now killed", flush=True)
    shutil.rmtree(copy)


def _load_rechecks(name: str) -> dict[str, dict[str, str]]:
    path = SCRATCH / name / "recheck.json"
    return json.loads(path.read_text()) if path.exists() else {}


@dataclass(frozen=True)
class Mutant:
    job: str
    occurrence: int
    module: str
    function: str
    line: int
    operator: str
    before: str
    after: str
    outcome: str
    diff: str


def _changed_lines(diff: str) -> tuple[str, str]:
    body = [line for line in diff.splitlines() if not line.startswith(("---", "+++", "@@"))]
    removed = " / ".join(line[1:].strip() for line in body if line.startswith("-"))
    added = " / ".join(line[1:].strip() for line in body if line.startswith("+"))
    return removed, added


def read_session(name: str) -> list[Mutant] | None:
    session = SCRATCH / name / "session.sqlite"
    if not session.exists():
        return None
    dumped = subprocess.run(
        [str(BIN / "cosmic-ray"), "dump", str(session)], check=True, capture_output=True, text=True
    ).stdout
    rechecked = _load_rechecks(name)
    mutants = []
    for line in dumped.splitlines():
        job, result = json.loads(line)
        spec = job["mutations"][0]
        if result is None:
            outcome = "pending"
        elif result["worker_outcome"] == "skipped":
            continue  # an excluded operator
        else:
            outcome = result["test_outcome"] or result["worker_outcome"]
        if job["job_id"] in rechecked:
            outcome = rechecked[job["job_id"]]["outcome"]
        diff = (result or {}).get("diff") or ""
        before, after = _changed_lines(diff)
        mutants.append(
            Mutant(
                job["job_id"], spec["occurrence"], spec["module_path"],
                spec.get("definition_name") or "", spec["start_pos"][0],
                spec["operator_name"].removeprefix("core/"), before, after, outcome, diff,
            )
        )  # fmt: skip
    return sorted(mutants, key=lambda m: (m.module, m.line, m.operator))


KINDS = {
    "equivalent": "the mutant behaves as the original on every input the code can receive",
    "tuning": "a tuning constant, tolerance or default whose exact value no behaviour pins "
    "down; the reason says what chose it",
    "presentation": "how a plot or message looks (size, line width, layout, the line a warning "
    "points at); nothing is computed from it",
}


@dataclass(frozen=True)
class Explanation:
    kind: str
    reason: str


def load_explanations() -> dict[tuple[str, str, str, str], Explanation]:
    """Survivors no test should kill, keyed by module, function and the changed line before
    and after the mutation (``after = "*"``: any mutant of the line)."""
    explanations = {}
    for entry in tomllib.loads(EXPLAINED.read_text()).get("survivor", []):
        key = (entry["module"], entry.get("function", ""), entry["before"], entry["after"])
        if entry["kind"] not in KINDS:
            raise SystemExit(f"{EXPLAINED.name}: unknown kind {entry['kind']!r} for {key}.")
        explanations[key] = Explanation(entry["kind"], entry["reason"])
    return explanations


def _explanation(explanations, mutant):
    for after in (mutant.after, "*"):
        key = (mutant.module, mutant.function, mutant.before, after)
        if key in explanations:
            return key
    return None


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "—"


def report(names: list[str]) -> int:
    """Write the report; return how many survivors are not explained."""
    explanations = load_explanations()
    used = set()
    rows, unexplained, explained = [], [], []
    earlier, kept = _earlier_report()
    kept_lines: list[str] = []
    reused = 0
    for name in names:
        mutants = read_session(name)
        if mutants is None:
            # Not mutated in this build: its figures and survivors from the last report.
            path = TARGETS[name].path
            if path in earlier:
                rows.append(earlier[path].replace(f"| {path} |", f"| {path} (earlier run) |", 1))
                reused += 1
                kept_lines.extend(line for line in kept if line.startswith(f"- `{path}"))
            continue
        counts = {
            o: sum(m.outcome == o for m in mutants) for o in ("killed", "survived", "pending")
        }
        other = len(mutants) - sum(counts.values())
        by_kind = dict.fromkeys(KINDS, 0)
        for m in (m for m in mutants if m.outcome == "survived"):
            key = _explanation(explanations, m)
            if key is None:
                unexplained.append(m)
            else:
                used.add(key)
                by_kind[explanations[key].kind] += 1
                explained.append((m, explanations[key]))
        left = counts["survived"] - sum(by_kind.values())
        score = _percent(counts["killed"], counts["killed"] + counts["survived"])
        killable = _percent(counts["killed"], counts["killed"] + left)
        cells = [TARGETS[name].path, len(mutants), counts["killed"], counts["survived"]]
        cells += [*by_kind.values(), left, counts["pending"] + other, score, killable]
        rows.append("| " + " | ".join(map(str, cells)) + " |")
    lines = [
        "# Mutation testing",
        "",
        "Written by `make mutate` (`mutation/mutate.py`, cosmic-ray). The score is the share of",
        "mutants the tests kill. Every survivor is either unexplained (a test is missing) or",
        "explained in `mutation/explained.toml` as one of:",
        "",
        *[f"- **{kind}**: {text}." for kind, text in KINDS.items()],
        "",
        "The score counts every survivor; the score of the rest leaves the explained ones out.",
        "",
        "| module | mutants | killed | survived | equivalent | tuning | presentation "
        "| unexplained | not run | score | score of the rest |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        "A module marked *earlier run* was not mutated in this build: its row and survivors "
        "are those of the last report.",
        "",
        f"## Unexplained survivors ({len(unexplained)})",
        "",
    ]
    for m in unexplained:
        lines += [
            f"`{m.module}:{m.line}` in `{m.function}`, {m.operator}:",
            "",
            "```diff",
            m.diff.strip(),
            "```",
            "",
        ]
    lines += [f"## Explained survivors ({len(explained) + len(kept_lines)})", ""]
    for m, explanation in explained:
        lines += [
            f"- `{m.module}:{m.line}` `{m.before}` → `{m.after}` ({explanation.kind}): "
            f"{explanation.reason}"
        ]
    lines += kept_lines
    stale = sorted(set(explanations) - used)
    if stale and not reused and len(rows) == len(TARGETS):
        lines += ["", f"## Entries of {EXPLAINED.name} no survivor matches", ""]
        lines += [f"- `{module}` `{before}` → `{after}`" for module, _, before, after in stale]
    REPORT.write_text("\n".join(lines) + "\n")
    return len(unexplained)


def _earlier_report() -> tuple[dict[str, str], list[str]]:
    """The last report's table rows by module path, and its lines of explained survivors."""
    if not REPORT.exists():
        return {}, []
    text = REPORT.read_text().split("## Unexplained survivors", 1)
    rows = {}
    for line in text[0].splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("| growml/") and cells:
            rows[cells[0].removesuffix(" (earlier run)")] = line
    explained = text[1].split("## Explained survivors", 1)[-1] if len(text) > 1 else ""
    return rows, [line for line in explained.splitlines() if line.startswith("- `")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE",
                        help=f"some of {', '.join(TARGETS)} (default: all)")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=2, help="modules mutated at once (default 2)")
    parser.add_argument("--report", action="store_true", help="only write the report")
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="rerun the unexplained survivors with the current tests",
    )
    args = parser.parse_args()
    unknown = sorted(set(args.modules) - set(TARGETS))
    if unknown:
        parser.error(f"unknown module {unknown[0]!r}; the modules are {', '.join(TARGETS)}.")
    names = args.modules or list(TARGETS)
    os.environ.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    if args.recheck:
        for name in names:
            recheck_target(name, TARGETS[name])
    elif not args.report:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for future in [pool.submit(run_target, n, TARGETS[n]) for n in names]:
                future.result()
    left = report(list(TARGETS))
    print(f"{REPORT.relative_to(ROOT)}: {left} survivor(s) without an explanation")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
