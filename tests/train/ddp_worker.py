"""Run by test_distributed.py under torchrun: a tiny training run on every rank, whose
final weights, losses and learned loss weights each rank writes to OUT/rank<r>.pt for the test to compare."""
import json
import os
import sys

import torch

from fmuia.train import Trainer
from fmuia.config import load_config


def main(data_root: str, out: str, config_json: str) -> None:
    config = load_config(json.loads(config_json))
    trainer = Trainer(config, data_root, os.path.join(out, "run"))
    result = trainer.fit()
    rank = trainer.dist.rank
    state = {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}
    balance = trainer.loss.balance.state() if trainer.loss.balance is not None else {}
    torch.save({"state": state, "losses": [r["train_loss"] for r in result.history], "world": trainer.dist.world_size,
                "batches": len(trainer.data.sampler), "balance": balance}, os.path.join(out, f"rank{rank}.pt"))
    trainer.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
