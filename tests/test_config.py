"""Unit tests for tia.config: defaults, [tool.tia], environment and arguments, in that order."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tia.config import DEFAULT_RUN_ALL, Config, load_config
from tia.errors import UsageError


@pytest.fixture
def root(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    return repo.resolve()


def write_pyproject(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "pyproject.toml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load(
    root: Path,
    cwd: Path | None = None,
    *,
    cache_dir: str | None = None,
    workers: str | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    """`load_config` with an empty environment unless one is given."""
    return load_config(
        root, cwd or root, cache_dir=cache_dir, workers=workers, environ={} if environ is None else environ
    )


def tia_table(root: Path, body: str) -> Path:
    return write_pyproject(root, "[tool.tia]\n" + textwrap.dedent(body))


# --- defaults ---------------------------------------------------------------------------------------


def assert_defaults(config: Config, root: Path) -> None:
    assert config.root == root
    assert config.cache_dir == root / ".tia"
    assert config.since is None
    assert config.run_all == DEFAULT_RUN_ALL
    assert config.ignore == ()
    # The fastest exact engine: sys.monitoring where Python has it (tests/test_engines.py).
    assert config.engine == ("monitoring" if sys.version_info >= (3, 12) else "coverage")
    assert config.workers == "decide"
    assert config.narrow_module_changes is True
    assert config.source is None


def test_without_a_pyproject_every_setting_has_its_default(root: Path) -> None:
    assert_defaults(load(root), root)


def test_a_pyproject_without_a_tia_table_gives_the_defaults(root: Path) -> None:
    write_pyproject(
        root,
        """
        [project]
        name = "demo"

        [tool.pytest.ini_options]
        addopts = "-q"
        """,
    )
    assert_defaults(load(root), root)


def test_an_empty_tia_table_gives_the_defaults_and_is_the_source(root: Path) -> None:
    path = tia_table(root, "")
    config = load(root)
    assert config.source == path
    assert config.run_all == DEFAULT_RUN_ALL
    assert config.workers == "decide"
    assert config.cache_dir == root / ".tia"


# --- each key ---------------------------------------------------------------------------------------


def test_since_sets_the_default_base_ref(root: Path) -> None:
    tia_table(root, 'since = "origin/main"\n')
    assert load(root).since == "origin/main"


def test_run_all_replaces_the_default_globs(root: Path) -> None:
    tia_table(root, 'run_all = ["setup.cfg", "ci/*.yml"]\n')
    config = load(root)
    assert config.run_all == ("setup.cfg", "ci/*.yml")
    assert config.runs_all("ci/main.yml") is True
    assert config.runs_all("pyproject.toml") is False


def test_extend_run_all_adds_to_the_default_globs(root: Path) -> None:
    tia_table(root, 'extend_run_all = ["data/*.json"]\n')
    config = load(root)
    assert config.run_all == (*DEFAULT_RUN_ALL, "data/*.json")
    assert config.runs_all("data/users.json") is True
    assert config.runs_all("pyproject.toml") is True


def test_extend_run_all_adds_to_a_replaced_run_all(root: Path) -> None:
    tia_table(root, 'run_all = ["a.cfg"]\nextend_run_all = ["b.cfg"]\n')
    assert load(root).run_all == ("a.cfg", "b.cfg")


def test_ignore_sets_globs_of_disregarded_files(root: Path) -> None:
    tia_table(root, 'ignore = ["docs/*", "*.md"]\n')
    config = load(root)
    assert config.ignore == ("docs/*", "*.md")
    assert config.ignored("docs/index.rst") is True
    assert config.ignored("README.md") is True
    assert config.ignored("src/pkg/mod.py") is False


def test_by_default_nothing_is_ignored(root: Path) -> None:
    config = load(root)
    assert config.ignored("README.md") is False
    assert config.ignored("docs/index.rst") is False


def test_narrow_module_changes_can_be_turned_off(root: Path) -> None:
    tia_table(root, "narrow_module_changes = false\n")
    assert load(root).narrow_module_changes is False


def test_engine_coverage_is_accepted(root: Path) -> None:
    tia_table(root, 'engine = "coverage"\n')
    assert load(root).engine == "coverage"


def test_an_unknown_engine_is_a_usage_error_naming_it(root: Path) -> None:
    tia_table(root, 'engine = "magic"\n')
    with pytest.raises(UsageError, match="'magic'"):
        load(root)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("4", 4), ("0", 0), ('"auto"', "auto"), ('"logical"', "logical"), ('"3"', 3)],
)
def test_workers_accepts_a_count_or_auto(root: Path, value: str, expected: str | int) -> None:
    tia_table(root, f"workers = {value}\n")
    assert load(root).workers == expected


def test_cache_dir_is_relative_to_the_pyproject_that_sets_it(root: Path) -> None:
    tia_table(root, 'cache_dir = "build/tia-cache"\n')
    assert load(root).cache_dir == root / "build" / "tia-cache"


def test_cache_dir_in_a_nested_pyproject_is_relative_to_that_directory(root: Path) -> None:
    sub = root / "services" / "api"
    write_pyproject(sub, '[tool.tia]\ncache_dir = ".cache"\n')
    config = load(root, cwd=sub)
    assert config.cache_dir == sub / ".cache"
    assert config.source == sub / "pyproject.toml"


def test_an_absolute_cache_dir_is_used_as_is(root: Path, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    tia_table(root, f'cache_dir = "{target.as_posix()}"\n')
    assert load(root).cache_dir == target


# --- the default cache_dir: beside pytest's configuration -------------------------------------------

PYTEST_CONFIGS = [
    ("pytest.ini", "[pytest]\n"),
    ("pytest.ini", ""),  # pytest takes a pytest.ini even when it is empty
    (".pytest.ini", "[pytest]\n"),
    ("pytest.toml", "[pytest]\n"),
    ("pyproject.toml", "[tool.pytest.ini_options]\n"),
    ("pyproject.toml", "[tool.pytest]\naddopts = ['-q']\n"),
    ("tox.ini", "[tox]\n\n[pytest]  # pytest's section\naddopts = -q\n"),
    ("setup.cfg", "[metadata]\nname = x\n\n[tool:pytest]\n"),
]


@pytest.mark.parametrize(("name", "text"), PYTEST_CONFIGS)
def test_the_default_cache_dir_is_beside_the_nearest_pytest_configuration(
    root: Path, name: str, text: str
) -> None:
    app = root / "services" / "app"
    (app / "tests").mkdir(parents=True)
    (app / name).write_text(text, encoding="utf-8")
    assert load(root, cwd=app / "tests").cache_dir == app / ".tia"
    assert load(root, cwd=app).cache_dir == app / ".tia"
    assert load(root, cwd=root / "services").cache_dir == root / ".tia"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("tox.ini", "[tox]\nenvlist = py311\n"),
        ("tox.ini", "[testenv]\ncommands = pytest  [pytest]\n"),
        ("setup.cfg", "[metadata]\nname = x\n"),
    ],
)
def test_a_file_that_does_not_configure_pytest_does_not_place_the_cache_dir(
    root: Path, name: str, text: str
) -> None:
    write_pyproject(root, "[tool.pytest.ini_options]\n")
    (root / "sub").mkdir()
    (root / "sub" / name).write_text(text, encoding="utf-8")
    assert load(root, cwd=root / "sub").cache_dir == root / ".tia"


def test_a_pyproject_without_pytest_settings_places_it_only_when_nothing_configures_pytest(
    root: Path,
) -> None:
    # pytest's own last resort: the nearest pyproject.toml becomes its rootdir.
    write_pyproject(root / "lib", '[project]\nname = "lib"\n')
    assert load(root, cwd=root / "lib").cache_dir == root / "lib" / ".tia"
    (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    assert load(root, cwd=root / "lib").cache_dir == root / ".tia"


def test_pytest_configuration_above_the_git_root_is_not_read(root: Path) -> None:
    (root.parent / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (root / "sub").mkdir()
    assert load(root, cwd=root / "sub").cache_dir == root / ".tia"


def test_every_setting_of_the_cache_dir_beats_the_pytest_configuration(root: Path, tmp_path: Path) -> None:
    app = root / "app"
    write_pyproject(app, "[tool.pytest.ini_options]\n")
    tia_table(root, 'cache_dir = "from-pyproject"\n')
    assert load(root, cwd=app).cache_dir == root / "from-pyproject"
    env = {"TIA_CACHE_DIR": str(tmp_path / "from-env")}
    assert load(root, cwd=app, environ=env).cache_dir == tmp_path / "from-env"
    assert load(root, cwd=app, cache_dir=str(tmp_path / "arg"), environ=env).cache_dir == tmp_path / "arg"


# --- finding the pyproject --------------------------------------------------------------------------


def test_the_nearest_pyproject_with_a_tia_table_wins(root: Path) -> None:
    tia_table(root, 'since = "root"\n')
    sub = root / "pkg"
    write_pyproject(sub, '[tool.tia]\nsince = "pkg"\n')
    deeper = sub / "deeper"
    deeper.mkdir()
    assert load(root, cwd=deeper).since == "pkg"
    assert load(root, cwd=sub).since == "pkg"
    assert load(root, cwd=root).since == "root"


def test_a_nearer_pyproject_without_a_tia_table_is_skipped(root: Path) -> None:
    path = tia_table(root, 'since = "root"\n')
    write_pyproject(root / "pkg", '[project]\nname = "pkg"\n')
    config = load(root, cwd=root / "pkg")
    assert config.since == "root"
    assert config.source == path


def test_a_pyproject_above_the_root_is_not_read(root: Path) -> None:
    write_pyproject(root.parent, '[tool.tia]\nsince = "outside"\n')
    config = load(root)
    assert config.since is None
    assert config.source is None


# --- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["colour", "run-all", "Since", "workerz"])
def test_an_unknown_key_is_a_usage_error_that_names_the_key(root: Path, key: str) -> None:
    tia_table(root, f'"{key}" = "x"\n')
    with pytest.raises(UsageError) as info:
        load(root)
    assert f"'{key}'" in str(info.value)
    assert "unknown key" in str(info.value)


def test_the_unknown_key_error_lists_the_known_keys(root: Path) -> None:
    tia_table(root, 'since = "main"\ntypo = 1\n')
    with pytest.raises(UsageError) as info:
        load(root)
    assert info.value.hint is not None
    assert "extend_run_all" in info.value.hint
    assert "'typo'" in str(info.value)


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("since = 1", "since"),
        ("since = ['main']", "since"),
        ("run_all = 'pyproject.toml'", "run_all"),
        ("run_all = [1, 2]", "run_all"),
        ("extend_run_all = 'x.cfg'", "extend_run_all"),
        ("extend_run_all = [true]", "extend_run_all"),
        ("ignore = 'docs/*'", "ignore"),
        ("ignore = [['docs/*']]", "ignore"),
        ("cache_dir = 5", "cache_dir"),
        ("cache_dir = ['.tia']", "cache_dir"),
        ("workers = 'many'", "workers"),
        ("workers = -1", "workers"),
        ("workers = [2]", "workers"),
        ("engine = 1", "engine"),
        ("narrow_module_changes = 'no'", "narrow_module_changes"),
        ("narrow_module_changes = 0", "narrow_module_changes"),
    ],
)
def test_a_value_of_the_wrong_type_is_a_usage_error(root: Path, body: str, key: str) -> None:
    tia_table(root, body + "\n")
    with pytest.raises(UsageError) as info:
        load(root)
    assert key in str(info.value)


@pytest.mark.parametrize("value", ["true", "2.5"])
def test_a_boolean_or_fractional_workers_value_is_a_usage_error(root: Path, value: str) -> None:
    tia_table(root, f"workers = {value}\n")
    with pytest.raises(UsageError, match="workers"):
        load(root)


def test_a_tia_entry_that_is_not_a_table_is_a_usage_error(root: Path) -> None:
    write_pyproject(root, "[tool]\ntia = 1\n")
    with pytest.raises(UsageError, match=r"\[tool.tia\] must be a table"):
        load(root)


def test_a_pyproject_that_is_not_valid_toml_is_a_usage_error(root: Path) -> None:
    write_pyproject(root, "[tool.tia\nsince = \n")
    with pytest.raises(UsageError, match="cannot read"):
        load(root)


# --- precedence -------------------------------------------------------------------------------------


def test_the_environment_overrides_the_pyproject_cache_dir(root: Path, tmp_path: Path) -> None:
    tia_table(root, 'cache_dir = "from-pyproject"\n')
    env_dir = tmp_path / "from-env"
    config = load(root, environ={"TIA_CACHE_DIR": str(env_dir)})
    assert config.cache_dir == env_dir


def test_an_argument_overrides_the_environment_and_the_pyproject(root: Path, tmp_path: Path) -> None:
    tia_table(root, 'cache_dir = "from-pyproject"\n')
    arg_dir = tmp_path / "from-arg"
    config = load(root, cache_dir=str(arg_dir), environ={"TIA_CACHE_DIR": str(tmp_path / "from-env")})
    assert config.cache_dir == arg_dir


def test_each_layer_is_used_when_the_later_ones_are_absent(root: Path, tmp_path: Path) -> None:
    assert load(root).cache_dir == root / ".tia"
    tia_table(root, 'cache_dir = "from-pyproject"\n')
    assert load(root).cache_dir == root / "from-pyproject"
    assert load(root, environ={"TIA_CACHE_DIR": ""}).cache_dir == root / "from-pyproject"
    assert load(root, cache_dir="", environ={}).cache_dir == root / "from-pyproject"


def test_the_workers_argument_overrides_the_pyproject(root: Path) -> None:
    tia_table(root, "workers = 4\n")
    assert load(root).workers == 4
    assert load(root, workers="2").workers == 2
    assert load(root, workers="0").workers == 0
    assert load(root, workers="auto").workers == "auto"


def test_a_bad_workers_argument_is_a_usage_error_naming_the_option(root: Path) -> None:
    with pytest.raises(UsageError, match="-n"):
        load(root, workers="lots")


def test_the_engine_can_come_from_the_environment_and_is_checked(root: Path) -> None:
    assert load(root, environ={"TIA_ENGINE": "coverage"}).engine == "coverage"
    with pytest.raises(UsageError, match="'tracer'"):
        load(root, environ={"TIA_ENGINE": "tracer"})


def test_the_engine_on_the_command_line_wins_over_the_environment_and_the_table(root: Path) -> None:
    tia_table(root, 'engine = "magic"\n')
    config = load_config(root, root, engine="coverage", environ={"TIA_ENGINE": "tracer"})
    assert config.engine == "coverage"


def test_the_environ_argument_replaces_the_process_environment(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIA_CACHE_DIR", str(tmp_path / "from-process"))
    assert load(root, environ={}).cache_dir == root / ".tia"
    assert load_config(root, root).cache_dir == tmp_path / "from-process"


# --- runs_all ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "requirements-dev.txt",
        "requirements.txt",
        "requirements/test.txt",
        "constraints.txt",
        "poetry.lock",
        "uv.lock",
        "setup.cfg",
        "tox.ini",
        ".python-version",
    ],
)
def test_the_default_run_all_globs_match_project_wide_files(root: Path, path: str) -> None:
    assert load(root).runs_all(path) is True


@pytest.mark.parametrize(
    "path",
    ["tests/data/x.toml", "src/pkg/mod.py", "docs/requirements.md", "README.md", "pyproject.toml.bak"],
)
def test_the_default_run_all_globs_do_not_match_other_files(root: Path, path: str) -> None:
    assert load(root).runs_all(path) is False
