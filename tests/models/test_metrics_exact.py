"""QC's per-frame measures computed once per frame's luma (#24) give the numbers of the definitions."""

from __future__ import annotations

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from models.clip import luma
from models.metrics import noise_sigma, psnr, sharpness, sharpness_planes, ssim_luma, ssim_planes


def test_luma_once_gives_the_same_numbers():
    rng = np.random.default_rng(4)
    a = cv2.GaussianBlur(rng.random((90, 120, 3)).astype(np.float32), (0, 0), 1.0)
    b = np.clip(a + rng.normal(0, 0.02, a.shape).astype(np.float32), 0, 1)
    ya, yb = luma(a), luma(b)
    assert np.array_equal(ya, luma(a[None])[0])  # one frame's luma = its luma in a stack
    assert psnr(a, b) == 10.0 * np.log10(1.0 / float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))
    assert ssim_planes(ya, yb) == ssim_luma(a, b) == float(np.mean([structural_similarity(ya, yb, data_range=1.0)]))
    assert sharpness_planes(ya) == sharpness(a[None]) == float(np.mean([cv2.Laplacian(ya, cv2.CV_32F).var()]))
    assert noise_sigma(ya) == noise_sigma(a)
    assert psnr(a, a) == float("inf")
