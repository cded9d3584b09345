"""`zoo report`: the page, its table against eval.json, the published-figure matching, the evaluation cache, arviz.

One session-wide pair of tiny runs on the 8x8 `digits` (trained and reported once, see :func:`report_runs_for`) serves
every test here and the browser test (tests/reports/test_report_browser.py).
"""
import html as html_lib
import json
import os
import re
import shutil

import numpy as np
import pytest
import torch

from reports import published
from zoo.cli.main import main

K = 50
FAST = ["--data", "digits", "--device", "cpu", "--batch-size", "64", "--hidden", "32", "--no-progress"]


def report_runs_for(config, tmp_path_factory) -> dict:
    """Train two short runs on digits and report them once per pytest session (cached on the pytest config, so the
    browser test module reuses them)."""
    cached = getattr(config, "_zoo_report_runs", None)
    if cached is not None:
        return cached
    root = tmp_path_factory.mktemp("report_runs")
    a, b, out = str(root / "vae-z2"), str(root / "iwae3-z4"), str(root / "report")
    assert main(["train", "--out", a, "--epochs", "2", "--latent-dim", "2"] + FAST) == 0
    assert main(["train", "--out", b, "--epochs", "1", "--latent-dim", "4", "--objective", "iwae:3"] + FAST) == 0
    assert not os.path.exists(os.path.join(a, "eval.json"))  # the report evaluates them
    assert main(["report", a, b, "--out", out, "--samples", str(K), "--device", "cpu", "--no-progress"]) == 0
    cached = {"a": a, "b": b, "out": out, "root": str(root)}
    config._zoo_report_runs = cached
    return cached


@pytest.fixture(scope="session")
def report_runs(request, tmp_path_factory):
    return report_runs_for(request.config, tmp_path_factory)


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _runs_table(html: str):
    """The #runs table of the page as a list of {header: cell text} dicts, in page order."""
    table = re.search(r'<table[^>]*id="runs"[^>]*>(.*?)</table>', html, re.S).group(1)
    header = [html_lib.unescape(re.sub(r"<[^>]+>", "", h).strip()) for h in re.findall(r"<th[^>]*>(.*?)</th>", table, re.S)]
    body = re.search(r"<tbody>(.*?)</tbody>", table, re.S).group(1)
    rows = []
    for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
        rows.append(dict(zip(header, [html_lib.unescape(c) for c in cells])))
    return rows


def _pm(v, digits=2):
    return f"{v['mean']:.{digits}f} ± {v['se']:.{digits}f}"


def test_page_and_markdown_are_self_contained(report_runs):
    out = report_runs["out"]
    html, md = _read(os.path.join(out, "index.html")), _read(os.path.join(out, "report.md"))
    assert "<script" not in html.lower() and "<link" not in html.lower()  # inline CSS, no JS, nothing fetched
    assert not re.search(r'(src|href)="(https?:)?//', html)
    images = re.findall(r'<img src="([^"]+)"', html)
    md_images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert images and sorted(images) == sorted(md_images)
    for src in images:
        assert os.path.getsize(os.path.join(out, src)) > 0, src
    for run in ("vae-z2", "iwae3-z4"):
        for name in ("samples", "reconstructions", "interpolations", "latent", "nll", "khat"):
            assert f"{run}/{name}.png" in images, (run, name)
        assert os.path.exists(os.path.join(out, run, "importance.nc"))
    assert "curves.png" in images
    # the protocol is stated above the table
    assert html.index('id="protocol"') < html.index('id="runs"')
    assert f"K={K} samples per point" in html and "binarization dynamic" in html and "test split of digits" in html
    assert "Protocol." in md and f"NLL (K={K})" in md


