"""Physical constants and display thresholds: each defined once, imported everywhere.

Only plain numbers here (no imports beyond :mod:`math`), so every layer may use them.
"""

from __future__ import annotations

import math

#: Mean Earth radius, km (the sphere of the spectra, grid spacings and the VIMD divergence).
EARTH_RADIUS_KM = 6371.0
#: The same in metres.
EARTH_RADIUS_M = EARTH_RADIUS_KM * 1000.0
#: Standard gravity, m s-2.
STANDARD_GRAVITY = 9.80665
#: Length of one degree of latitude (great circle) on that sphere, km (111.19 km).
KM_PER_DEG = math.radians(1.0) * EARTH_RADIUS_KM
#: Resolution of the fine (ERA5) grid, degrees.
FINE_RES_DEG = 0.25
#: Grid spacing of the fine grid along a meridian, km (0.25 deg = 27.80 km).
FINE_DX_KM = FINE_RES_DEG * KM_PER_DEG
#: Rates below this (mm/h) are drawn clear on every precipitation map (dashboard and PNG figures);
#: it is also the wet threshold of the PP metrics (wet means ``tp >= 0.1`` mm/h).
DRY_THRESHOLD_MMH = 0.1
#: Density of liquid water, kg m-3: a water mass per area (kg m-2) is a depth (m) once divided by it,
#: so 1 kg m-2 = 1 mm of liquid water equivalent (CF ``lwe_`` quantities).
WATER_DENSITY = 1000.0
