"""The documentation: the MkDocs site builds strictly (every page in the navigation, every link
and anchor resolves, every API page renders from the docstrings), and the README's links
into the repository lead somewhere."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_docs_site_builds_strictly(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    api_page = (tmp_path / "api" / "models" / "index.html").read_text()
    assert "encoder_pretraining_steps" in api_page  # the docstrings are rendered
    assert (tmp_path / "architecture" / "index.html").is_file()
    # MkDocs Material, with the stylesheet that lets wide tables wrap instead of scrolling
    evaluation_page = (tmp_path / "evaluation" / "index.html").read_text()
    assert "md-typeset" in evaluation_page and "stylesheets/tables.css" in evaluation_page
    assert "overflow-wrap: anywhere" in (tmp_path / "stylesheets" / "tables.css").read_text()


def test_every_local_link_of_the_readme_exists():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\((?!https?://)([^)#\s]+)", readme)
    assert targets, "the README links into the docs"
    missing = [target for target in targets if not (ROOT / target).exists()]
    assert not missing, missing
