"""The environment a test ran in: which installed distributions a change of version reaches.

End to end, with real distributions in a site directory on PYTHONPATH (a ``.dist-info``
with ``top_level.txt``, as pip writes it) and tia in a subprocess; then `difference` and
the records it reads, one rule at a time.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import GitProject, clean_env
from tia.environment import (
    Environment,
    ImportedDistributions,
    Owners,
    Slices,
    difference,
    environments_to_json,
    read_environments,
    read_owners,
)

PLAIN = "tests/test_1_plain.py::test_plain"
ALPHA = "tests/test_2_alpha.py::test_alpha"
SPAWN = "tests/test_3_spawn.py::test_spawn"


def install(site: Path, name: str, version: str, value: int = 1) -> None:
    """A distribution `name` at `version`, owning the package `name` with ``VALUE``."""
    for old in site.glob(f"{name}-*.dist-info"):
        shutil.rmtree(old)
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "top_level.txt").write_text(f"{name}\n")
    (site / name).mkdir(exist_ok=True)
    (site / name / "__init__.py").write_text(f"VALUE = {value}\n")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    install(site, "alpha_lib", "1.0")
    install(site, "beta_lib", "1.0")
    return site


@pytest.fixture
def env_project(tmp_path: Path, site: Path) -> GitProject:
    """Three tests: one imports nothing, one imports alpha_lib, one starts a process."""
    proj = GitProject(tmp_path / "proj")
    proj.write_all(
        {
            "pyproject.toml": "[tool.pytest.ini_options]\ntestpaths = ['tests']\n",
            "tests/test_1_plain.py": "def test_plain():\n    assert 1 + 1 == 2\n",
            "tests/test_2_alpha.py": """
                def test_alpha():
                    import alpha_lib

                    assert alpha_lib.VALUE == 1
            """,
            "tests/test_3_spawn.py": """
                import subprocess
                import sys

                def test_spawn():
                    subprocess.run([sys.executable, "-c", "pass"], check=True)
            """,
        }
    )
    proj.commit("initial")
    result = proj.tia("map", env=clean_env(PYTHONPATH=str(site)))
    assert result.rc == 0, result
    return proj


@pytest.mark.slow
def test_an_upgraded_distribution_selects_the_tests_that_imported_it(
    env_project: GitProject, site: Path
) -> None:
    env = clean_env(PYTHONPATH=str(site))
    assert env_project.select(env=env) == {}
    install(site, "alpha_lib", "1.1", value=2)
    selected = env_project.select(env=env)
    # The test that started a process may have imported anything there.
    assert set(selected) == {ALPHA, SPAWN}
    assert selected[ALPHA] == [
        {"rule": "changed", "detail": "environment changed: imports alpha-lib 1.0 -> 1.1"}
    ]
    assert selected[SPAWN][0]["rule"] == "all"
    result = env_project.run(env=env)
    assert result.ran() == {ALPHA, SPAWN}
    assert result.failed() == {ALPHA}


@pytest.mark.slow
def test_a_distribution_no_test_imported_selects_only_the_tests_that_start_processes(
    env_project: GitProject, site: Path
) -> None:
    install(site, "beta_lib", "2.0")
    assert set(env_project.select(env=clean_env(PYTHONPATH=str(site)))) == {SPAWN}


@pytest.mark.slow
def test_a_removed_distribution_selects_the_tests_that_imported_it(
    env_project: GitProject, site: Path
) -> None:
    shutil.rmtree(next(site.glob("alpha_lib-*.dist-info")))
    shutil.rmtree(site / "alpha_lib")
    selected = env_project.select(env=clean_env(PYTHONPATH=str(site)))
    assert set(selected) == {ALPHA, SPAWN}
    assert "alpha-lib 1.0 -> (none)" in selected[ALPHA][0]["detail"]


@pytest.mark.slow
def test_a_newly_installed_distribution_selects_everything(env_project: GitProject, site: Path) -> None:
    # An optional import or an entry point may now find it, in any test.
    install(site, "gamma_lib", "1.0")
    selected = env_project.select(env=clean_env(PYTHONPATH=str(site)))
    assert set(selected) == {PLAIN, ALPHA, SPAWN}
    assert selected[PLAIN] == [{"rule": "all", "detail": "environment changed: gamma-lib 1.0 installed"}]


# --- the rules, on fingerprints -------------------------------------------------------------------

BASE = Environment("CPython 3.12.1", {"alpha": "1.0", "beta": "1.0", "pytest": "8.4.2"})


def test_a_slice_keeps_the_named_distributions_and_has_its_own_id() -> None:
    part = BASE.only(["alpha", "pytest", "not-installed"])
    assert part.distributions == {"alpha": "1.0", "pytest": "8.4.2"}
    assert not part.complete
    assert part.id != Environment(part.python, part.distributions).id


def test_difference_for_a_slice() -> None:
    then = BASE.only(["alpha"])
    assert difference(BASE, then, BASE) is None
    # beta is not in the slice: its upgrade does not reach the test.
    assert difference(Environment(BASE.python, {**BASE.distributions, "beta": "2"}), then, BASE) is None
    upgraded = Environment(BASE.python, {**BASE.distributions, "alpha": "2"})
    assert difference(upgraded, then, BASE) == ("changed", "imports alpha 1.0 -> 2")
    added = Environment(BASE.python, {**BASE.distributions, "new": "1"})
    assert difference(added, then, BASE) == ("all", "new 1 installed")
    assert difference(Environment("CPython 3.13.0", BASE.distributions), then, BASE) == (
        "all",
        "Python CPython 3.12.1 -> CPython 3.13.0",
    )
    # Without the environment it was sliced from, an addition cannot be told apart.
    assert difference(BASE, then, None) == ("all", "installed packages changed")


def test_difference_for_a_complete_environment() -> None:
    assert difference(BASE, BASE, None) is None
    upgraded = Environment(BASE.python, {**BASE.distributions, "beta": "2"})
    assert difference(upgraded, BASE, None) == ("all", "beta 1.0 -> 2")


def test_recorded_environments_read_back_and_bad_entries_are_left_out() -> None:
    slices = Slices(BASE)
    part_id = slices.of(["alpha"])
    assert slices.of(None) == BASE.id
    assert slices.of({"alpha"}) == part_id
    doc = environments_to_json(slices.entries)
    assert read_environments(doc) == {BASE.id: (BASE, None), part_id: (BASE.only(["alpha"]), BASE.id)}
    forged = {**doc, "0123456789abcdef": doc[part_id]}  # an id that is not its content's
    broken = {**doc, "x": {"env": {"python": 3}}, "y": "text"}
    assert read_environments(forged).keys() == read_environments(broken).keys() == {BASE.id, part_id}
    assert read_environments(["not", "a", "dict"]) == {}


def test_a_distributions_name_and_version_read_from_its_headers_are_the_ones_its_metadata_gives(
    tmp_path: Path,
) -> None:
    from importlib import metadata

    from tia.environment import _headers

    dists = list(metadata.distributions())
    assert len(dists) > 5  # pytest, its dependencies and tia's, at least
    # Headers after the first blank line are the long description's text, not the metadata's.
    made = tmp_path / "made-1.0.dist-info"
    made.mkdir()
    (made / "METADATA").write_text("Metadata-Version: 2.1\nName: made\n\nVersion: 9\nName: other\n")
    dists.append(metadata.PathDistribution(made))
    for dist in dists:
        fields = dist.metadata
        assert _headers(dist) == (fields.get("Name") or "", fields.get("Version") or "")
    assert _headers(dists[-1]) == ("made", "")


def test_imported_distributions_use_the_owners_they_are_given(site: Path) -> None:
    # tia reads the owners with the environment and hands them to the plugin: given, they
    # are used as they are, and the process reads no distribution's metadata itself.
    given = Owners({"alpha_lib": ["given-alpha"]}, frozenset({"metadata-only"}))
    sys.path.insert(0, str(site))
    try:
        imported = ImportedDistributions(given)
        before = imported.now()
        assert before == {"metadata-only"}  # what pytest's own modules map to is not given
        import alpha_lib  # noqa: F401

        assert imported.now() == {"metadata-only", "given-alpha"}
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("alpha_lib", None)


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"names": {}},
        {"names": [], "unowned": []},
        {"names": {"a": "b"}, "unowned": []},
        {"names": {"a": [1]}, "unowned": []},
        {"names": {}, "unowned": "x"},
        {"names": {}, "unowned": [None]},
    ],
)
def test_owners_read_back_from_json_and_refuse_any_other_shape(data: object) -> None:
    owners = read_owners()
    assert Owners.from_json(json.loads(json.dumps(owners.to_json()))) == owners
    with pytest.raises(ValueError):
        Owners.from_json(data)


def test_imported_distributions_grow_with_what_the_process_imports(site: Path) -> None:
    sys.path.insert(0, str(site))
    try:
        imported = ImportedDistributions()
        before = imported.now()
        assert "alpha-lib" not in before
        assert "pytest" in before  # this very process runs pytest
        import alpha_lib  # noqa: F401

        assert imported.now() == before | {"alpha-lib"}
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("alpha_lib", None)
