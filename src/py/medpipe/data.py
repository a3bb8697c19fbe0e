"""Preprocessed cases in memory, and the patch sampler that feeds the training loop.

Cases on disk are what the preprocess skill writes (src/imaging/README.md, "npy"):
`image.npy` float32/float16 (float64 is accepted and narrowed to float32) and
`label.npy` uint8, Fortran order, shape (nx, ny, nz) for 3D or (nx, ny) for 2D, the
image optionally with a trailing channel axis (nx, ny, nz, c). `arr[x, y, z]` is
voxel (x, y, z); we keep that index order and only move the channel axis to the
front, so a case becomes image (C, nx, ny, nz) and label (nx, ny, nz), C-contiguous.
A 2D case may carry a trailing singleton slice axis ((nx, ny, 1)): it is dropped.
Nothing is pickled: np.load(allow_pickle=False).

Where the data lives. Everything is loaded once. On CUDA, when all cases fit in a
fraction of the free GPU memory (GPU_DATA_FRACTION, the rest is for activations; divided
among the stages sharing the device), they go to the GPU and patches are cut there;
otherwise they stay in pinned CPU memory, patches are cut on the CPU and copied with
non_blocking=True.

Sampling. Each epoch draws `samples_per_volume` patches from every training case:
  uniform: the patch start is uniform over every position that keeps the patch
           inside the (padded) volume, independently per axis.
  label:   TorchIO's LabelSampler, the reference's. Each voxel of class k weighs
           p_k / n_k (p_k the configured probability, reference 0.5 background and 0.5
           foreground; n_k the case's voxels of class k, zero padding counted as
           background), and only voxels a patch can be centred on count: centre - patch
           // 2 >= 0 and centre - patch // 2 + patch <= size on every axis. One such voxel
           is drawn by weight and becomes the patch centre, start = centre - patch // 2.
           So class k's share of the patches is p_k m_k / n_k renormalised (m_k: its
           voxels that can be centres): a class near the border is drawn less than p_k,
           and with the heart reference's patch, which leaves a few percent of the
           volume as possible centres, most patches are centred on the (central) heart.
           Drawn as: class k by those weights, then one of its possible centres
           uniformly. When no class with p_k > 0 has a possible centre the draw falls
           back to uniform.
The patches of an epoch are shuffled and cut into batches of `batch_size`; the last
batch is topped up with extra draws (uniformly chosen cases, same sampler) so every
batch is full (a constant batch shape: no recompiles, no batch of one). Validation
patches (`fixed_batches`) are drawn the same way, once, `samples_per_volume` per case,
neither shuffled nor topped up.

Padding. A case cut into patches (training, or validation on patches) that is smaller
than the patch on some axis is zero-padded once, at load, to the patch size on that
axis: symmetrically, before = (patch - size) // 2, the odd voxel at the end (the
sliding-window rule, sliding_window.pad_widths); the label is padded with 0
(background). Such an axis then has exactly one start, 0.

Randomness comes only from a CPU torch.Generator seeded by the caller, so the same
seed gives the same patches, on the CPU or on the GPU, and no draw needs a GPU sync.
The class index lists used by the label sampler hold the possible centres only (flat
C-order indices into the box of possible centres of the padded volume), on the CPU as
int32 (int64 above 2**31 voxels): exact, no rejection loop.
"""

import math
import os

import numpy as np
import torch

from medpipe.sliding_window import pad_widths

# Fraction of the free GPU memory the dataset may take; the rest is for the network.
GPU_DATA_FRACTION = 0.4
IMAGE_DTYPES = (np.float32, np.float16)


# ---------------------------------------------------------------------------- loading


def read_npy(path):
    """np.load without pickles; a clear one-line error naming the file."""
    path = os.fspath(path)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read as .npy: {e}") from None


