"""The names of the video decoding backends, kept free of torch so that the command line can list them
without importing it (`lit_video.video.decode` holds the backends themselves)."""

# Preference order for backend="auto", by measurement (benchmarks/data_pipeline.py, README): all three
# are frame-exact on every container the tests write and agree bit for bit on real H.264 files;
# torchcodec decoded the clips a sampler asks for fastest everywhere, decord next, PyAV last (it is
# the fallback that needs nothing but its wheel, which bundles FFmpeg). On videos with a display rotation
# (phones' portrait videos) they disagree on their own; decode.py corrects each so that all return the frames
# as shown, and the choice never changes what a model sees.
BACKENDS = ("torchcodec", "decord", "pyav")
DEFAULT_BACKEND = "auto"
# Decoders that decode in the training process on the Trainer's device instead of in the DataLoader workers
# (lit_video.data.device_decode): the GPU's video decoder through torchcodec.
DEVICE_DECODERS = ("torchcodec-cuda",)
