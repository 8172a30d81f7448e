"""The keys of a sample dict, defined once for every dataset and task."""

VIDEO = "video"  # float (C,T,H,W) after transforms; (V,C,T,H,W) for multi-view evaluation
LABEL = "label"  # int64 class index, 0-based; -1 when the split has no labels
MASKS = "masks"  # int64 (T,H,W) object ids, 0 = background, 255 = void
OBJECT_IDS = "object_ids"  # int64 (K,): the dataset's id of each object 1..K of MASKS
CAPTION = "caption"  # str: the caption drawn for a training clip
VIDEO_ID = "video_id"  # str, unique within a dataset split
VIDEO_INDEX = "video_index"  # int, the record's position in the dataset (groups views of one video)
FRAME_INDICES = "frame_indices"  # int64 (T,) or (V,T): the source frames of the clip
# A clip decoded on the device (decoder torchcodec-cuda): the workers deliver its plan instead of VIDEO
VIDEO_PATH = "video_path"  # str: the video file to decode
VIEWS = "views"  # int64 (V,5): each view's crop box (top, left, height, width) in source pixels and its flip
# ... of a frame-folder clip (segmentation formats), in place of VIDEO_PATH:
FRAME_FILES = "frame_files"  # list[str] (T,): the clip's image files
FRAME_SIZE = "frame_size"  # int64 (2,): (height, width) the frames are resized to first (the annotations')

# Video object segmentation (semi-supervised: each object's first mask is given)
NUM_OBJECTS = "num_objects"  # int64 (): objects in a training clip, ids 1..K in MASKS
FIRST_FRAMES = "first_frames"  # int64 (K,): the frame where object k+1's given mask is (evaluation)
ANNOTATED = "annotated"  # bool (T,): frames that have a ground-truth mask
FRAME_NAMES = "frame_names"  # list[str] (T,): file stems of the frames, e.g. "00005" (to write predictions)
# list[str] (K,): category of object k+1 of MASKS as the dataset names it (YouTube-VOS meta.json; "" when the
# object has none); evaluation samples of formats with categories only
OBJECT_CATEGORIES = "object_categories"

# Video instance segmentation (YouTube-VIS): MASKS holds instances 1..K, NUM_OBJECTS is K
CATEGORIES = "categories"  # int64 (K,): 0-based class index of instance k+1 of MASKS (-1 = padding)
ANNOTATION_VIDEO_ID = "annotation_video_id"  # int64 (): the video's id in the annotation JSON (results' video_id)
ORIGINAL_SIZE = "original_size"  # int64 (2,): (height, width) of the video in the annotation JSON

# Captioning: a training clip carries one caption drawn at random, evaluation carries all references
CAPTION_TOKENS = "caption_tokens"  # int64 (L,): BOS, the caption's token ids, EOS, then padding
REFERENCES = "references"  # list[str]: every reference caption of the video (evaluation)
