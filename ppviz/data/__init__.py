"""Data layer: grids, regions, the canonical dataset, ERA5 readers, VIMD, synthetic Europe."""