def test_table_numbers_are_the_runs_eval_json(report_runs):
    html = _read(os.path.join(report_runs["out"], "index.html"))
    rows = _runs_table(html)
    assert [r["run"] for r in rows] == sorted(["vae-z2", "iwae3-z4"], key=lambda n: json.load(
        open(os.path.join(report_runs["a" if n == "vae-z2" else "b"], "eval.json")))["nll"]["mean"])  # sorted by NLL
    for key in ("a", "b"):
        run_dir = report_runs[key]
        ev = json.load(open(os.path.join(run_dir, "eval.json")))
        config = json.load(open(os.path.join(run_dir, "config.json")))
        assert ev["protocol"]["num_samples"] == K and ev["protocol"]["split"] == "test"
        row = next(r for r in rows if r["run"] == os.path.basename(run_dir))
        assert row["model"] == "vae" and row["guide"] == "diagonal" and row["prior"] == "standard"
        assert row["objective"] == config["objective"]
        assert row["data (binarization)"] == "digits (dynamic)"
        assert row[f"NLL (K={K})"] == _pm(ev["nll"])
        assert row["test \u2212ELBO"] == _pm(ev["neg_elbo"])
        assert row["KL"] == _pm(ev["kl"])
        assert row["\u2212reconstruction"] == f"{-ev['recon']['mean']:.2f} ± {ev['recon']['se']:.2f}"
        assert row["bits/dim"] == _pm(ev["bits_per_dim"], 4)
        assert row["active units"] == f"{ev['active_units']} of {ev['latent_units']}"
        assert row["k-hat > 0.7"] == f"{100 * ev['psis']['share_khat_above_0.7']:.1f}%"
        assert row["parameters"] == f"{config['num_parameters']:,}"
        assert row["epochs"].startswith(str(config["train"]["epochs"]))
        assert row["published (paper)"] == "none matches"
    # the numeric table the page is made from
    from reports.table import build_table, run_record

    recs = [run_record(os.path.basename(report_runs[k]), json.load(open(os.path.join(report_runs[k], "config.json"))),
                       json.load(open(os.path.join(report_runs[k], "eval.json"))), []) for k in ("a", "b")]
    df = build_table(recs)
    assert list(df["nll"]) == sorted(df["nll"])
    ev_a = json.load(open(os.path.join(report_runs["a"], "eval.json")))
    ra = df[df["run"] == "vae-z2"].iloc[0]
    assert ra["nll"] == ev_a["nll"]["mean"] and ra["nll_se"] == ev_a["nll"]["se"] and ra["K"] == K


def test_no_published_row_for_digits_is_said_plainly(report_runs):
    html = _read(os.path.join(report_runs["out"], "index.html"))
    assert html.count("No published row matches: no paper in REFERENCES.md reports scikit-learn&#x27;s 8x8 digits") == 2


def test_second_report_reuses_the_cached_evaluation(report_runs, tmp_path, monkeypatch):
    import zoo.cli.runs

    def no_evaluation(*args, **kwargs):
        raise AssertionError("a second report must not re-evaluate")

    evals = [os.path.join(report_runs[k], "eval.json") for k in ("a", "b")]
    before = [os.stat(p).st_mtime_ns for p in evals]
    monkeypatch.setattr(zoo.cli.runs, "evaluate_run", no_evaluation)
    assert main(["report", report_runs["a"], report_runs["b"], "--out", str(tmp_path / "again"), "--samples", str(K),
                 "--device", "cpu", "--no-progress"]) == 0
    assert [os.stat(p).st_mtime_ns for p in evals] == before
    html = _read(str(tmp_path / "again" / "index.html"))
    assert html.count("(cached evaluation)") == 2 and "Read first" not in html


def test_cached_evaluation_with_another_K_is_stated_not_mixed(report_runs, tmp_path, monkeypatch, capsys):
    import zoo.cli.runs

    monkeypatch.setattr(zoo.cli.runs, "evaluate_run", lambda *a, **k: pytest.fail("must not re-evaluate"))
    assert main(["report", report_runs["a"], "--out", str(tmp_path / "k"), "--samples", "70", "--device", "cpu",
                 "--no-progress"]) == 0
    html = _read(str(tmp_path / "k" / "index.html"))
    assert "Read first" in html and f"used K={K} importance samples, not the K=70 asked for" in html
    assert "--reevaluate" in html and f"NLL (K={K})" in html and "NLL (K=70)" not in html
    assert "K=50 importance samples, not the K=70" in capsys.readouterr().out


def test_reevaluate_evaluates_again_with_the_asked_K(report_runs, tmp_path):
    run = str(tmp_path / "copy")
    shutil.copytree(report_runs["b"], run)
    assert main(["report", run, "--out", str(tmp_path / "r"), "--samples", "20", "--reevaluate", "--device", "cpu",
                 "--no-progress"]) == 0
    ev = json.load(open(os.path.join(run, "eval.json")))
    assert ev["protocol"]["num_samples"] == 20
    row = _runs_table(_read(str(tmp_path / "r" / "index.html")))[0]
    assert row["NLL (K=20)"] == _pm(ev["nll"])


