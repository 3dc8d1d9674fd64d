"""Data: FER2013/FER+ datasets and their label sets, image decoding (in memory, with EXIF rotation and size
limits), preprocessing into model inputs, batched augmentation, and dataset exploration.
"""

from fer_core.data.augment import (
    AugmentConfig,
    augment_batch,
)
from fer_core.data.datasets import (
    DATA_ENV,
    REPO_ROOT,
    SPLITS,
    DatasetError,
    FERDataset,
    default_data_path,
    file_sha256,
    load_dataset,
)
from fer_core.data.explore import (
    agreement,
    class_distribution,
    duplicates,
    image_statistics,
    montage,
    sample_faces,
)
from fer_core.data.ferplus import (
    N_EMOTIONS,
    FerPlusLabels,
    agreement_matrix,
    ferplus_dataset,
    ferplus_labels,
    relabel_by_name,
    with_label_set,
)
from fer_core.data.images import (
    MAX_PIXELS,
    ImageError,
    decode_image,
    encode_png,
    face_to_48,
    load_image,
    rgb_to_gray,
)
from fer_core.data.preprocess import (
    IMAGE_SIZE,
    MEAN,
    STD,
    preprocessing_spec,
    to_model_input,
)

__all__ = [
    "AugmentConfig",
    "DATA_ENV",
    "DatasetError",
    "FERDataset",
    "FerPlusLabels",
    "IMAGE_SIZE",
    "ImageError",
    "MAX_PIXELS",
    "MEAN",
    "N_EMOTIONS",
    "REPO_ROOT",
    "SPLITS",
    "STD",
    "agreement",
    "agreement_matrix",
    "augment_batch",
    "class_distribution",
    "decode_image",
    "default_data_path",
    "duplicates",
    "encode_png",
    "face_to_48",
    "ferplus_dataset",
    "ferplus_labels",
    "file_sha256",
    "image_statistics",
    "load_dataset",
    "load_image",
    "montage",
    "preprocessing_spec",
    "rgb_to_gray",
    "sample_faces",
    "to_model_input",
    "relabel_by_name",
    "with_label_set",
]
