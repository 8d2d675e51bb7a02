"""The GitHub workflows (.github/): valid under the schemas that check-jsonschema ships (offline),
so that a broken workflow fails here before it fails on the forge, and running what the README
and its reference page (book/reference/building.md) say: `make test` on every push, pull request
and once a week, `make book` deployed by the official Pages actions with the repository's
address from the workflow's context."""
import importlib.util
from pathlib import Path

import pytest
import yaml
from check_jsonschema import main as check_jsonschema
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTION = ROOT / ".github" / "actions" / "setup" / "action.yml"
# every job has a time limit, as well as a valid shape
WORKFLOW_SCHEMAS = ("vendor.github-workflows", "custom.github-workflows-require-timeout")

_spec = importlib.util.spec_from_file_location("book_buttons", ROOT / "book" / "_ext" / "dnal_book_buttons.py")
buttons = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(buttons)


def check(schema: str, *files: Path):
    """`check-jsonschema --builtin-schema SCHEMA FILE...`, in this process (its start-up takes
    seconds; the command line is the same): the result's exit_code and output."""
    return CliRunner().invoke(check_jsonschema, ["--builtin-schema", schema, *map(str, files)])


def load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as true
    return doc


def steps(doc: dict) -> list[dict]:
    return [s for job in doc["jobs"].values() for s in job.get("steps", [])]


def test_workflows_and_action_pass_the_schemas():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [f.name for f in files] == ["book.yml", "tests.yml"]
    for schema in WORKFLOW_SCHEMAS:
        result = check(schema, *files)
        assert result.exit_code == 0, result.output
    result = check("vendor.github-actions", ACTION)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("source,schema,old,new", [
    (WORKFLOWS / "tests.yml", WORKFLOW_SCHEMAS[0], "runs-on:", "run-on:"),  # a misspelt key
    (WORKFLOWS / "book.yml", WORKFLOW_SCHEMAS[0], "pages: write", "pages: publish"),  # a bad value
    (WORKFLOWS / "tests.yml", WORKFLOW_SCHEMAS[1], "timeout-minutes: 90", "# no limit"),
    (ACTION, "vendor.github-actions", "using: composite", "use: composite"),
])
def test_a_broken_copy_fails_the_schema(tmp_path, source, schema, old, new):
    text = source.read_text()
    assert old in text
    broken = tmp_path / source.name
    broken.write_text(text.replace(old, new, 1))
    result = check(schema, broken)
    assert result.exit_code == 1 and "Schema validation errors" in result.output, result.output


def test_tests_workflow_runs_make_test_on_every_push_and_weekly():
    doc = load(WORKFLOWS / "tests.yml")
    assert {"push", "pull_request", "schedule"} <= set(doc["on"]) and doc["on"]["schedule"][0]["cron"]
    runs = [s.get("run", "") for s in steps(doc)]
    assert "make test" in runs and "./.github/actions/setup" in [s.get("uses") for s in steps(doc)]


def test_setup_action_gives_python_311_caches_and_the_data():
    action = yaml.safe_load(ACTION.read_text())["runs"]["steps"]
    python = next(s for s in action if s.get("uses", "").startswith("actions/setup-python@"))
    assert python["with"]["python-version"] == "3.11" and python["with"]["cache"] == "pip"
    cached = [s["with"]["path"] for s in action if s.get("uses", "").startswith("actions/cache@")]
    assert cached == [".data/cifar10", "~/.cache/dnal"]  # the download, the decoded arrays
    script = "\n".join(s.get("run", "") for s in action)
    assert "download=True" in script and "DNAL_DATA=$GITHUB_WORKSPACE/.data/cifar10" in script


def test_book_workflow_builds_with_make_book_and_deploys_to_pages():
    doc = load(WORKFLOWS / "book.yml")
    assert doc["on"]["push"]["branches"] == ["main"]
    build, deploy = doc["jobs"]["build"], doc["jobs"]["deploy"]
    make = next(s for s in build["steps"] if s.get("run") == "make book")
    assert make["env"] == {buttons.URL_ENV: "${{ github.server_url }}/${{ github.repository }}",
                           buttons.BRANCH_ENV: "${{ github.ref_name }}"}
    upload = build["steps"][-1]
    assert upload["uses"].startswith("actions/upload-pages-artifact@")
    assert upload["with"]["path"] == "book/_build/html"
    assert deploy["needs"] == "build" and deploy["steps"][-1]["uses"].startswith("actions/deploy-pages@")
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}


def test_readme_has_the_two_commands_and_the_reference_names_the_workflows():
    readme = (ROOT / "README.md").read_text()
    assert "```bash\nmake book    #" in readme and "\nmake test    #" in readme
    building = (ROOT / "book" / "reference" / "building.md").read_text()  # linked from the README
    assert "book/reference/building.md" in readme
    assert all(f"`{f.name}`" in building for f in WORKFLOWS.glob("*.yml"))
