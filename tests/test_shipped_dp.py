"""The shipped private checkpoints and the sweep results: every claimed epsilon is what the accountant
gives for the recorded settings, the CSV agrees with the cards, and the app can load each model."""

import pytest

from fer_core.models.checkpoint import CHECKPOINT_DIR, list_checkpoints, load_checkpoint, read_card
from fer_core.privacy.accounting import epsilon_for
from fer_core.results.files import SWEEP_RESULTS, read_sweep
from fer_core.results.sweep import EPSILONS

PRIVATE = [d for d in list_checkpoints() if read_card(d).get("privacy", {}).get("private")]
ROWS = read_sweep()


def test_a_private_checkpoint_is_shipped_for_every_epsilon():
    assert SWEEP_RESULTS.exists(), "python -m fer_core sweep writes checkpoints/results/sweep.csv"
    shipped = {float(read_card(d)["privacy"]["target_epsilon"]) for d in PRIVATE}
    assert shipped == set(EPSILONS)


@pytest.mark.parametrize("ckpt", PRIVATE, ids=[d.name for d in PRIVATE])
def test_claimed_epsilon_is_what_the_accountant_gives(ckpt):
    p = read_card(ckpt)["privacy"]
    for key in ("epsilon", "delta", "accountant", "noise_multiplier", "max_grad_norm", "sample_rate", "steps",
                "epochs", "private_rows", "rows", "method"):
        assert p.get(key) is not None, key
    assert p["poisson_sampling"] is True and p["delta"] < 1 / p["private_rows"]
    again = epsilon_for(p["noise_multiplier"], p["sample_rate"], p["steps"], p["delta"], p["accountant"])
    assert again == pytest.approx(p["epsilon"], abs=2e-3)
    assert p["epsilon"] <= p["target_epsilon"] * 1.01  # the target was met (accountant tolerance)
    ck = load_checkpoint(ckpt)  # loads safely, with its architecture
    assert ck.model.training is False


def test_sweep_rows_agree_with_the_shipped_cards():
    shipped = {r["checkpoint"]: r for r in ROWS if r["checkpoint"]}
    assert set(shipped) == {d.name for d in PRIVATE}
    for name, r in shipped.items():
        card = read_card(CHECKPOINT_DIR / name)
        assert r["epsilon"] == pytest.approx(card["privacy"]["epsilon"], abs=1e-3)
        assert r["privatetest_accuracy"] == pytest.approx(card["metrics"]["PrivateTest"]["accuracy"], abs=1e-4)
        assert r["publictest_accuracy"] == pytest.approx(card["metrics"]["PublicTest"]["accuracy"], abs=1e-4)
    # every (method, epsilon) pair has one row, and at one sampling plan (sample rate, steps: one recipe of the
    # method; a method's rows may come from an earlier recipe) more privacy never needs less noise
    assert len({(r["method"], r["target_epsilon"]) for r in ROWS}) == len(ROWS)
    for plan in {(r["method"], r["sample_rate"], r["steps"]) for r in ROWS}:
        rows = sorted((r for r in ROWS if (r["method"], r["sample_rate"], r["steps"]) == plan),
                      key=lambda r: r["target_epsilon"])
        sigmas = [r["noise_multiplier"] for r in rows]
        assert sigmas == sorted(sigmas, reverse=True)


@pytest.mark.realdata
def test_a_private_checkpoint_evaluates_to_its_card(real_data):
    import json
    import subprocess
    import sys

    from conftest import REPO

    name = min(PRIVATE, key=lambda d: read_card(d)["privacy"]["epsilon"]).name  # the most private one
    r = subprocess.run([sys.executable, "-m", "fer_core", "evaluate", "--checkpoint", name, "--data", str(real_data),
                        "--json", "--threads", "1", "--no-tta"], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["accuracy"] == pytest.approx(read_card(CHECKPOINT_DIR / name)["metrics"]["PrivateTest"]["accuracy"],
                                            abs=0.001)
