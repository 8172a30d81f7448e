"""Metrics that reproduce the official evaluators, each importable without torch or Lightning.

- `davis`: DAVIS region similarity J and boundary F-measure (davis2017-evaluation), per frame and per
  sequence, semi-supervised and unsupervised; `davis_folder`: a results folder scored against a DAVIS root,
  and the official CSV files.
- `ytvos`: YouTube-VOS J and F of seen and unseen categories.
- `ytvis`: YouTube-VIS video AP/AR (the YouTube-VIS cocoapi's 12 numbers).
- `captions`: BLEU-1..4, METEOR, ROUGE-L and CIDEr-D (pycocoevalcap's COCOEvalCap).
"""
