"""growml compare --storage: workers on one database train every member once, a killed worker's
member is trained by another, and the table is the one a single local worker makes."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from growml.cli import app
from optuna.trial import TrialState
from typer.testing import CliRunner

import growml
from growml.compare import compare
from growml.compare.members import Member
from growml.compare.shared import MEMBER, RECORD, SharedStudy, join, train_shared

runner = CliRunner()
GROWML = str(Path(sys.executable).parent / "growml")
# Six members of a fraction of a second each: the growing run and widths 8 and 32, seeds 0, 1.
SMALL = ["moons", "--widths", "8,32", "--seeds", "2", "--epochs", "20"]
KEYS = ["grown-s0", "fixed-8-s0", "fixed-32-s0", "grown-s1", "fixed-8-s1", "fixed-32-s1"]
BEATS = ["--set", "tune.heartbeat_interval=1", "--set", "tune.grace_period=2"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def table(document):
    """A comparison's rows and members without their times: what must not depend on where or
    when the members were trained."""
    times = ("seconds", "train_seconds", "wall_seconds")
    return [
        [{key: value for key, value in item.items() if key not in times} for item in document[part]]
        for part in ("rows", "members")
    ]


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The same comparison trained by one local worker (--jobs 1)."""
    config = growml.resolve_config({"data": {"source": "moons"}, "train": {"epochs": 20}})
    out = tmp_path_factory.mktemp("local") / "compare"
    return compare(config, [[8], [32]], 2, jobs=1, out=out).document


def trials(url, study):
    return optuna.load_study(study_name=study, storage=url).trials


def members_of(url, study, state):
    return sorted(t.user_attrs[MEMBER] for t in trials(url, study) if t.state == state)


def worker(url, study, out, *args):
    command = [GROWML, "compare", *SMALL, "--storage", url, "--study", study, "--out", str(out)]
    command += ["--jobs", "1", *BEATS, *map(str, args), "--json"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, timeout=300):
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr
    return json.loads(stdout)


def test_two_workers_on_postgresql_train_every_member_once(postgres_url, tmp_path, local):
    workers = [worker(postgres_url, "pair", tmp_path / f"w{i}") for i in (0, 1)]
    documents = [finish(process) for process in workers]
    assert members_of(postgres_url, "pair", TrialState.COMPLETE) == sorted(KEYS)
    assert not [t for t in trials(postgres_url, "pair") if t.state == TrialState.FAIL]
    trained = [document["trained_here"] for document in documents]
    assert sorted(trained[0] + trained[1]) == sorted(KEYS)  # each member by one worker
    for i, document in enumerate(documents):
        assert document["status"] == "complete" and document["study"] == "pair"
        assert table(document) == table(local)  # same metrics, parameters, widths, epochs
        assert json.loads((tmp_path / f"w{i}" / "compare.json").read_text()) == document
        assert (tmp_path / f"w{i}" / "plots" / "compare.png").is_file()
        runs = sorted(path.name for path in (tmp_path / f"w{i}" / "runs").iterdir())
        assert runs == sorted(trained[i])  # a member's run stays on the machine that trained it


