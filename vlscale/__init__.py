"""vlscale: compare how vision-language training procedures scale.

Grid -> Ray Train (CLIP / MaMMUT) -> MLflow -> scaling-law fit -> comparison report.
See README.md and DESIGN.md for the picture.
"""

__version__ = "0.1.0"
