"""How images are read, as switches shared by the commands that read them (``validate``,
``predict``); training reads the same settings from ``data:`` in its config."""
from __future__ import annotations

EXIF_CHOICES = ("apply", "ignore")  # data.exif_orientation's values (fmuia.config.sections.DataConfig)


def add_exif_orientation_argument(p, effect: str) -> None:
    """``--exif-orientation``; ``effect`` says what "apply" means for this command's output."""
    p.add_argument("--exif-orientation", choices=EXIF_CHOICES, default="apply",
                   help="an image's EXIF orientation tag (JPEG, PNG): apply (turn it upright, as the official reader "
                        f"cv2.imread does; {effect}) or ignore; as 'data.exif_orientation' for training; default apply")
