"""The Streamlit app, driven headless with streamlit.testing (AppTest)."""

import pytest
from conftest import REPO
from streamlit.testing.v1 import AppTest

from fer_core.checkpoints import DEFAULT_CHECKPOINT, list_checkpoints, read_card

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