def test_arviz_export_reads_back_with_arviz(report_runs):
    import arviz as az

    from reports.arviz_export import read_importance

    path = os.path.join(report_runs["out"], "vae-z2", "importance.nc")
    idata = az.from_netcdf(path)
    group = idata.importance
    points = torch.load(os.path.join(report_runs["a"], "eval_points.pt"), weights_only=True)
    assert group["log_weights"].dims == ("point", "sample")
    assert group["log_weights"].shape == tuple(points["log_weights"].shape) == (180, K)
    np.testing.assert_array_equal(group["log_weights"].values, points["log_weights"].numpy())
    np.testing.assert_array_equal(group["khat"].values, points["khat"].numpy())
    np.testing.assert_array_equal(group["labels"].values, points["labels"].numpy())
    assert group.attrs["num_samples"] == K and group.attrs["split"] == "test"
    back = read_importance(path)
    _, khat = az.psislw(back["log_weights"].astype(np.float64), reff=1.0)
    np.testing.assert_allclose(khat, back["khat"], atol=0.05)  # k-hat of the stored (float32) log-weights


# ---------------------------------------------------------------------------------------------------- matching


def _config(model="vae", guide="diagonal", prior="standard", objective="elbo", data="mnist", binarize="dynamic",
            beta=1.0, **options):
    return {"model": {"name": model, "options": {"prior": prior, **options}}, "guide": guide, "objective": objective,
            "data": {"name": data, "binarize": binarize}, "train": {"beta": beta}}


def _labels(m):
    return {(r.source.split(",")[0].split(" (")[0], r.label, r.metric, r.value) for r in m.rows}


def test_vae_on_dynamic_mnist_matches_iwae_and_vampprior_rows():
    m = published.match(_config(), {"protocol": {"num_samples": 100}})
    labels = _labels(m)
    assert ("IWAE", "1 layer VAE = IWAE k=1", "nll", 86.76) in labels
    assert ("VampPrior", "VAE L=1 standard", "nll", 84.50) in labels
    assert ("Planar flows", "diagonal (DLGM)", "neg_elbo", 89.9) in labels
    assert not any(r.prior == "vamp" or r.guide != "diagonal" or r.data == "mnist-static" for r in m.rows)
    assert not any(r.family != "vae" for r in m.rows)  # not the IAF paper's ResNet VAE, not 2-layer models
    iwae = m.rows.index(next(r for r in m.rows if r.cite == "iwae"))
    assert any("K=5000" in n and "K=100" in n for n in m.notes[iwae])
    provenance = {r.cite: r.provenance for r in m.rows}
    assert provenance["iwae"] == "repo" and provenance["vampprior"] == "seed"


def test_mnist5k_and_digits_do_not_match_mnist_figures():
    m = published.match(_config(data="mnist5k"))
    assert not m.rows and "5000-digit subset" in m.reason and "not comparable" in m.reason
    m = published.match(_config(data="digits"))
    assert not m.rows and "8x8 digits" in m.reason


def test_own_static_binarization_is_not_larochelle_static_mnist():
    m = published.match(_config(binarize="static"))
    assert not any(r.data == "mnist-static" for r in m.rows)
    assert "Larochelle" in m.reason
    m = published.match(_config(data="binarized-mnist", binarize="static"))
    assert ("IWAE", "1 layer VAE = IWAE k=1", "nll", 88.71) in _labels(m)
    assert ("VampPrior", "VAE L=1 standard", "nll", 88.56) in _labels(m)


def test_objective_prior_guide_and_family_select_their_rows():
    labels = _labels(published.match(_config(objective="iwae:5")))
    assert labels == {("IWAE", "1 layer IWAE k=5", "nll", 85.54)}
    assert ("VampPrior", "VAE L=1 VampPrior", "nll", 82.38) in _labels(published.match(_config(prior="vamp")))
    labels = _labels(published.match(_config(guide="planar:10")))
    assert labels == {("Planar flows", "NF K=10", "neg_elbo", 87.5)}
    labels = _labels(published.match(_config(guide="sylvester-o:4", data="omniglot")))
    assert labels == {("Sylvester flows", "O-SNF", "neg_elbo", 99.00), ("Sylvester flows", "O-SNF", "nll", 93.82)}
    labels = _labels(published.match(_config(model="hvae")))
    assert ("VampPrior", "HVAE L=2 standard", "nll", 82.42) in labels
    assert ("IWAE", "2 layers VAE = IWAE k=1", "nll", 85.33) in labels


def test_no_match_says_why():
    m = published.match(_config(guide="radial:3"))
    assert not m.rows and "none for this combination" in m.reason and "radial" in m.reason
    m = published.match(_config(beta=4.0))
    assert not m.rows and "beta4-elbo" in m.reason
    m = published.match(_config(data="fashion-mnist"))
    assert not m.rows and "fashion-mnist" in m.reason


def test_published_data_carry_sources_and_provenance():
    assert {r.provenance for r in published.PUBLISHED} == {"seed", "repo", "recalled"}
    for r in published.PUBLISHED:
        assert r.citation and r.source and r.printed and r.data in published.DATA and r.metric in published.METRICS


