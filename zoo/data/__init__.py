"""Data sets by name: importing this package registers every loader with :data:`DATASETS`.

See :mod:`zoo.data.base` for the contract (splits, binarization) and each loader module for its source paper.
"""
from zoo.data.base import BINARIZATIONS, DATASETS, Dataset, Split, load_dataset
from zoo.data import digits, frey, mnist5k, multimodal, npz_file, sequences, torchvision_sets, toy2d  # noqa: F401,E501  (register the loaders)
from zoo.data import binarized_mnist, caltech101, omniglot  # noqa: F401  (the papers' file-based benchmarks)

__all__ = ["DATASETS", "Dataset", "Split", "load_dataset", "BINARIZATIONS"]
