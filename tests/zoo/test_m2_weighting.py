"""The weight of M2's classification term per labelled point (zoo/m2.py's docstring), from the objectives' actual
losses: each labelled occurrence in a batch weighs alpha * N / (r L), so one pass over the training split adds exactly
alpha * N * mean over the L labelled points of -log q(y|x), whatever the repetition r and however batches are cut."""
import json
import os

import pyro
import pytest
import torch

from guides.semi_supervised import SemiSupervisedGuide
from inference.enumeration import EnumELBO, IWAEEnum
from zoo.cli.semi_supervised import label_counts
from zoo.data.base import Dataset, Split
from zoo.data.labels import mask_labels
from zoo.m2 import M2


def _aux_part(objective, model, guide, x, y, seed=0):
    """loss(alpha) - loss(alpha = 0) with the same random draws: the classification term alone, in float64."""
    alpha = model.alpha
    out = []
    for a in (alpha, 0.0):
        model.alpha = a
        pyro.set_rng_seed(seed)
        with torch.no_grad():
            out.append(objective.loss(model, guide, x, y))
    model.alpha = alpha
    return out[0] - out[1]


def _ce(guide, x, y):
    with torch.no_grad():
        return -torch.log_softmax(guide.classify(x), -1).gather(-1, y[:, None]).squeeze(-1)


@pytest.fixture()
def m2():
    torch.manual_seed(0)
    model = M2(6, num_classes=3, latent_dim=2, hidden=(5,), alpha=0.7).double()
    guide = SemiSupervisedGuide(model).double()
    return model, guide


@pytest.mark.parametrize("objective", [EnumELBO(), IWAEEnum(3)], ids=["enum", "iwae-enum:3"])
def test_weight_per_labelled_point_is_alpha_n_over_r_l(m2, objective):
    model, guide = m2
    model.set_label_counts(num_points=40, num_labelled=4, copies=3)  # N = 40, L = 4, r = 3
    assert model.label_scale == 40 / 12
    x = torch.bernoulli(torch.rand(5, 6, generator=torch.Generator().manual_seed(1))).double()
    y = torch.tensor([2, -1, 0, -1, -1])
    ce = _ce(guide, x[[0, 2]], y[[0, 2]])
    expected = 0.7 * 40 / 12 * float(ce.sum())
    assert float(_aux_part(objective, model, guide, x, y)) == pytest.approx(expected, rel=1e-9)
    # the same two labelled points in a batch of another size and composition: the same weight each
    x2, y2 = torch.cat([x[[0, 2]], x[[1, 3, 4]].repeat(3, 1)]), torch.cat([y[[0, 2]], torch.full((9,), -1)])
    assert float(_aux_part(objective, model, guide, x2, y2)) == pytest.approx(expected, rel=1e-9)
    # no labelled point, or alpha = 0: nothing
    assert float(_aux_part(objective, model, guide, x[[1, 3]], y[[1, 3]])) == 0.0


@pytest.mark.parametrize("repeat", [1, 2, 5])
@pytest.mark.parametrize("batch_size", [3, 7, 64])
def test_one_pass_adds_alpha_n_times_mean_labelled_ce(m2, repeat, batch_size):
    """Through ``mask_labels`` and ``label_counts`` exactly as ``zoo train --labels L --label-repeat r`` sets them."""
    model, guide = m2
    gen = torch.Generator().manual_seed(2)
    x = torch.bernoulli(torch.rand(20, 6, generator=gen)).double()
    y = torch.arange(20) % 3
    data = Dataset("tiny", Split(x, y), Split(x[:4], y[:4]), Split(x[:4], y[:4]), binarize="none", num_classes=3)
    masked = mask_labels(data, 6, seed=0, repeat=repeat)  # L = 6 of N = 20, each present `repeat` times
    assert label_counts(masked) == (20, 6, repeat)
    model.set_label_counts(*label_counts(masked))
    train = masked.train
    perm = torch.randperm(len(train), generator=gen)
    total = 0.0
    for start in range(0, len(train), batch_size):
        idx = perm[start:start + batch_size]
        total += float(_aux_part(EnumELBO(), model, guide, train.x[idx], train.y[idx]))
    has = masked.train.y[:20] >= 0
    mean_ce = float(_ce(guide, x[has], y[has]).mean())
    assert total == pytest.approx(0.7 * 20 * mean_ce, rel=1e-9)


