import pytest


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
