"""The twin audit's table rows, verdicts and figure data (fer_core.audit.verdict), its figure, and its README
table (fer_core.results.report), on rows written to temporary ``audit_twins.csv`` files by the real writer."""

import pytest

from fer_core.app.plots import twin_leakage_figure
from fer_core.audit.verdict import (
    TWIN_TABLE_COLUMNS,
    attack_order,
    twin_leakage_points,
    twin_recipe_notes,
    twin_table_rows,
    twin_verdicts,
    usable_twin_rows,
)
from fer_core.results.files import read_twin_audit, write_twin_audit


def row(model="dp_x_eps2", attack="lira", private=True, method="scatternet", claimed=2.0, auc=0.52, eps=0.3,
        shifted=False, **more) -> dict:
    """One ``audit_twins.csv`` row as written by fer_core.audit.twins (intervals around the figures)."""
    return {"model": model, "private": private, "method": method if private else "",
            "claimed_epsilon": claimed if private else "", "delta": 1e-5 if private else "", "attack": attack,
            "twins": 16, "n_rows": 10000, "auc": auc, "auc_low": auc - 0.01, "auc_high": auc + 0.01,
            "tpr_at_1pct_fpr": 0.012, "tpr_at_1pct_fpr_low": 0.01, "tpr_at_1pct_fpr_high": 0.014,
            "tpr_at_0.1pct_fpr": 0.0015, "tpr_at_0.1pct_fpr_low": 0.0008, "tpr_at_0.1pct_fpr_high": 0.0025,
            "balanced_accuracy": auc - 0.01, "epsilon_lower_bound": eps, "blind_auc": 0.55 if shifted else 0.501,
            "blind_auc_low": 0.53 if shifted else 0.487, "blind_auc_high": 0.57 if shifted else 0.515,
            "blind_shifted": shifted, "twin_overrides": "{}", "seconds": 60.0,
            "command": f"python -m fer_core audit --twins 16 --checkpoint checkpoints/{model}", **more}


@pytest.fixture
def written(tmp_path):
    """Rows as the page and the README read them back from a file."""
    def write(rows):
        path = tmp_path / "audit_twins.csv"
        write_twin_audit(rows, path)
        return path, read_twin_audit(path)
    return write


def test_twin_table_rows(written):
    _, rows = written([row(), row(attack="loss", auc=0.505, eps=0.0),
                       row("fer2013_resnet", private=False, auc=0.7, eps=2.5),
                       row("dp_odd_eps4", claimed=4.0, shifted=True, tpr_at_1pct_fpr_low="", auc_high="")])
    table = twin_table_rows(usable_twin_rows(rows))
    assert all(list(t) == TWIN_TABLE_COLUMNS for t in table)
    by = {(t["model"], t["attack"]): t for t in table}
    assert [(t["model"], t["attack"]) for t in table] == [  # file order (by model), LiRA first
        ("dp_odd_eps4", "lira"), ("dp_x_eps2", "lira"), ("dp_x_eps2", "loss"), ("fer2013_resnet", "lira")]
    x = by["dp_x_eps2", "lira"]
    assert x == {"model": "dp_x_eps2", "method": "scatternet", "claimed ε": "2", "attack": "lira", "twins": 16,
                 "rows": 10000, "AUC [95%]": "0.520 [0.510, 0.530]", "TPR@1% FPR [95%]": "1.20% [1.00%, 1.40%]",
                 "TPR@0.1% FPR [95%]": "0.15% [0.08%, 0.25%]", "empirical ε lower bound": "0.30",
                 "blind AUC [95%]": "0.501 [0.487, 0.515]"}
    base = by["fer2013_resnet", "lira"]
    assert base["method"] == "none (not private)" and base["claimed ε"] == "— (no promise)"
    odd = by["dp_odd_eps4", "lira"]
    assert odd["AUC [95%]"] == "0.520" and odd["TPR@1% FPR [95%]"] == "1.20%"  # half an interval: the value only
    assert odd["blind AUC [95%]"] == "0.550 [0.530, 0.570] (shifted)"


def test_usable_twin_rows_drop_malformed_rows(written):
    _, rows = written([row(), {**row("broken"), "auc": "n/a"}, row("", attack="loss")])
    assert [r["model"] for r in usable_twin_rows(rows)] == ["dp_x_eps2"]
    assert attack_order([row(attack="loss"), row(attack="lira"), row(attack="rmia")]) == ["lira", "rmia", "loss"]


