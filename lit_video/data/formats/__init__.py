"""One module per dataset format, each registering its DataModule on import (`@register_datamodule`).

Adding a format is one new file in this package: `lit_video.data.base.datamodule_class` imports
every module here the first time a format is looked up by name.
"""