def to_case_arrays(image, label, spatial_dims, name="case"):
    """(image (C, *spatial) C-contiguous float32|float16, label (*spatial) uint8) from
    the on-disk arrays, following the module docstring's shape rules."""
    label = np.asarray(label)
    while label.ndim > spatial_dims and label.shape[-1] == 1:
        label = label[..., 0]
    if label.ndim != spatial_dims:
        raise ValueError(f"{name}: label shape {label.shape} is not {spatial_dims}D")
    spatial = label.shape
    if label.dtype != np.uint8:
        if not np.issubdtype(label.dtype, np.integer) and not np.issubdtype(label.dtype, np.bool_):
            raise ValueError(f"{name}: label dtype {label.dtype} is not an integer type")
        if label.size and (label.min() < 0 or label.max() > 255):
            raise ValueError(f"{name}: label values must be in 0..255")
        label = label.astype(np.uint8)

    image = np.asarray(image)
    if image.shape[:spatial_dims] != spatial:
        raise ValueError(f"{name}: image shape {image.shape} does not start with the label shape {spatial}")
    rest = [d for d in image.shape[spatial_dims:] if d != 1]
    if len(rest) > 1:
        raise ValueError(f"{name}: image shape {image.shape}: more than one non-spatial axis")
    channels = rest[0] if rest else 1
    image = image.reshape(spatial + (channels,), order="A")  # drops singleton axes, no copy
    if image.dtype not in IMAGE_DTYPES:
        if not np.issubdtype(image.dtype, np.number):
            raise ValueError(f"{name}: image dtype {image.dtype} is not numeric")
        image = image.astype(np.float32)
    # Channel axis first, then one copy into C order: arr[c, x, y, z] is voxel (x, y, z).
    image = np.ascontiguousarray(np.moveaxis(image, -1, 0))
    label = np.ascontiguousarray(label)
    return image, label


class Case:
    """One loaded case: `image` (C, *spatial) and `label` (*spatial) torch tensors on
    the data device, zero-padded to the patch where smaller. For the label sampler, on
    the CPU: `class_index[k]` the
    flat C-order indices of class k's possible patch centres within the box of possible
    centres, whose corner (padded coordinates) is `box_origin` and shape `box_shape`;
    `class_count[k]` the padded volume's voxels of class k."""

    def __init__(self, case_id, image, label, class_index=None, class_count=None, box_origin=None, box_shape=None):
        self.id = case_id
        self.image = image
        self.label = label
        self.class_index = class_index
        self.class_count = class_count
        self.box_origin = box_origin
        self.box_shape = box_shape


def dataset_bytes(arrays):
    """Device bytes of (image, label) numpy pairs once loaded (class indices stay on the CPU)."""
    return sum(img.nbytes + lab.nbytes for img, lab in arrays)


def fits_on_gpu(nbytes, free, sharing=1):
    """Whether `nbytes` of cases fit this stage's part of the free GPU memory: GPU_DATA_FRACTION
    of it, divided among the stages the engine lets share the device (stages that start
    together all see the same free memory)."""
    return nbytes <= GPU_DATA_FRACTION * free / max(1, sharing)


def choose_data_device(nbytes, train_device, prefer=None):
    """Where the cases live: the training device when it is CUDA and they fit (fits_on_gpu,
    with the engine's MEDPIPE_STAGES_PER_GPU), or `prefer` forces it; else the CPU."""
    train_device = torch.device(train_device)
    if train_device.type != "cuda":
        return torch.device("cpu")
    if prefer is not None:
        return train_device if prefer else torch.device("cpu")
    free, _ = torch.cuda.mem_get_info(train_device)
    sharing = int(os.environ.get("MEDPIPE_STAGES_PER_GPU") or 1)
    return train_device if fits_on_gpu(nbytes, free, sharing) else torch.device("cpu")


