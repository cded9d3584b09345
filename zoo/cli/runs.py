"""Run-level operations shared by the CLI and the report: train a config, evaluate a run directory, draw samples."""
import json
import math
import os
import time
import uuid
from typing import Optional

import pyro
import torch

from inference import run_dir as rd
from inference.evaluation import importance_sample, summarize
from inference.training import Trainer, TrainConfig, config_dict, unique_parameters
from zoo.cli import semi_supervised
from zoo.cli.assemble import VERSION, build_components, load_run, resolve_device
from inference.atomic_write import remove_leftovers, write_atomic
from inference.checkpoint import load_tensors, save_atomic
from inference.run_lock import RunLock
from zoo.errors import ConfigError, RunDirError
from zoo.networks.precision import resolve_precision
from zoo.provenance import evaluation_provenance


def make_config(model, guide, objective, data, binarize, model_options, train: TrainConfig, device="auto", root=None):
    return {"zoo_version": VERSION, "model": {"name": model, "options": dict(model_options)}, "guide": guide,
            "objective": objective, "data": {"name": data, "binarize": binarize, "root": root},
            "train": config_dict(train), "device": device}


def train_run(config: dict, out: str, resume: bool = False, on_step=None, progress=True, objects=None,
              overwrite: bool = False) -> dict:
    """Train the run described by ``config`` into ``out`` (or continue it with ``resume``); ``objects`` are the
    Python API's components that config.json can only name (:mod:`zoo.api`).

    The process holds ``out``'s lock (:mod:`inference.run_lock`) from start to end. A directory that already holds a
    run is refused unless ``resume`` (continue it) or ``overwrite`` (remove its files, evaluation included, first);
    temporary files of killed writes are removed."""
    from inference.distributed import current

    if not current().is_main:  # only the main process writes the run directory
        return _train_run(config, out, resume, on_step, progress, objects)
    with RunLock(out, "zoo train", create=True):
        remove_leftovers(out)
        if not resume and rd.is_run(out):
            if not overwrite:
                found = ", ".join(f for f in rd.RUN_FILES if os.path.exists(rd.path(out, f)))
                raise ConfigError(f"{out} already holds a run ({found}); continue it with `zoo train --resume {out}`, "
                                  f"or replace it with --overwrite (its checkpoints and evaluation are removed)")
            for name in rd.RUN_FILES:
                if os.path.exists(rd.path(out, name)):
                    os.unlink(rd.path(out, name))
        if resume:
            stored = rd.read_config(out)
            if stored["train"].get("epochs") != config["train"].get("epochs"):  # --resume --epochs N: extended
                rd.write_json_atomic(config, rd.path(out, rd.CONFIG))
        return _train_run(config, out, resume, on_step, progress, objects)


def _train_run(config: dict, out: str, resume: bool, on_step, progress, objects) -> dict:
    device = resolve_device(config.get("device", "auto"))
    _resolve_train_precision(config, device)
    pyro.set_rng_seed(config["train"]["seed"])  # the initial weights depend on the seed alone
    semi_supervised.prepare_config(config)  # model/guide/objective pair; M1+M2's --m1-run
    comps = build_components(config, device, objects=objects)
    semi_supervised.prepare_components(config, comps, resume)  # --labels N; M1 copied into M1+M2
    data = comps.data
    comps.model.check_data(data.train.x if data.binarize != "dynamic" else data.train_epoch_x(0), "the training split")
    comps.model.check_data(data.valid.x, "the validation split")
    try:
        train_cfg = TrainConfig(**{**config["train"], "progress": progress and config["train"].get("progress", True)})
    except (ConfigError, TypeError) as e:
        if not resume:
            raise
        raise RunDirError(f"{rd.path(out, rd.CONFIG)} holds a training configuration this zoo refuses ({e}); the file "
                          f"was changed or damaged; train the run again with --overwrite") from None
    config["num_parameters"] = sum(p.numel() for p in unique_parameters(comps.model, comps.guide))
    if comps.critic is not None:
        config["critic_parameters"] = sum(p.numel() for p in comps.critic.parameters())
    config["data"]["info"] = {"train": len(data.train), "valid": len(data.valid), "test": len(data.test),
                              "dim": data.dim, "image_shape": data.image_shape, **data.info}
    from inference.distributed import current

    if not resume and current().is_main:
        rd.write_json_atomic(config, rd.path(out, rd.CONFIG))
    trainer_class, extra = Trainer, {}
    if comps.critic is not None:
        from inference.adversarial_training import AdversarialTrainer

        trainer_class, extra = AdversarialTrainer, {"critic": comps.critic}
    trainer = trainer_class(comps.model, comps.guide, comps.objective, data, train_cfg, out,
                            model_name=config["model"]["name"], run_config=json.loads(json.dumps(config)), **extra)
    t0 = time.perf_counter()
    progress_state = trainer.fit(resume=resume, on_step=on_step)
    stage = semi_supervised.after_training(comps, out)  # M1: the classifier on posterior means
    if stage:
        progress_state["after_training"] = stage
    progress_state["wall_seconds"] = time.perf_counter() - t0
    return progress_state


