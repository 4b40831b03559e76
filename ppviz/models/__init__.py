"""Neural networks: the pointwise PP encoder-decoder and the diffusion downscaler."""
