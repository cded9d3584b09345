"""`zoo reproduce TABLE` (zoo/cli/reproduce.py): the plan of every cell, a kill and a rerun that redoes nothing
finished, the report's published column for every cell with "not comparable" where data or budget differ, absent data
listed with the file to place, bad input in one line."""
import json
import os
import shlex

import pytest

from reports import published as pub
from zoo.cli.main import build_parser, main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


TINY = """
[table]
name = "tiny"
title = "two cells on digits"
published = "vampprior"
metrics = ["nll"]

[run]
model = "vae"
latent_dim = 2
hidden = [8]
batch_size = 64
lr = 0.01
epochs = 3
warmup = 1

[evaluate]
samples = 20
quality_samples = 0

[datasets.digits]
data = "digits"

[variants.a]
prior = "standard"

[variants.b]
prior = "mog:2"
"""


def test_a_killed_reproduce_resumes_without_redoing_finished_cells(tmp_path, capsys, monkeypatch):
    from zoo.cli import runs

    table = tmp_path / "tiny.toml"
    table.write_text(TINY)
    out = str(tmp_path / "out")
    argv = ["reproduce", str(table), "--out", out, "--device", "cpu", "--no-progress"]
    real = runs.train_run

    def killed_in_epoch_two(config, run_dir, resume=False, on_step=None, **kw):
        if run_dir.endswith("b@digits") and not resume:
            def kill(step):
                if step == 30:  # 22 steps an epoch: epoch 1 checkpointed, epoch 2 under way
                    raise KeyboardInterrupt
            on_step = kill
        return real(config, run_dir, resume=resume, on_step=on_step, **kw)

    monkeypatch.setattr(runs, "train_run", killed_in_epoch_two)
    code, _, _ = run(argv, capsys)
    assert code == 130
    a, b = os.path.join(out, "a@digits"), os.path.join(out, "b@digits")
    finished = {f: os.stat(os.path.join(a, f)).st_mtime_ns for f in ("checkpoint.pt", "best.pt", "eval.json")}
    evaluation = json.load(open(os.path.join(a, "eval.json")))["evaluation_id"]
    killed_epoch = open(os.path.join(b, "metrics.jsonl")).readline()
    assert not os.path.exists(os.path.join(b, "eval.json"))

    monkeypatch.setattr(runs, "train_run", real)
    code, printed, err = run(argv, capsys)
    assert code == 0, err
    assert "b@digits: resume (killed after epoch 1)" in printed and "a@digits:" not in printed
    assert {f: os.stat(os.path.join(a, f)).st_mtime_ns for f in finished} == finished  # not retrained, not re-evaluated
    assert json.load(open(os.path.join(a, "eval.json")))["evaluation_id"] == evaluation
    lines = open(os.path.join(b, "metrics.jsonl")).read().splitlines()
    assert len(lines) == 3 and lines[0] == killed_epoch.strip()  # epoch 1 kept as it was: continued, not restarted
    report = json.load(open(os.path.join(out, "report.json")))
    assert [r["status"] for r in report["rows"]] == ["done", "done"]
    assert all(r["measured"] is not None and r["se"] > 0 for r in report["rows"])

    code, printed, _ = run(argv, capsys)  # all done: nothing runs, nothing is written but the report
    assert code == 0 and "[1/" not in printed
    assert {f: os.stat(os.path.join(a, f)).st_mtime_ns for f in finished} == finished


