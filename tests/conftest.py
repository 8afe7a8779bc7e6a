import os
import shutil
import subprocess

import pytest
from postgres import NoServer, start_postgres


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Generated datasets (mnist1d) are cached in a per-session folder, not the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("GROWML_CACHE", str(tmp_path_factory.mktemp("growml-cache")))
    yield
    mp.undo()


@pytest.fixture
def write_csv(tmp_path):
    """Write ``text`` to a CSV file in the test's folder and return its path."""

    def write(text: str, name: str = "data.csv"):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server's URL for the session; skipped where none can start,
    except on CI, where the tests that need one must run."""
    try:
        url, pg_ctl, folder = start_postgres()
    except NoServer as reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the PostgreSQL tests, but no server started: {reason}")
        pytest.skip(f"no PostgreSQL server could be started: {reason}")
    yield url
    subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, timeout=60)
    shutil.rmtree(folder, ignore_errors=True)
