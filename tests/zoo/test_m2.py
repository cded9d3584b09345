"""M2, M1 and M1+M2: labelled subsets, how a batch mixes labelled and unlabelled points, the CLI end to end, figures."""
import json
import os

import numpy as np
import pyro.poutine as poutine
import pytest
import torch

from guides.semi_supervised import SemiSupervisedGuide
from zoo.cli.main import main
from zoo.data import load_dataset
from zoo.data.labels import UNLABELLED, balanced_label_subset, mask_labels
from zoo.errors import ConfigError
from zoo.m2 import M2, label_parts

TINY = ["--epochs", "1", "--batch-size", "256", "--latent-dim", "2", "--hidden", "16", "--no-progress",
        "--device", "cpu", "--data", "digits"]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


# ------------------------------------------------------------------------------------------------ labelled subsets
def test_label_subset_is_balanced_seeded_and_hides_the_rest(digits):
    masked = mask_labels(digits, 100, seed=3)
    y, y0 = masked.train.y, digits.train.y
    has = y != UNLABELLED
    assert int(has.sum()) == 100
    assert np.bincount(y[has].numpy(), minlength=10).tolist() == [10] * 10
    assert torch.equal(y[has], y0[has])  # the kept labels are the true ones
    assert (masked.valid.y == UNLABELLED).all() and torch.equal(masked.test.y, digits.test.y)
    assert torch.equal(masked.train.x, digits.train.x)
    assert masked.info["labels"]["per_class"] == [10] * 10
    again = mask_labels(digits, 100, seed=3)
    assert torch.equal(again.train.y, y)
    other = mask_labels(digits, 100, seed=4)
    assert not torch.equal(other.train.y, y)
    rep = mask_labels(digits, 100, seed=3, repeat=3)  # labelled points copied: more of them per mini-batch
    assert len(rep.train) == len(digits.train) + 200 and int((rep.train.y >= 0).sum()) == 300
    assert torch.equal(rep.train.y[:len(y)], y) and torch.equal(rep.train.x[len(y):], digits.train.x[has].repeat(2, 1))
    auto = mask_labels(digits, 100, seed=3, repeat="auto")  # about 20 % of the split
    assert auto.info["labels"]["copies_of_each_labelled_point"] == 3
    odd = balanced_label_subset(y0.numpy(), 105, 10, seed=0)
    counts = np.bincount(y0.numpy()[odd], minlength=10)
    assert counts.sum() == 105 and set(counts.tolist()) == {10, 11} and len(set(odd.tolist())) == 105
    with pytest.raises(ConfigError, match="at least one label per class"):
        mask_labels(digits, 5)
    with pytest.raises(ConfigError, match="training split has only"):
        mask_labels(digits, 10_000)


def test_label_parts_split_a_batch():
    x = torch.rand(5, 3)
    assert [(p.plate, p.x.shape[0], p.labelled) for p in label_parts(x, None)] == [("data", 5, False)]
    assert [p.plate for p in label_parts(x, torch.full((5,), -1))] == ["data"]
    assert [p.plate for p in label_parts(x, torch.arange(5))] == ["labelled"]
    parts = label_parts(x, torch.tensor([1, -1, 0, -1, -1]))
    assert [(p.plate, p.suffix, p.x.shape[0]) for p in parts] == [("labelled", "_labelled", 2), ("data", "", 3)]
    assert parts[0].y.tolist() == [1, 0] and torch.equal(parts[0].x, x[[0, 2]])


def test_model_and_guide_sites_of_a_mixed_batch():
    model = M2(6, num_classes=3, latent_dim=2, hidden=(4,))
    guide = SemiSupervisedGuide(model)
    x, y = torch.bernoulli(torch.rand(4, 6)), torch.tensor([2, -1, -1, 0])
    gt = poutine.trace(poutine.enum(guide, first_available_dim=-2)).get_trace(x, y)
    mt = poutine.trace(poutine.replay(model, trace=gt)).get_trace(x, y)
    assert gt.nodes["y"]["infer"]["enumerate"] == "parallel" and gt.nodes["y"]["value"].shape == (3, 1)
    assert gt.nodes["z"]["value"].shape == (3, 2, 2) and gt.nodes["z_labelled"]["value"].shape == (2, 2)
    assert mt.nodes["y_labelled"]["is_observed"] and not mt.nodes["y"]["is_observed"]
    assert mt.nodes["x"]["fn"].batch_shape == (3, 2) and mt.nodes["x_labelled"]["fn"].batch_shape == (2,)
    assert model.sample(5, x).shape == (5, 6)
    assert model.generate(torch.zeros(3, 2), torch.arange(3)).shape == (3, 6)