def _resolve_train_precision(config: dict, device):
    """config["train"]["precision"] as the run uses it: ``auto`` resolved for this device (bf16 only where it is
    native) and recorded in config.json with its reason in ``precision_reason``. A recorded fp32 or bf16 (a resumed
    run, also on another machine, whose precision is never switched under it; an old config) is kept."""
    train = config["train"]
    requested = train.get("precision", "fp32")  # configs from before --precision ran fp32
    train["precision"], reason = resolve_precision(requested, device)
    if requested == "auto" or not train.get("precision_reason"):
        train["precision_reason"] = reason


DEFAULT_QUALITY_SAMPLES = 2000
QUALITY_SAMPLES_ENV = "ZOO_QUALITY_SAMPLES"


def default_quality_samples() -> int:
    """The default number of samples for the sample-quality metrics: $ZOO_QUALITY_SAMPLES when set (the test suite
    sets a small one), else :data:`DEFAULT_QUALITY_SAMPLES`."""
    text = os.environ.get(QUALITY_SAMPLES_ENV, "").strip()
    if not text:
        return DEFAULT_QUALITY_SAMPLES
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError(f"${QUALITY_SAMPLES_ENV} must be a non-negative integer (0 skips the sample-quality "
                          f"metrics), got {text!r}")
    return value


def evaluate_run(run_dir: str, num_samples: int = 5000, split: str = "test", batch_size: int = 100,
                 device=None, progress=True, keep_log_weights=True, precision="auto", ais: Optional[dict] = None,
                 quality_samples: Optional[int] = None, inference_gap: Optional[dict] = None) -> dict:
    """Evaluate the best weights of a run with the zoo's protocol; write eval.json and eval_points.pt.

    The two files are one evaluation: eval_points.pt is written first and eval.json last, both carrying the same
    ``evaluation_id``, so a crash between the writes leaves an eval.json that does not match the points (and the
    report re-evaluates) rather than new numbers beside old points.

    ``ais={"steps": T, "chains": C, "leapfrog": L, "bdmc": N}`` adds annealed importance sampling
    (:mod:`inference.ais`) as ``ais`` beside the importance-sampled ``nll``, and with N > 0 bidirectional Monte Carlo
    on N simulated points, which says how far AIS with that T can be off.

    ``quality_samples`` N > 0 (default :func:`default_quality_samples`) adds the sample-quality metrics (:mod:`inference.sample_quality`: N samples against
    the split's points through the zoo's feature classifier) as ``sample_quality``, and the same metrics of the
    other real split as ``sample_quality_reference``; where they cannot be computed (no labels, a model that cannot
    sample) ``sample_quality_reason`` says why. An implicit generator (``model.implicit``: x = G(z), no density)
    gets no NLL, ELBO or k-hat (``nll`` null and ``nll_reason``), only sample quality.

    ``inference_gap={"points": N, "family": "guide", "steps": ..., ...}`` adds the inference gap split on the first N
    points (:mod:`inference.inference_gap`: a local q fitted per point) as ``inference_gap``."""
    if quality_samples is None:
        quality_samples = default_quality_samples()
    if quality_samples < 0:
        raise ConfigError(f"--quality-samples must be 0 (skip) or a positive number of samples, got {quality_samples}")
    rd.read_config(run_dir)  # a missing or damaged run says so before anything is created
    with RunLock(run_dir, "zoo evaluate"):
        return _evaluate_run(run_dir, num_samples, split, batch_size, device, progress, keep_log_weights, precision,
                             ais, quality_samples, inference_gap)


