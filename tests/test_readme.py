"""The README's promises: two set-up commands first, CI runs both exactly as written (the first one
before the second, in a virtual environment of its own, then checks the report), and every picture
and document the README links to exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [line for line in block.strip().splitlines() if line.strip()]


def ci_script():
    return (ROOT / ".ci" / "run").read_text()


def test_readme_opens_with_exactly_two_setup_commands():
    commands = readme_commands()
    assert len(commands) == 2
    first, second = commands
    assert first.endswith("deepgm demo") and "pip install ." in first and "[test]" not in first
    assert "cargo test" in second and "pytest" in second and '".[test]"' in second


def test_ci_runs_both_readme_commands_in_order():
    ci = ci_script()
    first, second = readme_commands()
    assert first in ci and second in ci
    assert ci.index(first) < ci.index(second)
    # The first command meets a fresh environment: CI removes any earlier .venv before it.
    assert ci.index("rm -rf .venv") < ci.index(first)


def test_ci_checks_the_demo_report_and_builds_the_wheel():
    ci = ci_script()
    first, second = readme_commands()
    check = ci.index(".ci/check_report.py deepgm-report")
    assert ci.index(first) < check < ci.index(second)
    assert ".ci/wheel" in ci and (ROOT / ".ci" / "wheel").is_file() and (ROOT / ".ci" / "check_report.py").is_file()
    wheel = (ROOT / ".ci" / "wheel").read_text()
    for step in ("maturin build --release", "maturin sdist", "auditwheel show", "pip install"):
        assert step in wheel


def test_readme_says_how_to_build_and_install_the_wheel():
    text = (ROOT / "README.md").read_text()
    assert "maturin build --release" in text and "pip install dist/" in text


def test_readme_links_exist():
    text = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target