def load_cases(specs, spatial_dims, num_classes, patch_size=None, train_device="cpu", on_gpu=None,
               index_classes=True):
    """Loads [{id, image, label}] once. Returns (cases, data_device).

    `patch_size`: pad each case to at least this size (cases cut into patches; None for
    validation volumes, which the sliding window pads itself). `on_gpu`: None decides
    by the memory check, True/False forces. Labels outside 0..num_classes-1 are an error.
    """
    arrays = []
    for spec in specs:
        name = str(spec.get("id", spec.get("image")))
        img, lab = to_case_arrays(read_npy(spec["image"]), read_npy(spec["label"]), spatial_dims, name)
        if lab.size and int(lab.max()) >= num_classes:
            raise ValueError(f"{name}: label value {int(lab.max())} but the network has {num_classes} classes")
        arrays.append((name, img, lab))
    data_device = choose_data_device(dataset_bytes([(i, la) for _, i, la in arrays]),
                                     train_device, on_gpu)
    pin = data_device.type == "cpu" and torch.device(train_device).type == "cuda" and torch.cuda.is_available()

    cases = []
    for name, img, lab in arrays:
        pad = pad_widths(lab.shape, patch_size) if patch_size is not None else [(0, 0)] * lab.ndim
        image_t, label_t = torch.from_numpy(img), torch.from_numpy(lab)
        if any(b or a for b, a in pad):
            flat_pad = [v for b, a in reversed(pad) for v in (b, a)]  # F.pad lists the last axis first
            image_t = torch.nn.functional.pad(image_t, flat_pad)
            label_t = torch.nn.functional.pad(label_t[None], flat_pad)[0]
        centres = possible_centres(label_t.numpy(), patch_size, num_classes) if index_classes else {}
        if pin:
            image_t, label_t = image_t.pin_memory(), label_t.pin_memory()
        else:
            image_t, label_t = image_t.to(data_device), label_t.to(data_device)
        cases.append(Case(name, image_t, label_t, **centres))
    return cases, data_device


