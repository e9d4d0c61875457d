"""Data the package ships: calibration prompts written for hia_chain (Apache-2.0).

They are the package's own text, never benchmark prompts, so a warm start calibrated on them
says nothing about (and cannot leak into) a benchmark's report split.
"""
