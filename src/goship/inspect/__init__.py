"""Detectors `goship init` runs over a Go project: pure functions over source text and
tool output (tested as data), each fact with where it was found and how sure it is."""