def possible_centres(label, patch_size, num_classes):
    """The label sampler's view of a padded label (module docstring): per class, its
    voxel count and the C-order indices of its voxels a patch can be centred on, within
    the box of those voxels (a patch of None: every voxel)."""
    patch = patch_size if patch_size is not None else [1] * label.ndim
    lo = [p // 2 for p in patch]
    hi = [s - (p - 1) // 2 for s, p in zip(label.shape, patch)]  # exclusive; size >= patch after padding
    box = np.ascontiguousarray(label[tuple(slice(a, b) for a, b in zip(lo, hi))]).reshape(-1)
    idx_dtype = np.int32 if box.size < 2**31 else np.int64
    return {"class_index": [torch.from_numpy(np.flatnonzero(box == k).astype(idx_dtype)) for k in range(num_classes)],
            "class_count": np.bincount(label.reshape(-1), minlength=num_classes)[:num_classes].tolist(),
            "box_origin": tuple(lo), "box_shape": tuple(b - a for a, b in zip(lo, hi))}


# ---------------------------------------------------------------------------- sampling


def class_probabilities(spec, num_classes):
    """Per-class probabilities from a list [p0, p1, ...] or a dict {"0": p0, ...}
    (missing classes get 0); None gives the reference: 0.5 background, 0.5 shared
    equally by the foreground classes. Normalised to sum 1."""
    if spec is None:
        if num_classes == 1:
            return [1.0]
        return [0.5] + [0.5 / (num_classes - 1)] * (num_classes - 1)
    if isinstance(spec, dict):
        probs = [0.0] * num_classes
        for k, v in spec.items():
            k = int(k)
            if not 0 <= k < num_classes:
                raise ValueError(f"sampler probability for class {k}, but there are {num_classes} classes")
            probs[k] = float(v)
    else:
        probs = [float(v) for v in spec]
        if len(probs) != num_classes:
            raise ValueError(f"sampler probabilities {probs} need {num_classes} entries")
    if any(p < 0 or not math.isfinite(p) for p in probs) or sum(probs) <= 0:
        raise ValueError(f"sampler probabilities {probs} must be finite, non-negative, not all zero")
    total = sum(probs)
    return [p / total for p in probs]


class PatchSampler:
    """Draws patch positions (on the CPU, from its own seeded generator) and cuts
    batches of patches on the data device. See the module docstring for the rules."""

    def __init__(self, cases, patch_size, samples_per_volume, batch_size, sampler="label", probabilities=None,
                 seed=0, num_classes=2):
        if not cases:
            raise ValueError("the patch sampler needs at least one case")
        if sampler not in ("uniform", "label"):
            raise ValueError(f"unknown sampler {sampler!r}: expected 'uniform' or 'label'")
        self.cases = cases
        self.patch = tuple(int(p) for p in patch_size)
        if len(self.patch) != cases[0].label.dim():
            raise ValueError(f"patch_size {self.patch} does not match the cases' {cases[0].label.dim()}D shape")
        self.samples_per_volume = int(samples_per_volume)
        self.batch_size = int(batch_size)
        if self.samples_per_volume < 1 or self.batch_size < 1:
            raise ValueError("samples_per_volume and batch_size must be >= 1")
        self.sampler = sampler
        self.probabilities = class_probabilities(probabilities, num_classes)
        if sampler == "label":  # per case, class k's weight p_k m_k / n_k (module docstring)
            self.class_weights = [torch.tensor([p * len(idx) / n if n else 0.0 for p, idx, n in
                                                zip(self.probabilities, c.class_index, c.class_count)],
                                               dtype=torch.float64) for c in cases]
        self.generator = torch.Generator().manual_seed(int(seed))

    def batches_per_epoch(self):
        return math.ceil(len(self.cases) * self.samples_per_volume / self.batch_size)

    # One draw: the start of a patch in case `ci` (padded coordinates).
    def _uniform_start(self, case):
        g = self.generator
        return tuple(int(torch.randint(0, s - p + 1, (1,), generator=g)) for s, p in
                     zip(case.label.shape, self.patch))

    def _label_start(self, case, weights):
        g = self.generator
        if not bool((weights > 0).any()):
            return self._uniform_start(case)  # no class it should draw can be a centre here
        k = int(torch.multinomial(weights, 1, generator=g))
        idx = case.class_index[k]
        j = int(torch.randint(0, idx.numel(), (1,), generator=g))
        offset = np.unravel_index(int(idx[j]), case.box_shape)  # C order, as the indices were taken
        return tuple(o + int(d) - p // 2 for o, d, p in zip(case.box_origin, offset, self.patch))

    def draw(self, case_index):
        case = self.cases[case_index]
        if self.sampler == "label":
            return self._label_start(case, self.class_weights[case_index])
        return self._uniform_start(case)

    def epoch_plan(self):
        """[(case index, start)] batches for one epoch: a list of lists of batch_size."""
        g = self.generator
        draws = [(ci, self.draw(ci)) for ci in range(len(self.cases)) for _ in range(self.samples_per_volume)]
        order = torch.randperm(len(draws), generator=g).tolist()
        draws = [draws[i] for i in order]
        short = -len(draws) % self.batch_size
        for _ in range(short):  # top up the last batch (see the module docstring)
            ci = int(torch.randint(0, len(self.cases), (1,), generator=g))
            draws.append((ci, self.draw(ci)))
        return [draws[i:i + self.batch_size] for i in range(0, len(draws), self.batch_size)]

    def fixed_batches(self):
        """[(case index, start)] batches of samples_per_volume draws from every case, in case
        order, the last batch possibly short: the validation patches, drawn once so that every
        validation scores the same patches."""
        draws = [(ci, self.draw(ci)) for ci in range(len(self.cases)) for _ in range(self.samples_per_volume)]
        return [draws[i:i + self.batch_size] for i in range(0, len(draws), self.batch_size)]

    def cut(self, batch, device):
        """Image (B, C, *patch) float32 and label (B, *patch) uint8 on `device` for one
        planned batch. Slicing happens where the data lives; a CPU batch bound for CUDA
        is pinned and copied asynchronously."""
        images, labels = [], []
        for ci, start in batch:
            case = self.cases[ci]
            sl = tuple(slice(s, s + p) for s, p in zip(start, self.patch))
            images.append(case.image[(slice(None),) + sl])
            labels.append(case.label[sl])
        image = torch.stack(images).float()
        label = torch.stack(labels)
        device = torch.device(device)
        if image.device != device:
            if image.device.type == "cpu" and device.type == "cuda":
                image, label = image.pin_memory(), label.pin_memory()
            image = image.to(device, non_blocking=True)
            label = label.to(device, non_blocking=True)
        return image.contiguous(), label.contiguous()

    def epoch(self, device):
        """Yields the epoch's batches (image, label) on `device`."""
        for batch in self.epoch_plan():
            yield self.cut(batch, device)
