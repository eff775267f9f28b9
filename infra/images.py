"""Still images for grading references: read PNG/TIFF/JPEG frames (8 or 16 bit) into the working space.

Stills are taken as full-range R'G'B' with BT.709 primaries and transfer (what grading tools
export by default); 16-bit files keep their precision.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1]; a clear ValueError for anything that is not a colour image."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such image")
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise ValueError(f"{path.name}: not a readable image")
    if data.ndim == 2:
        data = np.repeat(data[..., None], 3, axis=2)
    elif data.shape[2] == 4:
        data = data[..., :3]
    if data.ndim != 3 or data.shape[2] != 3:
        raise ValueError(f"{path.name}: unsupported channel layout {data.shape}")
    if data.dtype == np.uint8:
        scale = 255.0
    elif data.dtype == np.uint16:
        scale = 65535.0
    else:
        raise ValueError(f"{path.name}: unsupported sample type {data.dtype} (use 8- or 16-bit PNG/TIFF)")
    return np.ascontiguousarray(data[..., ::-1]).astype(np.float32) / np.float32(scale)


def write_image(path: str | Path, rgb: np.ndarray, depth: int = 16) -> None:
    """Write float RGB in [0, 1] as an 8- or 16-bit PNG/TIFF."""
    scale, dtype = (65535.0, np.uint16) if depth == 16 else (255.0, np.uint8)
    data = np.clip(np.rint(np.asarray(rgb, np.float64) * scale), 0, scale).astype(dtype)[..., ::-1]
    if not cv2.imwrite(str(path), np.ascontiguousarray(data)):
        raise ValueError(f"{path}: could not write image")


def read_pairs(originals: str | Path, graded: str | Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, original, graded) for every image name present in both folders, sorted by name.

    A name in only one folder, a size mismatch, or no common names is a ValueError naming the files.
    """
    dirs = [Path(originals), Path(graded)]
    for d in dirs:
        if not d.is_dir():
            raise ValueError(f"grade references: {d} is not a folder")
    names = [{p.name for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()} for d in dirs]
    only = sorted(names[0] ^ names[1])
    if only:
        raise ValueError(f"grade references: {len(only)} image(s) in only one folder, e.g. {only[0]!r} "
                         "(originals and graded frames must have the same file names)")
    if not names[0]:
        raise ValueError(f"grade references: no PNG/TIFF/JPEG images in {dirs[0]}")
    pairs = []
    for name in sorted(names[0]):
        o, g = read_image(dirs[0] / name), read_image(dirs[1] / name)
        if o.shape != g.shape:
            raise ValueError(f"grade references: {name} is {o.shape[1]}x{o.shape[0]} original but "
                             f"{g.shape[1]}x{g.shape[0]} graded")
        pairs.append((name, o, g))
    return pairs
