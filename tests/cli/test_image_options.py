"""The image-reading switches of the CLI offer what the config accepts."""
def test_the_exif_switch_offers_the_configs_values():
    from fmuia.cli._image_options import EXIF_CHOICES
    from fmuia.config.sections import DataConfig

    assert EXIF_CHOICES == DataConfig.choices("exif_orientation")
