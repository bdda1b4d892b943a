"""Datasets: the torch Dataset over a manifest, transforms, the built-in synthetic set.

Kept import-light on purpose: import the submodule you need
(``wsolbench.data.synthetic`` needs only numpy and OpenCV).
"""