IMPLICIT_REASON = "implicit generator: x = G(z) has no density"


def _evaluate_run(run_dir, num_samples, split, batch_size, device, progress, keep_log_weights, precision,
                  ais=None, quality_samples=DEFAULT_QUALITY_SAMPLES, inference_gap=None) -> dict:
    device = resolve_device(device or "auto")
    precision, precision_reason = resolve_precision(precision, device)  # auto: bf16 only where it is native
    comps = load_run(run_dir, device)
    data_split = getattr(comps.data, split)
    comps.model.check_data(data_split.x, f"the {split} split")
    if inference_gap:  # refused in one line before any sampling
        from inference.inference_gap import check_supported

        check_supported(comps.model, comps.guide, inference_gap.get("family", "guide"))
    if getattr(comps.model, "implicit", False):
        summary, points = _implicit_summary(comps, split, data_split, precision)
        if ais:  # Wu et al. 2017: a log-likelihood for the generator with Gaussian observation noise, by AIS
            from inference.implicit_likelihood import evaluate_implicit_ais

            summary["ais"] = evaluate_implicit_ais(comps.model, data_split.x, comps.data.valid.x, ais, batch_size)
            summary["protocol"]["ais_estimator"] = summary["ais"]["estimator"]
        extras = getattr(comps.objective, "evaluation_extras", None)  # infogan: the code's accuracy on the labels
        if callable(extras):
            summary.update(extras(comps.model, comps.guide, comps.data, split))
    else:
        if ais and ais.get("observation_sigma") is not None:
            raise ConfigError("--observation-sigma gives an implicit generator (x = G(z)) a Gaussian observation "
                              "model; this model has its own likelihood: leave it out")
        guide = comps.guide
        if getattr(guide, "implicit", False):  # no log q(z|x) (avb): a Gaussian proposal fitted per point
            from inference.fitted_proposal import FittedGaussianProposal

            comps.guide = FittedGaussianProposal(guide, comps.model).prepare(data_split.x, batch_size)
        summary, points = _likelihood_summary(comps, split, data_split, num_samples, batch_size, progress,
                                              keep_log_weights, precision, ais, inference_gap)
        if comps.guide is not guide:
            summary["protocol"]["proposal"] = comps.guide.describe()
            summary["proposal_fit"] = comps.guide.fit_summary()
            comps.guide = guide
    summary["protocol"]["precision_reason"] = precision_reason
    _add_sample_quality(summary, comps, split, quality_samples, progress)
    metrics = rd.read_metrics(run_dir)
    summary["train_seconds"] = sum(r.get("seconds", 0.0) for r in metrics)
    summary["epochs_trained"] = len(metrics)
    chosen = [r for r in metrics if r.get("best")]  # the epoch best.pt holds (two-player runs: the last)
    summary["best_epoch"] = (chosen[-1]["epoch"] if chosen else min(metrics, key=lambda r: r["valid_loss"])["epoch"]
                             ) if metrics else None
    summary["provenance"] = evaluation_provenance(comps)  # data checksums, code version and commit, machine
    summary["evaluation_id"] = uuid.uuid4().hex
    if data_split.y is not None:
        points["labels"] = data_split.y.cpu()
    points["evaluation_id"] = summary["evaluation_id"]
    save_atomic(points, rd.path(run_dir, rd.EVAL_POINTS))
    rd.write_json_atomic(summary, rd.path(run_dir, rd.EVAL))
    return summary


