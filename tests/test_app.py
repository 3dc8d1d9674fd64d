"""The Streamlit app, driven headless with streamlit.testing (AppTest)."""

import pytest
from conftest import REPO
from streamlit.testing.v1 import AppTest

from fer_core.models.checkpoint import DEFAULT_CHECKPOINT, list_checkpoints, read_card

APP = str(REPO / "app.py")


@pytest.fixture
def app():
    return AppTest.from_file(APP, default_timeout=60)


def test_home_opens_and_lists_models(app):
    app.run()
    assert not app.exception
    assert "Privacy-conscious facial emotion recognition" in app.title[0].value
    ckpts = list_checkpoints()
    assert ckpts, "the repository ships at least one checkpoint"
    picker = app.sidebar.selectbox[0]
    assert picker.value.endswith(DEFAULT_CHECKPOINT)
    assert len(picker.options) == len(ckpts)
    acc = read_card(DEFAULT_CHECKPOINT)["metrics"]["PrivateTest"]["accuracy"]
    assert any(f"{100 * acc:.1f}%" in m.value for m in app.markdown)


def test_models_page_shows_card_metrics(app):
    app.run()
    app.switch_page("pages/models.py").run()
    assert not app.exception
    card = read_card(DEFAULT_CHECKPOINT)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["PrivateTest accuracy"] == f"{100 * card['metrics']['PrivateTest']['accuracy']:.2f}%"
    assert len(app.get("plotly_chart")) >= 1
    assert len(app.dataframe) >= 2


def test_photo_page_sample_photo(app):
    app.run()
    app.switch_page("pages/photo.py").run()
    assert not app.exception
    assert len(app.get("imgs")) >= 1 or len(app.get("image")) >= 1
    assert len(app.get("plotly_chart")) == 1
    labels = app.dataframe[0].value["label"].tolist()
    assert len(labels) == 1


def test_photo_page_real_upload_and_bad_file(app):
    from fer_core.inference.pipeline import SAMPLE_PHOTO

    app.run()
    app.switch_page("pages/photo.py").run()
    up = app.get("file_uploader")[0]
    up.set_value([("me.jpg", SAMPLE_PHOTO.read_bytes(), "image/jpeg"),
                  ("fake.jpg", b"not an image at all", "image/jpeg")]).run()
    assert not app.exception
    assert [s.value for s in app.subheader] == ["me.jpg", "fake.jpg"]
    assert any("could not be analysed" in e.value for e in app.error)
    assert len(app.dataframe) == 1
    assert any(b.label == "Results as CSV" for b in app.get("download_button"))


def test_video_page_upload(app):
    import numpy as np
    from PIL import Image

    from fer_core.data.images import load_image
    from fer_core.inference.pipeline import SAMPLE_PHOTO
    from fer_core.inference.video import encode_frames

    a = Image.fromarray(load_image(SAMPLE_PHOTO)).resize((256, 256))
    clip = encode_frames([np.asarray(a.rotate(i)) for i in range(10)], fps=10)
    app.run()
    app.switch_page("pages/video.py").run()
    app.get("file_uploader")[0].set_value(("clip.mp4", clip, "video/mp4")).run()
    assert not app.exception
    assert "10 frames" in app.markdown[0].value or any("10 frames" in m.value for m in app.markdown)
    assert len(app.get("video")) == 1 and len(app.get("plotly_chart")) == 1
    assert any(m.label == "Most frequent emotion" for m in app.metric)


def test_video_page_bad_file(app):
    app.run()
    app.switch_page("pages/video.py").run()
    app.get("file_uploader")[0].set_value(("broken.mp4", b"\x00" * 1000, "video/mp4")).run()
    assert not app.exception
    assert any("could not be analysed" in e.value for e in app.error)


# The Webcam page's stream needs a live Streamlit runtime (streamlit-webrtc asks the session
# manager for the session), which AppTest lacks: tests/e2e/ opens it in Chromium with a fake camera.
def test_webcam_page_reports_bad_turn_settings(app, monkeypatch):
    monkeypatch.setenv("FER_TURN_URLS", "turn:turn.example.org:3478")  # no username/credential
    monkeypatch.delenv("FER_TURN_USERNAME", raising=False)
    app.run()
    app.switch_page("pages/webcam.py").run()
    assert not app.exception
    assert any("STUN/TURN settings are not valid" in e.value for e in app.error)
