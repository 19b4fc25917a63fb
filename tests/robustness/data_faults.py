"""One planted fault per data case (see test_catalogue_data.py)."""
from __future__ import annotations

import json
import os

import numpy as np
from catalogue_helpers import file_of, rewrite, rows_text, write_csv_bytes
from dataset_builders import write_image, write_mask


def _truncate(path: str, keep: float) -> None:
    data = open(path, "rb").read()
    open(path, "wb").write(data[: int(len(data) * keep)])


def zero_byte_image(root, rows):
    open(file_of(root, rows[5]["image_path"]), "wb").close()


def zero_byte_mask(root, rows):
    open(file_of(root, rows[0]["mask_path"]), "wb").close()


def truncated_png(root, rows):
    _truncate(file_of(root, rows[5]["image_path"]), 0.5)


def truncated_jpg(root, rows):
    _truncate(file_of(root, rows[9]["image_path"]), 0.5)


def not_an_image(root, rows):
    open(file_of(root, rows[5]["image_path"]), "wb").write(b"Patient notes, not pixels\n" * 10)


def sixteen_bit_image(root, rows):
    write_image(file_of(root, rows[5]["image_path"]), dtype=np.uint16)


def wrong_size_mask(root, rows):
    write_mask(file_of(root, rows[0]["mask_path"]), h=20)


def mask_value_too_large(root, rows):
    write_mask(file_of(root, rows[0]["mask_path"]), value=5)


def csv_cp1252(root, rows):
    rows[5]["image_path"] = rows[5]["image_path"].replace(".png", "é.png")
    os.rename(file_of(root, rows[5]["image_path"].replace("é", "")), file_of(root, rows[5]["image_path"]))
    write_csv_bytes(root, rows_text(rows).encode("cp1252"))


def csv_utf16(root, rows):
    write_csv_bytes(root, rows_text(rows).encode("utf-16"))


def csv_bom(root, rows):
    write_csv_bytes(root, rows_text(rows).encode("utf-8-sig"))


def empty_csv(root, rows):
    write_csv_bytes(root, b"")


def header_only_csv(root, rows):
    rewrite(root, [])


def missing_column(root, rows):
    from dataset_builders import COLUMNS

    rewrite(root, rows, [c for c in COLUMNS if c != "num_classes"])


def misspelt_column(root, rows):
    from dataset_builders import COLUMNS

    for r in rows:
        r["x_mn"] = r.pop("x_min", "")
    rewrite(root, rows, [("x_mn" if c == "x_min" else c) for c in COLUMNS])


def unknown_kind(root, rows):
    rows[5]["task_name"] = "clasification"
    rewrite(root, rows)


def num_classes_disagree(root, rows):
    rows[6]["num_classes"] = 3
    rewrite(root, rows)


def label_out_of_range(root, rows):
    rows[6]["mask"] = 2
    rewrite(root, rows)


def box_outside_image(root, rows):
    rows[9].update(x_max=40)
    rewrite(root, rows)


def inverted_box(root, rows):
    rows[9].update(x_min=20, x_max=4)
    rewrite(root, rows)


def point_outside_image(root, rows):
    rows[11]["point_1_xy"] = json.dumps([50, 4])
    rewrite(root, rows)


def malformed_point(root, rows):
    rows[11]["point_1_xy"] = "[3, four]"
    rewrite(root, rows)


def duplicate_row(root, rows):
    rewrite(root, rows + [dict(rows[5])])


def missing_image(root, rows):
    os.remove(file_of(root, rows[5]["image_path"]))


def escaping_path(root, rows):
    rows[5]["image_path"] = "../" * 12 + "etc/passwd"
    rewrite(root, rows)


ALL = {f.__name__: f for f in [
    zero_byte_image, zero_byte_mask, truncated_png, truncated_jpg, not_an_image, sixteen_bit_image, wrong_size_mask,
    mask_value_too_large, csv_cp1252, csv_utf16, csv_bom, empty_csv, header_only_csv, missing_column, misspelt_column,
    unknown_kind, num_classes_disagree, label_out_of_range, box_outside_image, inverted_box, point_outside_image,
    malformed_point, duplicate_row, missing_image, escaping_path,
]}
