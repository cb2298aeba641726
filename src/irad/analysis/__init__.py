"""What a purifier does to images and to the classifier behind it (App. A.7-A.9): ``irad analyze``.

* :func:`analyze` / :class:`AnalysisConfig`: Tables 17-19 and Figs. 2, 5-8 for any defenses x victim x attack.
* :mod:`irad.metrics`: PSNR, SSIM, FFT band losses, LPIPS (Table 17).
* :mod:`.features`: penultimate features, distances to the clean centre, PCA, decision paths (Tables 18-19).
* :mod:`.saliency`: Grad-CAM through captum.
"""

from .features import cosine_similarity, decision_paths, distances_to_centre, pca_2d, penultimate_features
from .run import PARTS, AnalysisConfig, analyze
from .saliency import grad_cam

__all__ = ["AnalysisConfig", "analyze", "PARTS", "penultimate_features", "distances_to_centre", "pca_2d",
           "decision_paths", "cosine_similarity", "grad_cam"]
