"""The report's estimators table and K-sweep figure: every cell is eval.json's number, and the sentence says what the
numbers mean (an estimate still falling with K or with heavy-tailed weights has not converged; the BDMC gap bounds
AIS's error)."""
import html as html_lib
import json
import os
import re
import shutil

import pytest

from reports.estimators import estimators_table, reading
from zoo.cli.main import main


def _table(html: str, table_id: str):
    table = re.search(rf'<table[^>]*id="{table_id}"[^>]*>(.*?)</table>', html, re.S).group(1)
    header = [html_lib.unescape(re.sub(r"<[^>]+>", "", h).strip()) for h in re.findall(r"<th[^>]*>(.*?)</th>", table, re.S)]
    body = re.search(r"<tbody>(.*?)</tbody>", table, re.S).group(1)
    return [dict(zip(header, [html_lib.unescape(re.sub(r"<[^>]+>", "", c).strip())
                              for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]))
            for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


@pytest.fixture(scope="module")
def ais_report(request, tmp_path_factory):
    """The session's tiny digits run, evaluated again with K=40, AIS (T=6, 2 chains) and BDMC on 4 simulated points,
    then reported."""
    from test_report import report_runs_for

    runs = report_runs_for(request.config, tmp_path_factory)
    root = tmp_path_factory.mktemp("ais_report")
    run, out = str(root / "vae-ais"), str(root / "report")
    shutil.copytree(runs["a"], run)
    assert main(["evaluate", run, "--samples", "40", "--estimator", "ais:6", "--chains", "2", "--leapfrog", "2",
                 "--bdmc", "4", "--quality-samples", "0", "--no-progress", "--device", "cpu"]) == 0
    assert main(["report", run, "--out", out, "--samples", "40", "--device", "cpu", "--no-progress"]) == 0
    return run, out


def test_estimators_table_holds_eval_json_numbers_and_the_sweep_is_drawn(ais_report):
    run, out = ais_report
    ev = json.load(open(os.path.join(run, "eval.json")))
    html = open(os.path.join(out, "index.html"), encoding="utf-8").read()
    (row,) = _table(html, "estimators-table")
    pm = lambda v: f"{v['mean']:.2f} ± {v['se']:.2f}"  # noqa: E731
    assert row["run"] == "vae-ais"
    assert row["NLL, IS"] == f"{pm(ev['nll'])} (K=40)"
    assert [s["K"] for s in ev["k_sweep"]] == [1, 10, 40]
    assert row["IS at K = 1 · 10 · 100 · ..."] == " · ".join(f"{s['K']}: {s['nll']['mean']:.2f}" for s in ev["k_sweep"])
    assert ev["k_sweep"][-1]["nll"] == ev["nll"]  # the last sweep point is the headline estimate
    assert row["jackknife"] == pm(ev["nll_jackknife"])
    assert row["AIS"].startswith(pm(ev["ais"]["nll"]) + " (T=6, 2 chains")
    assert row["BDMC gap (simulated)"].startswith(pm(ev["ais"]["bdmc"]["gap"]) + " on 4 points")
    notes = re.search(r'<ul id="estimators-notes">(.*?)</ul>', html, re.S).group(1)
    assert "vae-ais: " in notes and "AIS with this T can be off by about that much" in notes
    assert "vae-ais/ksweep.png" in re.findall(r'<img src="([^"]+)"', html)
    assert os.path.getsize(os.path.join(out, "vae-ais", "ksweep.png")) > 0
    md = open(os.path.join(out, "report.md"), encoding="utf-8").read()
    assert "### How far the NLL can be trusted" in md and pm(ev["ais"]["bdmc"]["gap"]) in md


def _summary(share, sweep, jk=None, ais=None):
    return {"protocol": {"num_samples": sweep[-1][0], "estimator": "logsumexp"},
            "nll": {"mean": sweep[-1][1], "se": 0.5}, "psis": {"share_khat_above_0.7": share, "median_khat": 0.9},
            "k_sweep": [{"K": k, "nll": {"mean": v, "se": 0.5}} for k, v in sweep],
            **({"nll_jackknife": {"mean": jk, "se": 0.5}} if jk is not None else {}),
            **({"ais": ais} if ais else {})}


def test_reading_says_when_the_estimate_has_not_converged():
    text = reading(_summary(0.99, [(1, 130.0), (1000, 110.24), (5000, 109.77)], jk=109.5))
    assert "above 0.7 for 99% of test points" in text and "has not converged" in text
    assert "From K=1000 to K=5000 the NLL still falls by 0.47 nats" in text
    assert "0.27 nats below the IS figure" in text
    calm = reading(_summary(0.0, [(1, 90.0), (100, 88.0), (500, 88.0)]))
    assert "reliable" in calm and "changes by +0.00 nats: it has nearly settled" in calm and "not converged" not in calm


def test_reading_compares_ais_with_is_and_states_the_bdmc_gap():
    ais = {"steps": 500, "chains": 16, "nll": {"mean": 109.0, "se": 0.4}, "acceptance": 0.7,
           "bdmc": {"points": 50, "gap": {"mean": 0.8, "se": 0.1}, "lower": {"mean": -100.0, "se": 1.0},
                    "upper": {"mean": -99.2, "se": 1.0}}}
    text = reading(_summary(0.99, [(1, 130.0), (5000, 109.77)], ais=ais))
    assert "AIS (T=500, 16 chains) gives 109.00 ± 0.40, +0.77 nats from the IS figure" in text
    assert "IS was too pessimistic" in text and "differ by 0.80 ± 0.10 nats" in text


def test_models_without_estimates_have_no_row():
    class S:
        def __init__(self, name, summary):
            self.name, self.summary = name, summary

    exact = S("flow", {"protocol": {"estimator": "exact log-likelihood"}, "nll": {"mean": 1.0, "se": 0.1}})
    implicit = S("gan", {"implicit": True, "nll": None, "protocol": {"estimator": "none"}})
    est = S("vae", _summary(0.2, [(1, 100.0), (10, 99.0)]))
    assert list(estimators_table([exact, implicit, est])["run"]) == ["vae"]
