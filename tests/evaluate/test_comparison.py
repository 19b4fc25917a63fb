"""The one comparison table: metrics per kind from the kinds, distances improve downwards."""
from fmuia import kinds
from fmuia.evaluate.outputs import compare_summaries, format_comparison


def _results(dsc, hd, auc, mre, score):
    return {"per_kind": {"segmentation": {"DSC": dsc, "HD": hd}, "classification": {"AUC": auc},
                         "keypoints": {"MRE": mre}}, "challenge_score": score}


def test_rows_follow_the_registered_kinds_and_their_metrics():
    rows = compare_summaries(_results(0.5, 10.0, 0.7, 8.0, 0.4), _results(0.6, 12.0, 0.6, 6.0, 0.5))
    expected = [(k.name, m) for k in kinds.all_kinds() for m in k.metric_names] + [("all", "challenge score")]
    assert [(r["kind"], r["metric"]) for r in rows] == expected
    by = {(r["kind"], r["metric"]): r for r in rows}
    assert by["segmentation", "DSC"]["better"] is True
    assert by["segmentation", "HD"]["better"] is False  # a larger distance is worse
    assert by["classification", "AUC"]["better"] is False
    assert by["keypoints", "MRE"]["better"] is True  # a smaller error is better
    assert by["detection", "IoU"]["better"] is None and by["detection", "IoU"]["delta"] is None
    assert abs(by["all", "challenge score"]["delta"] - 0.1) < 1e-12


def test_table_names_the_labels_and_marks_the_direction():
    labels = ("untrained", "trained")
    rows = compare_summaries(_results(0.5, 10.0, 0.7, 8.0, 0.4), _results(0.6, 12.0, 0.6, 6.0, 0.5), labels=labels)
    table = format_comparison(rows, labels).splitlines()
    assert table[0] == "| kind | metric | untrained | trained | delta |"
    assert "| segmentation | HD | 10.0000 | 12.0000 | +2.0000 (worse) |" in table
    assert "| keypoints | MRE | 8.0000 | 6.0000 | -2.0000 (better) |" in table


def test_kinds_declare_which_metrics_are_distances():
    assert kinds.kind_of("segmentation").lower_is_better >= {"HD"}
    assert kinds.kind_of("keypoints").lower_is_better >= {"MRE"}
    assert not kinds.kind_of("classification").lower_is_better
    assert kinds.kind_of("classification").headline() == ("AUC",)
    assert kinds.kind_of("segmentation").headline() == ("DSC", "HD")


def test_three_summaries_each_column_against_the_one_before():
    labels = ("untrained", "official", "improved")
    rows = compare_summaries(_results(0.2, 30.0, 0.5, 20.0, 0.1), _results(0.5, 10.0, 0.7, 8.0, 0.4),
                             _results(0.6, 12.0, 0.6, 6.0, 0.5), labels=labels)
    by = {(r["kind"], r["metric"]): r for r in rows}
    hd = by["segmentation", "HD"]
    assert (hd["untrained"], hd["official"], hd["improved"]) == (30.0, 10.0, 12.0)
    assert hd["deltas"] == [-20.0, 2.0] and hd["betters"] == [True, False]
    assert (hd["delta"], hd["better"]) == (2.0, False)  # the last column against the one before
    table = format_comparison(rows, labels).splitlines()
    assert table[0] == "| kind | metric | untrained | official | improved | official - untrained | improved - official |"
    assert table[1] == "|---|---|---:|---:|---:|---:|---:|"
    assert "| segmentation | HD | 30.0000 | 10.0000 | 12.0000 | -20.0000 (better) | +2.0000 (worse) |" in table
    assert "| detection | IoU | undefined | undefined | undefined | - | - |" in table


def test_one_label_per_summary():
    import pytest

    with pytest.raises(ValueError, match="one label each"):
        compare_summaries(_results(0.5, 10.0, 0.7, 8.0, 0.4), _results(0.6, 12.0, 0.6, 6.0, 0.5), labels=("a",))
