"""Brickyard."""