def _implicit_summary(comps, split, data_split, precision):
    """eval.json of an implicit generator before its sample quality: no likelihood, and the reason."""
    summary = {"implicit": True, "nll": None, "nll_reason": IMPLICIT_REASON, "neg_elbo": None, "recon": None,
               "kl": None, "psis": None, "active_units": None, "latent_units": None, "seconds": 0.0,
               "protocol": {"num_samples": None, "split": split, "num_points": len(data_split),
                            "binarize": comps.data.binarize, "data": comps.config["data"]["name"],
                            "weights": "best validation epoch", "estimator": f"none ({IMPLICIT_REASON})",
                            "precision": precision}}
    return summary, {}


def _likelihood_summary(comps, split, data_split, num_samples, batch_size, progress, keep_log_weights, precision,
                        ais, inference_gap=None):
    """The importance-sampled evaluation (and AIS when asked): eval.json's numbers and eval_points.pt's arrays."""
    exact = bool(getattr(comps.model, "exact_likelihood", False))
    if exact:  # no latent variables (flow models): log w = log p(x) for every sample, one is the exact answer
        num_samples = 1
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(data_split) * num_samples, desc=f"evaluating (K={num_samples})", unit="pt-sample",
                   unit_scale=True, leave=False, dynamic_ncols=True, mininterval=0.5)
    t0 = time.perf_counter()
    samples = importance_sample(comps.model, comps.guide, data_split.x, data_split.y, num_samples, batch_size,
                                keep_log_weights=keep_log_weights, progress=bar, precision=precision)
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    bins = getattr(comps.model, "dequantization_bins", None)
    # bits/dim only where the NLL is a code length: image data under a pmf likelihood (Bernoulli, discretized)
    discrete = comps.model.observed_is_discrete()
    summary = summarize(samples, num_samples, comps.data.dim,
                        pixels=comps.data.image_shape is not None and discrete, dequantization_bins=bins)
    summary["protocol"] = {"num_samples": num_samples, "split": split, "num_points": len(data_split),
                           "binarize": comps.data.binarize, "data": comps.config["data"]["name"],
                           "weights": "best validation epoch", "estimator": "logsumexp_k log w_k - log K",
                           "precision": precision}
    if exact:
        summary["protocol"]["estimator"] = "exact log-likelihood (model without latent variables, K = 1)"
    if bins:
        summary["protocol"]["dequantization"] = (
            f"{bins}-level data dequantized to [0,1]^D with fixed seeded uniform noise; NLL in nats of that "
            f"density (logit Jacobian included); bits/dim = NLL/(D ln 2) + log2({bins})")
    semi_supervised.add_evaluation(summary, comps, data_split)  # test_error; m2: y summed out in log p(x)
    _add_sequence_evaluation(summary, samples, comps, data_split)
    if getattr(comps.model, "is_multimodal_model", False):  # mvae: each marginal and conditional (inference/multimodal.py)
        from inference.multimodal import multimodal_evaluation

        summary["multimodal"], marginals = multimodal_evaluation(
            comps.model, comps.guide, data_split.x, samples["log_px"], num_samples, batch_size, precision)
        samples.update({f"log_p_{name}": v for name, v in marginals.items()})
    ais_log_px = None
    if ais and not exact:
        from inference.ais import evaluate_ais

        ais_bar = None
        if progress:
            from tqdm.auto import tqdm

            passes = 1 + 2 * bool(ais.get("bdmc"))
            ais_bar = tqdm(total=(len(data_split) + 2 * int(ais.get("bdmc") or 0)) * ais["steps"] // passes * passes,
                           desc=f"AIS (T={ais['steps']})", unit="pt-step", unit_scale=True, leave=False,
                           dynamic_ncols=True, mininterval=0.5)
        part, ais_log_px = evaluate_ais(comps.model, comps.guide, data_split.x, data_split.y, ais["steps"],
                                        ais.get("chains", 16), ais.get("leapfrog", 10), batch_size,
                                        ais.get("bdmc") or 0, progress=ais_bar)
        if ais_bar is not None:
            ais_bar.close()
        summary["ais"] = part  # beside the importance-sampled nll (the table's column stays what its label says)
        summary["protocol"]["ais_estimator"] = part["estimator"]
    summary["seconds"] = seconds
    _add_information(summary, comps, data_split, exact, batch_size)  # I_q, marginal KL, TC, dimension-wise KL
    sweep = samples.pop("log_px_sweep", None) or {}
    points = {k: torch.as_tensor(v) for k, v in samples.items() if v is not None}
    points.update({f"log_px_K{k}": torch.as_tensor(v) for k, v in sweep.items()})
    if ais_log_px is not None:
        points["ais_log_px"] = torch.as_tensor(ais_log_px)
    if inference_gap and not exact:
        summary["inference_gap"], gap_points = _inference_gap(comps, data_split, samples, ais_log_px, summary,
                                                              batch_size, progress, inference_gap)
        points.update({k: torch.as_tensor(v) for k, v in gap_points.items()})
    return summary, points


