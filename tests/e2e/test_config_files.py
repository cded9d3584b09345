"""Configurations as data (zoo/config_files.py, zoo/configs/*.toml): the packaged files hold the papers' settings and
every cell names a published row; `zoo train --config` takes the file's values as defaults, flags override them,
config.json records both; bad files are one line and exit 2."""
import hashlib
import json
import os
from types import SimpleNamespace

import pytest

from reports import published as pub
from zoo import config_files
from zoo.cli.main import main
from zoo.tables import TABLES, table_path

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _write(tmp_path, text, name="exp.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _plan(cf):
    return SimpleNamespace(config=cf)


@pytest.mark.parametrize("table", ["vampprior", "sylvester", "iwae", "m2"])
def test_every_packaged_table_is_registered_and_every_runnable_cell_is_valid(table):
    from zoo.cli.reproduce import published_row
    from zoo.references import canonical

    assert table in TABLES.names()
    cf = config_files.load(table_path(table))
    assert cf.name == table and cf.table["published"] == table
    assert cf.open_settings and cf.not_expressible  # the closing note's lists
    cells = cf.cells()
    assert len({c.name for c in cells}) == len(cells)
    for cell in cells:
        values = cf.converted(cell)
        if cell.runnable:
            cf.check_model_keys(cell, canonical(str(values.get("model", "vae"))))
        for metric in cell.meta["metrics"]:  # every cell, run or not, shows its published number
            row = published_row(_plan(cf), cell, metric)
            assert row is not None, (cell.name, metric)
            assert row.cite == table
            if row.samples and metric in ("nll", "bits_per_dim") and cell.runnable:
                assert cell.evaluate["samples"] == row.samples, (cell.name, "K differs from the paper's")
        if not cell.runnable:
            assert cell.meta.get("reason")
    for key in cf.data.get("stages", {}):
        cf.converted(cf.stage(key))


def test_the_configurations_hold_the_papers_settings():
    v = config_files.load("vampprior")
    cell = v.cell("hvae-vamp@dynamic-mnist")
    o = v.converted(cell)
    assert (o["model"], o["latent_dim"], o["latent_dim1"], o["hidden"]) == ("hvae", 40, 40, (300, 300))
    assert (o["lr"], o["batch_size"], o["epochs"], o["warmup"], o["patience"]) == (5e-4, 100, 2000, 100, 50)
    assert o["prior"] == "vamp:500" and o["data"] == "mnist" and o["binarize"] == "dynamic"
    assert cell.evaluate["samples"] == 5000
    row = next(r for r in pub.PUBLISHED if r.cite == "vampprior" and r.label == "HVAE VampPrior"
               and r.data == "mnist-dynamic")
    assert "warm-up for 100 epochs" in row.note and row.samples == cell.evaluate["samples"]
    assert v.converted(v.cell("vae-vamp@static-mnist"))["data"] == "binarized-mnist"

    s = config_files.load("sylvester")
    o = s.converted(s.cell("o-snf@omniglot"))
    assert (o["latent_dim"], o["guide"], o["guide_option"]) == (64, "sylvester-o:16", [("num_ortho_vecs", 32)])
    assert (o["lr"], o["batch_size"], o["warmup"], o["patience"]) == (5e-4, 100, 100, 100)
    assert s.cell("vae@caltech101").evaluate["samples"] == 2000  # REFERENCES.md: Caltech NLL with 2000 samples
    assert s.cell("vae@frey").meta["metrics"] == ["neg_elbo_bits_per_dim", "bits_per_dim"]

    i = config_files.load("iwae")
    o = i.converted(i.cell("iwae-k50-l2@dynamic-mnist"))
    assert (o["model"], o["latent_dim"], o["latent_dim1"], o["objective"]) == ("hvae", 50, 100, "iwae:50")
    assert (o["epochs"], o["batch_size"], o["activation"]) == (3280, 20, "tanh")  # sum of 3^i, i = 0..7
    assert not i.cell("vae-k5-l1@dynamic-mnist").runnable
    assert "lr_schedule" in i.not_expressible

    m = config_files.load("m2")
    o = m.converted(m.cell("m2@labels-3000"))
    assert (o["labels"], o["latent_dim"], o["alpha"], o["lr"]) == (3000, 50, 0.1, 3e-4)
    assert m.converted(m.cell("m1m2@labels-100"))["m1_run"] == "@m1"
    assert "epochs" in m.open_settings


def test_train_config_file_defaults_flags_override_and_config_json_records_both(tmp_path, capsys):
    text = ("# a single run\n[run]\nmodel = \"vae\"\ndata = \"digits\"\nlatent_dim = 2\nhidden = [8]\n"
            "epochs = 1\nbatch_size = 64\nlr = 0.01\nseed = 3\n[evaluate]\nsamples = 20\n")
    path = _write(tmp_path, text)
    out = str(tmp_path / "run")
    # --batch-size 128 is argparse's default value: given on the command line, it still overrides the file's 64
    code, _, err = run(["train", "--config", path, "--batch-size", "128", "--hidden", "4", "--out", out,
                        "--device", "cpu", "--no-progress"], capsys)
    assert code == 0, err
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["train"]["batch_size"] == 128 and config["train"]["lr"] == 0.01 and config["train"]["seed"] == 3
    assert config["model"]["options"]["hidden"] == [4] and config["model"]["options"]["latent_dim"] == 2
    record = config["config_file"]
    assert record["path"] == path and record["sha256"] == hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert record["overridden_by_flags"] == {"batch_size": 128, "hidden": [4]}
    assert record["from_file"]["lr"] == 0.01 and "batch_size" not in record["from_file"]
    assert record["settings"]["batch_size"] == 128 and record["evaluate"] == {"samples": 20}


def test_a_data_sets_own_binarization_stays_with_it(tmp_path):
    from zoo.cli.main import build_parser
    from zoo.config_files import apply_to_train_args

    path = _write(tmp_path, "[run]\nmodel = \"vae\"\n[datasets.a]\ndata = \"mnist\"\nbinarize = \"static\"\n")
    argv = ["train", "--config", path, "--data", "digits"]
    args = build_parser().parse_args(argv)
    record = apply_to_train_args(args, argv)
    assert args.data == "digits" and args.binarize is None and record["dropped_with_data"] == {"binarize": "static"}


@pytest.mark.parametrize("text, fragments", [
    ("[run]\nmodel = \"vae\"\nlatent_dim1 = 4\n", ["model 'vae' takes no 'latent_dim1'", "valid keys for vae",
                                                   "latent_dim"]),
    ("[run]\nhiden = [4]\n", ["unknown key 'hiden'", "valid keys", "hidden"]),
    ("[run]\nmodel = \"vae\nlr = 1\n", ["does not parse as TOML", "line 2"]),
    ("[runs]\nlr = 1\n", ["unknown table [runs]", "[run]"]),
    ("[run]\nlr = -1\n", ["lr = -1", "positive finite number"]),
    ("[run]\nhidden = \"wide\"\n", ["hidden", "comma-separated"]),
    ("[variants.a]\nmodel = \"vae\"\n[variants.b]\nmodel = \"hvae\"\n", ["2 cells", "--cell", "a, b"]),
])
def test_bad_config_files_are_one_line(text, fragments, tmp_path, capsys, one_line_error):
    path = _write(tmp_path, text)
    code, _, err = run(["train", "--config", path, "--out", str(tmp_path / "r"), "--no-progress"], capsys)
    one_line_error(code, err, path, *fragments)
    assert not os.path.exists(tmp_path / "r" / "config.json")


def test_unknown_cell_missing_file_and_resume_are_one_line(tmp_path, capsys, one_line_error):
    code, _, err = run(["train", "--config", "vampprior", "--cell", "nosuch"], capsys)
    one_line_error(code, err, "no cell 'nosuch'", "vae-vamp@omniglot")
    code, _, err = run(["train", "--config", str(tmp_path / "none.toml")], capsys)
    one_line_error(code, err, "does not exist", "vampprior")
    code, _, err = run(["train", "--config", "vampprior", "--cell", "m2", "--resume", str(tmp_path)], capsys)
    one_line_error(code, err, "--resume")
    code, _, err = run(["train", "--config", "m2", "--cell", "m1m2@labels-100"], capsys)
    one_line_error(code, err, "--m1-run DIR")
    code, _, err = run(["train", "--config", "iwae", "--cell", "vae-k5-l1@dynamic-mnist"], capsys)
    one_line_error(code, err, "listed, not run", "no :K")
