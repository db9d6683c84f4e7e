"""Pawlens models: the one definition of architectures, preprocessing, checkpoints and Grad-CAM.

Everything else in the product (train, export, runtime, gui) builds on this package; it imports
none of them.
"""