def _inference_gap(comps, data_split, samples, ais_log_px, summary, batch_size, progress, options):
    """eval.json's ``inference_gap``: log p(x) from AIS when it ran, else the importance-sampled one; the amortized
    ELBO from the same evaluation (:mod:`inference.inference_gap`)."""
    from inference.inference_gap import DEFAULTS, evaluate_inference_gap

    options = dict(options)
    points = min(int(options.pop("points")), len(data_split))
    if ais_log_px is not None:
        log_px, label = ais_log_px, summary["ais"]["estimator"]
    else:
        log_px, label = samples["log_px"], f"importance sampling, K = {summary['protocol']['num_samples']}"
    bar = None
    if progress:
        from tqdm.auto import tqdm

        steps = options.get("steps")
        bar = tqdm(total=points * int(DEFAULTS["steps"] if steps is None else steps), desc="inference gap (local q)",
                   unit="pt-step", unit_scale=True, leave=False, dynamic_ncols=True, mininterval=0.5)
    try:
        return evaluate_inference_gap(comps.model, comps.guide, data_split.x, data_split.y, log_px, samples["elbo"],
                                      points, log_px_estimator=label, batch_size=batch_size, progress=bar, **options)
    finally:
        if bar is not None:
            bar.close()


def _add_information(summary: dict, comps, data_split, exact: bool, batch_size: int):
    """eval.json's ``information`` (:mod:`inference.information`: the KL term split into I_q(x; z) and KL(q(z)||p(z)),
    and that into total correlation and dimension-wise KL, over the first DEFAULT_POINTS test points with
    DEFAULT_SAMPLES draws each), or ``information_reason`` where it does not apply."""
    from inference.information import evaluate_information

    if exact:
        summary["information_reason"] = "no latent variables"
        return
    part, reason = evaluate_information(comps.model, comps.guide, data_split.x, data_split.y, batch_size=batch_size)
    if part is None:
        summary["information_reason"] = reason
    else:
        summary["information"] = part


