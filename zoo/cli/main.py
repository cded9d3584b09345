"""The ``zoo`` command: list, train, evaluate, sample, report, demo.

Every error a user can cause is one line on stderr and exit code 2, never a traceback.
"""
import argparse
import contextlib
import os
import sys

from zoo.errors import ConfigError, ZooError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line instead of usage + message
        self.exit(2, f"zoo: error: {message} (see `{self.prog} --help`)\n")


def _number(cast, ok, what):
    """An argparse type: ``cast`` the text and accept it when ``ok(value)``, else say it expected ``what``."""
    def parse(text):
        try:
            value = cast(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_nonneg_int = _number(int, lambda v: v >= 0, "a non-negative integer")
_positive_float = _number(float, lambda v: 0 < v < float("inf"), "a positive finite number")
_nonneg_float = _number(float, lambda v: 0 <= v < float("inf"), "a non-negative finite number")
_seed = _number(int, lambda v: 0 <= v < 2**32, "a seed from 0 to 4294967295")


def _betas(text):
    try:
        b1, b2 = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers B1,B2 such as 0.5,0.999, got {text!r}")
    if not (0 <= b1 < 1 and 0 <= b2 < 1):
        raise argparse.ArgumentTypeError(f"Adam's betas must lie in [0, 1), got {text!r}")
    return [b1, b2]


def _hidden(text):
    """``400,400`` -> (400, 400); ``0`` or empty -> () (a linear decoder)."""
    try:
        sizes = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hidden takes comma-separated layer widths like 400,400, got {text!r}")
    if any(s < 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"--hidden widths must be non-negative, got {text!r}")
    return tuple(s for s in sizes if s > 0)


def _key_value(text):
    """``num_ortho_vecs=8`` -> ("num_ortho_vecs", 8); ``hidden_dims=64,64`` -> ("hidden_dims", [64, 64])."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")

    def scalar(v):
        for cast in (int, float):
            try:
                return cast(v)
            except ValueError:
                pass
        return {"true": True, "false": False}.get(v.lower(), v)

    parts = [scalar(v.strip()) for v in value.split(",")]
    return key.strip(), (parts if "," in value else parts[0])


def _label_repeat(text):
    """``auto`` or a positive integer (``--label-repeat``)."""
    return text if text == "auto" else _positive_int(text)


def build_parser():
    p = _Parser(prog="zoo", description="A zoo of deep generative models in Pyro: train, evaluate, report.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", help="list registered models, guides, objectives, priors, likelihoods and data sets")

    t = sub.add_parser("train", help="train a model with a guide and an objective")
    t.add_argument("--config", default=None, metavar="FILE",
                   help="a TOML configuration file (zoo/configs/*.toml: vampprior, sylvester, iwae, m2, or yours): its "
                        "settings are the defaults, flags given here override them; config.json records both")
    t.add_argument("--cell", default=None, metavar="NAME", help="with --config: the cell of the file's table to run")
    t.add_argument("--model", default="vae",
                   help="a registered model (`zoo list`), or your own: package.module:attr or path/to/file.py:attr "
                        "(a Pyro model function model(x, y=None), an nn.Module, or a model class)")
    t.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE", type=_key_value,
                   help="an option of the model's own constructor, e.g. latent_dim=8 (repeatable)")
    t.add_argument("--guide", default=None, help="default: the model's (diagonal; semi-supervised for m2, m1+m2); "
                                                 "or your own guide as module:attr / file.py:attr")
    t.add_argument("--guide-option", action="append", default=[], metavar="KEY=VALUE", type=_key_value,
                   help="an option of the guide, e.g. num_ortho_vecs=8 for sylvester-o:K (repeatable)")
    t.add_argument("--objective", default=None, help="default: the model's (elbo; enum for m2, m1+m2)")
    t.add_argument("--labels", type=_positive_int, default=None,
                   help="keep N training labels (class-balanced, seeded by --seed), hide the rest (semi-supervised)")
    t.add_argument("--alpha", type=_nonneg_float, default=None,
                   help="m2, m1+m2: weight of the classification term per data point (default 200 for m2, 10 for m1+m2, "
                        "measured; the paper's 0.1 needs thousands of epochs; see zoo/m2.py)")
    t.add_argument("--m1-run", default=None, metavar="DIR", help="m1+m2: the trained M1 run whose features M2 models")
    t.add_argument("--label-repeat", type=_label_repeat, default=None, metavar="R|auto",
                   help="with --labels: R copies of each labelled point in the training split (default: the "
                        "model's; auto for m2, m1+m2: labelled points make about 20%% of the split)")
    t.add_argument("--data", default=None, help="a registered data set or a path to an .npz file (default: the "
                   "model's own, mnist5k for most, mnist5k-rows for the sequence models)")
    t.add_argument("--data-root", default=None, help="folder of downloadable data sets (default $ZOO_DATA or ./data)")
    t.add_argument("--binarize", choices=["dynamic", "static", "none"], default=None,
                   help="default: the model's (none for flow models) or the data set's own (dynamic for MNIST-like "
                        "pixels)")
    t.add_argument("--likelihood", default="auto",
                   help="a registered likelihood (`zoo list`: bernoulli, gaussian, discretized-logistic, ...) or auto")
    t.add_argument("--sigma", type=_positive_float, default=0.1, help="scale of a fixed Gaussian likelihood")
    t.add_argument("--prior", default="standard")
    t.add_argument("--latent-dim", type=_positive_int, default=None, help="default 20 (gan, dcgan: 64; m2, m1+m2: 3)")
    t.add_argument("--latent-dim1", type=_positive_int, default=None,
                   help="size of the lower layer z1 of a hierarchical model (hvae; default: --latent-dim)")
    t.add_argument("--hidden", type=_hidden, default=None,
                   help="comma-separated widths; 0 for a linear decoder (default 400; flow models: their own; "
                        "realnvp/glow on images: the first width is the conditioner's channels)")
    t.add_argument("--flow-depth", type=_positive_int, default=None,
                   help="flow models: coupling layers (nice, realnvp on vectors), MADE layers (maf), couplings per "
                        "stage (realnvp on images), steps per level (glow)")
    t.add_argument("--num-scales", type=_positive_int, default=None, help="realnvp/glow on images: multi-scale levels")
    t.add_argument("--activation", default="relu")
    t.add_argument("--epochs", type=_positive_int, default=None,
                   help="epochs to train (default 10); with --resume: extend a finished run to this many")
    t.add_argument("--batch-size", type=_positive_int, default=128)
    t.add_argument("--lr", type=_positive_float, default=None,
                   help="Adam's learning rate (default 1e-3; adversarial objectives: theirs, 2e-4 or 1e-4 for wgan-gp)")
    t.add_argument("--critic", default=None,
                   help="adversarial objectives: the critic (`zoo list`: mlp, dcgan; default dcgan for images, mlp "
                        "otherwise) or your own as module:attr")
    t.add_argument("--critic-steps", type=_positive_int, default=None,
                   help="adversarial objectives: critic updates per generator update (default 1; 5 for wgan-gp)")
    t.add_argument("--critic-lr", type=_positive_float, default=None, help="the critic's learning rate (default --lr)")
    t.add_argument("--betas", type=_betas, default=None, metavar="B1,B2",
                   help="Adam's betas (default 0.9,0.999; adversarial objectives: 0.5,0.999, wgan-gp 0,0.9)")
    t.add_argument("--beta", type=_positive_float, default=1.0, help="KL weight (beta-VAE when > 1)")
    t.add_argument("--warmup", type=_nonneg_int, default=0, help="epochs of linear KL warm-up")
    t.add_argument("--patience", type=_positive_int, default=None, help="early stopping patience in epochs")
    t.add_argument("--checkpoint-every", type=_nonneg_int, default=0, help="also checkpoint every N steps")
    t.add_argument("--seed", type=_seed, default=0)
    t.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="bf16: autocast the networks to bfloat16 (log-densities stay float32); auto (default): bf16 "
                        "only where the hardware runs it natively (AMX, AVX-512 BF16, GPUs from compute capability "
                        "8.0), else fp32; config.json records the choice and why")
    t.add_argument("--step", choices=["auto", "traced", "eager"], default="auto",
                   help="auto (default): each batch shape's step (loss and gradients) is traced into one graph after "
                        "50 eager steps and replayed, when it reproduces the eager step bit for bit; traced: from "
                        "its second step; eager: never. metrics.jsonl counts the traced steps")
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel training; launch with `torchrun --nproc_per_node N -m zoo train --distributed`")
    t.add_argument("--device", default="auto", help="auto, cpu or cuda")
    t.add_argument("--out", default=None, help="run directory (default runs/<model>-<guide>-<data>)")
    t.add_argument("--resume", metavar="DIR", default=None, help="continue the run in DIR from its last checkpoint")
    t.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (its checkpoints and evaluation are removed)")
    t.add_argument("--no-progress", action="store_true")

    e = sub.add_parser("evaluate", help="evaluate a run: test -ELBO, importance-sampled NLL, KL, active units, PSIS")
    e.add_argument("run_dir")
    e.add_argument("--samples", type=_positive_int, default=5000, help="importance samples K per test point")
    e.add_argument("--split", choices=["test", "valid"], default="test")
    e.add_argument("--batch-size", type=_positive_int, default=100)
    e.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="bf16: run the networks under bfloat16 autocast (log-densities and weights stay float32); "
                        "auto (default): bf16 only where it is native, else fp32; eval.json records the choice and why")
    e.add_argument("--no-log-weights", action="store_true",
                   help="do not keep the (points x K) log-weights for the report's arviz export (memory flat in K)")
    e.add_argument("--estimator", default="is", metavar="is|ais:T",
                   help="ais:T adds annealed importance sampling with T steps (eval.json's ais, printed beside the "
                        "importance-sampled NLL)")
    e.add_argument("--chains", type=_positive_int, default=16, help="AIS: chains per point")
    e.add_argument("--leapfrog", type=_positive_int, default=10, help="AIS: leapfrog steps per HMC transition")
    e.add_argument("--observation-sigma", default="auto", metavar="auto|S",
                   help="with ais:T on an implicit generator (GAN): Gaussian observation noise x ~ N(G(z), S^2 I) that "
                        "gives it a density (Wu et al. 2017); auto chooses S on the validation split")
    e.add_argument("--bdmc", type=_nonneg_int, default=0, metavar="N",
                   help="with ais:T: bidirectional Monte Carlo on N points simulated from the model (forward and "
                        "reverse AIS bound the exact log p(x); their gap says how far AIS with this T can be off)")
    e.add_argument("--quality-samples", type=_nonneg_int, default=None, metavar="N",
                   help="samples for the sample-quality metrics (FCD, KCD, classifier score, precision/recall through "
                        "the zoo's own classifier; 0 skips them; default 2000, or $ZOO_QUALITY_SAMPLES)")
    e.add_argument("--inference-gap", type=_nonneg_int, default=0, metavar="N",
                   help="split the inference gap (Cremer et al. 2018) on the first N points: a local q fitted per "
                        "point gives approximation and amortization gaps (eval.json's inference_gap; costs about "
                        "N x steps x 16 model evaluations, seconds to minutes; default 0: off)")
    e.add_argument("--inference-gap-family", choices=["guide", "full-covariance"], default="guide",
                   help="the local q: the guide's own family with free per-point parameters, or a full-covariance "
                        "Gaussian")
    e.add_argument("--inference-gap-steps", type=_nonneg_int, default=500, metavar="S",
                   help="Adam steps of each local fit")
    e.add_argument("--device", default="auto")
    e.add_argument("--no-progress", action="store_true")

    s = sub.add_parser("sample", help="draw samples from a trained run into a PNG grid")
    s.add_argument("run_dir")
    s.add_argument("-n", type=_positive_int, default=64)
    s.add_argument("--out", default=None, help="PNG path (default RUN_DIR/samples.png)")
    s.add_argument("--seed", type=_seed, default=0)
    s.add_argument("--device", default="auto")

    r = sub.add_parser("report", help="compare runs on one HTML + Markdown page: table, published figures, plots")
    r.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    r.add_argument("--out", default="report", help="folder for index.html, report.md and the figures")
    r.add_argument("--samples", type=_positive_int, default=5000, help="importance samples K for runs evaluated now")
    r.add_argument("--title", default=None)
    r.add_argument("--reevaluate", action="store_true", help="re-evaluate every run with --samples")
    r.add_argument("--quality-samples", type=_nonneg_int, default=None, metavar="N",
                   help="samples for the sample-quality metrics of runs evaluated now (0 skips them; default 2000, "
                        "or $ZOO_QUALITY_SAMPLES)")
    r.add_argument("--device", default="auto")
    r.add_argument("--no-progress", action="store_true")

    from zoo.cli.reproduce import add_parser as add_reproduce_parser

    add_reproduce_parser(sub, _positive_int)

    d = sub.add_parser("demo", help="train the default VAE on the embedded MNIST digits, evaluate it, draw samples")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--epochs", type=_positive_int, default=30)
    d.add_argument("--samples", type=_positive_int, default=5000)
    d.add_argument("--device", default="auto")
    d.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="of training and evaluation, as in `zoo train` (auto: bf16 only where it is native)")
    d.add_argument("--step", choices=["auto", "traced", "eager"], default="auto", help="as in `zoo train`")
    d.add_argument("--overwrite", action="store_true", help="replace a run in --out that is not a former demo")
    d.add_argument("--no-progress", action="store_true")
    return p


def cmd_list(args):
    from zoo.cli.assemble import register_all
    from guides.base import GUIDES
    from inference.objectives import OBJECTIVES
    from zoo.data import DATASETS
    from zoo.likelihoods import LIKELIHOODS
    from zoo.model import MODELS
    from zoo.priors import PRIORS
    from zoo.critics import CRITICS
    from zoo.tables import TABLES

    register_all()
    for title, registry in (("models", MODELS), ("guides", GUIDES), ("objectives", OBJECTIVES),
                            ("critics", CRITICS), ("priors", PRIORS), ("likelihoods", LIKELIHOODS),
                            ("data sets", DATASETS), ("tables (zoo reproduce)", TABLES)):
        print(f"{title}:")
        for entry in registry:
            name = entry.name + (f"[:{entry.arg}]" if entry.arg and entry.meta.get("optional_arg") else
                                 f":{entry.arg}" if entry.arg else "")
            paper = f"  [{entry.paper}]" if entry.paper else ""
            print(f"  {name:<22} {entry.summary}{paper}")
    return 0


def cmd_train(args):
    from inference import run_dir as rd
    from inference.training import TrainConfig
    from zoo.cli.runs import make_config, train_run

    if args.distributed:
        from inference.distributed import init_from_env

        _, device = init_from_env(args.device)
        args.device = str(device)
    if args.config:  # the file's settings where no flag was given (zoo/config_files.py)
        from zoo.config_files import apply_to_train_args

        args.config_record = apply_to_train_args(args, getattr(args, "_argv", None))
    given = _given_options(args)
    if args.resume:
        config = rd.read_config(args.resume)
        if args.distributed:
            config["device"] = args.device
        for key, default in (("model", "vae"), ("guide", None)):
            stored = config[key]["name"] if key == "model" else config[key]
            value = getattr(args, key)
            if value != default and value != stored:
                raise ConfigError(f"--resume {args.resume}: that run trains {key} {stored!r}, not {value!r}; "
                                  "drop the option or start a new run with --out")
        changed = [k for k in given if k not in _RESUME_OPTIONS]
        if changed:
            raise ConfigError(f"--resume continues {args.resume} as it was configured, so --{changed[0].replace('_', '-')} "
                              f"cannot change; drop it, or start a new run with --out (only --epochs, --device and "
                              f"--no-progress go with --resume)")
        if args.epochs is not None:
            _extend(config, args.resume, args.epochs)
        if args.device != "auto":
            config["device"] = args.device
        from zoo.cli.assemble import code_of_run

        with code_of_run(args.resume):
            state = train_run(config, args.resume, resume=True, progress=not args.no_progress)
        out = args.resume
    else:
        from zoo.cli.semi_supervised import model_default

        from zoo.references import canonical

        args.model = canonical(args.model)  # a file reference is recorded with its absolute path
        args.guide = canonical(args.guide or model_default(args.model, "guide", "diagonal"))
        args.objective = canonical(args.objective or model_default(args.model, "objective", "elbo"))
        args.data = args.data or model_default(args.model, "data", "mnist5k")  # sequence models: mnist5k-rows
        args.data, args.prior, args.likelihood = (canonical(v) for v in (args.data, args.prior, args.likelihood))
        out = args.out or os.path.join("runs", "-".join(_slug(v) for v in (args.model, args.guide, args.data)))
        from zoo.cli.assemble import GENERAL_OPTIONS, check_general_options

        check_general_options(args.model, {GENERAL_OPTIONS[f"--{k.replace('_', '-')}"]: getattr(args, k) for k in given
                                           if f"--{k.replace('_', '-')}" in GENERAL_OPTIONS})
        train = TrainConfig(epochs=args.epochs or 10, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                            beta=args.beta, warmup=args.warmup, patience=args.patience,
                            checkpoint_every=args.checkpoint_every, progress=not args.no_progress,
                            precision=args.precision, step=args.step, critic=args.critic and canonical(args.critic),
                            critic_steps=args.critic_steps, critic_lr=args.critic_lr, betas=args.betas)
        args.latent_dim = args.latent_dim or model_default(args.model, "latent_dim", 20)
        hidden = args.hidden if args.hidden is not None else model_default(args.model, "hidden", (400,))
        args.binarize = args.binarize or model_default(args.model, "binarize", None)  # flow models: none
        options = {"latent_dim": args.latent_dim, "hidden": None if hidden is None else list(hidden),
                   "flow_depth": args.flow_depth, "num_scales": args.num_scales, "likelihood": args.likelihood,
                   "activation": args.activation, "prior": args.prior, "sigma": args.sigma,
                   "alpha": args.alpha, "m1_run": args.m1_run, "latent_dim1": args.latent_dim1}
        config = make_config(args.model, args.guide, args.objective, args.data, args.binarize, options, train,
                             device=args.device, root=args.data_root)
        if getattr(args, "config_record", None):
            config["config_file"] = args.config_record
        if args.labels:
            config["data"]["labels"] = args.labels
            config["data"]["label_repeat"] = args.label_repeat or model_default(args.model, "label_repeat", 1)
        config["guide_options"] = dict(args.guide_option)
        if args.model_option:
            config["model"]["own_options"] = dict(args.model_option)
        state = train_run(config, out, progress=not args.no_progress, overwrite=args.overwrite)
    from inference.distributed import current, shutdown

    is_main = current().is_main
    shutdown()  # no-op without --distributed
    if not is_main:
        return 0
    print(f"trained {state['epoch']} epochs (best validation loss {state['best_valid']:.3f} at epoch "
          f"{state['best_epoch'] + 1}{', stopped early' if state['stopped_early'] else ''}); run directory: {out}")
    return 0


_RESUME_OPTIONS = ("epochs", "device", "no_progress", "distributed", "resume", "model", "guide")


def _given_options(args) -> list:
    """The train options given on the command line (those whose value differs from the default), in flag order."""
    defaults = vars(build_parser().parse_args(["train"]))
    return [k for k, v in vars(args).items() if k in defaults and v != defaults[k]]


def _extend(config: dict, run_dir: str, epochs: int):
    """``--resume DIR --epochs N``: train the run to N epochs in all (a finished run is extended)."""
    from inference import checkpoint as ckpt
    from inference import run_dir as rd

    progress = ckpt.load(rd.path(run_dir, rd.CHECKPOINT), expected_model=config["model"]["name"]).get("progress", {})
    done = progress.get("epoch", 0)
    if epochs < done:
        raise ConfigError(f"--resume {run_dir} --epochs {epochs}: that run has already trained {done} epochs; give "
                          f"--epochs {done} or more, or none to finish it as configured")
    if progress.get("stopped_early") and epochs > done:
        raise ConfigError(f"--resume {run_dir} --epochs {epochs}: that run stopped early at epoch {done} (--patience "
                          f"{config['train'].get('patience')}), so more epochs would stop again at once; start a new "
                          f"run with a larger --patience")
    config["train"]["epochs"] = epochs


def _slug(spec: str) -> str:
    """A component's spec as part of a default run-directory name: ``/a/b/my_models.py:LaplaceVAE`` -> LaplaceVAE."""
    from zoo.references import parse_reference

    ref = parse_reference(spec)
    if ref is not None and (ref.path or "." in ref.module):
        spec = ref.attr
    return os.path.basename(spec).replace(":", "")


def print_eval(summary: dict, out=None):
    out = out or sys.stdout
    proto = summary["protocol"]
    if summary.get("implicit"):  # an implicit generator: no density, so no NLL, bound, KL or k-hat
        print(f"{proto['data']} {proto['split']} split, {proto['num_points']} points, binarization "
              f"{proto['binarize']}", file=out)
        print(f"  {'NLL':<18} {'none':>10}  ({summary.get('nll_reason')})", file=out)
        if isinstance(summary.get("ais"), dict):  # Wu et al. 2017: the generator with Gaussian observation noise
            a = summary["ais"]
            print(f"  {'NLL (AIS, T=' + str(a['steps']) + ')':<18} {a['nll']['mean']:10.3f} +- {a['nll']['se']:.3f}  "
                  f"(x ~ N(G(z), {a['observation_sigma']:g}^2 I))", file=out)
            if "bdmc" in a:
                b = a["bdmc"]
                print(f"  {'BDMC gap':<18} {b['gap']['mean']:10.3f} +- {b['gap']['se']:.3f}  (upper - lower on "
                      f"{b['points']} simulated points)", file=out)
        if isinstance(summary.get("code_accuracy"), dict):  # infogan: argmax Q(c|x) matched one-to-one to the labels
            ca = summary["code_accuracy"]
            print(f"  {'code accuracy':<18} {100 * ca['mean']:9.2f}% +- {100 * ca['se']:.2f}  (best one-to-one "
                  f"matching of the categorical code to the labels)", file=out)
        print_sample_quality(summary, out)
        return
    if str(proto.get("estimator", "")).startswith("exact"):  # no latent variables: the NLL is exact, no bound, no KL
        rows = [("NLL (exact)", summary["nll"])]
    else:
        rows = [("test -ELBO", summary["neg_elbo"]),
                (f"NLL (K={proto['num_samples']})", summary["nll"])]
        if "ais" in summary:
            rows.append((f"NLL (AIS, T={summary['ais']['steps']})", summary["ais"]["nll"]))
        rows += [("KL(q||p)", summary["kl"]), ("-reconstruction", {"mean": -summary["recon"]["mean"],
                                                                   "se": summary["recon"]["se"]})]
    if "bits_per_dim" in summary:
        rows.append(("bits/dim", summary["bits_per_dim"]))
    if "nll_per_step" in summary:  # sequences: the rows above are per sequence
        rows += [("NLL per step", summary["nll_per_step"]), ("-ELBO per step", summary["neg_elbo_per_step"])]
    if "exact_nll" in summary:  # lgssm: the Kalman filter's exact value beside the estimate
        rows.append(("NLL (exact)", summary["exact_nll"]))
    for name, v in (summary.get("multimodal") or {}).get("marginal_nll", {}).items():  # mvae: log p(x_m)
        rows.append((f"NLL {name}", v))
    for name, v in (summary.get("multimodal") or {}).get("conditional_nll", {}).items():  # -log p(x_rest | x_m)
        rows.append((f"NLL {name}", v))
    print(f"{proto['data']} {proto['split']} split, {proto['num_points']} points, binarization {proto['binarize']}",
          file=out)
    for name, v in rows:
        print(f"  {name:<18} {v['mean']:10.3f} +- {v['se']:.3f}", file=out)
    if summary.get("active_units") is not None:
        print(f"  {'active units':<18} {summary['active_units']:>10d} of {summary['latent_units']}", file=out)
    if "test_error" in summary:
        te = summary["test_error"]
        print(f"  {'test error':<18} {100 * te['mean']:9.2f}% +- {100 * te['se']:.2f}", file=out)
    if "bdmc" in (summary.get("ais") or {}):
        b = summary["ais"]["bdmc"]
        print(f"  {'BDMC gap':<18} {b['gap']['mean']:10.3f} +- {b['gap']['se']:.3f}  (upper - lower on {b['points']} "
              f"simulated points)", file=out)
    if "inference_gap" in summary:  # Cremer et al. 2018: log p(x) - ELBO = approximation + amortization gap
        g = summary["inference_gap"]
        for name, key in (("approximation gap", "approximation_gap"), ("amortization gap", "amortization_gap")):
            print(f"  {name:<18} {g[key]['mean']:10.3f} +- {g[key]['se']:.3f}  (local q: {g['family']}, "
                  f"{g['steps']} steps, {g['points']} points)", file=out)
        if g.get("note"):
            print(f"  note: {g['note']}", file=out)
    info = summary.get("information")  # the KL term's split (inference/information.py)
    if isinstance(info, dict):
        ms = lambda v: f"{v['mean']:.3f} +- {v['se']:.3f}"  # noqa: E731
        print(f"  {'I_q(x;z)':<18} {ms(info['mutual_information']):>19}  marginal KL {ms(info['marginal_kl'])}  (I_q <= "
              f"log N = {info['max_mutual_information']:.3f}; N={info['points']}, K={info['samples_per_point']})", file=out)
        print(f"  {'total correlation':<18} " + (f"{ms(info['total_correlation']):>19}  dim-wise KL "
              f"{ms(info['dimensionwise_kl'])}" if info.get("total_correlation") else
              f"{'none':>10}  ({info.get('dimensionwise_reason')})"), file=out)
    elif summary.get("information_reason"):
        print(f"  {'I_q(x;z)':<18} {'none':>10}  ({summary['information_reason']})", file=out)
    share = summary["psis"]["share_khat_above_0.7"]
    if share is not None:
        print(f"  {'PSIS k-hat > 0.7':<18} {100 * share:9.1f}% of points", file=out)
    print_sample_quality(summary, out)


def print_sample_quality(summary: dict, out):
    """The sample-quality block of ``zoo evaluate``: the run's numbers beside the data's own (the other split)."""
    q, ref = summary.get("sample_quality"), summary.get("sample_quality_reference")
    if q is None:
        if summary.get("sample_quality_reason"):
            print(f"  sample quality: none ({summary['sample_quality_reason']})", file=out)
        return
    c = q["classifier"]
    print(f"sample quality: {q['num_samples']} samples vs {q['num_real']} {q['real_split']} points, features of the "
          f"zoo's classifier (v{c['version']}, seed {c['seed']}, {c['inputs']}, test accuracy "
          f"{100 * c['test_accuracy']:.1f}%); not Inception-based FID/KID/IS", file=out)
    if ref:
        print(f"  {'':<24} {'model':>16} {'data (' + str(ref['num_samples']) + ' ' + ref['generated_split'] + ')':>18}",
              file=out)

    def pm(v):
        return f"{v['mean']:.4g} +- {v['se']:.2g}"

    rows = [("FCD (zoo classifier)", lambda p: f"{p['frechet_classifier_distance']:.4g}"),
            ("KCD (zoo classifier)", lambda p: pm(p["kernel_classifier_distance"])),
            ("classifier score", lambda p: pm(p["classifier_score"])),
            (f"precision (k={q['precision_recall']['k']})", lambda p: f"{p['precision']:.3f}"),
            (f"recall (k={q['precision_recall']['k']})", lambda p: f"{p['recall']:.3f}")]
    for name, fmt in rows:
        print(f"  {name:<24} {fmt(q):>16} {fmt(ref) if ref else '':>18}", file=out)
    for note in q.get("notes", []):
        print(f"  note: {note}", file=out)


def cmd_evaluate(args):
    from inference.ais import parse_estimator
    from zoo.cli.runs import evaluate_run

    steps = parse_estimator(args.estimator)
    if args.bdmc and steps is None:
        raise ConfigError("--bdmc runs forward and reverse AIS: give --estimator ais:T as well")
    from inference.implicit_likelihood import parse_sigma

    sigma = parse_sigma(args.observation_sigma)
    ais = None if steps is None else {"steps": steps, "chains": args.chains, "leapfrog": args.leapfrog,
                                      "bdmc": args.bdmc, "observation_sigma": sigma}
    gap = None if not args.inference_gap else {"points": args.inference_gap, "family": args.inference_gap_family,
                                               "steps": args.inference_gap_steps}
    summary = evaluate_run(args.run_dir, args.samples, args.split, args.batch_size, args.device,
                           progress=not args.no_progress, precision=args.precision,
                           keep_log_weights=not args.no_log_weights, ais=ais, quality_samples=args.quality_samples,
                           inference_gap=gap)
    print_eval(summary)
    print(f"wrote {os.path.join(args.run_dir, 'eval.json')}")
    return 0


def cmd_sample(args):
    from zoo.cli.runs import sample_grid

    out = args.out or os.path.join(args.run_dir, "samples.png")
    sample_grid(args.run_dir, args.n, out, seed=args.seed, device=args.device)
    print(f"wrote {out}")
    return 0


def cmd_demo(args):
    from zoo.cli.demo import run_demo

    return run_demo(args)


def cmd_report(args):
    from reports.report import run_from_args

    return run_from_args(args)


def cmd_reproduce(args):
    from zoo.cli.reproduce import cmd_reproduce as run

    return run(args)


COMMANDS = {"list": cmd_list, "train": cmd_train, "evaluate": cmd_evaluate, "sample": cmd_sample, "demo": cmd_demo,
            "report": cmd_report, "reproduce": cmd_reproduce}


def _out_of_memory(error) -> str:
    """One line for a failed allocation (CPU or GPU), with the size asked for when torch says it; None otherwise."""
    import re

    text = str(error)
    if not (isinstance(error, MemoryError) or "out of memory" in text or "can't allocate memory" in text
            or "allocate" in text and "bytes" in text):
        return None
    asked = re.search(r"allocate (?:memory: you tried to allocate )?(\d+) bytes", text)
    size = re.search(r"allocate ([\d.]+ [KMGTP]iB)", text)
    amount = (f"{int(asked.group(1)) / 2**30:.3g} GiB" if asked else size.group(1) if size else None)
    return ("out of memory: " + (f"one tensor needed {amount}" if amount else "an allocation failed")
            + "; use smaller sizes (--hidden, --latent-dim, --batch-size, evaluate --batch-size) or check the data "
              "(a label of 10^9 asks for 10^9 classes)")


@contextlib.contextmanager
def _zoo_warnings():
    """The zoo's own warnings (``PrecisionWarning``) as one ``zoo: warning: ...`` line on stderr, like its errors;
    every other warning as Python shows it."""
    import warnings

    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if category.__name__ == "PrecisionWarning":
                print(f"zoo: warning: {message}", file=sys.stderr)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args._argv = list(sys.argv[1:] if argv is None else argv)  # which options were given (zoo train --config)
    except SystemExit as e:  # argparse's own errors (one line, see _Parser.error) and --help
        return e.code
    try:
        with _zoo_warnings():
            return COMMANDS[args.command](args)
    except ZooError as e:
        print(f"zoo: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a path the user gave cannot be written or read (missing folder, permissions, full disk)
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        print(f"zoo: error: cannot use{where}: {e.strerror or e}; check the path and its permissions", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:  # an allocation that cannot succeed: say how much was asked for
        message = _out_of_memory(e)
        if message is None:
            raise
        print(f"zoo: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zoo: interrupted; `zoo train --resume DIR` continues from the last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
