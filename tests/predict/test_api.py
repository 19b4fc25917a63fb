import numpy as np
import pytest
import torch
from PIL import Image
from tiny import tiny_checkpoint

import fmuia
from fmuia.data.transforms import build_eval_transform
from fmuia.errors import DataError
from fmuia.predict import ClassificationResult, DetectionResult, KeypointsResult, SegmentationResult
from fmuia.io.dicom import read_dicom
from fmuia.data.resize import resize_image
from fmuia.predict.normalise import normalise


@pytest.fixture(scope="module")
def predictor():
    return fmuia.load(tiny_checkpoint(), device="cpu", precision="fp32")


def _image(h=45, w=70, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_split_preprocessing_equals_the_eval_transform():
    image = _image()
    reference = build_eval_transform(64)(image=image)["image"].transpose(2, 0, 1)
    ours = normalise(torch.from_numpy(resize_image(image, 64))[None], torch.device("cpu"))[0].numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_predict_on_array_pil_and_path_in_original_pixels(tmp_path, predictor):
    image = _image()
    seg = predictor.predict(image, "cardiac_multi", probabilities=True)
    assert isinstance(seg, SegmentationResult)
    assert seg.mask.shape == (45, 70) and seg.mask.dtype == np.uint8 and seg.mask.max() < 4
    assert seg.probabilities.shape == (4, 45, 70)
    np.testing.assert_allclose(seg.probabilities.sum(0), 1.0, atol=1e-4)

    cls = predictor.predict(Image.fromarray(image), "breast_3cls")
    assert isinstance(cls, ClassificationResult) and cls.class_name == ("normal", "benign", "malignant")[cls.label]
    assert abs(cls.probabilities.sum() - 1) < 1e-12

    path = tmp_path / "img.png"
    Image.fromarray(image).save(path)
    det = predictor.predict(str(path), "thyroid_nodule_det")
    assert isinstance(det, DetectionResult)
    np.testing.assert_allclose(det.box, det.box_normalized * [70, 45, 70, 45])
    kp = predictor.predict(path, "IUGC")
    assert isinstance(kp, KeypointsResult) and kp.points.shape == (3, 2)
    np.testing.assert_allclose(kp.points, kp.points_normalized * [70, 45])

    # Same pixels, same answer, whatever the input form.
    again = predictor.predict(image, "breast_3cls")
    np.testing.assert_allclose(again.probabilities, cls.probabilities, atol=1e-6)
    gray = predictor.predict(image[:, :, 0], "breast_3cls")
    assert gray.probabilities.shape == (3,)

    with pytest.raises(DataError, match="unknown task 'nope'"):
        predictor.predict(image, "nope")
    with pytest.raises(DataError, match="file not found"):
        predictor.predict(str(tmp_path / "missing.png"), "IUGC")


def _write_dicom(path, frames, photometric="MONOCHROME2", slope=None, intercept=None, bits=16):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, UltrasoundMultiFrameImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    frames = np.asarray(frames, dtype=np.uint16)
    if frames.shape[0] > 1:
        ds.NumberOfFrames = frames.shape[0]
    ds.Rows, ds.Columns = frames.shape[1:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits, bits - 1
    ds.PixelRepresentation = 0
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelData = (frames if frames.shape[0] > 1 else frames[0]).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_dicom_frames_inversion_and_rescale(tmp_path, predictor):
    # 10-bit data: 0 maps to 0 and 1023 (the largest 10-bit value) to 255.
    ramp = np.tile(np.round(np.linspace(0, 1023, 64)).astype(np.uint16), (40, 1))  # (40, 64), left dark
    frames = np.stack([ramp, ramp[:, ::-1]])
    cine = str(tmp_path / "cine.dcm")
    _write_dicom(cine, frames, bits=10)
    first, second = read_dicom(cine), read_dicom(cine, frame=1)
    assert first.shape == (40, 64, 3) and first.dtype == np.uint8
    assert first[0, 0, 0] == 0 and first[0, -1, 0] == 255 and np.array_equal(second[:, :, 0], first[:, ::-1, 0])
    with pytest.raises(DataError, match="frame 2 requested but the file has 2 frames"):
        read_dicom(cine, frame=2)

    mono1 = str(tmp_path / "mono1.dcm")
    _write_dicom(mono1, ramp[None], photometric="MONOCHROME1", slope=2.0, intercept=-100.0, bits=10)
    inverted = read_dicom(mono1)
    assert inverted[0, 0, 0] == 255 and inverted[0, -1, 0] == 0  # low values display white

    result = predictor.predict(cine, "fetal_head", frame=1)
    assert result.mask.shape == (40, 64)
    same = predictor.predict(second, "fetal_head")
    np.testing.assert_array_equal(result.mask, same.mask)