def test_a_killed_workers_member_is_trained_by_another(postgres_url, tmp_path, local):
    # One seed, one width: two members of a few seconds each (every epoch a single batch).
    slow = ["--set", "train.early_stopping=false", "--set", "train.batch_size=4096"]
    args = ["--widths", "8", "--seeds", "1", "--epochs", "3000", *slow]
    victim = subprocess.Popen(
        [GROWML, "compare", "moons", *args, "--storage", postgres_url, "--study", "kill"]
        + ["--out", str(tmp_path / "victim"), "--jobs", "1", *BEATS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    running = []
    while not running and time.monotonic() < deadline:
        time.sleep(0.2)
        if (tmp_path / "victim" / "compare.json").exists():
            running = members_of(postgres_url, "kill", TrialState.RUNNING)
    time.sleep(1.0)  # past its first heartbeat
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    assert len(running) == 1
    result = invoke(
        "compare", "moons", *args, "--storage", postgres_url, "--study", "kill",
        "--out", tmp_path / "survivor", "--jobs", 1, *BEATS, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert members_of(postgres_url, "kill", TrialState.FAIL) == running
    assert members_of(postgres_url, "kill", TrialState.COMPLETE) == ["fixed-8-s0", "grown-s0"]
    assert running[0] in document["trained_here"]
    assert [m["error"] for m in document["members"]] == [None, None]


def test_a_sqlite_storage_shares_a_comparison_and_counts_every_workers_members(tmp_path, local):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    config = growml.resolve_config({"data": {"source": "moons"}, "train": {"epochs": 20}})
    calls = []
    first = compare(
        config, [[8], [32]], 2, jobs=1, out=tmp_path / "a", storage=url,
        progress=lambda done, total, record: calls.append((done, total, record is None)),
    )  # fmt: skip
    assert calls == [(0, 6, True)] + [(done, 6, False) for done in range(1, 7)]
    assert table(first.document) == table(local)
    records = {t.user_attrs[MEMBER]: t.user_attrs[RECORD] for t in trials(url, "compare-moons")}
    assert records == {m["key"]: m for m in first.document["members"]}

    # A worker that joins a finished comparison trains nothing and writes the same table.
    calls.clear()
    result = invoke("compare", *SMALL, "--storage", url, "--out", tmp_path / "b")
    assert result.exit_code == 0, result.output
    assert "0 of 6 members trained here; study compare-moons" in result.stdout
    second = json.loads((tmp_path / "b" / "compare.json").read_text())
    assert table(second) == table(local) and second["trained_here"] == []
    assert not (tmp_path / "b" / "runs").exists() or not any((tmp_path / "b" / "runs").iterdir())
    assert len(trials(url, "compare-moons")) == 6

    # A directory of another study's comparison is refused before the study is made.
    other = invoke("compare", *SMALL, "--storage", url, "--study", "other", "--out", tmp_path / "a")
    assert other.exit_code == 2
    assert "or another study; choose another --out." in other.stderr
    assert optuna.get_all_study_names(url) == ["compare-moons"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--widths", "8", "--seeds", "2"], "holds a comparison with other seeds than this one"),
        (["--widths", "8,64", "--seeds", "1"], "holds a comparison with other widths than this"),
        (["--widths", "8", "--seeds", "1", "--set", "train.lr=0.1"], "with other settings than"),
        (["--widths", "8", "--seeds", "1", "--overwrite"], "choose another --study to start"),
    ],
)
def test_a_worker_with_another_plan_is_refused_and_writes_nothing(tmp_path, args, message):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    config = growml.resolve_config({"data": {"source": "moons"}, "train": {"epochs": 20}})
    compare(config, [[8]], 1, jobs=1, out=tmp_path / "a", storage=url)
    before = [(t.number, t.state) for t in trials(url, "compare-moons")]
    result = invoke(
        "compare", "moons", "--epochs", 20, *args, "--storage", url, "--out", tmp_path / "b"
    )
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert not (tmp_path / "b").exists()
    assert [(t.number, t.state) for t in trials(url, "compare-moons")] == before


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("nonsense", "--storage 'nonsense' is not a database URL"),
        ("postgresql://growml@127.0.0.1:1/growml", "cannot open the storage postgresql://"),
        ("sqlite:////no/such/folder/study.db", "cannot open the storage sqlite:////no/such"),
    ],
)
def test_a_bad_or_unreachable_storage_is_one_sentence(tmp_path, storage, message):
    result = invoke("compare", *SMALL, "--storage", storage, "--out", tmp_path / "c")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {message}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists()


def test_a_study_of_something_else_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(storage=url, study_name="tuned").set_user_attr("growml", {})
    result = invoke(
        "compare", *SMALL, "--storage", url, "--study", "tuned", "--out", tmp_path / "c"
    )
    assert result.exit_code == 2
    assert "study 'tuned' holds something other than a growml comparison" in result.stderr


def test_a_worker_taken_for_killed_goes_on_without_a_traceback(tmp_path):
    """A worker silent past the grace period has its trial failed by another; when it comes
    back with its record, the record is dropped, the member is queued again and trained, and
    the worker ends with every member's record."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    shared = SharedStudy(url=url, name="taken-over", heartbeat_interval=60, grace_period=120)
    member = Member(key="m", label="grown", kind="grown", seed=0, widths=None, config={})
    study = join(shared, {"plan": 1}, ["m"])
    attempts = []

    def train(member):
        attempts.append(member.key)
        if len(attempts) == 1:  # meanwhile another worker fails the trial
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            study._storage.set_trial_state_values(running[0]._trial_id, TrialState.FAIL)
        return {"seconds": {"wall": 1.0}, "attempt": len(attempts)}

    records, trained = train_shared(study, shared, [member], train, jobs=1)
    assert attempts == ["m", "m"]
    assert records["m"]["attempt"] == 2 and trained == ["m"]
