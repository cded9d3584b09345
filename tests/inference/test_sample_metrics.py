"""Sample-quality metrics (issue 12): the metrics on known cases, the zoo's feature classifier and its cache, and
what `zoo evaluate` writes (the classifier, the sample counts; an implicit generator without an NLL)."""
import json
import math
import os

import numpy as np
import pytest
import torch

from inference import feature_classifier as fc
from inference import sample_metrics as sm


# --------------------------------------------------------------------------------------------- Fréchet distance
def _random_cov(d, gen, jitter):
    a = torch.randn(d, d, generator=gen, dtype=torch.float64)
    return a @ a.T / d + jitter * torch.eye(d, dtype=torch.float64)


def test_frechet_closed_form_against_an_independent_square_root_and_the_1d_formula():
    import scipy.linalg

    gen = torch.Generator().manual_seed(0)
    d = 6
    mu1, mu2 = torch.randn(d, generator=gen, dtype=torch.float64), torch.randn(d, generator=gen, dtype=torch.float64)
    s1, s2 = _random_cov(d, gen, 0.1), _random_cov(d, gen, 0.3)
    covmean = scipy.linalg.sqrtm(s1.numpy() @ s2.numpy()).real  # the original FID code's route
    expected = float(((mu1 - mu2) ** 2).sum() + torch.trace(s1) + torch.trace(s2) - 2 * np.trace(covmean))
    assert sm.frechet_distance_gaussians(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    # one dimension: (m1 - m2)^2 + (sigma1 - sigma2)^2
    got = sm.frechet_distance_gaussians(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-2.0]),
                                        torch.tensor([[0.25]]))
    assert got == pytest.approx(9.0 + (2.0 - 0.5) ** 2, rel=1e-12)
    assert sm.frechet_distance_gaussians(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)


def test_frechet_of_two_gaussian_samples_tends_to_the_closed_form():
    """n = 200000 points in 8 dimensions: the plug-in estimate's bias and spread are O(d^2 / n) ~ 1e-3; tolerance 1 %
    of a distance of about 5."""
    gen = torch.Generator().manual_seed(1)
    d, n = 8, 200_000
    mu1, mu2 = torch.zeros(d, dtype=torch.float64), torch.full((d,), 0.4, dtype=torch.float64)
    s1, s2 = _random_cov(d, gen, 0.1), _random_cov(d, gen, 0.2)
    a = mu1 + torch.randn(n, d, generator=gen, dtype=torch.float64) @ torch.linalg.cholesky(s1).T
    b = mu2 + torch.randn(n, d, generator=gen, dtype=torch.float64) @ torch.linalg.cholesky(s2).T
    exact = sm.frechet_distance_gaussians(mu1, s1, mu2, s2)
    assert exact > 1.0
    assert sm.frechet_distance(a, b) == pytest.approx(exact, rel=0.01)
    # exact when the closed form is fed the samples' own moments (unbiased covariances)
    assert sm.frechet_distance(a, b) == pytest.approx(
        sm.frechet_distance_gaussians(a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T)), rel=1e-10)


def test_frechet_is_real_symmetric_and_zero_on_itself_even_with_singular_covariances():
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(20, 64, generator=gen)  # fewer points than dimensions: rank-deficient covariances
    b = torch.randn(20, 64, generator=gen) + 0.5
    ab, ba = sm.frechet_distance(a, b), sm.frechet_distance(b, a)
    assert math.isfinite(ab) and ab > 0 and ab == pytest.approx(ba, rel=1e-6)
    assert sm.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