def test_matching_row_is_shown_in_its_own_column_with_the_citation(report_runs, tmp_path, monkeypatch):
    """A run whose config says dynamic MNIST (a copy of a digits run, relabelled) gets the papers' figures."""
    import zoo.cli.runs

    run = str(tmp_path / "as-mnist")
    shutil.copytree(report_runs["a"], run)
    cfg = json.load(open(os.path.join(run, "config.json")))
    cfg["data"]["name"] = "mnist"
    with open(os.path.join(run, "config.json"), "w") as f:
        json.dump(cfg, f)
    monkeypatch.setattr(zoo.cli.runs, "evaluate_run", lambda *a, **k: pytest.fail("must not re-evaluate"))
    from reports.report import build_report

    report = build_report([run], str(tmp_path / "r"), samples=K, device="cpu", progress=False,
                          log=lambda *a, **k: None)
    cell = report.display.iloc[0]["published (paper)"]
    assert "NLL 86.76 (IWAE (Burda et al. 2016): 1 layer VAE = IWAE k=1) [repo]" in cell
    assert "NLL 84.50 (VampPrior (Tomczak & Welling 2018): VAE L=1 standard) [seed]" in cell
    html = _read(report.html_path)
    assert "Importance Weighted Autoencoders" in html and "VAE with a VampPrior" in html
    assert f"the paper&#x27;s NLL used K=5000 importance samples, this run&#x27;s K={K}" in html


# ---------------------------------------------------------------------------------------------------- figures


def test_reconstruction_is_generic_and_interpolation_needs_one_latent_site(report_runs):
    from reports import figures
    from zoo.cli.assemble import load_run

    comps = load_run(report_runs["b"], torch.device("cpu"))
    x = comps.data.test.x[:5]
    r = figures.reconstruct(comps.model, comps.guide, x)
    assert r.shape == x.shape and float(r.min()) >= 0 and float(r.max()) <= 1
    assert figures.single_latent_site(comps.model) == ("z", "")
    z = torch.zeros(3, 4)
    assert figures.decode_latents(comps.model, "z", z, comps.data.dim).shape == (3, 64)

    class TwoSites:
        def latent_sites(self):
            from zoo.latents import LatentSite

            return [LatentSite("z1", 2), LatentSite("z2", 2)]

    site, why = figures.single_latent_site(TwoSites())
    assert site is None and "2 latent sites" in why


def test_non_image_data_skip_image_figures_with_a_note(tmp_path):
    run = str(tmp_path / "moons")
    assert main(["train", "--data", "moons", "--out", run, "--device", "cpu", "--epochs", "1", "--batch-size", "1000",
                 "--latent-dim", "2", "--hidden", "8", "--likelihood", "gaussian", "--no-progress"]) == 0
    from reports.report import build_report

    report = build_report([run], str(tmp_path / "r"), samples=30, device="cpu", progress=False)
    notes = " ".join(report.runs[0].notes)
    assert "not images" in notes
    names = {os.path.basename(src) for src, _ in report.runs[0].figures}
    assert names == {"latent.png", "nll.png", "khat.png", "ksweep.png"}
    assert "bits/dim" in report.display.columns and report.display.iloc[0]["bits/dim"] == "-"


def test_report_of_a_missing_run_is_one_line_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nosuch"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("zoo: error:") and "does not exist" in err[0]


def test_exact_likelihood_rows_are_not_mixed_with_importance_sampled_ones():
    from reports.table import build_table, display_table, protocol_lines, run_record

    def ev(nll, estimator, k):
        v = {"mean": nll, "se": 0.1}
        return {"nll": v, "neg_elbo": v, "kl": {"mean": 0.0, "se": 0.0}, "recon": {"mean": -nll, "se": 0.1},
                "psis": {}, "protocol": {"num_samples": k, "split": "test", "num_points": 10, "data": "mnist",
                                         "binarize": "none", "estimator": estimator}}

    flow = run_record("flow", _config(model="realnvp", guide="none", objective="mle", binarize="none"),
                      ev(80.0, "exact log-likelihood (model without latent variables, K = 1)", 1), [])
    vae = run_record("vae", _config(binarize="none"), ev(90.0, "logsumexp_k log w_k - log K", 50), [])
    df = build_table([vae, flow])
    shown = display_table(df)
    assert list(shown["run"]) == ["flow", "vae"]
    assert list(shown["NLL (K=50)"]) == ["80.00 ± 0.10 (exact)", "90.00 ± 0.10"]
    assert any("exact -log p(x)" in line and "flow" in line for line in protocol_lines(df))
