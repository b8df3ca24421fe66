"""RoboBase EnvFactory plugin: `GenesisLiftFactory`, `MujocoLiftFactory`, `WrappedGenesisVectorEnv`."""
from factories.factory import GenesisLiftFactory, MujocoLiftFactory, task_kwargs
from factories.vector_env import WrappedGenesisVectorEnv, WrappedVectorEnv

__all__ = ["GenesisLiftFactory", "MujocoLiftFactory", "WrappedGenesisVectorEnv", "WrappedVectorEnv", "task_kwargs"]