# ------------------------------------------------------------------------------------------------ kernel distance
def test_kernel_distance_blocks_are_the_unbiased_estimator_written_out():
    gen = torch.Generator().manual_seed(3)
    a, b = torch.randn(7, 3, generator=gen, dtype=torch.float64), torch.randn(5, 3, generator=gen, dtype=torch.float64)
    k = lambda x, y: (float(x @ y) / 3 + 1) ** 3  # noqa: E731
    m, n = len(a), len(b)
    expected = (sum(k(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
                + sum(k(b[i], b[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
                - 2 * sum(k(a[i], b[j]) for i in range(m) for j in range(n)) / (m * n))
    got = sm.kernel_distance(a, b, subsets=1)
    assert got["mean"] == pytest.approx(expected, rel=1e-10) and got["subset_size"] == [7, 5]


def test_kernel_distance_of_one_distribution_is_within_its_standard_error_of_zero_and_positive_otherwise():
    gen = torch.Generator().manual_seed(4)
    for trial in range(3):
        a, b = torch.randn(2000, 16, generator=gen), torch.randn(1000, 16, generator=gen)
        same = sm.kernel_distance(a, b, subsets=10, seed=trial)
        assert same["se"] > 0 and abs(same["mean"]) < 3 * same["se"], same
    other = sm.kernel_distance(a, 1.3 * b + 0.2, subsets=10)
    assert other["mean"] > 0 and other["mean"] > 5 * other["se"], other


def test_kernel_distance_refuses_subsets_it_cannot_make():
    with pytest.raises(ValueError, match="disjoint subsets"):
        sm.kernel_distance(torch.randn(10, 2), torch.randn(10, 2), subsets=6)


# ----------------------------------------------------------------------------------------------- classifier score
def test_classifier_score_bounds():
    c = 10
    confident = torch.eye(c).repeat(30, 1) * 0.999 + 0.0001  # each class equally often, nearly one-hot
    score = sm.classifier_score(confident)
    assert score["mean"] == pytest.approx(c, rel=0.02) and score["se"] < 0.05
    same = torch.softmax(torch.randn(1, c), -1).repeat(100, 1)  # every sample the same p(y|x)
    assert sm.classifier_score(same)["mean"] == pytest.approx(1.0, abs=1e-9)
    # against the definition, with numpy
    p = torch.softmax(torch.randn(50, c, generator=torch.Generator().manual_seed(5)) * 3, -1).double().numpy()
    p = p / p.sum(1, keepdims=True)
    py = p.mean(0)
    expected = math.exp(np.mean(np.sum(p * (np.log(p) - np.log(py)), 1)))
    assert sm.classifier_score(torch.from_numpy(p))["mean"] == pytest.approx(expected, rel=1e-10)


# ---------------------------------------------------------------------------------------------- precision, recall
def test_precision_recall_identical_collapsed_and_disjoint():
    gen = torch.Generator().manual_seed(6)
    real = torch.randn(400, 8, generator=gen)
    assert sm.precision_recall(real, real.clone()) == {"precision": 1.0, "recall": 1.0, "k": 3}
    collapsed = real[:1].repeat(400, 1)  # every sample the same point (of the data)
    pr = sm.precision_recall(real, collapsed)
    assert pr["precision"] == 1.0 and pr["recall"] <= 1 / 400
    far = sm.precision_recall(real, torch.randn(400, 8, generator=gen) + 10)
    assert far["precision"] == 0.0 and far["recall"] == 0.0


# ------------------------------------------------------------------------------------------------- the classifier
def _mnist(binarize="dynamic"):
    from zoo.data import load_dataset

    return load_dataset("mnist5k", binarize=binarize)


@pytest.fixture(scope="module")
def mnist_classifier():
    """The binarized-mnist5k classifier (shared through the session's cache with `zoo demo`'s evaluation)."""
    grey = _mnist("none")
    return fc.get_classifier(grey, "mnist5k", binarized=True)


def test_classifier_score_of_real_test_digits_is_near_ten_and_about_one_for_a_collapsed_generator(mnist_classifier):
    """With a test accuracy above 90 % (recorded: about 97 %), real test digits score above 7 of the 10 classes;
    the digits of one class only (a generator collapsed onto 1s) score below 1.5, and their recall is small."""
    clf = mnist_classifier
    assert clf.info["test_accuracy"] > 0.9
    data = _mnist()
    feats, probs = clf.embed(data.test.x)
    assert 7.0 < sm.classifier_score(probs)["mean"] <= 10.0
    ones = data.valid.x[data.valid.y == 1]
    f1, p1 = clf.embed(ones)
    assert sm.classifier_score(p1)["mean"] < 1.5
    pr = sm.precision_recall(feats, f1)
    assert pr["precision"] > 0.7 and pr["recall"] < 0.2
    # the data's own row: validation digits against test digits
    from inference.sample_quality import reference_quality

    ref = reference_quality(clf, data.test.x, data.valid.x)
    assert ref["frechet_classifier_distance"] < 1.0
    assert abs(ref["kernel_classifier_distance"]["mean"]) < 3 * ref["kernel_classifier_distance"]["se"]
    assert ref["precision"] > 0.8 and ref["recall"] > 0.8


def _tiny_labelled(seed=0, n=300):
    """A quick labelled image set: 8x8 images of 3 classes (a bright row per class) with noise."""
    from zoo.data.base import Dataset, Split

    gen = torch.Generator().manual_seed(seed)

    def split(m):
        y = torch.arange(m) % 3
        x = torch.rand(m, 8, 8, generator=gen) * 0.3
        x[torch.arange(m), 2 * y + 1, :] = 0.9
        return Split(x.reshape(m, 64), y)

    return Dataset("tiny", split(n), split(90), split(90), "none", (1, 8, 8), 3)


def test_the_classifier_is_cached_and_a_damaged_cache_file_is_retrained(tmp_path, monkeypatch):
    monkeypatch.setattr(fc, "_MEMORY", {})
    monkeypatch.setattr(fc, "MIN_STEPS", 30)  # the tiny set is learnt in a few steps; this test trains it 5 times
    data = _tiny_labelled()
    trained = []
    real_train = fc.train_classifier
    monkeypatch.setattr(fc, "train_classifier", lambda *a, **k: trained.append(1) or real_train(*a, **k))
    first = fc.get_classifier(data, "tiny", False, folder=str(tmp_path))
    assert trained == [1] and first.info["cached"] is False and os.path.exists(first.info["file"])
    assert first.info["test_accuracy"] > 0.9
    monkeypatch.setattr(fc, "_MEMORY", {})  # another process: from the file
    second = fc.get_classifier(data, "tiny", False, folder=str(tmp_path))
    assert trained == [1] and second.info["cached"] is True and not second.notes
    x = data.test.x
    assert torch.equal(first.embed(x)[0], second.embed(x)[0])
    for damage in (b"", b"not a checkpoint", None):
        if damage is None:  # a file that loads but belongs to other data
            obj = torch.load(first.info["file"], weights_only=True)
            obj["fingerprint"] = "0" * 64
            torch.save(obj, first.info["file"])
        else:
            open(first.info["file"], "wb").write(damage)
        again = fc.get_classifier(data, "tiny", False, folder=str(tmp_path))
        assert again.info["cached"] is False and len(again.notes) == 1
        assert "could not be used" in again.notes[0] and "trained again" in again.notes[0]
        assert torch.allclose(again.embed(x)[0], first.embed(x)[0], atol=1e-5)  # seeded: the same classifier
    assert len(trained) == 4
    # other data (same name) is another cache file, never the old one
    other = fc.get_classifier(_tiny_labelled(seed=1), "tiny", False, folder=str(tmp_path))
    assert other.info["file"] != first.info["file"] and len(trained) == 5


def test_a_data_set_without_labels_is_refused_in_one_line():
    from zoo.data.base import Dataset, Split

    data = Dataset("nolabels", Split(torch.rand(20, 4)), Split(torch.rand(5, 4)), Split(torch.rand(5, 4)))
    with pytest.raises(fc.NoLabels, match="has no labels"):
        fc.get_classifier(data, "nolabels", False)


def test_an_unwritable_cache_folder_is_a_note_not_a_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(fc, "_MEMORY", {})
    monkeypatch.setattr(fc, "MIN_STEPS", 30)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    clf = fc.get_classifier(_tiny_labelled(), "tiny", False, folder=str(blocker / "classifiers"))
    assert clf.info["file"] is None and "could not be cached" in clf.notes[0]


# ------------------------------------------------------------------------------------------------ zoo evaluate
FAST = ["--epochs", "1", "--batch-size", "128", "--latent-dim", "2", "--hidden", "16", "--no-progress", "--data",
        "digits"]


def test_evaluate_writes_and_prints_sample_quality(tmp_path, capsys):
    from zoo.cli.main import main

    out = str(tmp_path / "run")
    assert main(["train", "--out", out] + FAST) == 0
    assert main(["evaluate", out, "--samples", "5", "--quality-samples", "300", "--no-progress"]) == 0
    text = capsys.readouterr().out
    ev = json.load(open(os.path.join(out, "eval.json")))
    q, ref = ev["sample_quality"], ev["sample_quality_reference"]
    assert q["num_samples"] == 300 and q["num_real"] == ev["protocol"]["num_points"] == 180
    assert q["classifier"]["name"] == fc.NAME and q["classifier"]["version"] == fc.VERSION
    assert q["classifier"]["seed"] == fc.DEFAULT_SEED and 0 < q["classifier"]["test_accuracy"] <= 1
    assert q["classifier"]["inputs"] == "binarized images" and q["samples"].startswith("x ~ p(x)")
    for part in (q, ref):
        assert part["frechet_classifier_distance"] >= 0 and 0 <= part["precision"] <= 1 and 0 <= part["recall"] <= 1
        assert 1 <= part["classifier_score"]["mean"] <= 10 and part["kernel_classifier_distance"]["se"] > 0
    assert ref["num_samples"] == 180 and ref["generated_split"] == "valid"
    # a one-epoch VAE with a 2-d latent is further from the test digits than the validation digits are
    assert q["frechet_classifier_distance"] > ref["frechet_classifier_distance"]
    for words in ("sample quality: 300 samples vs 180 test points", "FCD (zoo classifier)", "KCD (zoo classifier)",
                  "classifier score", "precision (k=3)", "recall (k=3)", "data (180 valid)"):
        assert words in text, words
    # a damaged sample_quality in eval.json is one line naming the file (the report then re-evaluates)
    from zoo.cli.runs import read_eval
    from zoo.errors import RunDirError

    damaged = dict(ev, sample_quality={"frechet_classifier_distance": "big"})
    json.dump(damaged, open(os.path.join(out, "eval.json"), "w"))
    with pytest.raises(RunDirError, match="its sample_quality is not what `zoo evaluate` writes"):
        read_eval(out)
    assert main(["evaluate", out, "--samples", "5", "--quality-samples", "0", "--no-progress"]) == 0
    ev = json.load(open(os.path.join(out, "eval.json")))
    assert "sample_quality" not in ev and "--quality-samples 0" in ev["sample_quality_reason"]


def test_data_without_labels_leave_the_metrics_out_with_the_reason(tmp_path, capsys):
    from zoo.cli.main import main

    path = str(tmp_path / "mine.npz")
    np.savez(path, x=(np.random.default_rng(0).random((120, 6)) > 0.5).astype(np.float32))
    out = str(tmp_path / "npz")
    assert main(["train", "--out", out, "--data", path] + FAST[:-2]) == 0
    assert main(["evaluate", out, "--samples", "5", "--no-progress"]) == 0
    text = capsys.readouterr().out
    ev = json.load(open(os.path.join(out, "eval.json")))
    assert "sample_quality" not in ev and "has no labels" in ev["sample_quality_reason"]
    assert "sample quality: none (" in text


class ImplicitGenerator(torch.nn.Module):
    """x = G(z): a point mass at G(z) observed, no density (a user's implicit generator, in the test itself)."""

    implicit = True

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(2, 64)

    def latent_sites(self):
        return []  # z is the generator's noise, nothing to infer

    def forward(self, x, y=None):
        import pyro
        import pyro.distributions as dist

        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(2), 1.0).to_event(1))
            pyro.sample("x", dist.Delta(torch.sigmoid(self.net(z)), event_dim=1), obs=x)


def test_an_implicit_generator_is_evaluated_on_its_samples_only(tmp_path, capsys):
    """An implicit model (trained one epoch adversarially) gets no NLL, ELBO or k-hat, says why, and has its sample
    quality; the report's NLL column says why there is none."""
    import zoo
    from zoo.cli.main import print_eval

    out = str(tmp_path / "implicit")
    run = zoo.train(ImplicitGenerator, guide="none", objective="gan-ns", data="digits", binarize="none", out=out,
                    epochs=1, batch_size=128, progress=False)
    assert run.model.implicit
    ev = zoo.evaluate(out, samples=5, quality_samples=200, progress=False)
    assert ev["nll"] is None and ev["nll_reason"] == "implicit generator: x = G(z) has no density"
    assert ev["neg_elbo"] is None and ev["psis"] is None and ev["implicit"] is True
    assert ev["sample_quality"]["num_samples"] == 200
    assert ev["sample_quality"]["samples"].startswith("E[x|z]")
    assert ev["sample_quality"]["classifier"]["inputs"] == "grey levels"
    assert zoo.load(out).evaluation == json.loads(json.dumps(ev))  # eval.json reads back
    print_eval(ev)
    text = capsys.readouterr().out
    assert "none  (implicit generator: x = G(z) has no density)" in text and "FCD (zoo classifier)" in text
    # beside a likelihood run of another binarization: the protocol lines differ per run, the NLL cell says why
    vae = zoo.train("vae", data="digits", out=str(tmp_path / "vae"), epochs=1, latent_dim=2, hidden=[16],
                    progress=False)
    report = zoo.report([out, vae], out=str(tmp_path / "report"), samples=5, progress=False)
    md = open(report.md_path).read()
    assert "none: implicit generator: x = G(z) has no density" in md and "no likelihood (implicit generator)" in md
    assert "### Sample quality" in md and "data: valid split" in md
    assert report.quality["run"].tolist()[:2] == ["vae", "implicit"]  # the runs in the NLL table's order
