"""Training loops (the networks live in ppviz.models and ppviz.diffusion)."""
