"""fmuia through its Python API: synthetic data -> train -> predict -> score -> one image.

    python examples/quickstart.py            # about two minutes on two CPU cores
"""
import os

import fmuia
from fmuia.synthetic import generate
from fmuia.evaluate import evaluate
from fmuia.train import train

OUT = "quickstart_out"
CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")
# The improved recipe under the CPU budget overlay (network size, epochs), merged in order.
CONFIG = [os.path.join(CONFIGS, "fmuia_plus.yaml"), os.path.join(CONFIGS, "demo_cpu.yaml")]

# 1. A small synthetic dataset in the FM_UIA layout: OUT/data/{train,val,test}.
data = generate(f"{OUT}/data", per_task=8, seed=0, overwrite=True)

# 2. Train the improved recipe, CPU-sized, briefly (any config key can be overridden).
run = train(CONFIG, data_root=data.roots["train"], val_root=data.roots["val"],
            out_dir=f"{OUT}/run-{os.getpid()}", overrides={"train.epochs": 2})
print(f"best validation score {run.best_score:.3f} at epoch {run.best_epoch}: {run.best_checkpoint}")

# 3. Predict the test split into the challenge's submission format, and score it.
predictor = fmuia.load(run.best_checkpoint)
predictor.predict_dataset(data.roots["test"], f"{OUT}/predictions", progress=False, overwrite=True)  # a re-run replaces them
scores = evaluate(data.roots["test"], f"{OUT}/predictions")
print(f"challenge score on the test split: {scores.summary.challenge_score:.3f}")

# 4. One image, in original pixels (a path, a numpy array, a PIL image or a DICOM file).
image = os.path.join(data.roots["test"], "Segmentation", "Two", "fetal_head", "IMAGES", "0001.png")
result = predictor.predict(image, "fetal_head")
print(f"fetal_head mask {result.mask.shape}, classes present {sorted(set(result.mask.ravel().tolist()))}")
