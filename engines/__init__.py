"""Training engines for liftbase.

`engines.native` is the project's own off-policy engine (DrQ-v2 / SAC); RoboBase's
Workspace is the other engine. Both read the same config vocabulary.
"""