def _add_sequence_evaluation(summary: dict, samples: dict, comps, data_split):
    """Sequences: the numbers above are per sequence (log p(x_<=L)); add them per step (each sequence's value divided
    by its length L, then averaged), and for a model with an exact likelihood (lgssm: the Kalman filter) the exact
    NLL beside the estimate."""
    shape = getattr(comps.data, "sequence_shape", None)
    if shape is None:
        return
    from inference.evaluation import mean_se
    from zoo.sequences import lengths_of

    steps = lengths_of(data_split.x, shape[1]).double().cpu().numpy()
    summary["nll_per_step"] = mean_se(-samples["log_px"] / steps)
    summary["neg_elbo_per_step"] = mean_se(-samples["elbo"] / steps)
    summary["protocol"]["sequences"] = {"steps": shape[0], "step_dim": shape[1], "mean_length": float(steps.mean()),
                                        "per_step": "each sequence's log p(x_<=L) / L, averaged over sequences"}
    exact = getattr(comps.model, "exact_log_likelihood", None)
    if callable(exact):
        with torch.no_grad():
            values = torch.cat([exact(data_split.x[i:i + 500]) for i in range(0, len(data_split), 500)])
        summary["exact_nll"] = mean_se(-values.cpu().numpy())
        summary["protocol"]["exact"] = "Kalman filter (zoo/kalman.py)"


def _classifier_data(comps):
    """The run's data set as grey levels with every label (the classifier binarizes them itself where the run does)."""
    if comps.data.binarize == "none":
        return comps.data
    from zoo.data import load_dataset

    d = comps.config["data"]
    return load_dataset(d["name"], binarize="none", seed=comps.config["train"]["seed"],
                        root=d.get("root")).to(comps.device)


def _add_sample_quality(summary: dict, comps, split: str, quality_samples: int, progress: bool):
    """eval.json's ``sample_quality`` and ``sample_quality_reference``, or ``sample_quality_reason``."""
    import sys

    from inference import feature_classifier as fc
    from inference import sample_quality as sq

    def skip(reason):
        summary["sample_quality_reason"] = reason

    if quality_samples == 0:
        return skip("skipped (--quality-samples 0)")
    if getattr(comps.data, "modalities", None) is not None:
        return skip("multimodal data: the zoo's feature classifier reads one image, not a row of several modalities")
    real = getattr(comps.data, split)
    other_split = "valid" if split == "test" else "test"
    other = getattr(comps.data, other_split)
    least = sq.minimum_points()
    if min(quality_samples, len(real), len(other)) < least:
        return skip(f"too few points: the metrics need at least {least} samples and {least} points in the "
                    f"{split} and {other_split} splits ({quality_samples}, {len(real)}, {len(other)})")
    binarized = comps.data.binarize != "none"
    name = comps.config["data"]["name"]
    try:
        data = _classifier_data(comps)
        announce = (lambda: print(f"training the zoo's feature classifier for {name} ("
                                  f"{'binarized' if binarized else 'grey-level'} inputs; cached in {fc.cache_dir()})",
                                  file=sys.stderr)) if progress else None
        clf = fc.get_classifier(data, name, binarized, fc.DEFAULT_SEED, device=comps.device, on_train=announce)
    except fc.NoLabels as e:
        return skip(str(e))
    clip = None
    if comps.data.image_shape is not None and float(real.x.min()) >= 0 and float(real.x.max()) <= 1:
        clip = (0.0, 1.0)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=quality_samples, desc="sampling for sample quality", unit="sample", leave=False,
                   dynamic_ncols=True, mininterval=0.5)
    try:
        part = sq.sample_quality(comps.model, clf, real.x, quality_samples, draw=binarized, clip=clip,
                                 real_split=split, progress=bar)
    except Exception as e:  # noqa: BLE001 - a model that cannot sample is said, not a failed evaluation
        first = str(e).splitlines()[0] if str(e) else ""
        return skip(f"the model could not be sampled: {type(e).__name__}{': ' + first if first else ''}")
    finally:
        if bar is not None:
            bar.close()
    info = {k: v for k, v in clf.info.items() if k != "valid_accuracy_per_epoch"}
    part["classifier"] = info
    if clf.notes:
        part["notes"] = list(clf.notes)
    summary["sample_quality"] = part
    reference = sq.reference_quality(clf, real.x, other.x, real_split=split, other_split=other_split)
    reference["classifier"] = {k: info[k] for k in ("name", "version", "seed", "inputs", "test_accuracy")}
    summary["sample_quality_reference"] = reference


