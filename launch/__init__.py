"""Launching runs: validation at the door, the run directory, dispatch to the native or the
RoboBase engine, the closing report, and the eval/record entry points."""
