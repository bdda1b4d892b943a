"""Readers and converters of real dataset layouts, one module per layout.

Torch-free: each module needs only numpy, OpenCV and the standard library, so
evaluation of saved score maps (``wsolbench evaluate-cams``) runs without a GPU
stack. Import the submodule you need, e.g.
``from wsolbench.data.sources.wsolevaluation import read_metadata_split``.
"""