def test_budget_and_other_data_are_not_comparable_and_every_cell_keeps_its_published_number(tmp_path, capsys):
    out = str(tmp_path / "vamp")
    code, printed, err = run(["reproduce", "vampprior", "--data", "digits", "--budget", "0.0005", "--cells",
                              "vae-standard", "--out", out, "--device", "cpu", "--no-progress"], capsys)
    assert code == 0, err
    report = json.load(open(os.path.join(out, "report.json")))
    rows = {r["cell"]: r for r in report["rows"]}
    assert set(rows) == {f"vae-standard@{d}" for d in ("static-mnist", "dynamic-mnist", "omniglot", "caltech101",
                                                         "frey", "histopathology")}
    for r in rows.values():  # the published column, from reports/published.py, for every cell
        want = [p for p in pub.PUBLISHED if p.cite == "vampprior" and p.label == "VAE L=1 standard"
                and p.data == {"static-mnist": "mnist-static", "dynamic-mnist": "mnist-dynamic"}.get(
                    r["dataset"], r["dataset"])]
        assert len(want) == 1 and r["published"] == want[0].value
    run_dir = os.path.join(out, "vae-standard@digits-budget0.0005")
    config = json.load(open(os.path.join(run_dir, "config.json")))
    assert config["train"]["epochs"] == 1 and config["train"]["warmup"] == 1 and config["train"]["patience"] == 1
    assert config["data"]["name"] == "digits"
    assert json.load(open(os.path.join(run_dir, "eval.json")))["protocol"]["num_samples"] == 100
    for name in ("static-mnist", "dynamic-mnist", "omniglot", "caltech101"):  # one run serves the four
        r = rows[f"vae-standard@{name}"]
        assert r["status"] == "done" and r["run_dir"] == run_dir and not r["comparable"]
        assert any("digits" in w for w in r["not_comparable"]) and any("budget" in w for w in r["not_comparable"])
        assert r["difference"] == pytest.approx(r["measured"] - r["published"])
    assert rows["vae-standard@frey"]["status"] == "not runnable"
    md = open(os.path.join(out, "report.md")).read()
    assert "88.56" in md and "not comparable: run on digits" in md and "gated_layers" in md
    assert "<table>" in open(os.path.join(out, "index.html")).read()


def test_print_commands_plans_every_cell(tmp_path, capsys):
    out = str(tmp_path / "plan")
    code, printed, err = run(["reproduce", "vampprior", "--data", "mnist5k", "--budget", "0.05", "--out", out,
                              "--device", "cpu", "--print-commands"], capsys)
    assert code == 0, err
    commands = [shlex.split(line)[1:] for line in printed.splitlines() if line.startswith("zoo ")]
    trains = [c for c in commands if c[0] == "train"]
    assert len(trains) == 4 and len(commands) == 8  # vae, hvae x standard, vamp; the conv models want a GPU
    for argv in commands:
        build_parser().parse_args(argv)
    assert all(c[c.index("--epochs") + 1] == "100" and c[c.index("--patience") + 1] == "3" for c in trains)
    assert "# convhvae-vamp@omniglot: needs gpu" in printed and "# pixelhvae-standard@frey: not runnable" in printed
    assert not os.path.exists(out)


def test_absent_data_is_listed_with_the_file_to_place(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ZOO_DATA", str(tmp_path / "empty"))
    out = str(tmp_path / "omni")
    code, printed, err = run(["reproduce", "vampprior", "--data", "omniglot", "--cells", "vae-*", "--out", out],
                             capsys)
    assert code == 0, err
    rows = json.load(open(os.path.join(out, "report.json")))["rows"]
    assert [r["cell"] for r in rows] == ["vae-standard@omniglot", "vae-vamp@omniglot"]
    for r in rows:
        assert r["status"] == "data absent" and "chardata.mat" in r["reason"] and r["published"] is not None
    assert "chardata.mat" in printed

    table = tmp_path / "t.toml"
    table.write_text(TINY.replace('data = "digits"', 'data = "nosuchdata"\nfiles = "nosuch.mat"'))
    code, printed, _ = run(["reproduce", str(table), "--out", str(tmp_path / "t")], capsys)
    assert code == 0 and "no loader registered" in printed and "nosuch.mat" in printed


@pytest.mark.parametrize("argv, fragments", [
    (["reproduce", "nosuch"], ["unknown table 'nosuch'", "vampprior"]),
    (["reproduce", "vampprior", "--budget", "2"], ["--budget", "(0, 1]"]),
    (["reproduce", "vampprior", "--cells", "nosuch*"], ["no cell of table vampprior matches", "vae-vamp@omniglot"]),
    (["reproduce", "/nonexistent/table.toml"], ["does not exist"]),
])
def test_bad_reproduce_input_is_one_line(argv, fragments, capsys, one_line_error):
    code, _, err = run(argv + ["--print-commands"], capsys)
    one_line_error(code, err, *fragments)