# ------------------------------------------------------------------------------------------------ the CLI
def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_m2_m1_and_m1_plus_m2(tmp_path, capsys):
    m2 = str(tmp_path / "m2")
    code, out, err = _run(["train", "--model", "m2", "--labels", "100", "--out", m2] + TINY, capsys)
    assert code == 0, err
    cfg = json.load(open(os.path.join(m2, "config.json")))
    assert (cfg["guide"], cfg["objective"], cfg["data"]["labels"]) == ("semi-supervised", "enum", 100)
    assert cfg["data"]["info"]["labels"]["per_class"] == [10] * 10
    assert cfg["data"]["label_repeat"] == "auto" and cfg["data"]["info"]["labels"]["copies_of_each_labelled_point"] == 3
    code, out, err = _run(["evaluate", m2, "--samples", "8", "--no-progress"], capsys)
    assert code == 0, err
    ev = json.load(open(os.path.join(m2, "eval.json")))
    assert 0.0 <= ev["test_error"]["mean"] <= 1.0 and ev["test_error"]["se"] > 0 and "test error" in out
    assert "y summed out" in ev["protocol"]["estimator"]
    assert ev["neg_elbo"]["mean"] == pytest.approx(ev["kl"]["mean"] - ev["recon"]["mean"], rel=1e-6)

    # incompatible pairs: one line saying what to use
    for extra, fragment in ((["--objective", "elbo"], "use --objective enum"),
                            (["--objective", "iwae:2"], "use --objective enum"),
                            (["--guide", "diagonal"], "use --guide semi-supervised")):
        code, _, err = _run(["train", "--model", "m2", "--out", str(tmp_path / "bad")] + extra + TINY, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and fragment in err, err

    m1 = str(tmp_path / "m1")
    code, _, err = _run(["train", "--model", "m1", "--labels", "50", "--out", m1] + TINY, capsys)
    assert code == 0, err
    from zoo.cli.assemble import load_run
    from zoo.cli.semi_supervised import classification_metrics

    a = load_run(m1, torch.device("cpu"))  # the classifier fitted after training is in best.pt
    assert bool(a.model.fitted) and 0.0 <= classification_metrics(a, a.data.test)["test_error"]["mean"] < 0.9

    code, _, err = _run(["train", "--model", "m1+m2", "--out", str(tmp_path / "bad")] + TINY, capsys)
    assert code == 2 and "--m1-run" in err
    m12 = str(tmp_path / "m12")
    code, _, err = _run(["train", "--model", "m1+m2", "--m1-run", m1, "--labels", "50", "--objective", "iwae-enum:2",
                         "--out", m12] + TINY, capsys)
    assert code == 0, err
    cfg = json.load(open(os.path.join(m12, "config.json")))
    assert cfg["model"]["options"]["m1_latent_dim"] == 2
    b = load_run(m12, torch.device("cpu"))
    from zoo.cli.semi_supervised import add_evaluation

    summary = add_evaluation({"protocol": {}, "bits_per_dim": {"mean": 0.0, "se": 0.0}}, b, b.data.test)
    assert 0.0 <= summary["test_error"]["mean"] <= 1.0 and "bits_per_dim" not in summary  # features, not pixels
    assert "feature space" in summary["protocol"]["observed"]
    # M1's features were copied and stay frozen: the same as in the M1 run
    x = a.data.test.x[:5]
    assert torch.allclose(b.model.m1.features(x), a.guide.gaussian("z", a.guide.encoder(x))[0], atol=1e-6)

    # figures of the report
    from PIL import Image

    from reports.semi_supervised_figures import semi_supervised_figures

    comps = load_run(m2, torch.device("cpu"))
    figs, why = semi_supervised_figures(comps.model, comps.guide, comps.data, str(tmp_path / "figs"))
    assert why is None and len(figs) == 2
    w, h = Image.open(figs[0][0]).size
    assert w / h == pytest.approx(10 / 10, rel=0.01)  # 10 classes x 10 draws
    w, h = Image.open(figs[1][0]).size
    assert w / h == pytest.approx(11 / 8, rel=0.02)  # 8 test digits x (original + 10 classes)
    assert semi_supervised_figures(a.model, a.guide, a.data, str(tmp_path / "none"))[0] == []