def read_eval(run_dir: str):
    """The run's eval.json (None when it has none); a damaged one is a RunDirError naming it."""
    p = rd.path(run_dir, rd.EVAL)
    if not os.path.exists(p):
        return None
    summary = rd.read_json(p, "re-evaluate the run with `zoo evaluate`")
    if not isinstance(summary, dict) or not isinstance(summary.get("protocol"), dict) or not (all(
            isinstance(summary.get(k), dict) for k in ("nll", "psis")) or summary.get("implicit") is True):
        raise RunDirError(f"{p} is damaged: it is not the eval.json `zoo evaluate` writes; re-evaluate the run")
    for key in ("sample_quality", "sample_quality_reference"):
        if key in summary and not _quality_ok(summary[key]):
            raise RunDirError(f"{p} is damaged: its {key} is not what `zoo evaluate` writes; re-evaluate the run")
    return summary


def _quality_ok(part) -> bool:
    """eval.json's sample_quality (or its reference) holds the numbers the table and the printout read."""
    if not isinstance(part, dict) or not isinstance(part.get("classifier"), dict):
        return False
    numbers = [part.get("frechet_classifier_distance"), part.get("precision"), part.get("recall"),
               part.get("num_samples"), part.get("num_real")]
    pairs = [part.get("kernel_classifier_distance"), part.get("classifier_score")]
    return (all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers)
            and all(isinstance(v, dict) and isinstance(v.get("mean"), (int, float))
                    and isinstance(v.get("se"), (int, float)) for v in pairs))


def read_eval_points(run_dir: str, summary: dict):
    """eval_points.pt as numpy arrays, or None when it is missing; a damaged file, or points of another evaluation
    than ``summary`` (an evaluation interrupted between its two writes), is a RunDirError."""
    p = rd.path(run_dir, rd.EVAL_POINTS)
    if not os.path.exists(p):
        return None
    points = load_tensors(p)
    if points.get("evaluation_id") != summary.get("evaluation_id"):
        raise RunDirError(f"{p} belongs to another evaluation than eval.json (an evaluation was interrupted between "
                          f"its two writes); re-evaluate the run")
    if not summary.get("implicit") and not all(torch.is_tensor(points.get(k)) for k in ("log_px", "khat")):
        raise RunDirError(f"{p} is damaged: it lacks the per-point log p(x) and k-hat; re-evaluate the run")
    return {k: v.numpy() for k, v in points.items() if torch.is_tensor(v)}


def sample_grid(run_dir: str, n: int, out_png: str, seed: int = 0, device=None):
    """Draw n samples (decoder means) from a trained run and save them as an image grid."""
    import torchvision.utils as vutils

    image_format = image_format_of(out_png)
    comps = load_run(run_dir, resolve_device(device or "auto"))
    shape = comps.data.image_shape
    if shape is None:
        raise RunDirError(f"the data of {run_dir} are not images ({comps.data.dim}-dimensional vectors); "
                          "there is no picture to draw")
    torch.manual_seed(seed)
    x = comps.model.sample(n, comps.data.test.x)
    grid = x.reshape(n, *shape).clamp(0, 1).cpu()
    write_atomic(out_png, lambda tmp: vutils.save_image(grid, tmp, nrow=int(math.ceil(math.sqrt(n))), padding=2,
                                                      pad_value=1.0, format=image_format))
    return out_png


def image_format_of(file_path: str) -> str:
    """The image format a path's extension names (``.png``, ``.jpg``, ...), or a ConfigError that says so."""
    from PIL import Image

    ext = os.path.splitext(file_path)[1].lower()
    known = Image.registered_extensions()
    if ext not in known or known[ext] not in Image.SAVE:
        raise ConfigError(f"cannot write an image to {file_path!r}: "
                          + (f"{ext!r} is not an image format" if ext else "it has no extension")
                          + "; give a path ending in .png (or .jpg)")
    return known[ext]
