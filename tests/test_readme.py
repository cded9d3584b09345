"""The README stays true: it names every registered component, and its test command is the one CI runs."""
import os
import re

from zoo.cli.assemble import register_all

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme():
    return open(os.path.join(ROOT, "README.md")).read()


def test_readme_lists_every_registered_component():
    from guides.base import GUIDES
    from inference.objectives import OBJECTIVES
    from zoo.data import DATASETS
    from zoo.model import MODELS
    from inference.f_divergences import DIVERGENCES
    from zoo.critics import CRITICS
    from zoo.priors import PRIORS

    register_all()
    text = _readme()
    missing = [f"{reg.kind} {e.name}" for reg in (MODELS, GUIDES, OBJECTIVES, PRIORS, DATASETS, CRITICS, DIVERGENCES) for e in reg
               if f"`{e.name}" not in text]
    assert not missing, f"README.md does not mention: {', '.join(missing)}"


def test_ci_runs_the_readme_test_command():
    text = _readme()
    block = re.search(r"```bash\n(# tests.*?)```", text, re.S)
    assert block, "README.md has no test command block starting with '# tests'"
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    for line in block.group(1).strip().splitlines()[1:]:
        assert line.strip() in ci, f"CI does not run the README's `{line.strip()}`"