def test_twin_verdicts(written):
    _, rows = written([
        row("dp_ok_eps2", eps=0.4), row("dp_ok_eps2", attack="loss", eps=0.1),
        # the loss attack proves more than LiRA here: the verdict judges the strongest evidence
        row("dp_bug_eps1", claimed=1.0, eps=0.8), row("dp_bug_eps1", attack="loss", claimed=1.0, eps=1.3),
        row("dp_split_eps4", claimed=4.0, eps=5.0, shifted=True),
        row("dp_split_eps4", attack="loss", claimed=4.0, eps=0.2),
        row("fer2013_resnet", private=False, auc=0.7, eps=2.5), row("fer2013_resnet", attack="loss", private=False),
        row("fer2013_quiet", private=False, auc=0.503, eps=0.0),
        row("dp_noclaim", claimed="", eps=0.2),
    ])
    verdicts = {v.model: v for v in twin_verdicts(usable_twin_rows(rows))}
    assert {m: v.kind for m, v in verdicts.items()} == {
        "dp_bug_eps1": "exceeds", "dp_noclaim": "unchecked", "dp_ok_eps2": "consistent", "dp_split_eps4": "shifted",
        "fer2013_quiet": "no promise", "fer2013_resnet": "no promise"}
    assert verdicts["dp_ok_eps2"].text == ("**dp_ok_eps2**: measured ε ≥ 0.40 (LiRA online (twin shadows)) vs "
                                           "claimed ε = 2: consistent (AUC 0.520 [0.510, 0.530])")
    bug = verdicts["dp_bug_eps1"].text
    assert "measured ε ≥ 1.30 (Loss threshold) vs claimed ε = 1: exceeds the claim!" in bug and "a bug to find" in bug
    split = verdicts["dp_split_eps4"].text  # the bound above the claim is no evidence: the halves differ
    assert "measured a split, not the model" in split and "0.550 [0.530, 0.570]" in split
    leaks = verdicts["fer2013_resnet"].text
    assert "it leaks" in leaks and "AUC 0.700 [0.690, 0.710]" in leaks and "0.15% [0.08%, 0.25%]" in leaks
    assert "measured no leakage" in verdicts["fer2013_quiet"].text  # its AUC interval holds 0.5


def test_twin_leakage_points_and_figure(written):
    _, rows = written([row("dp_s_eps8", claimed=8.0, auc=0.56), row("dp_s_eps1", claimed=1.0, auc=0.51),
                       row("dp_t_eps2", method="two-stage", auc=0.53),
                       row("dp_t_eps2", attack="loss", method="two-stage", auc=0.6),
                       row("fer2013_resnet", private=False, auc=0.7), row("dp_noclaim", claimed="")])
    pts = twin_leakage_points(rows, "lira")
    assert list(pts["methods"]) == ["scatternet", "two-stage"]
    assert [(p["model"], p["epsilon"], p["value"]) for p in pts["methods"]["scatternet"]] == [
        ("dp_s_eps1", 1.0, 0.51), ("dp_s_eps8", 8.0, 0.56)]
    assert pts["methods"]["two-stage"][0]["low"] == pytest.approx(0.52)
    assert [(p["model"], p["epsilon"], p["value"]) for p in pts["reference"]] == [("fer2013_resnet", None, 0.7)]
    assert twin_leakage_points(rows, "loss")["methods"] == {"two-stage": [
        {"model": "dp_t_eps2", "epsilon": 2.0, "value": 0.6, "low": pytest.approx(0.59), "high": pytest.approx(0.61)}]}
    tpr = twin_leakage_points(rows, "lira", "tpr_at_0.1pct_fpr")["methods"]["scatternet"][0]
    assert (tpr["value"], tpr["low"], tpr["high"]) == (0.0015, 0.0008, 0.0025)

    fig = twin_leakage_figure(pts, "AUC", 0.5, "t")
    assert [t.name for t in fig.data] == ["scatternet", "two-stage", "fer2013_resnet (not private)", "chance"]
    assert list(fig.data[0].x) == [1.0, 8.0] and list(fig.data[0].error_y.array) == pytest.approx([0.01, 0.01])
    assert list(fig.data[2].x) == list(fig.data[3].x) == [1.0, 8.0]  # the reference and chance span the ε range
    assert list(fig.data[2].y) == [0.7, 0.7] and list(fig.data[3].y) == [0.5, 0.5]
    assert fig.layout.xaxis.type == "log"
    empty = twin_leakage_figure({"methods": {}, "reference": []})
    assert [t.name for t in empty.data] == ["chance"]


