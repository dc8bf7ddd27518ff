"""Building and packaging: reproducible, version-stamped, cross-compiled releases."""
