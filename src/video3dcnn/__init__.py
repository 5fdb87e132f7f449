"""video3dcnn: labelled videos in, a trained 3D-CNN video classifier out."""

__version__ = "0.1.0"