def test_twin_recipe_notes():
    rows = [row(twin_overrides='{"epochs": 3}'), row(attack="loss", twin_overrides='{"epochs": 3}'),
            row("dp_y", twin_overrides="{}"), row("dp_z", twin_overrides="not json")]
    assert twin_recipe_notes(rows) == ["`dp_x_eps2`: twins trained with epochs=3"]


def test_readme_twin_audit_table(written, tmp_path):
    from fer_core.results.report import TWIN_AUDIT_MISSING, twin_audit_table

    path, _ = written([row(), row(attack="loss", auc=0.505, eps=0.0),
                       row("fer2013_resnet", private=False, auc=0.7, eps=2.46),
                       row("fer2013_resnet", attack="loss", private=False, auc=0.62, eps=0.81),
                       row("dp_odd_eps4", claimed=4.0, shifted=True, blind_auc_high=""),
                       row("fer2013_resnet", attack="lira_offline", private=False, auc=0.65, eps=1.5,
                           twin_overrides='{"epochs": 8, "init_from": null, "threads": 1}')])
    lines = twin_audit_table(path).splitlines()
    assert lines[0].startswith("| model | claimed ε | attack | twins | AUC [95%] | TPR @ 1% FPR [95%] "
                               "| TPR @ 0.1% FPR [95%]")
    body = [x for x in lines[2:] if x.startswith("| `")]
    assert len(body) == 6
    assert body[1] == ("| `dp_x_eps2` | 2 | lira | 16 | 0.520 [0.510, 0.530] | 1.20% [1.00%, 1.40%] "
                       "| 0.15% [0.08%, 0.25%] | 0.30 | 0.501 [0.487, 0.515] |")
    assert body[3] == ("| `fer2013_resnet` | none (not private) | lira | 16 | 0.700 [0.690, 0.710] "
                       "| 1.20% [1.00%, 1.40%] | 0.15% [0.08%, 0.25%] | 2.46 | 0.501 [0.487, 0.515] |")
    # a changed recipe is said (free options such as threads are not changes), and what the twins cost
    assert any(x.startswith("Twins trained with a changed recipe: `fer2013_resnet`: `epochs=8`, `init_from=null` (")
               for x in lines)
    assert any(x.startswith("Cost: 3 min of twin training") for x in lines)  # the three LiRA rows' 60 s each
    assert body[0].endswith("| 0.550 **shifted** |")  # no full interval: the value alone
    # every command that wrote rows, once each, in table order
    assert lines[-1] == "Commands: " + "; ".join(
        f"`python -m fer_core audit --twins 16 --checkpoint checkpoints/{m}`"
        for m in ("dp_odd_eps4", "dp_x_eps2", "fer2013_resnet"))

    assert twin_audit_table(tmp_path / "missing.csv") == TWIN_AUDIT_MISSING
    header_only = tmp_path / "empty.csv"
    header_only.write_text(path.read_text().splitlines()[0] + "\n")
    assert twin_audit_table(header_only) == TWIN_AUDIT_MISSING
    assert "--twins 16 --checkpoint checkpoints/<model>" in TWIN_AUDIT_MISSING


def test_readme_leads_the_audits_with_the_twins():
    from fer_core.results.report import render_results

    text = render_results()
    twins = text.index("### Membership-inference audit on twins (same distribution)")
    assert twins < text.index("### Benchmarks")
    shifted = "### Membership-inference audit, shifted (Training members vs test-split non-members)"
    if shifted in text:
        assert twins < text.index(shifted)


def test_adding_a_model_keeps_the_other_rows_as_written(tmp_path):
    path = tmp_path / "audit_twins.csv"
    write_twin_audit([row("dp_a_eps8"), row("dp_a_eps8", attack="loss")], path)
    before = path.read_text().splitlines()
    rows = write_twin_audit([row("dp_b_eps1", claimed=1.0)], path)
    after = path.read_text().splitlines()
    assert after[:3] == before and len(after) == 4 and ",16,10000," in after[1]  # not "16.0,10000.0"
    assert [(r["model"], r["attack"]) for r in rows] == [("dp_a_eps8", "lira"), ("dp_a_eps8", "loss"),
                                                          ("dp_b_eps1", "lira")]
    assert read_twin_audit(path)[0]["twins"] == 16.0
