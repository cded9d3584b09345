"""Issue 18: the run directory survives full disks, concurrent writers, damaged files and diverging training.

Each test reproduces a reported failure: a real small tmpfs for the full disk, real processes for the lock, a crash
injected at every write of ``zoo train``, ``zoo evaluate`` and ``zoo report``."""
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from inference import atomic_write
from inference import run_dir as rd
from zoo.cli.main import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAST = ["--epochs", "1", "--batch-size", "128", "--latent-dim", "2", "--hidden", "16", "--no-progress", "--data",
        "digits"]


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, *fragments):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo: error:"), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished, evaluated run to copy from."""
    out = str(tmp_path_factory.mktemp("hardening") / "base")
    assert main(["train", "--out", out, "--checkpoint-every", "5"] + FAST) == 0
    assert main(["evaluate", out, "--samples", "4", "--no-progress"]) == 0
    return out


def copy_run(trained, tmp_path, name="run"):
    dst = str(tmp_path / name)
    shutil.copytree(trained, dst)
    return dst


def all_finite(path):
    state = torch.load(path, weights_only=True)
    tensors = []

    def walk(v):
        if torch.is_tensor(v):
            tensors.append(v)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)

    walk(state)
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())


# ---------------------------------------------------------------------------------------------------------------- 1
@pytest.fixture
def small_disk(tmp_path):
    """A real 400 KB tmpfs (mounting needs root: skipped with the reason elsewhere)."""
    folder = tmp_path / "small"
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a 400 KB tmpfs needs root and the mount command")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(folder)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not allowed here: {done.stderr.strip()[:200]}")
    try:
        yield str(folder)
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _fill(folder, leave_bytes):
    """Fill the file system of ``folder`` until ENOSPC, then free ``leave_bytes``."""
    filler = os.path.join(folder, "filler")
    with open(filler, "ab", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    if leave_bytes:
        os.truncate(filler, max(0, os.path.getsize(filler) - leave_bytes))


def test_full_disk_is_one_line_keeps_the_previous_checkpoint_and_leaves_no_partial_file(small_disk, capsys):
    """Reported: torch's zip writer raised `RuntimeError: [enforce fail at inline_container.cc] unexpected pos` (exit 1,
    a traceback) and 0-byte temporary files stayed behind. Now: one line naming the file, exit 2, no partial file."""
    out = os.path.join(small_disk, "r")
    code, _, err = run(["train", "--out", out, "--checkpoint-every", "3"] + FAST, capsys)
    assert code == 0, err
    _fill(small_disk, 30_000)  # room for metrics.jsonl, not for the mid-epoch checkpoint
    code, _, err = run(["train", "--resume", out, "--epochs", "2", "--no-progress"], capsys)
    one_line_error(code, err, f"cannot write {out}/checkpoint.pt: no space left on the device; the previous "
                              f"checkpoint.pt is kept")
    _fill(small_disk, 0)
    for argv, path in ((["evaluate", out, "--samples", "4", "--no-progress"], f"{out}/eval_points.pt"),
                       (["sample", out], f"{out}/samples.png"),
                       (["report", out, "--out", os.path.join(small_disk, "rep"), "--samples", "4", "--no-progress"],
                        small_disk)):
        code, _, err = run(argv, capsys)
        line = one_line_error(code, err, "no space left", path)
        assert line.startswith(f"zoo: error: cannot write {path}"), line
    os.unlink(os.path.join(small_disk, "filler"))
    files = [os.path.join(b, n) for b, _, names in os.walk(small_disk) for n in names]
    assert not [p for p in files if os.path.basename(p).startswith(".tmp-") or p.endswith(".tmp")], files
    assert not [p for p in files if os.path.getsize(p) == 0], files  # no 0-byte leftovers
    assert rd.read_metrics(out)[0]["epoch"] == 0 and torch.load(os.path.join(out, rd.CHECKPOINT), weights_only=True)


# ---------------------------------------------------------------------------------------------------------------- 2
HOLDER = """
import sys, time
from inference.run_lock import RunLock
RunLock(sys.argv[1], "zoo train", create=True).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_process_is_refused_while_the_first_holds_the_run_and_a_dead_holder_is_stale(tmp_path, trained,
                                                                                            capsys):
    out = copy_run(trained, tmp_path)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, out], stdout=subprocess.PIPE, text=True, env=env,
                              cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for argv in (["train", "--model", "hvae", "--out", out, "--overwrite"] + FAST,
                     ["train", "--resume", out, "--no-progress"], ["evaluate", out, "--no-progress"]):
            code, _, err = run(argv, capsys)  # this process against the holder process
            one_line_error(code, err, f"in use by process {holder.pid} (zoo train)")
    finally:
        holder.send_signal(signal.SIGKILL)  # dies holding the lock: the kernel drops it, the lock file stays
        holder.wait()
    assert os.path.exists(os.path.join(out, rd.LOCK))
    before = rd.read_metrics(out)
    code, _, err = run(["train", "--resume", out, "--epochs", "2", "--no-progress"], capsys)
    assert code == 0, err
    assert [r["epoch"] for r in rd.read_metrics(out)] == [0, 1] and rd.read_metrics(out)[0] == before[0]
    assert not os.path.exists(os.path.join(out, rd.LOCK))  # released at the end


# ---------------------------------------------------------------------------------------------------------------- 3
def test_out_on_an_existing_run_is_refused_unless_overwrite_which_drops_the_old_evaluation(tmp_path, trained, capsys):
    out = copy_run(trained, tmp_path)
    old_eval = open(os.path.join(out, rd.EVAL)).read()
    code, _, err = run(["train", "--model", "hvae", "--out", out] + FAST, capsys)
    one_line_error(code, err, "already holds a run", "--resume", "--overwrite")
    assert open(os.path.join(out, rd.EVAL)).read() == old_eval  # nothing touched
    code, _, err = run(["train", "--model", "hvae", "--out", out, "--overwrite"] + FAST, capsys)
    assert code == 0, err
    assert not os.path.exists(os.path.join(out, rd.EVAL)) and not os.path.exists(os.path.join(out, rd.EVAL_POINTS))
    assert rd.read_config(out)["model"]["name"] == "hvae" and len(rd.read_metrics(out)) == 1


# ---------------------------------------------------------------------------------------------------------------- 4
class InjectedCrash(BaseException):
    """Raised by the n-th write (a BaseException, as a kill: nothing in the zoo may catch it and carry on)."""


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _files(folders):
    found = {}
    for folder in folders:
        for base, _, names in os.walk(folder):
            for name in names:
                if name != rd.LOCK:
                    found[os.path.join(base, name)] = _sha(os.path.join(base, name))
    return found


def _crash_at(n, argv, monkeypatch):
    """Run ``zoo argv`` with its n-th write raising before the rename; returns (crashed, {path: [committed shas]})."""
    committed, count = {}, [0]

    def commit(tmp, path):
        count[0] += 1
        if count[0] == n:
            raise InjectedCrash(path)
        committed.setdefault(os.path.abspath(path), []).append(_sha(tmp))
        os.replace(tmp, path)

    monkeypatch.setattr(atomic_write, "_commit", commit)
    try:
        code = main(argv)
        assert code == 0
        return False, committed, count[0]
    except InjectedCrash:
        return True, committed, count[0]
    finally:
        monkeypatch.undo()


@pytest.mark.parametrize("command", ["train", "evaluate", "report"])
def test_a_crash_at_any_write_leaves_every_file_old_or_new_and_complete(tmp_path, trained, command, monkeypatch,
                                                                       capsys):
    """The campaign's injection: make the n-th write raise, for every n until a run has no write left to crash, and
    check every file in the run directory (and the report folder) is a version that existed before or that the
    command wrote whole; a crashed command rerun without crashing then succeeds."""
    base_report = str(tmp_path / "base-report")
    if command == "report":  # a report to replace, and an evaluation to redo (so its pair is written too)
        assert main(["report", trained, "--out", base_report, "--samples", "4", "--no-progress"]) == 0
    n = 1
    while True:
        src = copy_run(trained, tmp_path, f"src{n}")
        rep = str(tmp_path / f"rep{n}")
        if command == "report":
            shutil.copytree(base_report, rep)
        argv = {"train": ["train", "--resume", src, "--epochs", "2", "--no-progress"],
                "evaluate": ["evaluate", src, "--samples", "6", "--no-progress"],
                "report": ["report", src, "--out", rep, "--samples", "6", "--reevaluate", "--no-progress"]}[command]
        folders = [src] + ([rep] if command == "report" else [])
        before = _files(folders)
        crashed, committed, _ = _crash_at(n, argv, monkeypatch)
        capsys.readouterr()
        after = _files(folders)
        for path, sha in after.items():
            allowed = {before.get(path)} | set(committed.get(os.path.abspath(path), []))
            assert sha in allowed, (n, path)
            assert not os.path.basename(path).startswith(".tmp-"), path
        assert set(before) <= set(after), (n, set(before) - set(after))  # nothing lost
        if not crashed:
            break
        if command != "report" or n % 4 == 1:  # the directory is usable after the crash
            assert main(argv) == 0, n
        if command == "train":
            assert [r["epoch"] for r in rd.read_metrics(src)] == [0, 1]
        shutil.rmtree(src)
        n += 1
    assert n > {"train": 4, "evaluate": 2, "report": 8}[command]  # the writes were really there to crash


def test_eval_json_and_eval_points_are_one_evaluation(tmp_path, trained, monkeypatch, capsys):
    """Reported: a crash between the two writes left a new eval.json beside an old eval_points.pt (the report then
    labelled K=100 figures as K=50). Points are written first and eval.json last, with one id; the report sees a
    mismatch, says so and re-evaluates."""
    out = copy_run(trained, tmp_path)
    old = json.load(open(os.path.join(out, rd.EVAL)))
    crashed, committed, _ = _crash_at(2, ["evaluate", out, "--samples", "7", "--no-progress"], monkeypatch)
    assert crashed and list(committed) == [os.path.abspath(os.path.join(out, rd.EVAL_POINTS))]
    assert json.load(open(os.path.join(out, rd.EVAL)))["protocol"]["num_samples"] == old["protocol"]["num_samples"]
    code, out_text, err = run(["report", out, "--out", str(tmp_path / "rep"), "--samples", "5", "--no-progress"],
                              capsys)
    assert code == 0, err
    assert "belongs to another evaluation" in out_text + err
    fresh = json.load(open(os.path.join(out, rd.EVAL)))
    points = torch.load(os.path.join(out, rd.EVAL_POINTS), weights_only=True)
    assert fresh["protocol"]["num_samples"] == 5 and points["evaluation_id"] == fresh["evaluation_id"]
    assert points["log_px"].shape[0] == fresh["protocol"]["num_points"]


# ---------------------------------------------------------------------------------------------------------------- 5
def test_resume_removes_the_temporary_files_of_killed_writes(tmp_path, trained, capsys):
    out = copy_run(trained, tmp_path)
    leftovers = [".tmp-checkpoint.pt-abc123.pt", "config.json.tmp", ".tmp-metrics.jsonl-x.jsonl"]
    for name in leftovers:
        with open(os.path.join(out, name), "wb") as f:
            f.write(b"\0" * 1000)
    code, _, err = run(["train", "--resume", out, "--epochs", "2", "--no-progress"], capsys)
    assert code == 0, err
    assert not [n for n in os.listdir(out) if n in leftovers or n.startswith(".tmp-")]


# ---------------------------------------------------------------------------------------------------------------- 6
def _damage(out, name, content):
    with open(os.path.join(out, name), "wb") as f:
        f.write(content)


@pytest.mark.parametrize("name, content, fragment", [
    (rd.CHECKPOINT, b"", "empty"),
    (rd.BEST, b"", "empty"),
    (rd.CONFIG, b"{}", "no 'model' entry"),
    (rd.CONFIG, b"[1, 2]", "JSON list, not an object"),
    (rd.CONFIG, b"", "empty"),
    (rd.CONFIG, b'{"model": {"name": "vae"}, "guide": "diagonal", "objective": "elbo", "data": {}, "train": {}}',
     "no data name"),
    (rd.METRICS, b'{"epoch": 0, "train_loss": 1.0, "valid_loss": 1.0}\ngarbage\n', "line 2 is not JSON"),
])
@pytest.mark.parametrize("command", ["resume", "evaluate", "sample", "report"])
def test_a_damaged_run_file_is_one_line_in_every_command(tmp_path, trained, capsys, name, content, fragment, command):
    out = copy_run(trained, tmp_path)
    _damage(out, name, content)
    argv = {"resume": ["train", "--resume", out, "--epochs", "2", "--no-progress"],
            "evaluate": ["evaluate", out, "--samples", "3", "--no-progress"],
            "sample": ["sample", out, "-n", "4", "--out", str(tmp_path / "s.png")],
            "report": ["report", out, "--out", str(tmp_path / "rep"), "--samples", "3", "--no-progress"]}[command]
    uses = {"resume": {rd.CHECKPOINT, rd.CONFIG, rd.METRICS}, "evaluate": {rd.BEST, rd.CONFIG, rd.METRICS},
            "sample": {rd.BEST, rd.CONFIG}, "report": {rd.CONFIG, rd.METRICS}}[command]
    code, _, err = run(argv, capsys)
    if name not in uses:
        assert code == 0, err
        if command == "report" and name == rd.BEST:  # the cached evaluation is shown; the figures say why not
            assert os.path.join(out, name) in err and "empty" in err
            assert "empty" in open(tmp_path / "rep" / "report.md").read()
        return
    line = one_line_error(code, err, fragment)
    assert os.path.join(out, name) in line


@pytest.mark.parametrize("name, content", [
    (rd.EVAL, b""), (rd.EVAL, b"{not json"), (rd.EVAL, b"[1, 2]"), (rd.EVAL, b'{"protocol": {}}'),
    (rd.EVAL_POINTS, b""), (rd.EVAL_POINTS, b"garbage" * 20), (rd.EVAL_POINTS, None),
])
def test_the_report_remakes_a_damaged_evaluation_cache_and_says_so(tmp_path, trained, capsys, name, content):
    out = copy_run(trained, tmp_path)
    if content is None:  # points of another evaluation
        points = torch.load(os.path.join(out, rd.EVAL_POINTS), weights_only=True)
        points["evaluation_id"] = "another"
        torch.save(points, os.path.join(out, rd.EVAL_POINTS))
    else:
        _damage(out, name, content)
    code, text, err = run(["report", out, "--out", str(tmp_path / "rep"), "--samples", "3", "--no-progress"], capsys)
    assert code == 0, err
    assert "could not be used" in text and "re-evaluated" in text
    assert json.load(open(os.path.join(out, rd.EVAL)))["protocol"]["num_samples"] == 3
    assert "could not be used" in open(tmp_path / "rep" / "report.md").read()


def test_resume_with_a_config_that_does_not_fit_the_checkpoint(tmp_path, trained, capsys):
    out = copy_run(trained, tmp_path)
    config = json.load(open(os.path.join(out, rd.CONFIG)))
    config["model"]["options"]["latent_dim"] = 3
    _damage(out, rd.CONFIG, json.dumps(config).encode())
    code, _, err = run(["train", "--resume", out, "--epochs", "2", "--no-progress"], capsys)
    one_line_error(code, err, "does not fit the model", rd.CHECKPOINT)


# ---------------------------------------------------------------------------------------------------------------- 7
class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_malicious_checkpoint_is_refused_without_advice_to_unpickle_it(tmp_path, trained, capsys):
    out = copy_run(trained, tmp_path)
    marker = str(tmp_path / "code-ran")
    torch.save({"format": "zoo-checkpoint-1", "model": _Payload(marker)}, os.path.join(out, rd.BEST))
    code, _, err = run(["sample", out, "--out", str(tmp_path / "s.png")], capsys)
    line = one_line_error(code, err, "not a zoo checkpoint", "may be unsafe", "not unpickled")
    assert "weights_only" not in line and "succeed" not in line
    assert not os.path.exists(marker)


# ---------------------------------------------------------------------------------------------------------------- 8
def test_divergence_never_writes_non_finite_state_and_says_what_exists(tmp_path, capsys):
    """Reported: --lr 1e39 --checkpoint-every 1 said checkpoint.pt "holds the last finite state" while 8 of its 32
    tensors were inf/NaN, and the same claim was made when no checkpoint existed."""
    out = str(tmp_path / "r")
    code, _, err = run(["train", "--out", out, "--lr", "1e39", "--checkpoint-every", "1"] + FAST, capsys)
    line = one_line_error(code, err, "training diverged", "not finite", "smaller --lr")
    for name in (rd.CHECKPOINT, rd.BEST):
        if os.path.exists(os.path.join(out, name)):
            assert all_finite(os.path.join(out, name)), name
    if os.path.exists(os.path.join(out, rd.CHECKPOINT)):
        assert "holds the last finite state" in line
    else:
        assert "no checkpoint was written" in line


def test_an_iaf_blow_up_does_not_end_with_inf_in_adams_state(tmp_path, capsys):
    """Reported: --guide iaf:2 --lr 5 exited 0 with inf in Adam's state."""
    out = str(tmp_path / "r")
    code, _, err = run(["train", "--out", out, "--guide", "iaf:2", "--lr", "5", "--epochs", "2"] + FAST[2:], capsys)
    for name in (rd.CHECKPOINT, rd.BEST):
        if os.path.exists(os.path.join(out, name)):
            assert all_finite(os.path.join(out, name)), name
    assert code == 2 and "training diverged" in err or code == 0


def test_divergence_on_data_at_a_huge_scale_names_the_data(tmp_path, capsys):
    path = str(tmp_path / "huge.npz")
    np.savez(path, x=(np.random.RandomState(0).randn(600, 5) * 1e18).astype("float32"))
    code, _, err = run(["train", "--data", path, "--out", str(tmp_path / "r")] + FAST[:-2], capsys)
    line = one_line_error(code, err, "training diverged", "|x| = ", "standardize")
    assert "--lr" not in line


def test_a_finite_blow_up_warns(tmp_path, capsys):
    code, _, err = run(["train", "--out", str(tmp_path / "r"), "--lr", "10", "--epochs", "3"] + FAST[2:], capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("zoo: warning:")]
    assert len(warnings) == 1 and "may be diverging" in warnings[0] and "--lr 10" in warnings[0]


def test_a_healthy_run_does_not_warn(tmp_path, capsys):
    code, _, err = run(["train", "--out", str(tmp_path / "r"), "--epochs", "4"] + FAST[2:], capsys)
    assert code == 0 and "warning" not in err, err


# ---------------------------------------------------------------------------------------------------------------- 9
def test_resume_with_epochs_extends_a_finished_run_exactly(tmp_path, capsys):
    """--resume DIR --epochs N was ignored; it now extends the run, bit for bit the run trained for N at once."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert run(["train", "--out", a, "--epochs", "3"] + FAST[2:], capsys)[0] == 0
    assert run(["train", "--out", b, "--epochs", "2"] + FAST[2:], capsys)[0] == 0
    code, text, err = run(["train", "--resume", b, "--epochs", "3", "--no-progress"], capsys)
    assert code == 0 and "trained 3 epochs" in text, err
    sa, sb = (torch.load(os.path.join(d, rd.CHECKPOINT), weights_only=True) for d in (a, b))
    for part in ("model", "guide"):
        for key in sa[part]:
            assert torch.equal(sa[part][key], sb[part][key]), key
    assert rd.read_config(b)["train"]["epochs"] == 3
    strip = lambda rows: [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]  # noqa: E731
    assert strip(rd.read_metrics(a)) == strip(rd.read_metrics(b))
    code, _, err = run(["train", "--resume", b, "--epochs", "2", "--no-progress"], capsys)
    one_line_error(code, err, "already trained 3 epochs")


@pytest.mark.parametrize("extra, fragment", [
    (["--lr", "0.1"], "--lr cannot change"),
    (["--latent-dim", "5"], "--latent-dim cannot change"),
    (["--out", "elsewhere"], "--out cannot change"),
])
def test_resume_refuses_options_it_would_ignore(tmp_path, trained, capsys, extra, fragment):
    out = copy_run(trained, tmp_path)
    code, _, err = run(["train", "--resume", out] + extra, capsys)
    one_line_error(code, err, fragment)


@pytest.mark.parametrize("extra, fragment", [
    (["--labels", "100"], "makes no use of labels"),
    (["--latent-dim1", "4"], "no use for --latent-dim1"),
    (["--flow-depth", "3"], "no use for --flow-depth"),
    (["--num-scales", "2"], "no use for --num-scales"),
    (["--alpha", "0.5"], "no use for --alpha"),
    (["--model", "nice", "--latent-dim", "4"], "no use for --latent-dim"),
    (["--model", "m2", "--data", "NOLABELS"], "learns from labels, but data set"),
])
def test_options_a_model_has_no_use_for_are_refused(tmp_path, capsys, extra, fragment):
    if "NOLABELS" in extra:
        path = str(tmp_path / "x.npz")
        np.savez(path, x=(np.random.RandomState(0).rand(300, 16) > 0.5).astype("float32"))
        extra = [path if e == "NOLABELS" else e for e in extra]
    code, _, err = run(["train", "--out", str(tmp_path / "r")] + FAST + extra, capsys)
    one_line_error(code, err, fragment)


# --------------------------------------------------------------------------------------------------------------- 10
@pytest.mark.parametrize("argv, fragment", [
    (["train", "--guide", "planar:x"], "K must be a positive integer, got 'x'"),
    (["train", "--objective", "iwae:y"], "K must be a positive integer, got 'y'"),
    (["train", "--device", "cuda:1"], "cuda:1"),
    (["train", "--device", "cuda:x"], "--device must be"),
    (["train", "--seed", "99999999999999999999999"], "expected a seed from 0 to 4294967295"),
    (["train", "--alpha", "nan"], "expected a non-negative finite number, got 'nan'"),
    (["train", "--alpha", "inf"], "expected a non-negative finite number, got 'inf'"),
    (["train", "--hidden", "100000000"], "out of memory: one tensor needed"),
])
def test_remaining_user_input_errors_are_one_line(tmp_path, capsys, monkeypatch, argv, fragment):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run(argv[:1] + ["--out", str(tmp_path / "r")] + FAST + argv[1:], capsys)
    one_line_error(code, err, fragment)


def test_a_huge_label_is_an_out_of_memory_line_with_the_size(tmp_path, capsys):
    path = str(tmp_path / "y.npz")
    rng = np.random.RandomState(0)
    y = rng.randint(0, 3, 300)
    y[5] = 10**9
    np.savez(path, x=(rng.rand(300, 16) > 0.5).astype("float32"), y=y)
    code, _, err = run(["train", "--model", "m2", "--data", path, "--labels", "10", "--out", str(tmp_path / "r")]
                       + FAST[:-2], capsys)
    line = one_line_error(code, err, "out of memory")
    assert "GiB" in line


@pytest.mark.parametrize("name, fragment", [("s.txt", "'.txt' is not an image format"), ("s", "no extension")])
def test_sample_to_a_path_that_is_not_an_image(tmp_path, trained, capsys, name, fragment):
    code, _, err = run(["sample", trained, "--out", str(tmp_path / name)], capsys)
    one_line_error(code, err, fragment)
    assert not os.path.exists(tmp_path / name)


# --------------------------------------------------------------------------------------------------------------- 11
def test_m2s_printout_shows_elbo_kl_and_a_k_sample_nll_not_an_exact_one(tmp_path, capsys):
    out = str(tmp_path / "m2")
    assert run(["train", "--model", "m2", "--labels", "50", "--out", out] + FAST, capsys)[0] == 0
    code, text, err = run(["evaluate", out, "--samples", "10", "--no-progress"], capsys)
    assert code == 0, err
    assert "exactly" in json.load(open(os.path.join(out, rd.EVAL)))["protocol"]["estimator"]  # what fooled it
    table = "\n".join(line for line in text.splitlines() if line.startswith("  "))
    assert "NLL (K=10)" in table and "exact" not in table
    assert "test -ELBO" in table and "KL(q||p)" in table


def test_a_model_without_latents_prints_the_exact_nll_only():
    import io

    from zoo.cli.main import print_eval

    v = {"mean": 3.0, "se": 0.1}
    summary = {"protocol": {"estimator": "exact log-likelihood (model without latent variables, K = 1)",
                            "num_samples": 1, "data": "moons", "split": "test", "num_points": 10, "binarize": "none"},
               "nll": v, "psis": {"share_khat_above_0.7": None}}
    out = io.StringIO()
    print_eval(summary, out)
    assert "NLL (exact)" in out.getvalue() and "ELBO" not in out.getvalue()