def test_weight_without_counts_is_the_batch_ratio(m2):
    """A model used outside ``zoo train`` (no counts set): alpha * B / n_labelled per labelled point."""
    model, guide = m2
    assert model.label_scale is None
    x = torch.bernoulli(torch.rand(4, 6, generator=torch.Generator().manual_seed(3))).double()
    y = torch.tensor([1, -1, -1, -1])
    expected = 0.7 * 4 / 1 * float(_ce(guide, x[:1], y[:1]).sum())
    assert float(_aux_part(EnumELBO(), model, guide, x, y)) == pytest.approx(expected, rel=1e-9)


def test_the_defaults_weigh_what_the_docstring_says():
    """m2's defaults (alpha 200, z 3) and m1+m2's (alpha 10, z 3), and the weights zoo/m2.py's docstring states for
    them on a split of mnist5k's size: 100 labels of 4000 repeated r = 10 times (auto), each occurrence 200 * 4000 /
    (10 * 100) = 800, 8000 per labelled point and pass; 1000 labels, r = 1: 800 per labelled point and pass."""
    from inference.enumeration import classification_weight
    from zoo.cli.semi_supervised import model_default
    from zoo.m1m2 import M1M2

    assert (M2(6).alpha, M2(6).latent_dim) == (200.0, 3)
    assert (M1M2(6, m1_latent_dim=4).alpha, M1M2(6, m1_latent_dim=4).latent_dim) == (10.0, 3)
    assert model_default("m2", "latent_dim", 20) == 3 and model_default("m1+m2", "latent_dim", 20) == 3
    x = torch.zeros(4000, 6)
    y = torch.arange(4000) % 10
    data = Dataset("mnist5k-sized", Split(x, y), Split(x[:10], y[:10]), Split(x[:10], y[:10]), binarize="none",
                   num_classes=10)
    for labels, copies, per_point in ((100, 10, 8000.0), (1000, 1, 800.0)):
        masked = mask_labels(data, labels, seed=0, repeat="auto")
        assert label_counts(masked) == (4000, labels, copies)
        model = M2(6)
        model.set_label_counts(*label_counts(masked))
        for batch_size, n_labelled in ((128, 25), (32, 1), (500, 100)):
            assert classification_weight(model, batch_size, n_labelled) == pytest.approx(per_point / copies)
        assert copies * classification_weight(model, 128, 25) == pytest.approx(per_point)


def test_the_cli_trains_m2_with_these_defaults(tmp_path, capsys):
    """`zoo train --model m2 --labels N` without --latent-dim or --alpha builds z 3, alpha 200, and the objective's
    classification term weighs alpha N / (r L) per labelled occurrence of the run's own split."""
    from zoo.cli.assemble import load_run
    from zoo.cli.main import main
    from zoo.cli.semi_supervised import prepare_components
    from zoo.data.labels import auto_repeat

    out = str(tmp_path / "m2")
    code = main(["train", "--model", "m2", "--labels", "50", "--epochs", "1", "--hidden", "16", "--data", "digits",
                 "--batch-size", "256", "--device", "cpu", "--no-progress", "--out", out])
    assert code == 0, capsys.readouterr().err
    comps = prepare_components(json.load(open(os.path.join(out, "config.json"))), load_run(out, torch.device("cpu")))
    model, guide = comps.model.double(), comps.guide.double()  # the split and the label counts as in training
    assert (model.latent_dim, model.alpha) == (3, 200.0)
    n, labelled, copies = label_counts(comps.data)
    assert (labelled, copies) == (50, auto_repeat(50, n)) and model.label_scale == n / (labelled * copies)
    train = comps.data.train
    idx = torch.cat([torch.nonzero(train.y >= 0)[:3, 0], torch.nonzero(train.y < 0)[:5, 0]])
    x, y = train.x[idx].double(), train.y[idx]
    expected = 200.0 * n / (copies * labelled) * float(_ce(guide, x[:3], y[:3]).sum())
    assert float(_aux_part(EnumELBO(), model, guide, x, y)) == pytest.approx(expected, rel=1e-9)
