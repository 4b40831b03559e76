"""Dashboard pages: one module per page; state in param classes; library calls only."""
