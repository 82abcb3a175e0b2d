"""End to end: each selection rule, on a real git repository, with pytest in a subprocess."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.conftest import ALL_SAMPLE_TESTS, PYPROJECT_WITH_TESTS, GitProject, clean_env

pytestmark = pytest.mark.slow


def rules(reasons: list[dict[str, str]]) -> set[str]:
    return {r["rule"] for r in reasons}


def test_first_run_maps_the_whole_suite_and_says_so(project: GitProject) -> None:
    result = project.run()
    assert result.rc == 0, result
    assert "no map yet" in result.stderr
    assert result.ran() == ALL_SAMPLE_TESTS


def test_nothing_changed_runs_nothing_and_exits_0(mapped: GitProject) -> None:
    result = mapped.run()
    assert result.rc == 0, result
    assert "no tests affected" in result.stderr
    assert result.ran() == set()


def test_a_change_inside_one_function_runs_only_the_tests_that_execute_it(mapped: GitProject) -> None:
    mapped.replace("pkg/core.py", "return a * b", "return a * b * 1")
    selected = mapped.select()
    assert set(selected) == {"tests/test_core.py::test_mul"}
    assert selected["tests/test_core.py::test_mul"] == [
        {"rule": "changed", "file": "pkg/core.py", "scope": "mul"}
    ]
    result = mapped.run()
    assert result.ran() == {"tests/test_core.py::test_mul"}, result
    # Test files with nothing selected are not even collected: only test_core.py's 4 tests are;
    # the final line still counts the 5 unaffected tests as deselected.
    assert "collected 4 items / 3 deselected / 1 selected" in result.stdout
    assert "1 passed, 5 deselected" in result.stdout


def test_unaffected_test_files_are_not_collected_even_where_a_conftest_says_collect_everything(
    project: GitProject,
) -> None:
    # boltons' conftest answers pytest_ignore_collect with False ("collect it") for every
    # path; pytest takes the first answer that is not None, so tia's must come first.
    conftest = project.read("tests/conftest.py")
    project.write(
        "tests/conftest.py",
        conftest + "\n\ndef pytest_ignore_collect(collection_path, config):\n    return False\n",
    )
    project.commit("conftest")
    assert project.run().rc == 0
    project.replace("pkg/core.py", "return a * b", "return a * b * 1")
    result = project.run()
    assert result.ran() == {"tests/test_core.py::test_mul"}, result
    assert "collected 4 items / 3 deselected / 1 selected" in result.stdout


def test_comments_blank_lines_and_moving_code_select_nothing(mapped: GitProject) -> None:
    mapped.replace("pkg/core.py", "    # multiply\n", "    # multiply two numbers\n\n")
    mapped.replace("pkg/core.py", '"""Core arithmetic."""\n', '"""Core arithmetic."""\n\n# a comment\n')
    assert mapped.select() == {}


def test_a_changed_docstring_counts_as_a_change(mapped: GitProject) -> None:
    mapped.replace("pkg/core.py", "def add(a, b):\n", 'def add(a, b):\n    """Sum."""\n')
    assert set(mapped.select()) == {"tests/test_core.py::test_add"}


def test_a_module_constant_selects_the_tests_that_read_it(mapped: GitProject) -> None:
    # Rebinding a name can only change code that reads it: test_limit reads LIMIT, the
    # other tests of test_core.py run code of core.py that does not.
    mapped.replace("pkg/core.py", "LIMIT = 10", "LIMIT = 11")
    assert mapped.select() == {
        "tests/test_core.py::test_limit": [
            {
                "rule": "changed",
                "file": "pkg/core.py",
                "scope": "<module>",
                "detail": "LIMIT read in tests/test_core.py::test_limit",
            }
        ]
    }
    result = mapped.run()
    assert result.ran() == {"tests/test_core.py::test_limit"}, result
    assert result.failed() == {"tests/test_core.py::test_limit"}, result


def test_without_narrowing_a_module_constant_selects_every_test_that_depends_on_the_module(
    mapped: GitProject,
) -> None:
    mapped.replace(
        "pyproject.toml",
        "[tool.pytest.ini_options]",
        "[tool.tia]\nnarrow_module_changes = false\n\n[tool.pytest.ini_options]",
    )
    mapped.commit("configuration")
    assert mapped.run("--all").rc == 0
    mapped.replace("pkg/core.py", "LIMIT = 10", "LIMIT = 11")
    assert set(mapped.select()) == {
        "tests/test_core.py::test_add",
        "tests/test_core.py::test_mul",
        "tests/test_core.py::test_box",
        "tests/test_core.py::test_limit",
    }


def test_a_module_level_change_that_may_do_more_selects_every_test_that_depends_on_the_module(
    mapped: GitProject,
) -> None:
    # A call of anything but a known side-effect-free builtin may do more than bind LIMIT:
    # print writes.
    mapped.replace("pkg/core.py", "LIMIT = 10", "LIMIT = print('limit') or 10")
    selected = mapped.select()
    assert set(selected) == {
        "tests/test_core.py::test_add",
        "tests/test_core.py::test_mul",
        "tests/test_core.py::test_box",
        "tests/test_core.py::test_limit",
    }
    assert all(r[0]["scope"] == "<module>" for r in selected.values())


def test_a_constant_read_through_another_module_selects_its_importers(mapped: GitProject) -> None:
    # test_scaled never executes a line of consts.py: only the import graph links them.
    mapped.replace("pkg/consts.py", "FACTOR = 2", "FACTOR = 3")
    selected = mapped.select()
    assert "tests/test_uses.py::test_scaled" in selected
    result = mapped.run()
    assert "tests/test_uses.py::test_scaled" in result.failed(), result


def test_a_class_attribute_selects_the_modules_tests(mapped: GitProject) -> None:
    mapped.replace("pkg/core.py", "SIZE = 3", "SIZE = 4")
    result = mapped.run()
    assert "tests/test_core.py::test_box" in result.failed(), result


def test_an_overload_stub_s_decorator_selects_nothing(project: GitProject) -> None:
    # Typed code declares overloads before the implementation: each stub's binding is
    # replaced by the next def at once, so removing `@overload` changes nothing a test sees.
    project.write(
        "pkg/twice.py",
        "from typing import overload\n\n\n@overload\ndef twice(x: int) -> int: ...\n"
        "@overload\ndef twice(x: str) -> str: ...\ndef twice(x):\n    return x * 2\n",
    )
    project.write(
        "tests/test_twice.py",
        "from pkg.twice import twice\n\n\ndef test_twice():\n    assert twice(2) == 4\n",
    )
    project.commit("overloads")
    assert project.run().rc == 0
    project.replace("pkg/twice.py", "@overload\ndef twice(x: int)", "def twice(x: int)")
    assert project.select() == {}
    # The implementation's own line still counts.
    project.replace("pkg/twice.py", "def twice(x):", "def twice(x, times=2):")
    assert set(project.select()) == {"tests/test_twice.py::test_twice"}


def _zip_module(project: GitProject, body: str) -> None:
    with zipfile.ZipFile(project.path / "tests/mods.zip", "w") as archive:
        archive.writestr("zipped.py", body)


def test_code_imported_from_an_archive_depends_on_the_archive(project: GitProject) -> None:
    # The archive's members are no files of the work tree: what ran from them counts as a
    # read of the archive, for every test that ran it, imported first or not.
    _zip_module(project, "def answer():\n    return 42\n")
    project.write(
        "tests/test_zipped.py",
        "import sys\nfrom pathlib import Path\n\n"
        "sys.path.insert(0, str(Path(__file__).parent / 'mods.zip'))\n\n\n"
        "def test_first():\n    import zipped\n\n    assert zipped.answer() == 42\n\n\n"
        "def test_second():\n    import zipped\n\n    assert zipped.answer() == 42\n",
    )
    project.commit("an archive")
    assert project.run().rc == 0
    assert project.select() == {}
    _zip_module(project, "def answer():\n    return 41\n")
    assert set(project.select()) == {"tests/test_zipped.py::test_first", "tests/test_zipped.py::test_second"}
    result = project.run()
    assert result.failed() == {"tests/test_zipped.py::test_first", "tests/test_zipped.py::test_second"}, (
        result
    )


def test_code_that_ran_where_a_cache_was_filled_selects_the_tests_that_found_it_filled(
    project: GitProject,
) -> None:
    # test_fill fills the cache for "x" and runs `helper`, test_find finds "x" kept,
    # test_other fills it for "y" only: never getting a result another test made, it
    # is not selected for a change to code it did not run.
    project.write_all(
        {
            "pyproject.toml": PYPROJECT_WITH_TESTS,
            "pkg/__init__.py": "",
            "pkg/kept.py": """
                _KEPT = {}


                def kept(key):
                    if key in _KEPT:
                        return _KEPT[key]
                    _KEPT[key] = value = make(key)
                    return value


                def make(key):
                    return key * 2


                def helper():
                    return 1
            """,
            "tests/test_kept.py": """
                from pkg.kept import helper, kept


                def test_fill():
                    assert kept("x") == "xx"
                    assert helper() == 1


                def test_find():
                    assert kept("x") == "xx"


                def test_other():
                    assert kept("y") == "yy"
            """,
        }
    )
    project.commit("a cache")
    assert project.run().rc == 0
    project.replace("pkg/kept.py", "return 1", "return 2")
    selected = project.select()
    assert set(selected) == {"tests/test_kept.py::test_fill", "tests/test_kept.py::test_find"}
    (reason,) = selected["tests/test_kept.py::test_find"]
    assert reason["rule"] == "changed"
    assert "filled the cache pkg/kept.py::kept keeps" in reason["detail"]
    project.replace("pkg/kept.py", "return key * 2", "return key * 3")
    assert set(project.select()) == {f"tests/test_kept.py::test_{name}" for name in ("fill", "find", "other")}


TOKENS = {
    "pyproject.toml": PYPROJECT_WITH_TESTS,
    "pkg/__init__.py": "",
    # sqlparse's token types: an attribute made on first use, by name, at import time.
    "pkg/tokens.py": """
        class _Kind(tuple):
            def __getattr__(self, name):
                new = _Kind(self + (name,))
                setattr(self, name, new)
                return new


        Token = _Kind()
        Text = Token.Text
        """,
    "pkg/filters.py": """
        from pkg import tokens


        class Output:
            prefix = "$"

            def render(self, name):
                return self.prefix + name


        def kind():
            return tokens.Text
        """,
    "tests/test_filters.py": """
        from pkg.filters import Output


        def test_render():
            assert Output().render("x") == "$x"
        """,
    "tests/test_kinds.py": """
        from pkg import filters, tokens


        def test_text():
            assert tokens.Text == ("Text",)


        def test_kind():
            assert filters.kind() is tokens.Text
        """,
}


def test_code_that_reads_attributes_by_name_at_import_sees_no_class_it_never_met(tmp_path) -> None:
    # `_Kind.__getattr__` runs at import and sets an attribute by a computed name: it
    # could read a changed class attribute only on an object of that class, and no code
    # that ran at import met `Output`.  So the change is the tests' that ran its code.
    project = GitProject(tmp_path / "tokens")
    project.write_all(TOKENS)
    project.commit("initial")
    assert project.run("--all").rc == 0
    project.replace("pkg/filters.py", 'prefix = "$"', 'prefix = "#"')
    selected = project.select()
    assert set(selected) == {"tests/test_filters.py::test_render"}, selected
    assert project.run().failed() == {"tests/test_filters.py::test_render"}


def test_a_data_file_selects_exactly_the_tests_that_read_it(mapped: GitProject) -> None:
    mapped.write("pkg/data.json", '{"value": 6}\n')
    selected = mapped.select()
    assert set(selected) == {"tests/test_reader.py::test_load"}
    assert selected["tests/test_reader.py::test_load"][0]["file"] == "pkg/data.json"


def test_a_new_unused_function_selects_nothing(mapped: GitProject) -> None:
    text = mapped.read("pkg/core.py")
    (mapped.path / "pkg/core.py").write_text(text + "\n\ndef _unused_helper():\n    return 42\n")
    assert mapped.select() == {}
    assert mapped.run().ran() == set()


def test_a_new_unused_function_in_a_package_that_star_imports_selects_nothing(project: GitProject) -> None:
    # funcy's `__init__.py` star-imports its submodules, which spell no such name.
    project.write_all(
        {
            "pkg/__init__.py": "from .core import *\nfrom .uses import scaled\n",
            # It may read any name of the package, but not one that was never there.
            "pkg/lookup.py": "import pkg\n\n\ndef get(name):\n    return getattr(pkg, name)\n",
            "tests/test_lookup.py": """
                from pkg import lookup


                def test_get():
                    assert lookup.get("scaled")(1) == 2
                """,
        }
    )
    project.commit("a package that star-imports")
    assert project.tia("map").rc == 0
    text = project.read("pkg/__init__.py")
    project.write("pkg/__init__.py", text + "\n\ndef _unused_helper():\n    return 42\n")
    assert project.select() == {}
    # A def by a name that the star import bound shadows it: whatever may read it runs.
    project.write("pkg/__init__.py", text + "\n\ndef add(a, b):\n    return 0\n")
    assert "tests/test_lookup.py::test_get" in project.select()


def test_a_new_function_is_narrowed_after_a_test_named_its_module_in_a_string(mapped: GitProject) -> None:
    # funcy's test_rpartial passes 'funcy' to a function; a module got by its name may
    # be handed to anything, but only code that lists its names can see a new function.
    mapped.write(
        "tests/test_named.py",
        "import importlib\n\n\ndef test_named():\n    assert importlib.import_module('pkg.core')\n",
    )
    mapped.commit("a test that names pkg.core")
    assert mapped.run().rc == 0
    text = mapped.read("pkg/core.py")
    mapped.write("pkg/core.py", text + "\n\ndef _unused_helper():\n    return 42\n")
    assert set(mapped.select()) == {"tests/test_named.py::test_named"}
    # A constant that existed before may be read by whatever got the module by name.
    mapped.write("pkg/core.py", text.replace("LIMIT = 10", "LIMIT = 11"))
    assert {"tests/test_core.py::test_add", "tests/test_core.py::test_limit"} <= set(mapped.select())


def test_import_time_code_that_never_ran_does_not_stand_for_what_imports_its_name(
    project: GitProject,
) -> None:
    # PyYAML ships examples/pygments-lexer/yaml.py: to the static graph, every `import
    # yaml` may be it, but no test ever imported it.
    listing = "from pkg import core\n\nNAMES = sorted(vars(core))\n"
    project.write_all({"examples/lexer/pkg.py": listing, "pkg/names.py": listing})
    project.write(
        "tests/test_names.py", "from pkg import names\n\n\ndef test_names():\n    assert names.NAMES\n"
    )
    project.commit("a module named pkg that no test imports")
    assert project.tia("map").rc == 0
    text = project.read("pkg/core.py")
    project.write("pkg/core.py", text + "\n\ndef _unused_helper():\n    return 42\n")
    # pkg/names.py lists core's names at import, and a test imported it: that test runs.
    assert set(project.select()) == {"tests/test_names.py::test_names"}


def test_a_failed_test_runs_again_until_it_passes(mapped: GitProject) -> None:
    mapped.replace("pkg/core.py", "return a + b", "return a - b")
    first = mapped.run()
    assert first.failed() == {"tests/test_core.py::test_add"}, first
    assert first.rc == 1
    again = mapped.run()
    assert again.ran() == {"tests/test_core.py::test_add"}, again
    assert rules(mapped.select()["tests/test_core.py::test_add"]) == {"failed"}
    mapped.replace("pkg/core.py", "return a - b", "return a + b")
    fixed = mapped.run()
    assert fixed.rc == 0
    assert mapped.run().ran() == set()


def test_a_test_whose_subtest_failed_runs_again(project: GitProject) -> None:
    # pytest 9 reports each failed `subTest` of a unittest test under the test's node id,
    # before the test's own report, which passes (cachetools' threading tests).
    project.write(
        "tests/test_sub.py",
        """
        import unittest

        from pkg import core


        class TestAdd(unittest.TestCase):
            def test_add(self):
                for a in (1, 2):
                    with self.subTest(a=a):
                        self.assertEqual(core.add(a, a), 2 * a)
        """,
    )
    project.commit("a unittest test with subtests")
    assert project.tia("map").rc == 0
    project.replace("pkg/core.py", "return a + b", "return a + b + 1")
    assert project.run().rc == 1
    again = project.run()
    assert again.rc == 1, again
    assert "tests/test_sub.py::TestAdd::test_add" in again.output
    assert rules(project.select()["tests/test_sub.py::TestAdd::test_add"]) == {"failed"}
    verify = project.run("--verify")
    assert "verify: 2 failing tests, 0 of them missed by the selection" in verify.stderr, verify


def test_failed_tests_run_first(mapped: GitProject) -> None:
    mapped.replace("pkg/reader.py", '["value"]', '["value"] + 1')
    mapped.run()
    mapped.replace("pkg/core.py", "return a + b", "return b + a")
    result = mapped.tia("run", "--", "-v", "-p", "no:cacheprovider")
    order = [
        line.split(" ")[0]
        for line in result.stdout.splitlines()
        if line.startswith("tests/") and ("PASSED" in line or "FAILED" in line)
    ]
    assert order == ["tests/test_reader.py::test_load", "tests/test_core.py::test_add"], result


def test_a_new_test_is_selected(mapped: GitProject) -> None:
    mapped.write("tests/test_new.py", "def test_brand_new():\n    assert True\n")
    result = mapped.run()
    assert result.ran() == {"tests/test_new.py::test_brand_new"}, result
    assert mapped.run().ran() == set()


def test_a_new_parametrization_is_selected(mapped: GitProject) -> None:
    mapped.write(
        "tests/test_param.py",
        """
        import pytest

        @pytest.mark.parametrize("n", [1, 2])
        def test_n(n):
            assert n
        """,
    )
    mapped.run()
    mapped.replace("tests/test_param.py", "[1, 2]", "[1, 2, 3]")
    result = mapped.run()
    assert "tests/test_param.py::test_n[3]" in result.ran(), result


def test_since_ref_selects_committed_staged_unstaged_and_untracked_changes(mapped: GitProject) -> None:
    mapped.git("checkout", "-q", "-b", "feature")
    mapped.replace("pkg/core.py", "return a + b", "return b + a")
    mapped.commit("committed change")
    mapped.run()  # the map now knows test_add ran against the committed change
    mapped.replace("pkg/core.py", "return a * b", "return b * a")
    mapped.git("add", "pkg/core.py")  # staged
    mapped.replace("pkg/reader.py", '["value"]', '["value"] * 1')  # unstaged
    mapped.write("tests/test_untracked.py", "def test_u():\n    assert True\n")  # untracked
    selected = mapped.select("--since", "main")
    assert {
        "tests/test_core.py::test_add",
        "tests/test_core.py::test_mul",
        "tests/test_reader.py::test_load",
    } <= set(selected)
    assert rules(selected["tests/test_core.py::test_add"]) == {"since"}
    assert "tests/test_untracked.py::test_u" in mapped.run("--since", "main").ran()


def test_since_compares_with_the_merge_base_when_the_base_moved_on(mapped: GitProject) -> None:
    mapped.git("checkout", "-q", "-b", "feature")
    mapped.replace("pkg/core.py", "return a + b", "return b + a")
    mapped.commit("feature work")
    mapped.git("checkout", "-q", "main")
    mapped.replace("pkg/reader.py", '["value"]', '["value"] * 1')
    mapped.commit("main moved on")
    mapped.git("checkout", "-q", "feature")
    mapped.tia("map")
    selected = mapped.select("--since", "main")
    # main's newer commit is not part of this branch's change.
    assert set(selected) == {"tests/test_core.py::test_add"}


def test_a_deleted_module_selects_every_test_that_depended_on_it(mapped: GitProject) -> None:
    mapped.git("rm", "-q", "pkg/reader.py")
    selected = mapped.select()
    assert "tests/test_reader.py::test_load" in selected
    assert selected["tests/test_reader.py::test_load"][0]["file"] == "pkg/reader.py"


def test_a_renamed_module_selects_every_test_that_depended_on_it(mapped: GitProject) -> None:
    mapped.git("mv", "pkg/uses.py", "pkg/uses2.py")
    mapped.commit("rename")
    assert "tests/test_uses.py::test_scaled" in mapped.select()


def test_all_runs_everything(mapped: GitProject) -> None:
    result = mapped.run("--all")
    assert result.ran() == ALL_SAMPLE_TESTS, result


def test_a_change_to_pyproject_selects_everything(mapped: GitProject) -> None:
    text = mapped.read("pyproject.toml")
    (mapped.path / "pyproject.toml").write_text(text + 'addopts = "-q"\n')
    selected = mapped.select()
    assert set(selected) == ALL_SAMPLE_TESTS
    assert all(rules(r) == {"all"} for r in selected.values())


def test_a_root_conftest_module_scope_change_selects_everything(mapped: GitProject) -> None:
    mapped.write("conftest.py", "import os\n")
    mapped.run()
    mapped.write("conftest.py", "import os\nFLAG = 1\n")
    assert set(mapped.select()) == ALL_SAMPLE_TESTS


def test_a_deeper_conftest_selects_the_tests_below_it(mapped: GitProject) -> None:
    mapped.write("tests/sub/__init__.py", "")
    mapped.write("tests/sub/conftest.py", "VALUE = 1\n")
    mapped.write("tests/sub/test_sub.py", "def test_sub():\n    assert True\n")
    mapped.run()
    mapped.write("tests/sub/conftest.py", "VALUE = 2\n")
    assert set(mapped.select()) == {"tests/sub/test_sub.py::test_sub"}


def test_a_fixture_change_selects_the_tests_that_use_it(mapped: GitProject) -> None:
    mapped.replace("tests/conftest.py", "return 2", "return 1 + 1")
    assert set(mapped.select()) == {"tests/test_core.py::test_add"}


def test_a_changed_environment_selects_everything(mapped: GitProject, tmp_path) -> None:
    site = tmp_path / "extra-site"
    dist = site / "brand_new_dist-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: brand-new-dist\nVersion: 1.0\n")
    selected = mapped.select(env=clean_env(PYTHONPATH=str(site)))
    assert set(selected) == ALL_SAMPLE_TESTS
    assert "brand-new-dist" in selected["tests/test_core.py::test_add"][0]["detail"]


def test_a_file_that_does_not_parse_selects_its_tests(mapped: GitProject) -> None:
    mapped.replace("pkg/core.py", "def mul(a, b):", "def mul(a, b)")
    selected = mapped.select()
    assert {"tests/test_core.py::test_add", "tests/test_core.py::test_mul"} <= set(selected)
    result = mapped.run()
    assert result.rc != 0


def test_dry_run_prints_the_selection_and_runs_nothing(mapped: GitProject) -> None:
    mapped.replace("pkg/core.py", "return a * b", "return b * a")
    result = mapped.tia("run", "--dry-run")
    assert result.rc == 0
    assert "tests/test_core.py::test_mul" in result.stdout
    assert "passed" not in result.stdout
    assert set(mapped.select()) == {"tests/test_core.py::test_mul"}


def test_verify_reports_a_failing_test_the_selection_skipped(mapped: GitProject) -> None:
    # A dependency tia cannot see: the test reads an environment variable set in a file it never opens.
    mapped.write(
        "tests/test_env.py",
        "import os\n\ndef test_env():\n    assert os.environ.get('TIA_DEMO_FLAG') != 'x'\n",
    )
    mapped.run()
    result = mapped.tia("run", "--verify", env=clean_env(TIA_DEMO_FLAG="x"))
    assert result.rc == 3, result
    assert "MISSED tests/test_env.py::test_env" in result.stderr
    assert "1 of them missed" in result.stderr


def test_verify_passes_when_the_selection_holds_every_failure(mapped: GitProject) -> None:
    mapped.replace("pkg/core.py", "return a * b", "return a + b")
    result = mapped.tia("run", "--verify")
    assert result.rc == 1, result
    assert "1 failing tests, 0 of them missed" in result.stderr


def test_a_deleted_test_leaves_the_map(mapped: GitProject) -> None:
    mapped.git("rm", "-q", "tests/test_reader.py")
    mapped.replace("tests/test_core.py", "def test_limit():", "def test_limit_renamed():")
    result = mapped.run()
    # Removing a def is a module change, so test_core.py's other tests run too.
    assert "tests/test_core.py::test_limit_renamed" in result.ran(), result
    assert not any(n.startswith("tests/test_reader.py") for n in result.ran())
    assert mapped.select() == {}
    assert "tests: 5 " in mapped.tia("status").stdout
    assert mapped.run().ran() == set()


def test_map_with_pytest_arguments_still_replaces_the_map(mapped: GitProject) -> None:
    mapped.git("rm", "-q", "tests/test_reader.py")
    assert mapped.tia("map", "--", "-q").rc == 0
    assert "tests: 5 " in mapped.tia("status").stdout


def test_code_a_test_runs_in_a_python_subprocess_is_its_dependency(mapped: GitProject) -> None:
    mapped.write(
        "tests/test_sub.py",
        """
        import subprocess
        import sys


        def test_in_a_subprocess():
            code = "from pkg.core import mul; assert mul(2, 3) == 6"
            subprocess.run([sys.executable, "-c", code], check=True)
        """,
    )
    mapped.run()
    assert "pkg/core.py" in mapped.tia("explain", "tests/test_sub.py::test_in_a_subprocess").stdout
    mapped.replace("pkg/core.py", "return a * b", "return a * b + 1")
    selected = mapped.select()
    assert set(selected) == {"tests/test_core.py::test_mul", "tests/test_sub.py::test_in_a_subprocess"}
    assert "tests/test_sub.py::test_in_a_subprocess" in mapped.run().failed()


def test_verify_names_the_changed_dependency_of_a_missed_test(mapped: GitProject) -> None:
    # A cache on an instance that outlives the test (tia follows caches on modules and
    # classes only): `_compute` runs only in the first test that asks, so the second
    # test depends on pkg/memo.py (it runs `lookup`) but was never seen running
    # `_compute`. An edit of `_compute` misses it: a miss whose changed dependency
    # verify can name.
    mapped.write_all(
        {
            "pkg/memo.py": """
                def _compute(key):
                    return key * 2


                class Memo:
                    def __init__(self):
                        self.kept = {}

                    def lookup(self, key):
                        if key not in self.kept:
                            self.kept[key] = _compute(key)
                        return self.kept[key]


                lookup = Memo().lookup
            """,
            "tests/test_memo.py": """
                from pkg.memo import lookup

                def test_first():
                    assert lookup(2) == 4

                def test_second():
                    assert lookup(2) == 4
            """,
        }
    )
    mapped.run()
    mapped.replace("pkg/memo.py", "return key * 2", "return key * 3")
    result = mapped.tia("run", "--verify")
    assert "MISSED tests/test_memo.py::test_second" in result.stderr, result
    assert "it depends on changed pkg/memo.py" in result.stderr
    assert "test_first" not in result.stderr.split("MISSED", 1)[1]


def test_a_python_file_read_as_text_is_a_dependency_on_its_every_byte(mapped: GitProject) -> None:
    mapped.write("tests/data/sample_source.py", "def f():\n    return 1  # one\n")
    mapped.write(
        "tests/test_read_py.py",
        """
        from pathlib import Path

        def test_reads_source():
            text = (Path(__file__).parent / "data" / "sample_source.py").read_text()
            assert "# one" in text
        """,
    )
    mapped.commit("a test that reads Python source as data")
    mapped.run()
    # Imported code still counts by its code: a comment in pkg/core.py selects nothing.
    mapped.replace("pkg/core.py", "def mul(a, b):", "def mul(a, b):  # comment")
    assert mapped.select() == {}
    mapped.replace("tests/data/sample_source.py", "# one", "# two")
    selected = mapped.select()
    assert selected == {
        "tests/test_read_py.py::test_reads_source": [
            {"rule": "changed", "file": "tests/data/sample_source.py", "detail": "read as text"}
        ]
    }
    mapped.commit("edit the comment")
    since = mapped.select("--since", "HEAD~1")
    assert set(since) == {"tests/test_read_py.py::test_reads_source"}
    assert {"rule": "since", "file": "tests/data/sample_source.py", "detail": "read as text"} in since[
        "tests/test_read_py.py::test_reads_source"
    ]
    assert mapped.run().failed() == {"tests/test_read_py.py::test_reads_source"}


def test_a_change_to_a_cached_function_selects_the_tests_that_got_its_cached_result(
    mapped: GitProject,
) -> None:
    mapped.write_all(
        {
            "pkg/settings.py": """
                import functools

                @functools.cache
                def limits():
                    return {"max": 10}
            """,
            "tests/test_settings.py": """
                from pkg.settings import limits

                def test_first():
                    assert limits()["max"] == 10

                def test_second():  # gets the cached dict: limits' body does not run here
                    assert limits()["max"] > 5
            """,
        }
    )
    mapped.commit("a cached function")
    mapped.run()
    mapped.replace("pkg/settings.py", '{"max": 10}', '{"max": 1}')
    both = {"tests/test_settings.py::test_first", "tests/test_settings.py::test_second"}
    assert set(mapped.select()) == both
    assert mapped.run().failed() == both


LOCALE = {
    "pkg/locale.py": """
        import threading

        _CURRENT = threading.local()
        _NAMES = {"fr": "bonjour"}


        def activate(name):
            _CURRENT.name = name


        def deactivate():
            _CURRENT.name = None


        def greet():
            return _NAMES.get(getattr(_CURRENT, "name", None), "hello")


        def shout(text):
            return text.upper()
    """,
    "tests/test_locale.py": """
        from pkg import locale

        def test_french():
            locale.activate("fr")
            assert locale.greet() == "bonjour"
            locale.deactivate()

        def test_greet():
            assert locale.greet() == "hello"

        def test_shout():
            assert locale.shout("a") == "A"
    """,
}


def test_a_function_that_writes_shared_state_selects_the_tests_that_read_it(mapped: GitProject) -> None:
    mapped.write_all(LOCALE)
    mapped.commit("a locale")
    mapped.run()
    # What deactivate leaves behind is what test_greet reads; test_shout reads none of it.
    mapped.replace("pkg/locale.py", "_CURRENT.name = None", "pass")
    selected = mapped.select()
    assert set(selected) == {"tests/test_locale.py::test_french", "tests/test_locale.py::test_greet"}
    assert selected["tests/test_locale.py::test_greet"] == [
        {
            "rule": "changed",
            "file": "pkg/locale.py",
            "scope": "deactivate",
            "detail": "writes shared state through _CURRENT; _CURRENT read in pkg/locale.py::greet",
        }
    ]
    assert mapped.run().failed() == {"tests/test_locale.py::test_greet"}


def test_an_index_that_does_not_say_what_a_function_writes_selects_every_importer(mapped: GitProject) -> None:
    from tia.store import Store

    mapped.write_all(LOCALE)
    mapped.commit("a locale")
    mapped.run()
    # As an earlier tia wrote them: no `state`.
    store = Store(mapped.path / ".tia", lambda message: None).open()
    for key in [k for k in store.cache.iterkeys() if k.startswith("index:")]:
        data = store.cache.get(key)
        data.pop("state", None)
        store.cache.set(key, data)
    store.close()
    mapped.replace("pkg/locale.py", "return text.upper()", "return text.upper() + ''")
    selected = mapped.select()
    assert set(selected) == {f"tests/test_locale.py::test_{t}" for t in ("french", "greet", "shout")}
    assert selected["tests/test_locale.py::test_greet"] == [
        {
            "rule": "changed",
            "file": "pkg/locale.py",
            "scope": "shout",
            "detail": "indexed by an earlier tia, which did not note shared state written, "
            "imported through tests/test_locale.py",
        }
    ]


DOCTESTS = {
    "pyproject.toml": """
        [tool.pytest.ini_options]
        pythonpath = ["."]
        testpaths = ["tests", "docs", "pkg", "notes.py"]
        addopts = "--doctest-glob=*.rst --doctest-modules"
        """,
    # semver 3.0.2's way: the doctests never import the package; a fixture of the tests
    # hands it over, and the doctests, collected after them, find it in the namespace.
    "tests/conftest.py": """
        import pytest

        import pkg


        @pytest.fixture(autouse=True)
        def add_pkg(doctest_namespace):
            doctest_namespace["pkg"] = pkg
        """,
    "pkg/__init__.py": """
        from pkg.about import VERSION

        LIMIT = 3


        def limit():
            return LIMIT
        """,
    "pkg/about.py": """
        VERSION = "1.0"
        """,
    "pkg/show.py": '''
        def show():
            """The version, as a doctest in a docstring reads it:

            >>> import pkg.about
            >>> pkg.about.VERSION
            '1.0'
            """
        ''',
    # A top-level module's own docstring: pytest names its doctest after the module alone.
    "notes.py": '''
        """The version:

        >>> import pkg.about
        >>> pkg.about.VERSION
        '1.0'
        """
        ''',
    # Its code spells the name; its doctest does not.
    "pkg/other.py": '''
        from pkg.about import VERSION as V


        def other():
            """Nothing about the version:

            >>> 1 + 1
            2
            """
        ''',
    "docs/version.rst": """
        >>> pkg.VERSION
        '1.0'
        """,
    "docs/sums.rst": """
        The same in all VERSIONS:

        >>> 1 + 1
        2
        """,
    "tests/test_limit.py": """
        from pkg import limit


        def test_limit():
            assert limit() == 3
        """,
}


def test_a_doctest_reads_the_names_its_text_spells(tmp_path: Path) -> None:
    project = GitProject(tmp_path / "project")
    project.write_all(DOCTESTS)
    project.commit("initial")
    first = project.run()
    assert first.rc == 0, first
    assert first.ran() == {
        "docs/version.rst::version.rst",
        "docs/sums.rst::sums.rst",
        "tests/test_limit.py::test_limit",
        "pkg/show.py::pkg.show.show",
        "pkg/other.py::pkg.other.other",
        "notes.py::notes",
    }
    # Only rebinds VERSION: no Python code of the project reads it, sums.rst spells it
    # only inside another word, pkg/other.py only outside its doctest.
    project.replace("pkg/about.py", 'VERSION = "1.0"', 'VERSION = "1.1"')
    selected = project.select()
    doctests = {"docs/version.rst::version.rst", "pkg/show.py::pkg.show.show", "notes.py::notes"}
    assert set(selected) == doctests
    assert selected["docs/version.rst::version.rst"][0]["detail"] == "its text may read what it rebinds"
    result = project.run()
    assert result.failed() == doctests, result
    # A module-level change that may do more: every doctest counts.
    project.replace("pkg/about.py", 'VERSION = "1.1"', 'VERSION = "1.0"\nprint("loaded")')
    selected = project.select()
    assert {*doctests, "docs/sums.rst::sums.rst"} <= set(selected)
    assert selected["docs/sums.rst::sums.rst"][0]["detail"] == "a test file tia reads no code of"


STEPS = {
    "pyproject.toml": PYPROJECT_WITH_TESTS.replace('["tests"]', '["tests", "docs"]'),
    # Sybil's way: a test of each example of a document, in one namespace.
    "conftest.py": """
        import pytest


        class Step(pytest.Item):
            def __init__(self, *, code, namespace, **kwargs):
                super().__init__(**kwargs)
                self.code = code
                self.namespace = namespace

            def runtest(self):
                exec(self.code, self.namespace)


        class Steps(pytest.File):
            def collect(self):
                namespace = {}
                for number, line in enumerate(self.path.read_text().splitlines(), 1):
                    yield Step.from_parent(self, name=f"line:{number}", code=line, namespace=namespace)


        def pytest_collect_file(file_path, parent):
            if file_path.suffix == ".steps":
                return Steps.from_parent(parent, path=file_path)
        """,
    "pkg/__init__.py": "",
    "pkg/calc.py": """
        def double(x):
            return x * 2
        """,
    "docs/use.steps": "from pkg.calc import double; value = double(2)\nassert value == 4\n",
    "docs/other.steps": "assert 1 + 1 == 2\n",
    "tests/test_calc.py": """
        from pkg.calc import double


        def test_double():
            assert double(0) == 0
        """,
}


def test_the_examples_of_one_document_run_together(tmp_path: Path) -> None:
    project = GitProject(tmp_path / "project")
    project.write_all(STEPS)
    project.commit("initial")
    first = project.run()
    assert first.rc == 0, first
    assert first.ran() == {
        "docs/use.steps::line:1",
        "docs/use.steps::line:2",
        "docs/other.steps::line:1",
        "tests/test_calc.py::test_double",
    }
    # line:2 runs no code of the project: it reads what line:1 left.
    project.replace("pkg/calc.py", "x * 2", "x + 3")
    selected = project.select()
    assert set(selected) == {
        "docs/use.steps::line:1",
        "docs/use.steps::line:2",
        "tests/test_calc.py::test_double",
    }
    assert selected["docs/use.steps::line:2"] == [
        {
            "rule": "changed",
            "file": "docs/use.steps",
            "detail": "shares its document with docs/use.steps::line:1",
        }
    ]
    result = project.run()
    assert result.failed() == {"docs/use.steps::line:2", "tests/test_calc.py::test_double"}, result
