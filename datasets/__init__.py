"""Data for pagoda-inv: Fashion-MNIST, caption templates, users' image folders and pixel transforms.

Installed as ``pagoda_inverse.datasets`` (setuptools ``package-dir``); import it under that name. Text encoding of
captions lives in :mod:`pagoda_inverse.core.text`.
"""

from pagoda_inverse.datasets.captions import (
    CLASS_SYNONYMS,
    HELDOUT_TEMPLATES,
    NULL_CAPTION,
    TRAIN_TEMPLATES,
    all_captions,
    canonical_caption,
    captions_for,
)
from pagoda_inverse.datasets.fmnist import ENV_VAR, FMNIST_CLASSES, IMAGE_SIZE, find_fmnist_dir, load_fmnist
from pagoda_inverse.datasets.folder import IMAGE_EXTENSIONS, MAX_PIXELS, ImageFolderDataset
from pagoda_inverse.datasets.transforms import area_pool, area_resize, from_model_range, hflip, pad_to, to_model_range

__all__ = [
    "CLASS_SYNONYMS",
    "ENV_VAR",
    "FMNIST_CLASSES",
    "HELDOUT_TEMPLATES",
    "IMAGE_EXTENSIONS",
    "IMAGE_SIZE",
    "MAX_PIXELS",
    "NULL_CAPTION",
    "TRAIN_TEMPLATES",
    "ImageFolderDataset",
    "all_captions",
    "canonical_caption",
    "captions_for",
    "area_pool",
    "area_resize",
    "find_fmnist_dir",
    "from_model_range",
    "hflip",
    "load_fmnist",
    "pad_to",
    "to_model_range",
]
