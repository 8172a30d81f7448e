"""Datasets, split by role.

- `formats/`: one module per dataset format; each reader owns its layout constants and registers
  its DataModule (`@register_datamodule`), found by name without a hand-kept list.
- `synthetic/`: generators that write small datasets in the official layouts.
- the shared bases and helpers beside this file (`base`, `vos`, `captioning`, `masks`, `rle`, ...).

Importing this package imports nothing else, so that light users (the metrics, `--help`) do not
pay for Lightning.
"""
