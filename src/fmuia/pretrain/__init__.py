"""Self-supervised pretraining of the shared encoder on unlabelled ultrasound images
(SimCLR), producing an encoder file that ``model.pretrained`` loads."""
from fmuia.pretrain.engine import ENCODER_NAME, PretrainResult, Pretrainer, pretrain

__all__ = ["ENCODER_NAME", "PretrainResult", "Pretrainer", "pretrain"]
