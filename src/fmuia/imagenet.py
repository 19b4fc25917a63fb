"""The ImageNet channel statistics (RGB, pixels in [0, 1]) that images are normalised
with: the pretrained encoders expect them, so training transforms, prediction and the
encoder's input adapter all use these two tuples."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
