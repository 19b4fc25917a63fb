"""What ``fmuia train`` and ``fmuia finetune`` print at the end names the score ``train.select`` chose."""
from fmuia.cli._run_summary import run_summary
from fmuia.train.engine import RunResult

HISTORY = [{"epoch": 1, "val_score": 0.41, "challenge_score": 0.80}, {"epoch": 2, "val_score": 0.52, "challenge_score": 0.78}]


def _result(select: str, best_score: float | None = 0.52, best_epoch: int | None = 2) -> RunResult:
    return RunResult(run_dir="runs/r", best_score=best_score, best_epoch=best_epoch, epochs=2, steps=20,
                     last_checkpoint="runs/r/last", best_checkpoint="runs/r/best", history=HISTORY, select=select)


def test_balanced_selection_is_not_called_the_challenge_score():
    text = run_summary(_result("balanced"))
    assert "best validation selection score (balanced): 0.5200 (epoch 2; challenge score 0.7800)" in text
    assert "best validation challenge score" not in text


def test_challenge_selection_keeps_its_name():
    text = run_summary(_result("challenge", best_score=0.8, best_epoch=1), source="runs/b4/best")
    assert "run: runs/r (fine-tuned from runs/b4/best)\nbest validation challenge score: 0.8000 (epoch 1)\n" in text
    assert "checkpoints: runs/r/best (best), runs/r/last (last)" in text


def test_no_validation():
    assert "best validation selection score (official): n/a (no validation)" in run_summary(_result("official", None, None))

