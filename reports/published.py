"""The papers' numbers the zoo is compared against, as data, and the honest matching of a run to them.

Every figure here is transcribed from the project's list of published numbers (the papers and their public code) with its
source and its provenance tag there:

* ``seed``     -- from the project's seed slides (authoritative for this project);
* ``repo``     -- quoted in a public repository's text;
* ``recalled`` -- from the paper, to be checked before being used as a hard target.

Values are stored in the zoo's sign convention (NLL = -log p(x) > 0, nats per data point) next to the text as printed
(``printed``). A run matches a row only when the model family, its number of stochastic layers, the guide, the prior,
the objective (where the row names one) and the *data set* agree: the embedded ``mnist5k`` (5000 digits) is not MNIST,
and the zoo's own seeded static binarization of MNIST is not Larochelle's fixed static MNIST, so no published MNIST
figure is offered for them. :func:`match` also says why nothing matched, and what differs in the protocol where
something did (number of importance samples, architecture).
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

SEED, REPO, RECALLED = "seed", "repo", "recalled"

#: What each published data key means (shown on the page next to a match).
DATA = {
    "mnist-dynamic": "MNIST (50,000-60,000 training digits), dynamic binarization",
    "mnist-static": "Larochelle & Murray's statically binarized MNIST (a fixed, published binarization)",
    "mnist-binarized": "binarized MNIST (the source does not say which binarization)",
    "mnist-dequantized": "MNIST grey levels, dequantized, exact likelihood",
    "mnist-labels": "MNIST with a few labels (semi-supervised)",
    "omniglot": "Omniglot 28x28, binarized",
    "caltech101": "Caltech 101 Silhouettes",
    "frey": "Frey faces",
    "histopathology": "Histopathology patches",
    "cifar10": "CIFAR-10, dequantized",
}

#: Papers, cited by key.
CITATIONS = {
    "iwae": "Y. Burda, R. Grosse, R. Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.",
    "vampprior": "J. M. Tomczak, M. Welling. VAE with a VampPrior. AISTATS 2018.",
    "sylvester": "R. van den Berg, L. Hasenclever, J. M. Tomczak, M. Welling. Sylvester Normalizing Flows for "
                 "Variational Inference. UAI 2018.",
    "planar": "D. J. Rezende, S. Mohamed. Variational Inference with Normalizing Flows. ICML 2015.",
    "householder": "J. M. Tomczak, M. Welling. Improving Variational Auto-Encoders using Householder Flow. "
                   "NIPS 2016 Workshop on Bayesian Deep Learning.",
    "iaf": "D. P. Kingma, T. Salimans, R. Jozefowicz, X. Chen, I. Sutskever, M. Welling. Improved Variational "
           "Inference with Inverse Autoregressive Flow. NIPS 2016.",
    "m2": "D. P. Kingma, D. J. Rezende, S. Mohamed, M. Welling. Semi-Supervised Learning with Deep Generative "
          "Models. NIPS 2014.",
    "pyro-ss-vae": "Pyro tutorial \"The Semi-Supervised VAE\" (pyro.ai/examples/ss-vae.html).",
    "realnvp": "L. Dinh, J. Sohl-Dickstein, S. Bengio. Density estimation using Real NVP. ICLR 2017.",
    "glow": "D. P. Kingma, P. Dhariwal. Glow: Generative Flow with Invertible 1x1 Convolutions. NeurIPS 2018.",
    "maf": "G. Papamakarios, T. Pavlakou, I. Murray. Masked Autoregressive Flow for Density Estimation. NIPS 2017.",
    "nice": "L. Dinh, D. Krueger, Y. Bengio. NICE: Non-linear Independent Components Estimation. ICLR 2015 workshop.",
}

#: How a metric is labelled on the page.
METRICS = {
    "nll": "NLL (nats)",
    "neg_elbo": "-ELBO (nats)",
    "bits_per_dim": "NLL (bits/dim)",
    "neg_elbo_bits_per_dim": "-ELBO (bits/dim)",
    "printed": "test log-likelihood as printed",
    "log_px": "log-likelihood (nats, higher is better)",
    "test_error": "test error (%)",
    "accuracy": "test accuracy",
}


@dataclass(frozen=True)
class PublishedRow:
    source: str            # short name of the paper and table, e.g. "IWAE (Burda et al. 2016)"
    cite: str              # key of CITATIONS
    provenance: str        # seed / repo / recalled
    label: str             # the row/column as the paper names it, e.g. "VAE L=1 standard"
    data: str              # key of DATA
    family: str            # model family: vae, hvae, convhvae, pixelhvae, m2, realnvp, ...
    metric: str            # key of METRICS
    value: float           # in the zoo's convention (NLL > 0)
    printed: str           # the figure as printed in REFERENCES.md
    layers: Optional[int] = None         # stochastic layers; None: the family's default
    guide: Optional[str] = "diagonal"    # guide family (None: not stated / any)
    guide_arg: Optional[int] = None      # flow length when the figure is for one length
    prior: Optional[str] = "standard"
    objective: Optional[str] = "elbo"    # normalised objective (see normalize_objective); None: any
    samples: Optional[int] = None        # importance samples K of an NLL
    spread: Optional[float] = None       # +- as printed
    spread_kind: str = ""                # what the +- is ("std over runs")
    note: str = ""                       # protocol/architecture remarks shown with a match
    extra: Tuple[Tuple[str, object], ...] = ()  # further constraints, e.g. (("labels", 100),)

    @property
    def citation(self) -> str:
        return CITATIONS[self.cite]


def _rows() -> List[PublishedRow]:
    rows: List[PublishedRow] = []

    # --- VampPrior and hierarchical VAEs [seed]: test log-likelihood, K=5000 -----------------------------------
    columns = [("VAE L=1 standard", "vae", 1, "standard"), ("VAE L=1 VampPrior", "vae", 1, "vamp"),
               ("HVAE L=2 standard", "hvae", 2, "standard"), ("HVAE VampPrior", "hvae", 2, "vamp"),
               ("convHVAE standard", "convhvae", 2, "standard"), ("convHVAE VampPrior", "convhvae", 2, "vamp"),
               ("PixelHVAE standard", "pixelhvae", 2, "standard"), ("PixelHVAE VampPrior", "pixelhvae", 2, "vamp")]
    table = {
        "mnist-static": ["-88.56", "-85.57", "-86.05", "-83.19", "-82.41", "-81.09", "-80.58", "-79.78"],
        "mnist-dynamic": ["-84.50", "-82.38", "-82.42", "-81.24", "-80.40", "-79.75", "-79.70", "-78.45"],
        "omniglot": ["-108.50", "-104.75", "-103.52", "-101.18", "-97.65", "-97.56", "-90.11", "-89.76"],
        "caltech101": ["-123.43", "-114.55", "-112.08", "-108.28", "-106.35", "-104.22", "-85.51", "-86.22"],
        "frey": ["4.63", "4.57", "4.61", "4.51", "4.49", "4.45", "4.43", "4.38"],
        "histopathology": ["6.07", "6.04", "5.82", "5.75", "5.59", "5.58", "4.84", "4.82"],
    }
    for data, printed in table.items():
        as_printed = data in ("frey", "histopathology")
        for (label, family, layers, prior), text in zip(columns, printed):
            rows.append(PublishedRow(
                "VampPrior (Tomczak & Welling 2018), test log-likelihood", "vampprior", SEED, label, data, family,
                "printed" if as_printed else "nll", float(text) if as_printed else -float(text), text,
                layers=layers, prior=prior, objective="elbo", samples=5000,
                note=("units as printed in the paper (bits/dim-like), not comparable to nats" if as_printed else
                      "early stopping on validation, KL warm-up for 100 epochs")))

    # --- Sylvester flows [seed]: -ELBO and NLL, mean +- std over runs; Frey in bits/dim -------------------------
    guides = [("VAE", "diagonal"), ("Planar", "planar"), ("IAF", "iaf"), ("O-SNF", "sylvester-o"),
              ("H-SNF", "sylvester-h"), ("T-SNF", "sylvester-t")]
    sylvester = {  # label: [Frey -ELBO, Frey NLL, Omniglot -ELBO, Omniglot NLL, Caltech -ELBO, Caltech NLL]
        "VAE": ["4.53 +- 0.02", "4.40 +- 0.03", "104.28 +- 0.39", "97.25 +- 0.23", "110.80 +- 0.46", "99.62 +- 0.74"],
        "Planar": ["4.40 +- 0.06", "4.31 +- 0.06", "102.65 +- 0.42", "96.04 +- 0.28", "109.66 +- 0.42",
                   "98.53 +- 0.68"],
        "IAF": ["4.47 +- 0.05", "4.38 +- 0.04", "102.41 +- 0.04", "96.08 +- 0.16", "111.58 +- 0.38", "99.92 +- 0.30"],
        "O-SNF": ["4.51 +- 0.04", "4.39 +- 0.05", "99.00 +- 0.29", "93.82 +- 0.21", "106.08 +- 0.39",
                  "94.61 +- 0.83"],
        "H-SNF": ["4.46 +- 0.05", "4.35 +- 0.05", "99.00 +- 0.04", "93.77 +- 0.03", "104.62 +- 0.29",
                  "93.82 +- 0.62"],
        "T-SNF": ["4.45 +- 0.04", "4.35 +- 0.04", "99.33 +- 0.23", "93.97 +- 0.13", "105.29 +- 0.64",
                  "94.92 +- 0.73"],
    }
    cells = [("frey", "neg_elbo_bits_per_dim", None), ("frey", "bits_per_dim", 5000),
             ("omniglot", "neg_elbo", None), ("omniglot", "nll", 5000),
             ("caltech101", "neg_elbo", None), ("caltech101", "nll", 2000)]
    for label, guide in guides:
        for (data, metric, samples), text in zip(cells, sylvester[label]):
            value, spread = (float(t) for t in text.split("+-"))
            rows.append(PublishedRow(
                "Sylvester flows (van den Berg et al. 2018)", "sylvester", SEED, label, data, "vae", metric, value,
                text, layers=1, guide=guide, samples=samples, spread=spread, spread_kind="std over runs",
                note="flow length and encoder/decoder architecture as in the paper"))
    for label, guide, text in [("VAE", "diagonal", "82.14"), ("Planar", "planar", "81.91"), ("IAF", "iaf", "80.79"),
                               ("O-SNF", "sylvester-o", "80.22"), ("H-SNF", "sylvester-h", "80.29"),
                               ("T-SNF", "sylvester-t", "80.28")]:
        rows.append(PublishedRow(
            "Sylvester flows (van den Berg et al. 2018), static MNIST", "sylvester", RECALLED, label, "mnist-static",
            "vae", "nll", float(text), text, layers=1, guide=guide, samples=5000,
            note="flow length and encoder/decoder architecture as in the paper"))

    # --- Planar flows, Rezende & Mohamed 2015: -ELBO on binarized MNIST -----------------------------------------
    rows.append(PublishedRow("Planar flows (Rezende & Mohamed 2015)", "planar", REPO, "diagonal (DLGM)",
                             "mnist-binarized", "vae", "neg_elbo", 89.9, "89.9", layers=1))
    for k, text in [(10, "87.5"), (20, "86.5"), (40, "85.7"), (80, "85.1")]:
        rows.append(PublishedRow("Planar flows (Rezende & Mohamed 2015)", "planar", RECALLED, f"NF K={k}",
                                 "mnist-binarized", "vae", "neg_elbo", float(text), text, layers=1, guide="planar",
                                 guide_arg=k))

    # --- Householder flow, Tomczak & Welling 2016: MNIST lower bound -------------------------------------------
    rows.append(PublishedRow("Householder flow (Tomczak & Welling 2016)", "householder", RECALLED, "VAE",
                             "mnist-binarized", "vae", "neg_elbo", 93.9, "93.9", layers=1))
    for t, text in [(1, "87.8"), (10, "87.7")]:
        rows.append(PublishedRow("Householder flow (Tomczak & Welling 2016)", "householder", RECALLED, f"HF T={t}",
                                 "mnist-binarized", "vae", "neg_elbo", float(text), text, layers=1,
                                 guide="householder", guide_arg=t))

    # --- IAF, Kingma et al. 2016: dynamic MNIST (a deep ResNet VAE, not an MLP VAE) -----------------------------
    for label, guide, text in [("diagonal", "diagonal", "-81.08"), ("IAF", "iaf", "-79.10")]:
        rows.append(PublishedRow("IAF (Kingma et al. 2016)", "iaf", RECALLED, label, "mnist-dynamic", "resnet-vae",
                                 "nll", -float(text), f"~ {text}", guide=guide,
                                 note="the paper's deep convolutional ResNet VAE; not comparable to an MLP VAE"))

    # --- IWAE [repo]: dynamic MNIST NLL with 5000 samples; k = particles in training ----------------------------
    iwae = {(1, "VAE"): ["86.76", "86.47", "86.35"], (1, "IWAE"): ["86.76", "85.54", "84.78"],
            (2, "VAE"): ["85.33", "85.01", "84.78"], (2, "IWAE"): ["85.33", "83.89", "82.90"]}
    for (layers, kind), texts in iwae.items():
        for k, text in zip((1, 5, 50), texts):
            if k == 1 and kind == "IWAE":  # k=1: the IWAE bound is the ELBO, one row for both
                continue
            label = f"{layers} layer{'s' if layers > 1 else ''} {'VAE = IWAE' if k == 1 else kind} k={k}"
            objective = "elbo" if k == 1 else (f"elbo:{k}" if kind == "VAE" else f"iwae:{k}")
            rows.append(PublishedRow(
                "IWAE (Burda et al. 2016), dynamic MNIST", "iwae", REPO, label, "mnist-dynamic",
                "vae" if layers == 1 else "hvae", "nll", float(text), text, layers=layers, objective=objective,
                samples=5000,
                note="fixed training schedule; MLP encoder/decoder" + (
                    "; two stochastic layers in IWAE's architecture, not VampPrior's HVAE" if layers == 2 else "")))
    for k, text in [(1, "88.71"), (5, "87.63"), (50, "87.10")]:
        rows.append(PublishedRow(
            "IWAE (Burda et al. 2016), static MNIST", "iwae", REPO, f"1 layer {'VAE = IWAE' if k == 1 else 'IWAE'} "
            f"k={k}", "mnist-static", "vae", "nll", float(text), text, layers=1,
            objective="elbo" if k == 1 else f"iwae:{k}", samples=5000))

    # --- Semi-supervised, Kingma et al. 2014 [recalled]; Pyro's M2 tutorial [repo] -----------------------------
    m = {"M1+TSVM": ["11.82", "5.72", "4.24", "3.49"], "M2": ["11.97", "4.94", "3.60", "3.92"],
         "M1+M2": ["3.33", "2.59", "2.40", "2.18"]}
    family = {"M1+TSVM": "m1+tsvm", "M2": "m2", "M1+M2": "m1+m2"}
    for label, texts in m.items():
        for labels, text in zip((100, 600, 1000, 3000), texts):
            rows.append(PublishedRow("Semi-supervised VAE (Kingma et al. 2014)", "m2", RECALLED,
                                     f"{label}, {labels} labels", "mnist-labels", family[label], "test_error",
                                     float(text), text, guide=None, prior=None, objective=None,
                                     extra=(("labels", labels),)))
    for labels, text in zip((100, 600, 1000, 3000), ("0.9319", "0.9437", "0.9487", "0.9582")):
        rows.append(PublishedRow("Pyro's semi-supervised VAE tutorial", "pyro-ss-vae", REPO,
                                 f"M2, enumerated y, {labels} labels", "mnist-labels", "m2", "accuracy", float(text),
                                 text, guide=None, prior=None, objective=None, extra=(("labels", labels),),
                                 note="enumerated y and the auxiliary classification loss"))

    # --- Flow density models [recalled]: bits/dim of dequantized data -------------------------------------------
    for family_, cite, data, text in [("realnvp", "realnvp", "cifar10", "3.49"),
                                      ("realnvp", "realnvp", "mnist-dequantized", "~1.06"),
                                      ("glow", "glow", "cifar10", "3.35"), ("glow", "glow", "mnist-dequantized", "~1.05"),
                                      ("maf", "maf", "mnist-dequantized", "~1.89"), ("maf", "maf", "cifar10", "4.31")]:
        rows.append(PublishedRow(f"{family_} ({cite} paper)", cite, RECALLED, family_, data, family_, "bits_per_dim",
                                 float(text.lstrip("~")), text, guide=None, prior=None, objective=None,
                                 note="exact log-likelihood with the paper's dequantization / logit corrections"))
    rows.append(PublishedRow("NICE (Dinh et al. 2015)", "nice", RECALLED, "nice", "mnist-dequantized", "nice",
                             "log_px", 1980.50, "1980.50", guide=None, prior=None, objective=None,
                             note="log-likelihood, higher is better, with NICE's own dequantization"))
    return rows


PUBLISHED: List[PublishedRow] = _rows()

# ------------------------------------------------------------------------------------------------------------------
# matching

FAMILY_ALIASES = {
    "vae": "vae", "beta-vae": "vae", "hvae": "hvae", "hvae2": "hvae", "vae2": "hvae", "convhvae": "convhvae",
    "conv-hvae": "convhvae", "pixelhvae": "pixelhvae", "pixel-hvae": "pixelhvae", "m2": "m2", "ssvae": "m2",
    "ss-vae": "m2", "m1+m2": "m1+m2", "m1m2": "m1+m2", "realnvp": "realnvp", "glow": "glow", "maf": "maf",
    "nice": "nice",
}
DEFAULT_LAYERS = {"vae": 1, "hvae": 2, "convhvae": 2, "pixelhvae": 2}
PRIOR_ALIASES = {"standard": "standard", "normal": "standard", "gaussian": "standard", "vamp": "vamp",
                 "vampprior": "vamp"}
STATIC_MNIST_NAMES = {"static-mnist", "mnist-static", "binarized-mnist", "binary-mnist", "larochelle-mnist",
                      "mnist-larochelle", "static_mnist", "binarized_mnist"}
DATA_ALIASES = {"omniglot": "omniglot", "caltech101": "caltech101", "caltech": "caltech101",
                "caltech101-silhouettes": "caltech101", "caltech101silhouettes": "caltech101", "frey": "frey",
                "frey-faces": "frey", "freyfaces": "frey", "histopathology": "histopathology", "cifar10": "cifar10",
                "cifar-10": "cifar10"}


def _spec(text) -> Tuple[str, Optional[str]]:
    text = str(text or "").strip().lower()
    name, sep, arg = text.partition(":")
    return name, (arg if sep else None)


def normalize_objective(spec: Optional[str], beta: float = 1.0) -> str:
    """``elbo`` / ``iwae:1`` -> ``elbo`` (the IWAE bound with one sample is the ELBO); ``iwae:K``; a KL weight
    other than 1 makes it a different objective (``beta-elbo``)."""
    name, arg = _spec(spec or "elbo")
    if beta is not None and float(beta) != 1.0:
        return f"beta{float(beta):g}-{name}" + (f":{arg}" if arg else "")
    if name in ("elbo", "iwae") and arg in (None, "1"):
        return "elbo"
    return name + (f":{arg}" if arg else "")


def data_keys(name: str, binarize: Optional[str]) -> Tuple[List[str], str]:
    """The published data keys a zoo data set stands for, and (when there are none or fewer than one would think)
    the reason, in words."""
    base = str(name or "").strip().lower()
    stem = base.rsplit("/", 1)[-1]
    if stem.endswith(".npz"):
        return [], f"the data set is the user's file {name}; no published figure is for it"
    if base == "mnist5k":
        return [], ("mnist5k is a 5000-digit subset of MNIST (4000 training digits), not the full MNIST the papers "
                    "trained on (50,000-60,000 digits); a published MNIST figure is not comparable to it")
    if base == "digits":
        return [], "no paper in REFERENCES.md reports scikit-learn's 8x8 digits"
    if base in STATIC_MNIST_NAMES:
        return ["mnist-static", "mnist-binarized"], ""
    if base == "mnist":
        if binarize == "dynamic":
            return ["mnist-dynamic", "mnist-binarized", "mnist-labels"], ""
        if binarize == "static":
            return ["mnist-binarized", "mnist-labels"], (
                "the zoo's seeded static binarization of MNIST is not Larochelle's published static MNIST, so the "
                "static-MNIST figures do not apply")
        return ["mnist-dequantized", "mnist-labels"], ""
    if base in DATA_ALIASES:
        return [DATA_ALIASES[base]], ""
    return [], f"no published figure in REFERENCES.md is for data set {name!r}"


def _options(config: dict) -> dict:
    return dict((config.get("model") or {}).get("options") or {})


def run_key(config: dict) -> Dict[str, object]:
    """What a run is, in the terms published rows are written in."""
    model = config.get("model") or {}
    name, _ = _spec(model.get("name", ""))
    options = _options(config)
    family = FAMILY_ALIASES.get(name, name)
    layers = options.get("layers", options.get("num_layers", DEFAULT_LAYERS.get(family)))
    guide, guide_arg = _spec(config.get("guide", "diagonal"))
    prior_name, _ = _spec(options.get("prior", "standard"))
    data = config.get("data") or {}
    train = config.get("train") or {}
    extra = {}
    for key in ("labels", "num_labels", "labelled", "labeled", "num_labelled", "num_labeled"):
        for where in (options, data, train):
            if key in where and where[key] is not None:
                extra["labels"] = where[key]
    info_labels = (data.get("info") or {}).get("labels")
    if isinstance(info_labels, dict) and info_labels.get("labelled") is not None:
        extra["labels"] = info_labels["labelled"]
    if isinstance(extra.get("labels"), dict):
        extra["labels"] = extra["labels"].get("labelled")
    return {
        "family": family, "layers": layers, "guide": guide,
        "guide_arg": int(guide_arg) if guide_arg and guide_arg.isdigit() else guide_arg,
        "prior": PRIOR_ALIASES.get(prior_name, prior_name),
        "objective": normalize_objective(config.get("objective"), train.get("beta", 1.0)),
        "data": data.get("name"), "binarize": data.get("binarize"), "extra": extra,
    }


@dataclass
class Match:
    rows: List[PublishedRow] = field(default_factory=list)
    reason: str = ""                                   # why nothing (or not everything) matched, in words
    notes: Dict[int, List[str]] = field(default_factory=dict)  # index in rows -> protocol differences

    @property
    def matched(self) -> bool:
        return bool(self.rows)


def _row_matches(row: PublishedRow, key: dict, keys: List[str]) -> bool:
    if row.data not in keys or row.family != key["family"]:
        return False
    if row.layers is not None and key["layers"] is not None and row.layers != key["layers"]:
        return False
    if row.guide is not None and row.guide != key["guide"]:
        return False
    if row.guide_arg is not None and row.guide_arg != key["guide_arg"]:
        return False
    if row.prior is not None and row.prior != key["prior"]:
        return False
    if row.objective is not None and row.objective != key["objective"]:
        return False
    for name, value in row.extra:
        if key["extra"].get(name) != value:
            return False
    return True


def describe(key: dict) -> str:
    guide = key["guide"] + (f":{key['guide_arg']}" if key["guide_arg"] is not None else "")
    return (f"model {key['family']}, guide {guide}, prior {key['prior']}, objective {key['objective']}, "
            f"data {key['data']} ({key['binarize']})")


def match(config: dict, summary: Optional[dict] = None, rows: Optional[List[PublishedRow]] = None) -> Match:
    """The published rows that describe the same experiment as the run of ``config`` (and, for the protocol notes,
    its evaluation ``summary``)."""
    rows = PUBLISHED if rows is None else rows
    key = run_key(config)
    if key["binarize"] is None:  # the data set's default: the evaluation says which, MNIST-like pixels are dynamic
        key["binarize"] = ((summary or {}).get("protocol") or {}).get("binarize") or (
            "dynamic" if str(key["data"]).lower() in ("mnist", "omniglot") else None)
    keys, data_reason = data_keys(key["data"], key["binarize"])
    if not keys:
        return Match(reason=f"No published row matches: {data_reason}.")
    found = [r for r in rows if _row_matches(r, key, keys)]
    if not found:
        same_data = {r.source for r in rows if r.data in keys}
        where = (f"REFERENCES.md has figures for {DATA[keys[0]]} ({'; '.join(sorted(same_data))}) but none for "
                 if same_data else "REFERENCES.md has no figure for ")
        reason = f"No published row matches: {where}this combination ({describe(key)})."
        if data_reason:
            reason += f" Also: {data_reason}."
        return Match(reason=reason)
    k_ours = ((summary or {}).get("protocol") or {}).get("num_samples")
    notes = {}
    for i, r in enumerate(found):
        n = []
        if r.metric in ("nll", "bits_per_dim") and r.samples and k_ours and int(k_ours) != r.samples:
            n.append(f"the paper's NLL used K={r.samples} importance samples, this run's K={k_ours}")
        if r.data == "mnist-binarized":
            n.append("the source does not say which binarization")
        if r.provenance == RECALLED:
            n.append("recalled from the paper; check before relying on it")
        if r.note:
            n.append(r.note)
        notes[i] = n
    return Match(rows=found, reason=data_reason, notes=notes)


def format_value(row: PublishedRow) -> str:
    text = f"{row.value:.2f}" if row.metric not in ("accuracy",) else f"{row.value:.4f}"
    if row.spread is not None:
        text += f" ± {row.spread:.2f}"
    return text


def short_label(row: PublishedRow) -> str:
    """e.g. ``NLL 86.76 (IWAE, 1 layer VAE = IWAE k=1) [repo]``."""
    metric = {"nll": "NLL", "neg_elbo": "-ELBO", "bits_per_dim": "bits/dim", "neg_elbo_bits_per_dim": "-ELBO bits/dim",
              "printed": "LL as printed", "log_px": "log p(x)", "test_error": "error %",
              "accuracy": "accuracy"}[row.metric]
    return f"{metric} {format_value(row)} ({row.source.split(',')[0]}: {row.label}) [{row.provenance}]"
