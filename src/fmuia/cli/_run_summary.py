"""The lines ``fmuia train`` and ``fmuia finetune`` print when a run ends."""
from __future__ import annotations


def score_name(select: str) -> str:
    """What ``train.select``'s score is called: the challenge score, or the selection score
    of another rule (``balanced``, ``official``), which is not the challenge score."""
    return "challenge score" if select == "challenge" else f"selection score ({select})"


def run_summary(result, source: str | None = None) -> str:
    """Run folder, the best validation score under its own name (with the challenge score
    of that epoch when the rule is another one) and the checkpoints."""
    if result.best_score is None:
        score = "n/a (no validation)"
    else:
        score = f"{result.best_score:.4f} (epoch {result.best_epoch}"
        best_row = next((row for row in result.history if row.get("epoch") == result.best_epoch), {})
        challenge = best_row.get("challenge_score")
        if result.select != "challenge" and challenge is not None:
            score += f"; challenge score {challenge:.4f}"
        score += ")"
    origin = f" (fine-tuned from {source})" if source else ""
    return (f"run: {result.run_dir}{origin}\nbest validation {score_name(result.select)}: {score}\n"
            f"checkpoints: {result.best_checkpoint or '-'} (best), {result.last_checkpoint} (last)")
