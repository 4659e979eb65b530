"""deepgm: classic deep generative models (RBM, DBN, deep autoencoder, VAE, CVAE) on a parallel Rust core."""

__version__ = "0.1.0"
