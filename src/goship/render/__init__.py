"""Renderers for the configs a Gin shop needs. Deploy uses the same ones."""
