"""Fashion-MNIST from the Debian package ``dataset-fashion-mnist``, read without torchvision.

The package installs four gzip IDX files under ``/usr/share/datasets/fashion-mnist``. Images are 28x28 ``uint8``
(0 = black background) and are padded to 32x32 here so that 2/4/8x area downsampling is exact. Uncompressed IDX
files (the same names without ``.gz``) are accepted too, as is torchvision's ``FashionMNIST/raw`` sub-folder.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import torch

from pagoda_inverse.datasets.transforms import from_model_range, pad_to, to_model_range
from pagoda_inverse.utils.errors import DatasetNotFoundError

__all__ = [
    "ENV_VAR",
    "FMNIST_CLASSES",
    "IMAGE_SIZE",
    "find_fmnist_dir",
    "from_model_range",
    "load_fmnist",
    "to_model_range",
]

#: The 10 official class names, indexed by label (Zalando's README order).
FMNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

#: Side of the padded images returned by :func:`load_fmnist` (28 + 2 * 2).
IMAGE_SIZE = 32

#: Environment variable that points at a folder holding the four IDX files.
ENV_VAR = "PAGODA_FMNIST_DIR"

_DEFAULT_DIRS = (
    Path("/usr/share/datasets/fashion-mnist"),
    Path("/usr/local/share/datasets/fashion-mnist"),
)
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}
_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dims
_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dim
_NATIVE_SIZE = 28
_INSTALL_HINT = (
    "install it with `sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist` "
    f"or set {ENV_VAR} to a folder holding the 4 Fashion-MNIST IDX files"
)


def _file_names(split: str) -> tuple[str, str]:
    prefix = _SPLIT_PREFIX[split]
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def _locate(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _complete(folder: Path) -> Path | None:
    """``folder`` (or its torchvision-style ``FashionMNIST/raw``) if it holds all four files, else ``None``."""
    for cand in (folder, folder / "FashionMNIST" / "raw"):
        if all(_locate(cand, stem) for split in _SPLIT_PREFIX for stem in _file_names(split)):
            return cand
    return None


def _user_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "datasets" / "fashion-mnist"


def find_fmnist_dir(root: str | os.PathLike | None = None) -> Path:
    """Find the folder holding the Fashion-MNIST IDX files.

    Search order: ``root`` if given, else ``$PAGODA_FMNIST_DIR`` if set (either one is then the *only* place
    looked at, so a wrong path is reported rather than silently replaced), else ``/usr/share/datasets/fashion-mnist``
    (Debian), ``/usr/local/share/datasets/fashion-mnist`` and ``$XDG_DATA_HOME/datasets/fashion-mnist``. A folder
    qualifies when it holds the four files ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` directly or in a
    torchvision-style ``FashionMNIST/raw`` sub-folder.

    :param root: explicit folder, or ``None`` to search.
    :return: the folder that holds the four files (absolute path).
    :raises DatasetNotFoundError: none of the tried folders is complete; the one-line message names the folders
        tried and the fix.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as empty:
    ...     try:
    ...         find_fmnist_dir(empty)
    ...     except DatasetNotFoundError as err:
    ...         print("apt-get install -y dataset-fashion-mnist" in str(err))
    True
    """
    if root is not None:
        tried = [Path(root).expanduser()]
    elif os.environ.get(ENV_VAR):
        tried = [Path(os.environ[ENV_VAR]).expanduser()]
    else:
        tried = [*_DEFAULT_DIRS, _user_data_dir()]
    for folder in tried:
        found = _complete(folder)
        if found is not None:
            return found.resolve()
    where = ", ".join(str(p) for p in tried)
    source = " (from the root argument)" if root is not None else f" (from ${ENV_VAR})" if len(tried) == 1 else ""
    raise DatasetNotFoundError(f"Fashion-MNIST files not found in {where}{source}; {_INSTALL_HINT}")


def _corrupt(path: Path, why: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"{path}: {why}; the Fashion-MNIST file is corrupt or truncated: reinstall it with "
        "`sudo apt-get install --reinstall -y dataset-fashion-mnist` (or replace the file)"
    )


def _read_idx(path: Path, magic: int, item_shape: tuple[int, ...], limit: int | None) -> tuple[torch.Tensor, int]:
    """Read the first ``limit`` items of an IDX ``uint8`` file; returns ``(items [k, *item_shape], n_in_header)``."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or struct.unpack(">I", head)[0] != magic:
                got = f"0x{struct.unpack('>I', head)[0]:08x}" if len(head) == 4 else "a short header"
                raise _corrupt(path, f"bad IDX magic number ({got}, expected 0x{magic:08x})")
            ndim = magic & 0xFF
            raw_dims = f.read(4 * ndim)
            if len(raw_dims) != 4 * ndim:
                raise _corrupt(path, "IDX header is cut short")
            n, *dims = struct.unpack(f">{ndim}I", raw_dims)
            if tuple(dims) != item_shape:
                raise _corrupt(
                    path, f"items are {'x'.join(map(str, dims))}, expected {'x'.join(map(str, item_shape))}"
                )
            k = n if limit is None else min(limit, n)
            item_bytes = 1
            for d in item_shape:
                item_bytes *= d
            data = f.read(k * item_bytes)
            if len(data) != k * item_bytes:
                raise _corrupt(path, f"holds {len(data) // item_bytes} of the {n} items its header announces")
            if k == n and f.read(1):
                raise _corrupt(path, f"has trailing bytes after the {n} items its header announces")
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise _corrupt(path, f"cannot be read ({type(err).__name__}: {err})") from err
    items = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
    return items.reshape(k, *item_shape), n


def load_fmnist(
    split: str = "train", root: str | os.PathLike | None = None, limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a Fashion-MNIST split as padded ``uint8`` images and ``int64`` labels.

    The 28x28 images are padded with 2 px of zeros (the black background) on each side to 32x32. Convert to the
    model range with :func:`to_model_range`. The full train split (60,000 images) takes about a second and 61 MB.

    :param str split: ``"train"`` (60,000 images) or ``"test"`` (10,000 images).
    :param root: folder holding the IDX files; ``None`` searches as :func:`find_fmnist_dir` does.
    :param limit: read only the first ``limit`` images (all if ``None``; fewer if the split is smaller).
    :return: ``(images, labels)``: ``uint8`` ``[N, 1, 32, 32]`` in ``[0, 255]`` and ``int64`` ``[N]`` in ``[0, 9]``
        (class names in :data:`FMNIST_CLASSES`).
    :raises ValueError: unknown ``split`` or negative ``limit``.
    :raises DatasetNotFoundError: the files are missing, or truncated/corrupt (bad magic number, sizes, gzip
        stream, or labels outside 0-9); the message names the file and says to reinstall.

    Example (needs the Debian package, so not run as a doctest)::

        images, labels = load_fmnist("test", limit=8)  # uint8 [8, 1, 32, 32], int64 [8]
        x = to_model_range(images)  # float32 in [-1, 1]
    """
    if split not in _SPLIT_PREFIX:
        raise ValueError(f"unknown Fashion-MNIST split {split!r}; use 'train' or 'test'")
    if limit is not None and (isinstance(limit, bool) or int(limit) != limit or limit < 0):
        raise ValueError(f"limit must be a non-negative integer or None, got {limit!r}")
    folder = find_fmnist_dir(root)
    img_path, lbl_path = (_locate(folder, stem) for stem in _file_names(split))
    assert img_path is not None and lbl_path is not None  # guaranteed by find_fmnist_dir
    limit = None if limit is None else int(limit)
    images, n_img = _read_idx(img_path, _IMAGES_MAGIC, (_NATIVE_SIZE, _NATIVE_SIZE), limit)
    labels, n_lbl = _read_idx(lbl_path, _LABELS_MAGIC, (), limit)
    if n_img != n_lbl:
        raise _corrupt(lbl_path, f"has {n_lbl} labels but {img_path.name} has {n_img} images")
    if labels.numel() and int(labels.max()) >= len(FMNIST_CLASSES):
        raise _corrupt(lbl_path, f"holds label {int(labels.max())}, outside 0-{len(FMNIST_CLASSES) - 1}")
    return pad_to(images.unsqueeze(1), IMAGE_SIZE), labels.to(torch.int64)
