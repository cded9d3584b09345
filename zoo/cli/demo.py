"""`zoo demo`: the default VAE on the embedded MNIST digits, trained, evaluated and drawn, in about a minute on CPU."""
import os

from inference.training import TrainConfig


def _is_demo_run(out: str) -> bool:
    """A former demo's directory is replaced by a new demo; any other run there needs --overwrite."""
    from inference import run_dir as rd
    from zoo.errors import RunDirError

    try:
        return rd.read_config(out).get("made_by") == "zoo demo"
    except RunDirError:
        return False


def run_demo(args) -> int:
    from zoo.cli.main import print_eval
    from zoo.cli.runs import evaluate_run, make_config, sample_grid, train_run

    progress = not args.no_progress
    train = TrainConfig(epochs=args.epochs, batch_size=128, lr=1e-3, seed=0, progress=progress,
                        precision=args.precision, step=args.step)
    config = make_config("vae", "diagonal", "elbo", "mnist5k", "dynamic",
                         {"latent_dim": 20, "hidden": [400], "likelihood": "bernoulli", "activation": "relu",
                          "prior": "standard"}, train, device=args.device)
    config["made_by"] = "zoo demo"
    print(f"training vae + diagonal guide on mnist5k for {args.epochs} epochs -> {args.out}")
    train_run(config, args.out, progress=progress, overwrite=args.overwrite or _is_demo_run(args.out))
    summary = evaluate_run(args.out, num_samples=args.samples, device=args.device, progress=progress,
                           precision=args.precision)
    print_eval(summary)
    png = sample_grid(args.out, 64, os.path.join(args.out, "samples.png"), device=args.device)
    print(f"wrote {os.path.join(args.out, 'eval.json')} and {png}")
    from reports.report import build_report

    report = build_report([args.out], os.path.join(args.out, "report"), samples=args.samples, device=args.device,
                          progress=progress)
    print(f"report: {report.html_path} (Markdown: {report.md_path})")
    return 0
