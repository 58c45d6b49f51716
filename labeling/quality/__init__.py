"""Labelling quality: inter-annotator agreement and consensus, as pure functions.

`agreement` measures how much annotators agree (classification: Krippendorff's alpha,
Fleiss' kappa, Cohen's kappa per pair; regions: IoU-matched F1; spans: exact/overlap
F1); `consensus` turns several annotations into one (majority vote, Dawid-Skene, box
fusion, span majority) with a confidence per item, and lists items for review.
Nothing here reads or writes the database.
"""
