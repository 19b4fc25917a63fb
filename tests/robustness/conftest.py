"""The catalogue shares the prediction tests' tiny checkpoint (built once per session)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "predict"))
