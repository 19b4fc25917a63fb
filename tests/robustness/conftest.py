"""The catalogue shares the prediction tests' tiny checkpoint (built once per session)
and the pretraining tests' image folders."""
import os
import sys

for _helpers in ("predict", "pretrain"):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, _helpers))
