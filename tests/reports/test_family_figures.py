"""The report shows each family's own figures: M2's conditional generation and analogies (with its test error), and a
flow density model's temperature samples and 2-D density."""
import os

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
