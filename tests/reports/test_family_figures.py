"""The report shows each family's own figures: M2's conditional generation and analogies (with its test error), and a
flow density model's temperature samples and 2-D density."""
import os

import pytest

from reports.report import build_report
from zoo.cli.main import main


def test_report_has_the_semi_supervised_and_flow_figures(tmp_path):
    m2, maf = str(tmp_path / "m2"), str(tmp_path / "maf")
    common = ["--epochs", "1", "--no-progress"]
    assert main(["train", "--model", "m2", "--labels", "50", "--data", "digits", "--latent-dim", "2", "--hidden",
                 "32", "--out", m2] + common) == 0
    assert main(["train", "--model", "maf", "--data", "moons", "--out", maf] + common) == 0
    out = str(tmp_path / "report")
    build_report([m2, maf], out, samples=8, progress=False, log=lambda *a: None)
    html = open(os.path.join(out, "index.html")).read()
    for png in ("m2/conditional_generation.png", "m2/analogies.png", "maf/flow_temperatures.png",
                "maf/flow_density.png"):
        assert os.path.getsize(os.path.join(out, png)) > 0 and png in html, png
    assert "test error" in html.lower()


def _adversarial_specs():
    from inference.objectives import OBJECTIVES
    from zoo.cli.assemble import register_all

    register_all()
    specs = []
    for e in OBJECTIVES:
        if e.meta.get("adversarial"):
            specs.append(e.name if not e.arg or e.meta.get("optional_arg") else f"{e.name}:{e.meta.get('example', 1)}")
    return specs


@pytest.mark.parametrize("spec", _adversarial_specs())
def test_every_adversarial_objective_names_what_it_records(spec):
    """The players figure labels a run's train/valid loss with its objective's divergence_name(): each adversarial
    objective says what its validation_estimate is (not the base class's generic word), and a hybrid whose
    adversarial weight is 0 names its likelihood term alone."""
    from inference.objectives import build_objective
    from reports.adversarial_figures import estimate_label

    label = estimate_label({"objective": spec})
    assert label == build_objective(spec).divergence_name()
    assert label and label != "divergence"
    if spec.startswith(("hybrid", "aae", "elbo+gan")):
        zero = build_objective(spec.split(":")[0] + ":0").divergence_name()
        assert "JSD" not in zero and "W1" not in zero, zero


def test_an_objective_that_cannot_be_built_gets_a_generic_label():
    from reports.adversarial_figures import estimate_label

    assert estimate_label({"objective": "no_such_module:Objective"}) == "the objective's estimate"
