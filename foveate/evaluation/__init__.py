"""Measuring models on benchmarks with a fixed, stated protocol.

``fixture``: the embedded tiny VLM on the synthetic scene benchmark (``foveate bench fixture``): accuracy
on the crop around the targets against the whole image, and its existence probe's AUROC.
"""
