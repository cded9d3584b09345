"""The papers' tables that ``zoo reproduce TABLE`` reruns, registered by name.

Each entry returns the path of its configuration file (:mod:`zoo.config_files`; the packaged ``zoo/configs/*.toml``),
which holds the paper's settings and the table's cells; the published numbers are those of
:mod:`reports.published` (the file's ``[table] published`` names their cite key). ``zoo list`` shows them; a
``.toml`` path of your own works wherever a name does.
"""
from zoo.config_files import packaged
from zoo.registry import Registry

TABLES = Registry("table")


@TABLES.register("vampprior", paper="Tomczak & Welling 2018 (VAE with a VampPrior)",
                 summary="test NLL, K=5000: vae, hvae, convhvae, pixelhvae x standard/VampPrior x static MNIST, "
                         "dynamic MNIST, Omniglot, Caltech101")
def vampprior():
    return packaged("vampprior")


@TABLES.register("sylvester", paper="van den Berg, Hasenclever, Tomczak & Welling 2018 (Sylvester flows)",
                 summary="-ELBO and NLL: diagonal, planar, IAF, O-/H-/T-SNF posteriors x static MNIST, Frey, "
                         "Omniglot, Caltech101")
def sylvester():
    return packaged("sylvester")


@TABLES.register("iwae", paper="Burda, Grosse & Salakhutdinov 2016 (IWAE)",
                 summary="test NLL, K=5000: VAE and IWAE (k = 1, 5, 50), one and two stochastic layers, dynamic and "
                         "static MNIST")
def iwae():
    return packaged("iwae")


@TABLES.register("m2", paper="Kingma, Rezende, Mohamed & Welling 2014 (M2)",
                 summary="MNIST test error with 100/600/1000/3000 labels: M2, M1+M2 (M1+TSVM listed)")
def m2():
    return packaged("m2")


def table_path(spec: str) -> str:
    """The configuration file of a registered table, or ``spec`` itself when it is a ``.toml`` path."""
    from zoo.errors import UnknownNameError

    if spec.endswith(".toml"):
        return spec
    if spec not in TABLES.names():
        raise UnknownNameError(f"unknown table {spec!r}; choose one of: {', '.join(TABLES.names())} (see `zoo list`), "
                               f"or give a configuration file FILE.toml")
    return TABLES.build(spec)
