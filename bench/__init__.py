"""Reproducible benchmarks of the conform pipeline against bare ffmpeg, libvips and Pillow."""
