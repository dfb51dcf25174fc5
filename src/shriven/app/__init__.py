"""Assembles a run from settings: feeds, simulators, the Kite universe job, health and the pipeline.

The only room that knows every other one; cli/ calls it, nothing below imports it.
"""
