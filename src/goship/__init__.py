"""goship: ship a Go web service from source to production with zero lost requests."""

__version__ = "0.1.0"
