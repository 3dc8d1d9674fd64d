"""YuNet on ONNX Runtime (the default detector runtime) against OpenCV's ``cv2.FaceDetectorYN`` (the reference), on
real faces: the same faces, boxes to the pixel, landmarks and scores to float rounding; and the folded model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from PIL import Image

from fer_core.data.images import load_image
from fer_core.inference.detect import FaceDetector, yunet_model_path
from fer_core.inference.pipeline import SAMPLE_PHOTO
from fer_core.inference.scenes import face_clip
from fer_core.inference.yunet import yunet_float_model

#: Landmarks (px) and scores may differ by float rounding between the two runtimes' convolutions.
LANDMARK_TOLERANCE_PX = 1e-2
SCORE_TOLERANCE = 1e-4


def _images() -> list[tuple[str, np.ndarray]]:
    astronaut = load_image(SAMPLE_PHOTO)
    out = [("astronaut", astronaut), ("astronaut 1000x700", np.asarray(Image.fromarray(astronaut).resize((1000, 700)))),
           ("blank", np.full((240, 320, 3), 127, np.uint8)),
           ("noise", np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8))]
    for n in (1, 3, 10):
        out += [(f"{n}-face frame {i}", f) for i, f in enumerate(face_clip(n, 3, (640, 480)))]
    return out


@pytest.mark.parametrize("max_side", [640, 320])
def test_onnx_runtime_finds_the_faces_opencv_finds(max_side):
    fast, ref = FaceDetector(max_side=max_side), FaceDetector(max_side=max_side, runtime="opencv")
    assert (fast.runtime, ref.runtime) == ("onnx", "opencv")
    counted = 0
    for name, rgb in _images():
        a, b = fast.detect(rgb), ref.detect(rgb)
        assert len(a) == len(b), (name, len(a), len(b))
        for fa, fb in zip(a, b, strict=True):
            assert np.abs(np.subtract(fa.box, fb.box)).max() <= 1, (name, fa.box, fb.box)
            np.testing.assert_allclose(fa.landmarks, fb.landmarks, atol=LANDMARK_TOLERANCE_PX, err_msg=name)
            assert abs(fa.score - fb.score) < SCORE_TOLERANCE, name
        counted += len(a)
    assert counted >= 2 + 3 * (1 + 3 + 10) - 3  # the faces are there (a 320-px copy may lose a crowd's smallest)


def test_the_folded_model_has_float_weights_and_a_free_input():
    model = onnx.load_from_string(yunet_float_model(str(yunet_model_path())))
    assert not [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == [1, 3, "height", "width"]
    original = onnx.load(str(yunet_model_path()))
    assert sum(n.op_type == "Conv" for n in model.graph.node) == sum(n.op_type == "Conv" for n in original.graph.node)


def test_unknown_runtime_is_refused():
    with pytest.raises(ValueError, match="runtime"):
        FaceDetector(runtime="tflite")
    assert FaceDetector("haar", runtime="onnx").runtime == "opencv"  # Haar is OpenCV's alone
